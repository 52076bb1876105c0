"""Meta-World ML1 (Yu et al., 2019) through its worker process: tasks, shapes, determinism,
success, and how errors and worker deaths surface.

Tests that need Meta-World are skipped unless its venv exists (`bash
scripts/install-metaworld.sh`, or `METRA_METAWORLD_PYTHON`); the worker-plumbing tests run
everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from metra.envs import metaworld as mw
from metra.envs.meta import make_meta_tasks


def _missing_metaworld() -> str:
    """Why Meta-World's venv cannot be used here ("" when it can)."""
    try:
        mw.find_python()
    except FileNotFoundError as error:
        return str(error)
    return ""


_MISSING = _missing_metaworld()
needs_metaworld = pytest.mark.skipif(bool(_MISSING), reason=_MISSING)


@pytest.fixture(scope="module")
def reach() -> Iterator[mw.MetaWorldTasks]:
    """One reach family for the module: a worker start builds the benchmark (~2 s)."""
    family = make_meta_tasks("ml1_reach", seed=0)
    assert isinstance(family, mw.MetaWorldTasks)
    yield family
    family.close()


def _goals(tasks: list[dict]) -> np.ndarray:
    return np.array([t["rand_vec"] for t in tasks])


@needs_metaworld
def test_family(reach: mw.MetaWorldTasks) -> None:
    assert (reach.name, reach.env_name) == ("ml1_reach", "reach-v3")
    assert (reach.obs_dim, reach.act_dim, reach.episode_len) == (39, 4, 500)
    assert reach.has_success
    assert len(reach.train_tasks) == len(reach.test_tasks) == 50
    assert [t["index"] for t in reach.test_tasks] == list(range(50))
    assert {t["split"] for t in reach.train_tasks} == {"train"}


@needs_metaworld
def test_tasks_fixed_by_seed(reach: mw.MetaWorldTasks) -> None:
    again = mw.make("ml1_reach", seed=0)
    other = mw.make("ml1_reach", seed=1)
    try:
        assert again.train_tasks == reach.train_tasks and again.test_tasks == reach.test_tasks
        assert other.train_tasks != reach.train_tasks
        # As ML1 builds them: train goals from `seed`, test goals from `seed + 1`.
        np.testing.assert_array_equal(_goals(other.train_tasks), _goals(reach.test_tasks))
    finally:
        again.close()
        other.close()
    # ML1's point: the test goals are new ones.
    train, test = _goals(reach.train_tasks), _goals(reach.test_tasks)
    assert len(np.unique(train, axis=0)) == 50
    assert not any((train == g).all(axis=1).any() for g in test)


@needs_metaworld
def test_reset_deterministic_and_goal_hidden(reach: mw.MetaWorldTasks) -> None:
    with reach.make_envs([reach.train_tasks[0], reach.test_tasks[3]]) as envs:
        first, coords = envs.reset(seed=7)
        assert first.shape == (2, 39) and first.dtype == np.float32 and coords.shape == (2, 0)
        envs.step(np.full((2, 4), 0.5, dtype=np.float32))
        np.testing.assert_array_equal(envs.reset(seed=7)[0], first)
        np.testing.assert_array_equal(first[:, -3:], 0)  # ML1 hides the goal
        # Env i solves task i: reach's goal is the last 3 entries of the task's rand_vec.
        np.testing.assert_allclose(
            envs.debug_target_pos(),
            [reach.train_tasks[0]["rand_vec"][3:], reach.test_tasks[3]["rand_vec"][3:]],
        )


@needs_metaworld
def test_step(reach: mw.MetaWorldTasks) -> None:
    rng = np.random.default_rng(0)
    with reach.make_envs(reach.train_tasks[:3]) as envs:
        envs.reset(seed=0)
        for _ in range(10):
            step = envs.step(rng.uniform(-1, 1, (3, 4)))
            obs, reward, terminated, success = (
                step.obs,
                step.reward,
                step.terminated,
                step.info["success"],
            )
            assert obs.shape == (3, 39) and obs.dtype == np.float32
            assert reward.shape == (3,) and reward.dtype == np.float32
            assert np.isfinite(reward).all() and np.isfinite(obs).all()
            assert terminated.dtype == bool and not terminated.any()
            assert set(success.tolist()) <= {0.0, 1.0}


@needs_metaworld
def test_reach_success_with_proportional_controller(reach: mw.MetaWorldTasks) -> None:
    """Drive the hand (obs[:3]) to the goal; the goal comes from the debug request, since
    ML1 keeps it out of the observation."""
    with reach.make_envs([reach.train_tasks[1], reach.test_tasks[1]]) as envs:
        obs, _ = envs.reset(seed=0)
        goal = envs.debug_target_pos()
        success = np.zeros(2)
        for _ in range(150):
            action = np.zeros((2, 4), dtype=np.float32)
            action[:, :3] = np.clip(50.0 * (goal - obs[:, :3]), -1, 1)
            step = envs.step(action)
            obs, step_success = step.obs, step.info["success"]
            success = np.maximum(success, step_success)
            if success.all():
                break
        np.testing.assert_array_equal(success, 1.0)
        assert np.linalg.norm(obs[:, :3] - goal, axis=1).max() < 0.05


@needs_metaworld
def test_episode_limit_and_worker_errors(reach: mw.MetaWorldTasks) -> None:
    with reach.make_envs(reach.train_tasks[:1]) as envs:
        envs.reset(seed=0)
        with pytest.raises(mw.MetaWorldError, match=r"actions of shape \(1, 3\)"):
            envs.step(np.zeros((1, 3)))
        for _ in range(reach.episode_len):
            envs.step(np.zeros((1, 4)))
        with pytest.raises(mw.MetaWorldError, match="reset before stepping again"):
            envs.step(np.zeros((1, 4)))
        envs.reset(seed=0)  # the worker survives its errors
        envs.step(np.zeros((1, 4)))
    with pytest.raises(mw.MetaWorldError, match="closed"):
        envs.reset(seed=0)
    with pytest.raises(ValueError, match="not a task of ml1_reach"):
        reach.make_envs([{"env": "reach-v3", "split": "train", "index": 50}])


@needs_metaworld
def test_workers_reused_and_stopped(reach: mw.MetaWorldTasks) -> None:
    envs = reach.make_envs(reach.train_tasks[:1])
    assert envs._worker is not None
    proc = envs._worker._proc
    envs.close()
    again = reach.make_envs(reach.train_tasks[:2])
    assert again._worker is not None and again._worker._proc is proc  # reused
    again.close()
    family = mw.make("ml1_reach", seed=0)
    procs = [w._proc for w in family._idle]
    family.close()
    assert all(p.poll() is not None for p in procs)


@needs_metaworld
def test_worker_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    script = tmp_path / "leave_open.py"
    script.write_text(
        textwrap.dedent(
            """
            from metra.envs.metaworld import make
            family = make("ml1_reach", seed=0)
            envs = family.make_envs(family.train_tasks[:1])
            print(envs._worker._proc.pid, flush=True)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(out.stdout.split()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@needs_metaworld
@pytest.mark.parametrize("name", ["ml1_push", "ml1_pick_place"])
def test_push_and_pick_place(name: str) -> None:
    family = make_meta_tasks(name, seed=0)
    try:
        assert (family.obs_dim, family.act_dim, family.episode_len) == (39, 4, 500)
        with family.make_envs([family.train_tasks[0], family.test_tasks[0]]) as envs:
            obs, _ = envs.reset(seed=0)
            assert obs.shape == (2, 39)
            step = envs.step(np.zeros((2, 4)))
            obs, reward, success = step.obs, step.reward, step.info["success"]
            assert np.isfinite(reward).all() and set(success.tolist()) <= {0.0, 1.0}
            # The object's position (obs[4:7]) is the task's initial object position.
            np.testing.assert_allclose(
                obs[:, 4:6],
                [t["rand_vec"][:2] for t in (family.train_tasks[0], family.test_tasks[0])],
                atol=0.02,
            )
    finally:
        family.close()


def test_worker_death_carries_its_stderr(tmp_path: Path) -> None:
    """Runs without Meta-World: a stand-in worker that dies on the first request."""
    script = tmp_path / "dies.py"
    script.write_text("import sys\nsys.stdin.buffer.read(8)\nsys.exit('boom: simulated crash')\n")
    worker = mw.Worker(sys.executable, script)
    with pytest.raises(mw.MetaWorldError, match=r"(?s)died during 'ping'.*exit code 1.*boom"):
        worker.call("ping")
    assert not worker.alive
    with pytest.raises(mw.MetaWorldError, match="closed"):
        worker.call("ping")


def test_missing_venv_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(mw.PYTHON_ENV_VAR, str(tmp_path / "nope" / "python"))
    with pytest.raises(FileNotFoundError, match=mw.PYTHON_ENV_VAR):
        mw.find_python()
    monkeypatch.delenv(mw.PYTHON_ENV_VAR)
    monkeypatch.setattr(mw, "VENV_DIR", ".venv-metaworld-absent")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"install-metaworld\.sh.*METRA_METAWORLD_PYTHON"):
        mw.find_python()


def test_interrupted_call_retires_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs without Meta-World: the worker script answers `ping` before importing metaworld.
    A call cut off between request and reply must not leave that reply for the next call."""
    worker = mw.Worker(sys.executable)
    assert worker.call("ping") == "pong"
    with pytest.raises(mw.MetaWorldError, match="unknown command 'nope'"):
        worker.call("nope")
    assert worker.alive

    def interrupted(stream: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(mw, "read_frame", interrupted)
    with pytest.raises(KeyboardInterrupt):
        worker.call("ping")
    assert not worker.alive and worker._proc.poll() is not None
