"""Resume-exactness of the workflows whose own tests only check that a resume continues: a
run stopped at a checkpoint and resumed ends with the same agent, byte for byte, and the same
counters as the run made straight through (the skill and SAC tests do this for theirs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metra.api import train
from metra.run.checkpoint import checkpoint_dir, read_state
from metra.train.downstream import run_downstream
from metra.train.goals import train_qrl
from metra.train.meta import train_meta
from tests.conftest import TINY
from tests.test_meta import SMALL
from tests.test_qrl import TINY_OFFLINE, tiny_maze_dataset


def _end_state(run: Path) -> tuple[bytes, dict[str, int]]:
    """The last checkpoint's agent bytes and counters (wall-clock time left out)."""
    state = read_state(run)
    counters = {k: v for k, v in state["counters"].items() if k != "elapsed_s"}
    return (checkpoint_dir(run) / state["agent"]).read_bytes(), counters


def _same_end(straight: Path, resumed: Path) -> None:
    (agent_a, counters_a), (agent_b, counters_b) = _end_state(straight), _end_state(resumed)
    assert counters_a == counters_b
    assert agent_a == agent_b


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["pearl", "cocoa"])
def test_meta_train_resumes_exactly(algo: str, tmp_path: Path) -> None:
    overrides = [*SMALL, "window=4"] if algo == "cocoa" else list(SMALL)
    train_meta("point_goal", algo, 2400, 0, tmp_path / "a", overrides, progress=False)
    train_meta("point_goal", algo, 2000, 0, tmp_path / "b", overrides, progress=False)
    train_meta("point_goal", algo, 2400, 0, tmp_path / "b", progress=False)
    _same_end(tmp_path / "a", tmp_path / "b")


def _qrl_straight_and_resumed(
    tmp_path: Path, env: str, data: Path | None, half: int, full: int, overrides: list[str]
) -> None:
    """QRL run a to `full` steps, run b to `half` then resumed (with its own config) to
    `full`; both end the same."""
    for out, steps, changes in (("a", full, overrides), ("b", half, overrides), ("b", full, [])):
        train_qrl(env, data, steps, out=tmp_path / out, overrides=changes, progress=False)
    _same_end(tmp_path / "a", tmp_path / "b")


@pytest.mark.slow
def test_offline_qrl_resumes_exactly(tmp_path: Path) -> None:
    data = tiny_maze_dataset(tmp_path / "maze.npz")
    _qrl_straight_and_resumed(tmp_path, "pointmaze-medium", data, 10, 20, TINY_OFFLINE)


@pytest.mark.slow
def test_online_qrl_resumes_exactly(tmp_path: Path) -> None:
    overrides = ["num_envs=2", "min_replay_episodes=2", "batch_size=16", "grad_steps=2"]
    overrides += ["eval_every=200", "eval_episodes=2", "exploration_noise=0.3"]
    overrides += ["agent.hidden=32,32", "latent_dim=16", "components=2"]
    _qrl_straight_and_resumed(tmp_path, "fetch_reach", None, 200, 400, overrides)


@pytest.mark.slow
def test_downstream_resumes_exactly(tmp_path: Path) -> None:
    skills = train("ant", steps=1600, out=tmp_path / "ant", overrides=TINY[1:], progress=False)
    small = dict(min_replay=32, batch_size=16, grad_steps=2, eval_every=800, eval_episodes=2)
    for out, steps in (("a", 2400), ("b", 1600), ("b", 2400)):
        run_downstream(
            skills, "ant_multi_goals", steps, out=tmp_path / out, progress=False, **small
        )
    for agent in ("hierarchical", "flat"):
        _same_end(tmp_path / "a" / agent, tmp_path / "b" / agent)
