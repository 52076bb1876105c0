"""The Franka kitchen from pixels: frame stacks, end-effector coordinates and task flags."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from metra.envs import env_spec, make_env
from metra.envs.kitchen import KITCHEN, KitchenPixels

NUM_ENVS = 2


@pytest.fixture(scope="module")
def env() -> Iterator[KitchenPixels]:
    """One batch for the whole module: building a kitchen loads its meshes (~1 s each)."""
    batch = make_env("kitchen_pixel", seed=0, num_envs=NUM_ENVS)
    assert isinstance(batch, KitchenPixels)
    yield batch
    batch.close()


def test_spec() -> None:
    assert env_spec("kitchen_pixel") is KITCHEN
    assert KITCHEN.obs_shape == (64, 64, 9) and KITCHEN.obs_dim == 64 * 64 * 9
    assert (KITCHEN.act_dim, KITCHEN.episode_len) == (9, 50)
    assert len(KITCHEN.task_names) == 6 and "burner" in KITCHEN.task_names


def test_frames_and_coords(env: KitchenPixels) -> None:
    obs, coords = env.reset()
    assert obs.shape == (NUM_ENVS, 64, 64, 9) and obs.dtype == np.uint8
    # A reset fills the stack with the first frame.
    np.testing.assert_array_equal(obs[..., :3], obs[..., 3:6])
    np.testing.assert_array_equal(obs[..., :3], obs[..., 6:])
    assert obs.std() > 10  # the kitchen is in view, not a blank frame
    assert coords.shape == (NUM_ENVS, 3 + 6) and coords.dtype == np.float32
    np.testing.assert_array_equal(coords[:, 3:], 0)  # nothing is done at the start
    start = coords[:, :3].copy()

    rng = np.random.default_rng(0)
    for _ in range(5):
        res = env.step(rng.uniform(-1, 1, (NUM_ENVS, KITCHEN.act_dim)))
    assert res.obs.shape == obs.shape and res.obs.dtype == np.uint8
    # The newest frame moved into the last slot; the arm moved, so it differs from the oldest.
    assert not np.array_equal(res.obs[..., 6:], res.obs[..., :3])
    assert res.reward.shape == (NUM_ENVS,) and res.reward.dtype == np.float32
    assert not res.terminated.any()
    assert set(np.unique(res.coords[:, 3:])) <= {0.0, 1.0}
    assert np.abs(res.coords[:, :3] - start).max() > 0.01  # the end effector moved


def test_reset_is_seeded(env: KitchenPixels) -> None:
    actions = np.full((NUM_ENVS, KITCHEN.act_dim), 0.5)
    runs = []
    for _ in range(2):
        env.reset(seed=3)
        runs.append(env.step(actions).coords)
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("task", ["microwave", "light switch", "bottom burner", "top burner"])
def test_task_flag_turns_on_at_the_goal(env: KitchenPixels, task: str) -> None:
    import mujoco
    from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
        OBS_ELEMENT_GOALS,
        OBS_ELEMENT_INDICES,
    )

    env.reset()
    data = env._data(1)
    data.qpos[OBS_ELEMENT_INDICES[task]] = OBS_ELEMENT_GOALS[task]
    mujoco.mj_forward(env._model, data)
    flags = env._coords()[:, 3:]
    reported = "burner" if task.endswith("burner") else task
    expected = np.array([name == reported for name in KITCHEN.task_names], np.float32)
    np.testing.assert_array_equal(flags[1], expected)
    np.testing.assert_array_equal(flags[0], 0)  # the other env is untouched


def test_set_coords_raises(env: KitchenPixels) -> None:
    obs, coords = env.reset()
    with pytest.raises(NotImplementedError, match="no goal-reaching evaluation"):
        env.set_coords(obs, coords)


def test_render(env: KitchenPixels) -> None:
    obs, _ = env.reset()
    frame = env.render(1)
    assert frame.shape == (192, 384, 3) and frame.dtype == np.uint8
    # The left half is the agent's own view, upscaled 3x; the right half another camera's.
    np.testing.assert_array_equal(frame[::3, :192:3], obs[1, ..., 6:])
    assert not np.array_equal(frame[:, :192], frame[:, 192:])
