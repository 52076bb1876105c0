"""METRA from pixels: dm_control envs with a position-colored floor, frame-stack replay, the
pixel encoder, and a short pixel run end to end."""

import json
from contextlib import closing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metra
from metra.agents.diayn import DIAYNAgent, DIAYNConfig
from metra.agents.metra import MetraAgent, MetraConfig
from metra.envs import env_spec, make_env
from metra.eval.skills import random_rollout, skill_metrics
from metra.networks import PixelEncoder, conv_output_size
from metra.replay import FrameReplay
from metra.rollout import Trajectories
from metra.train.online import skill_replay, store
from metra.train.runs import plot

SMALL = ["hidden=32,32", "encoder_channels=8,8,8,8"]


@pytest.fixture(scope="module", params=["quadruped_pixel", "humanoid_pixel"])
def episode(request) -> tuple[str, Trajectories]:
    """One 200-step random episode of two envs."""
    with closing(make_env(request.param, seed=3, num_envs=2)) as env:
        return request.param, random_rollout(env, seed=3)


def test_frames_are_uint8_stacks_of_three_64x64_frames(episode) -> None:
    name, traj = episode
    spec = env_spec(name)
    assert spec.obs_shape == (64, 64, 9) and spec.episode_len == 200
    assert traj.obs.shape == (201, 2, 64, 64, 9) and traj.obs.dtype == np.uint8
    first = traj.obs[0]
    # A reset stacks the first frame three times; later stacks shift by one frame per step.
    np.testing.assert_array_equal(first[..., :3], first[..., 6:])
    np.testing.assert_array_equal(traj.obs[5][..., 3:], traj.obs[6][..., :6])
    assert not np.array_equal(traj.obs[0][..., -3:], traj.obs[-1][..., -3:])
    assert traj.coords.shape == (201, 2, 2)
    assert np.abs(traj.coords[-1] - traj.coords[0]).max() > 0.05  # the body moved


def test_replay_rebuilds_every_stack_the_env_produced(episode) -> None:
    name, traj = episode
    spec = env_spec(name)
    replay = skill_replay(spec, capacity=1000, latent_dim=0)
    assert isinstance(replay, FrameReplay)
    store(replay, traj, bootstrap_time_limit=True)
    assert len(replay) == 400
    t = np.arange(200)
    for env in range(2):
        ep = np.full(200, env)
        np.testing.assert_array_equal(replay._stacks(ep, t), traj.obs[:-1, env])
        np.testing.assert_array_equal(replay._stacks(ep, t + 1), traj.obs[1:, env])
    # A sampled transition pairs each action with its own obs and next_obs.
    batch = replay.sample(np.random.default_rng(0), 4, 8)
    assert batch["obs"].shape == (4, 8, 64, 64, 9) and batch["obs"].dtype == np.uint8
    for obs, next_obs, action in zip(
        batch["obs"].reshape(-1, 64, 64, 9),
        batch["next_obs"].reshape(-1, 64, 64, 9),
        batch["action"].reshape(-1, spec.act_dim),
        strict=True,
    ):
        step, env = np.argwhere((traj.actions == action).all(-1))[0]
        np.testing.assert_array_equal(obs, traj.obs[step, env])
        np.testing.assert_array_equal(next_obs, traj.obs[step + 1, env])


def test_frame_replay_stores_each_frame_once_and_wraps() -> None:
    replay = FrameReplay(30, 10, (4, 4, 3), 3, {"action": ((1,), np.dtype(np.float32))})
    frame_bytes = 4 * 4 * 3
    assert replay.nbytes() == 3 * (11 * frame_bytes + 10 * 4)
    for k in range(5):  # 5 episodes into room for 3: the oldest two are overwritten
        frames = np.full((1, 11, 4, 4, 3), k, np.uint8)
        replay.add({"frames": frames, "action": np.full((1, 10, 1), k, np.float32)})
    assert len(replay) == 30
    batch = replay.sample(np.random.default_rng(0), 64)
    assert set(np.unique(batch["action"])) <= {2.0, 3.0, 4.0}
    np.testing.assert_array_equal(batch["obs"][:, 0, 0, 0], batch["action"][:, 0])
    with pytest.raises(ValueError, match="one episode"):
        FrameReplay(5, 10, (4, 4, 3), 3, {})


def test_floor_color_tells_positions_apart() -> None:
    with closing(make_env("quadruped_pixel", seed=0, num_envs=3)) as env:
        obs, coords = env.reset()
        goals = np.array([[-8.0, -8.0], [8.0, 8.0], [8.0, -8.0]], np.float32)
        images = env.set_coords(obs, goals)
        # The simulation is left where it was.
        np.testing.assert_allclose(env.step(np.zeros((3, 12))).coords, coords, atol=0.05)
    assert images.shape == (3, 64, 64, 9) and images.dtype == np.uint8
    floor = images[:, 48:, :, :3].reshape(3, -1, 3).mean(1)  # the bottom rows: floor
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(floor[i] - floor[j]).max() > 20, (floor[i], floor[j])


def test_pixel_encoder_shapes() -> None:
    encoder = PixelEncoder()
    frames = jnp.zeros((2, 5, 64, 64, 9), jnp.uint8)
    params = encoder.init(jax.random.PRNGKey(0), frames)
    out = encoder.apply(params, frames)
    assert (
        out.shape
        == (2, 5, 2 * 2 * 384)
        == (2, 5, conv_output_size((64, 64, 9), (48, 96, 192, 384)))
    )
    kernels = [v["kernel"].shape for v in params["params"].values()]
    assert kernels == [(4, 4, 9, 48), (4, 4, 48, 96), (4, 4, 96, 192), (4, 4, 192, 384)]
    with pytest.raises(ValueError, match="too small"):
        conv_output_size((16, 16, 3), (48,) * 4)


def test_pixel_metra_agent_shapes_and_state_only_baselines_refuse_pixels() -> None:
    config = MetraConfig(latent_dim=4, hidden=(32,), encoder_channels=(8, 8, 8, 8))
    agent = MetraAgent.create(config, (64, 64, 9), 12, seed=0)
    obs = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 9), dtype=np.uint8)
    z = np.asarray(agent.sample_latents(jax.random.PRNGKey(0), 3))
    assert agent.phi(obs).shape == (3, 4)
    assert agent.act(obs, z, deterministic=True).shape == (3, 12)
    with pytest.raises(ValueError, match="state vectors only"):
        DIAYNAgent.create(DIAYNConfig(hidden=(32,)), (64, 64, 9), 12, seed=0)


def test_kitchen_tasks_counts_subtasks_any_trajectory_completes() -> None:
    spec = env_spec("kitchen_pixel")
    coords = np.zeros((51, 3, 9), np.float32)
    coords[10, 0, 3] = 1.0  # microwave, once, in skill 0
    coords[40:, 2, 3 + 4] = 1.0  # slide cabinet, in skill 2
    coords[:, :, :3] = np.random.default_rng(0).uniform(0, 3, (51, 3, 3))
    traj = Trajectories(
        obs=np.zeros((51, 3, 1)),
        actions=np.zeros((50, 3, 9)),
        latents=np.zeros((50, 3, 24)),
        coords=coords,
        rewards=np.zeros((50, 3)),
        terminated=np.zeros((50, 3), bool),
    )
    metrics = skill_metrics(traj, spec)
    assert metrics["kitchen_tasks"] == 2
    assert metrics["coverage"] == len(np.unique(np.floor(coords[..., :3].reshape(-1, 3)), axis=0))


@pytest.mark.slow
def test_short_pixel_run_writes_eval_and_video(tmp_path) -> None:
    overrides = [
        *SMALL,
        "num_envs=2",
        "grad_steps=2",
        "batch_size=16",
        "min_replay=400",
        "replay_size=2000",
        "eval_every=800",
        "checkpoint_every=800",
        "log_every=400",
        "eval_skills=2",
    ]
    run = metra.train("quadruped_pixel", 800, out=tmp_path / "run", overrides=overrides)
    result = metra.evaluate(run, skills=2, goals=2)
    saved = json.loads((run / "eval.json").read_text())
    assert saved == result and result["env_steps"] == 800 and result["skills"] == 2
    assert {"coverage", "coverage_random_policy", "goal_success_3"} <= set(result)
    paths = plot(run, skills=2, video=True)
    assert {p.name for p in paths} >= {"skills_xy.png", "skills_phi.png", "skills.mp4"}
    assert (run / "plots" / "skills.mp4").stat().st_size > 1000
