"""`metra sac`: plain SAC on a Gymnasium task reward learns, resumes exactly, and its device
replay stores what it is given."""

from __future__ import annotations

import json
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import pytest

import metra
from metra.cli import main
from metra.run.checkpoint import checkpoint_dir, read_state
from metra.run.logs import read_progress
from metra.train.sac import REPLAY_FIELDS, device_replay, pack, store, train_sac, unpack

QUICK = ["learning_starts=500", "eval_episodes=3", "agent.hidden=64,64"]


def pendulum(out: Path, steps: int, *overrides: str) -> Path:
    """A quick `metra sac --env inverted_pendulum` run (resumed when `out` holds one)."""
    return train_sac("inverted_pendulum", steps, out=out, overrides=overrides, progress=False)


def test_pack_and_store_round_trip_and_wrap_around() -> None:
    replay = device_replay(3, obs_dim=2, act_dim=1)
    rows = [pack([i, -i], [0.5], float(i), [i + 1, -i - 1], i % 2) for i in range(4)]
    for row in rows:
        replay = store(replay, row)
    assert int(replay["size"]) == 3 and int(replay["ptr"]) == 1
    # the fourth transition overwrote the first
    first = unpack(replay, rows[3])
    for k in REPLAY_FIELDS:
        np.testing.assert_array_equal(np.asarray(replay[k][0]), np.asarray(first[k]))
    np.testing.assert_array_equal(np.asarray(replay["reward"]), [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(replay["mask"]), [1.0, 1.0, 0.0])


@pytest.mark.slow
def test_sac_learns_inverted_pendulum_against_random(tmp_path: Path) -> None:
    run = pendulum(tmp_path / "run", 4000, *QUICK)
    rows = [r for r in read_progress(run) if r.get("eval_return")]
    final, floor = float(rows[-1]["eval_return"]), float(rows[-1]["random_return"])
    # measured: 83 after 4k steps (random policy 8.4); a solved pendulum balances 1000 steps
    assert floor < 15 and final > 30 and final > 3 * floor, (final, floor)
    # `metra eval` and `metra.load` read the run back: the final evaluation, to the digit.
    assert main(["eval", str(run)]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["eval_return"] == pytest.approx(final) and result["env_steps"] >= 4000
    assert result["random_return"] == pytest.approx(floor)
    agent = metra.load(run)
    assert agent.act(np.zeros((2, 4), np.float32), deterministic=True).shape == (2, 1)


def _agent_bytes(run: Path) -> bytes:
    return (checkpoint_dir(run) / read_state(run)["agent"]).read_bytes()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = pendulum(tmp_path / "a", 1500, "eval_every=600", *QUICK)
    part = pendulum(tmp_path / "b", 700, "eval_every=600", *QUICK)
    first = read_state(part)["counters"]["env_steps"]
    assert 700 <= first < 1500  # a run ends with the episode that reaches its steps
    assert main(["sac", "--resume", str(part), "--steps", "1500"]) == 0  # the CLI's resume
    counters = [read_state(run)["counters"] for run in (part, straight)]
    assert [{k: v for k, v in c.items() if k != "elapsed_s"} for c in counters] == [
        {k: v for k, v in counters[1].items() if k != "elapsed_s"}
    ] * 2  # the same steps, epochs and updates; only the wall-clock time differs
    assert counters[0]["elapsed_s"] > 0
    assert _agent_bytes(part) == _agent_bytes(straight)
    a, b = read_progress(straight), read_progress(part)
    assert [r["episode_return"] for r in a] == [r["episode_return"] for r in b]
    config = json.loads((part / "config.json").read_text())
    assert config["train"]["env"] == "inverted_pendulum" and len(config["resumes"]) == 1
    weights = flax.serialization.msgpack_restore(_agent_bytes(part))
    assert np.isfinite(np.concatenate([np.ravel(x) for x in jax.tree.leaves(weights)])).all()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sac", "--env", "walker"], "invalid choice"),
        (["sac", "--env", "half_cheetah", "batch_size=0"], "batch_size=0"),
        (["sac", "--env", "half_cheetah", "learning_starts=10"], "learning_starts"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main([*argv, "--out", str(tmp_path / "run")])
    except SystemExit as exit_info:  # argparse
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    # one error line (after argparse's usage lines, for its own errors)
    last = err.splitlines()[-1]
    assert message in last and "error:" in last and err.count("error:") == 1
    assert not (tmp_path / "run").exists()
