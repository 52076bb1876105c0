"""The MJX backend against the MuJoCo envs it mirrors: the same reset distribution, and the
same trajectories under fixed actions (within float32's drift)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

pytest.importorskip("mujoco.mjx")

from metra.api import resolve_config, train
from metra.envs import make_env
from metra.envs.mjx import (
    MJX_ENVS,
    MJXEnv,
    MJXState,
    ant_side_by_side,
    make_mjx_env,
    mirror,
)
from metra.run.checkpoint import checkpoint_dir, read_state
from tests.test_resume_exact import _same_end

# Largest |obs difference| after 10 env steps (50 physics steps) from the same state under the
# same random actions, measured 2026-12-04 with these actions (bench/mjx_agreement.py): half_cheetah
# 3.6e-3 (below 1e-3 for 7 steps; float32 rounding, amplified), ant 1.1e-3 with elliptic cones.
TOLERANCE = {"half_cheetah": 5e-3, "ant": 5e-3}
STEPS = 10
# MJX orients a contact's friction pyramid differently (metra.envs.mjx), so the Ant's own
# pyramidal cone is compared in distribution and its trajectories under an elliptic cone,
# which is the same in every tangent direction.
TRAJECTORY_CONE = {"half_cheetah": None, "ant": mujoco.mjtCone.mjCONE_ELLIPTIC}


@pytest.fixture(scope="module", params=MJX_ENVS)
def twins(request: pytest.FixtureRequest) -> tuple[str, object]:
    return request.param, make_mjx_env(request.param)


@contextmanager
def mirrored(name: str, n: int, cone: object = None) -> Iterator[tuple[Any, MJXEnv, MJXState]]:
    """`n` MuJoCo envs of `name` after a reset, their MJX twin and its state at theirs; with
    `cone`, both simulate that friction cone. The twin's state observes as the envs do."""
    with closing(make_env(name, seed=3, num_envs=n)) as env:
        obs, coords = env.reset()
        if cone is not None:
            for e in env._envs:  # type: ignore[attr-defined]
                e.model.opt.cone = cone
        twin, state = mirror(env)  # type: ignore[arg-type]
        np.testing.assert_allclose(np.asarray(state.obs), obs, atol=1e-6)
        np.testing.assert_allclose(np.asarray(twin.coords(state)), coords, atol=1e-6)
        yield env, twin, state


def test_trajectories_match_mujoco_under_fixed_actions(twins: tuple[str, object]) -> None:
    name, _ = twins
    rng = np.random.default_rng(0)
    with mirrored(name, 2, TRAJECTORY_CONE[name]) as (env, twin, state):
        gaps, reward_gaps = [], []
        for _ in range(STEPS):
            actions = rng.uniform(-1.2, 1.2, (2, env.spec.act_dim)).astype(np.float32)
            result = env.step(actions)  # both clip to [-1, 1]
            state = twin.step(state, jnp.asarray(actions))
            gaps.append(float(np.abs(np.asarray(state.obs) - result.obs).max()))
            reward_gaps.append(float(np.abs(np.asarray(state.reward) - result.reward).max()))
    assert gaps[0] < 1e-4, gaps
    assert max(gaps) < TOLERANCE[name], gaps
    # The reward is a velocity (a difference of positions over 0.05 s), so it carries the
    # positions' gap times 20.
    assert max(reward_gaps) < 20 * TOLERANCE[name], reward_gaps


@pytest.mark.slow
def test_ant_under_its_own_cone_matches_mujoco_in_distribution() -> None:
    """32 Ants from the same states under the same random actions for 100 steps: the mean
    return, displacement and torso height of the two simulators agree within 4 standard errors
    of their difference (measured 2026-12-04 at 64 envs x 200 steps: within 1.5)."""
    n = 32
    figures = ant_side_by_side(n, 100)
    for what, (c, x) in figures.items():
        se = np.sqrt((c.var() + x.var()) / n)
        assert abs(c.mean() - x.mean()) < 4 * se, (what, c.mean(), x.mean(), se)


def test_reset_noise_is_gymnasiums(twins: tuple[str, object]) -> None:
    _, mjx_env = twins
    state = mjx_env.reset(jax.random.PRNGKey(0), 512)  # type: ignore[attr-defined]
    nq = mjx_env.init_qpos.shape[0]  # type: ignore[attr-defined]
    dq = np.asarray(state.data.qpos) - np.asarray(mjx_env.init_qpos)  # type: ignore[attr-defined]
    dv = np.asarray(state.data.qvel) - np.asarray(mjx_env.init_qvel)  # type: ignore[attr-defined]
    assert np.abs(dq).max() <= 0.1 + 1e-6 and dq.std() == pytest.approx(0.1 / 3**0.5, rel=0.05)
    assert dv.std() == pytest.approx(0.1, rel=0.05)
    assert state.obs.shape == (512, nq + dv.shape[1])


# `metra train backend=mjx` at test size: 4 envs x 200 steps per epoch, updates from the first
# epoch on (min_replay is one epoch), so each run compiles one epoch function.
MJX_RUN = [
    "backend=mjx",
    "num_envs=4",
    "grad_steps=8",
    "batch_size=32",
    "hidden=64,64",
    "min_replay=800",
    "replay_size=4000",
    "normalizer_episodes=8",
    "eval_every=800",
    "checkpoint_every=800",
    "log_every=800",
    "eval_skills=16",
]


@pytest.fixture(scope="module")
def mjx_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A straight 3-epoch run, and one stopped after 2 epochs and resumed to 3."""
    root = tmp_path_factory.mktemp("mjx")
    straight = train("half_cheetah", 2400, out=root / "a", overrides=MJX_RUN, progress=False)
    stopped = train("half_cheetah", 1600, out=root / "b", overrides=MJX_RUN, progress=False)
    train(resume=stopped, steps=2400, progress=False)
    return straight, stopped


@pytest.mark.slow
def test_mjx_run_resumes_exactly(mjx_runs: tuple[Path, Path]) -> None:
    _same_end(*mjx_runs)
    rows = (mjx_runs[0] / "progress.csv").read_text().splitlines()
    assert len(rows) == 4 and "phi_objective" in rows[0] and "coverage" in rows[0]


@pytest.mark.slow
def test_mjx_epoch_stores_whole_episodes(mjx_runs: tuple[Path, Path]) -> None:
    """The replay rows the jitted epoch wrote: episodes of 200 steps, time-major over 4 envs,
    one skill each, the time limit not bootstrapped, and HalfCheetah-v5's reward."""
    state = read_state(mjx_runs[0])
    with np.load(checkpoint_dir(mjx_runs[0]) / state["replay"]) as f:
        rows = {k: f[k] for k in f.files}
    assert int(rows["size"]) == 2400
    n, steps = 4, 200

    def episodes(name: str) -> np.ndarray:  # [epoch, T, n, ...]
        return rows[name].reshape(3, steps, n, *rows[name].shape[1:])

    obs, next_obs = episodes("obs"), episodes("next_obs")
    np.testing.assert_array_equal(next_obs[:, :-1], obs[:, 1:])
    mask = episodes("mask")
    assert (mask[:, -1] == 0).all() and (mask[:, :-1] == 1).all()
    latent = episodes("latent")
    assert (latent == latent[:, :1]).all() and (latent.sum(-1) == 1).all()  # one-hot skills
    action = episodes("action")
    assert np.abs(action).max() <= 1.0
    velocity = (next_obs[..., 0] - obs[..., 0]) / 0.05
    expected = velocity - 0.1 * (action**2).sum(-1)
    np.testing.assert_allclose(episodes("reward"), expected, atol=2e-3)


def test_mjx_backend_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="collect=serial"):
        resolve_config("half_cheetah", overrides=["backend=mjx", "collect=overlapped"])
    with pytest.raises(ValueError, match="no MJX backend for 'point'"):
        train("point", 1600, out=tmp_path / "point", overrides=["backend=mjx"], progress=False)
