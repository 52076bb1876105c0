"""Goal-conditioned envs (OGBench pointmaze, Fetch) and offline datasets: shapes, the benchmark's
own goals and success rules, the Gymnasium-Robotics patch, the oracle, and the dataset format."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from metra.data import FIELDS, generate_pointmaze, load_dataset, save_dataset
from metra.envs.goals import GOAL_ENV_NAMES, goal_env_spec, make_goal_env
from metra.envs.maze import MazeOracle
from metra.envs.robotics import patch_gymnasium_robotics


@pytest.mark.parametrize("name", GOAL_ENV_NAMES)
def test_spec_shapes_and_time_limit(name: str) -> None:
    spec = goal_env_spec(name)
    with closing(make_goal_env(name, seed=0)) as env:
        assert env.spec == spec
        obs, goal = env.reset()
        assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
        assert goal.shape == (spec.goal_dim,) and goal.dtype == np.float32
        assert len(spec.goal_index) == spec.goal_dim
        if spec.goal_is_state:
            assert spec.goal_dim == spec.obs_dim
        rng = np.random.default_rng(0)
        steps, done = 0, False
        while not done:
            obs, success, done = env.step(rng.uniform(-1, 1, spec.act_dim))
            steps += 1
            assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
            assert isinstance(success, bool)
        # Random actions never succeed here, so the episode runs to the time limit.
        assert steps == spec.episode_len


def test_specs_match_the_benchmarks_registries() -> None:
    import gymnasium as gym

    make_goal_env("pointmaze-medium").close()  # registers OGBench's envs
    make_goal_env("fetch_reach").close()  # registers Gymnasium-Robotics' envs
    assert gym.spec("pointmaze-medium-v0").max_episode_steps == 1000
    assert gym.spec("pointmaze-large-v0").max_episode_steps == 1000
    assert gym.spec("FetchReach-v4").max_episode_steps == 50
    assert gym.spec("FetchPush-v4").max_episode_steps == 50


def test_unknown_name_and_bad_task() -> None:
    with pytest.raises(ValueError, match=r"pointmaze-medium.*fetch_push"):
        make_goal_env("antmaze-medium")
    with (
        closing(make_goal_env("pointmaze-medium")) as env,
        pytest.raises(ValueError, match=r"1\.\.5"),
    ):
        env.reset(task=6)
    with (
        closing(make_goal_env("fetch_reach")) as env,
        pytest.raises(ValueError, match=r"task=None"),
    ):
        env.reset(task=1)


def test_import_stays_light() -> None:
    code = (
        "import sys, metra.data, metra.envs.goals; "
        "assert not {'ogbench', 'gymnasium_robotics'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pointmaze_tasks_give_the_benchmark_goals_and_repeat_given_a_seed() -> None:
    with closing(make_goal_env("pointmaze-medium")) as env:
        # OGBench's pointmaze-medium task 1: from cell (1, 1) at x-y (0, 0) to cell (6, 6) at
        # (20, 20), each jittered by up to a quarter cell (1.0) per coordinate.
        obs, goal = env.reset(seed=3, task=1)
        assert np.abs(obs).max() <= 1.0
        assert np.abs(goal - 20.0).max() <= 1.0
        again = env.reset(seed=3, task=1)
        np.testing.assert_array_equal(again[0], obs)
        np.testing.assert_array_equal(again[1], goal)
        other = env.reset(task=1)  # the stream goes on: new jitter
        assert not np.array_equal(other[1], goal)
        # Random episodes (no task): start and goal in two different free cells.
        for _ in range(5):
            obs, goal = env.reset()
            cells = {env.oracle.cell_of(obs), env.oracle.cell_of(goal)}
            assert len(cells) == 2 and cells <= set(env.oracle.free_cells)


def test_oracle_without_noise_solves_task_1() -> None:
    with closing(make_goal_env("pointmaze-medium")) as env:
        obs, goal = env.reset(task=1)
        steps, done = 0, False
        while not done:
            obs, success, done = env.step(env.oracle.action(obs, goal))
            steps += 1
        assert success  # OGBench ends the episode at success
        assert steps < 300  # the shortest path is 10 cells of 4 units at 0.2 units a step: ~200
        assert np.linalg.norm(obs - goal) <= 1.0


def test_oracle_follows_the_maze_not_the_straight_line() -> None:
    # A U: from the top-left to the top-right cell the path goes down, right, and up.
    maze = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]])
    oracle = MazeOracle(maze, origin=(0.0, 0.0), cell_size=2.0)  # cell (i, j) at x-y (2j, 2i)
    target = oracle.cell_center((1, 3))
    np.testing.assert_allclose(target, [6.0, 2.0])
    path, xy = [], oracle.cell_center((1, 1))
    while oracle.cell_of(xy) != (1, 3):
        xy = oracle.next_waypoint(xy, target)
        path.append(oracle.cell_of(xy))
    assert path == [(2, 1), (2, 2), (2, 3), (1, 3)]
    np.testing.assert_allclose(oracle.action(oracle.cell_center((1, 1)), target), [0.0, 1.0])
    # In the target's cell it heads for the target itself.
    np.testing.assert_allclose(oracle.next_waypoint(np.array([6.5, 2.5]), target), target)


def test_oracle_cells_match_ogbench() -> None:
    import ogbench

    maze = ogbench.make_env_and_datasets("pointmaze-large-navigate-v0", env_only=True).unwrapped
    oracle = MazeOracle.from_ogbench(maze)
    assert len(oracle.free_cells) == int((maze.maze_map == 0).sum())
    rng = np.random.default_rng(0)
    for cell in oracle.free_cells:
        xy = oracle.cell_center(cell) + rng.uniform(-1.9, 1.9, 2)
        assert oracle.cell_of(xy) == tuple(maze.xy_to_ij(xy)) == cell
    maze.close()


def test_patched_joint_accessors() -> None:
    # Imported here: mujoco picks its GL backend at import, after metra.envs.goals asks for EGL.
    import mujoco
    from gymnasium_robotics.utils import mujoco_utils

    patch_gymnasium_robotics()
    model = mujoco.MjModel.from_xml_string(
        """<mujoco><worldbody>
        <body name="box"><freejoint name="free"/><geom size="0.1"/></body>
        <body name="arm" pos="1 0 0"><joint name="hinge" type="hinge"/><geom size="0.1"/></body>
        </worldbody></mujoco>"""
    )
    data = mujoco.MjData(model)
    data.qpos[:] = np.arange(8.0)
    data.qvel[:] = -np.arange(7.0)
    np.testing.assert_array_equal(mujoco_utils.get_joint_qpos(model, data, "free"), np.arange(7.0))
    np.testing.assert_array_equal(mujoco_utils.get_joint_qpos(model, data, "hinge"), [7.0])
    np.testing.assert_array_equal(mujoco_utils.get_joint_qvel(model, data, "free"), -np.arange(6.0))
    np.testing.assert_array_equal(mujoco_utils.get_joint_qvel(model, data, "hinge"), [-6.0])
    mujoco_utils.set_joint_qpos(model, data, "hinge", 0.5)
    mujoco_utils.set_joint_qvel(model, data, "free", np.ones(6))
    assert data.qpos[7] == 0.5 and np.all(data.qvel[:6] == 1.0)
    with pytest.raises(ValueError, match=r"takes 7 values"):
        mujoco_utils.set_joint_qpos(model, data, "free", np.zeros(3))
    with pytest.raises(ValueError, match=r"not part of the model"):
        mujoco_utils.get_joint_qpos(model, data, "elbow")


def test_fetch_reach_success_is_the_benchmark_rule_on_goal_index() -> None:
    with closing(make_goal_env("fetch_reach", seed=1)) as env:
        index = list(env.spec.goal_index)
        obs, goal = env.reset()
        successes = []
        for _ in range(env.spec.episode_len):
            # Move the gripper straight at the goal (actions are scaled position deltas).
            action = np.zeros(4)
            action[:3] = np.clip(20.0 * (goal - obs[index]), -1.0, 1.0)
            obs, success, done = env.step(action)
            # Gymnasium-Robotics: success within 5 cm of the goal.
            assert success == (np.linalg.norm(obs[index] - goal) < 0.05)
            successes.append(success)
        assert done and successes[-1]


def test_fetch_push_goal_index_is_the_block() -> None:
    with closing(make_goal_env("fetch_push", seed=0)) as env:
        obs, goal = env.reset()
        block, gripper = obs[3:6], obs[:3]
        np.testing.assert_allclose(obs[list(env.spec.goal_index)], block)
        np.testing.assert_allclose(obs[6:9], block - gripper, atol=1e-5)  # relative position
        assert abs(block[2] - 0.42) < 0.01  # resting on the table
        assert not np.allclose(block[:2], goal[:2])


def test_render_gives_rgb_frames() -> None:
    for name in ("pointmaze-medium", "fetch_reach"):
        with closing(make_goal_env(name)) as env:
            env.reset()
            frame = env.render()
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
            assert frame.std() > 0


@pytest.fixture(scope="module")
def tiny() -> dict[str, np.ndarray]:
    return generate_pointmaze(
        "pointmaze-medium", episodes=3, episode_len=50, seed=0, progress=False
    )


def test_generated_dataset_format(tiny: dict[str, np.ndarray]) -> None:
    assert tiny["observations"].shape == tiny["next_observations"].shape == (150, 2)
    assert tiny["actions"].shape == (150, 2) and np.abs(tiny["actions"]).max() <= 1.0
    np.testing.assert_array_equal(np.flatnonzero(tiny["terminals"]), [49, 99, 149])
    inside = tiny["terminals"][:-1] == 0
    np.testing.assert_array_equal(
        tiny["next_observations"][:-1][inside], tiny["observations"][1:][inside]
    )
    assert str(tiny["env"]) == "pointmaze-medium"
    # Each step moves at most 0.2 units (OGBench's point scales actions by 0.2).
    steps = np.linalg.norm(tiny["next_observations"] - tiny["observations"], axis=1)
    assert steps.max() <= 0.2 * np.sqrt(2) + 1e-5 and steps.mean() > 0.05
    again = generate_pointmaze(
        "pointmaze-medium", episodes=3, episode_len=50, seed=0, progress=False
    )
    for key in FIELDS:
        np.testing.assert_array_equal(again[key], tiny[key])


def test_generate_rejects_non_maze_envs() -> None:
    with pytest.raises(ValueError, match=r"pointmaze"):
        generate_pointmaze("fetch_reach", episodes=1, episode_len=5)


def test_save_load_round_trip(tiny: dict[str, np.ndarray], tmp_path: Path) -> None:
    path = tmp_path / "sub" / "medium.npz"
    save_dataset(path, tiny)
    assert [p.name for p in path.parent.iterdir()] == ["medium.npz"]  # no temp file left
    loaded = load_dataset(path, goal_env_spec("pointmaze-medium"))
    assert set(loaded) == set(FIELDS)
    for key in FIELDS:
        assert loaded[key].dtype == tiny[key].dtype
        np.testing.assert_array_equal(loaded[key], tiny[key])


def _changed(data: dict[str, np.ndarray], **changes: np.ndarray | None) -> dict[str, np.ndarray]:
    """`data` with some fields replaced (None drops one)."""
    return {k: v for k, v in {**data, **changes}.items() if v is not None}


def test_load_errors_name_the_file_and_the_fix(tiny: dict[str, np.ndarray], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"does not exist.*generate_pointmaze"):
        load_dataset(tmp_path / "nope.npz")

    good = tmp_path / "good.npz"
    np.savez(good, **tiny)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.npz is not a readable \.npz.*regenerate"):
        load_dataset(truncated)
    not_npz = tmp_path / "text.npz"
    not_npz.write_text("hello")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        load_dataset(not_npz)
    npy = tmp_path / "array.npy"
    np.save(npy, tiny["observations"])
    with pytest.raises(ValueError, match=r"not an \.npz archive"):
        load_dataset(npy)

    obs, terminals = tiny["observations"], tiny["terminals"]
    cases = {
        "missing field.*'actions'": dict(actions=None),
        "'observations' must be float32 with 2 dims.*\\(150,\\)": dict(observations=obs[:, 0]),
        "'observations' must be float32.*float64": dict(observations=obs.astype(np.float64)),
        "common, nonzero length": dict(actions=tiny["actions"][:-1]),
        "NaN or inf": dict(observations=np.where(np.arange(150)[:, None] == 7, np.nan, obs)),
        "end with 1": dict(terminals=np.concatenate([terminals[:-1], [0.0]]).astype(np.float32)),
        "not contiguous": dict(observations=obs[::-1].copy()),
        "actions outside": dict(actions=2.0 * tiny["actions"]),
        "0-d string": dict(env=np.array([1.0])),
    }
    for i, (message, change) in enumerate(cases.items()):
        bad = _changed(tiny, **change)
        path = tmp_path / f"bad{i}.npz"
        np.savez(path, **bad)
        with pytest.raises(ValueError, match=rf"bad{i}\.npz.*{message}"):
            load_dataset(path)
        # save_dataset never writes such a file.
        with pytest.raises(ValueError, match=message):
            save_dataset(tmp_path / f"never{i}.npz", bad)
        assert not (tmp_path / f"never{i}.npz").exists()

    with pytest.raises(ValueError, match=r"made for.*pointmaze-medium.*fetch_reach"):
        load_dataset(good, goal_env_spec("fetch_reach"))
    with pytest.raises(ValueError, match=r"pointmaze-large"):
        load_dataset(good, goal_env_spec("pointmaze-large"))


def test_vertex_cells_are_ogbench_corners_and_junctions() -> None:
    # A plus-shaped maze: the center is a junction, the four arm ends dead ends; the cells
    # between them are straight corridors and no goals.
    maze = np.ones((7, 7), int)
    maze[1:6, 3] = 0
    maze[3, 1:6] = 0
    oracle = MazeOracle(maze, origin=(0.0, 0.0), cell_size=4.0)
    assert set(oracle.vertex_cells) == {(3, 3), (1, 3), (5, 3), (3, 1), (3, 5)}
    with closing(make_goal_env("pointmaze-medium")) as env:
        assert len(env.oracle.free_cells) == 26 and len(env.oracle.vertex_cells) == 21


@pytest.mark.parametrize("goals", ["ogbench", "cells"])
def test_dataset_goals(goals: str) -> None:
    data = generate_pointmaze(
        "pointmaze-medium", 4, 400, seed=1, progress=False, goals=goals, with_targets=True
    )
    with closing(make_goal_env("pointmaze-medium")) as env:
        oracle = env.oracle
    targets = np.unique(data["targets"], axis=0)
    assert len(targets) >= 4  # goals are reached and redrawn
    cells = [oracle.cell_of(t) for t in targets]
    offsets = np.stack([t - oracle.cell_center(c) for t, c in zip(targets, cells, strict=True)])
    if goals == "ogbench":
        assert set(cells) <= set(oracle.vertex_cells)
        # U(-1, 1) per coordinate around the cell's center: within 1, never exactly 0.
        assert np.abs(offsets).max() <= 1.0 and np.abs(offsets).min() > 0
    else:
        assert set(cells) <= set(oracle.free_cells)
        np.testing.assert_allclose(offsets, 0, atol=1e-5)
    # A new goal is drawn only once the current one is within reach (1.0).
    changed = np.flatnonzero(np.any(np.diff(data["targets"], axis=0) != 0, axis=1)) + 1
    changed = changed[data["terminals"][changed - 1] == 0]  # not at an episode's start
    assert len(changed) > 0
    gaps = np.linalg.norm(data["observations"][changed] - data["targets"][changed - 1], axis=1)
    assert gaps.max() <= 1.0


def test_dataset_goals_are_checked() -> None:
    with pytest.raises(ValueError, match="goals"):
        generate_pointmaze("pointmaze-medium", 1, 5, goals="anywhere")
    data = generate_pointmaze("pointmaze-medium", 1, 5, progress=False, with_targets=True)
    assert data["targets"].shape == (5, 2)
