"""`metra sweep` on a local Ray: trial folders, the compare CSV/PNG, resume and skip."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

import metra
from metra.cli import main
from metra.compare import final_table
from metra.run.checkpoint import checkpoint_dir, saved_env_steps
from metra.run.logs import read_progress
from metra.sweep import Trial, make_trials, parse_grid, sweep
from tests.conftest import TINY

# TINY without its total_steps, two evaluations, and a quick normalizer (the trials are timed).
OVERRIDES = [*TINY[1:], "eval_every=800", "normalizer_episodes=64"]


def test_grid_and_trial_names() -> None:
    grid = parse_grid(["agent.lr=1e-4,3e-4", "hidden=32,32;64,64"])
    assert grid == {"agent.lr": ["1e-4", "3e-4"], "hidden": ["32,32", "64,64"]}
    trials = make_trials(["point"], ["metra", "lsd"], 2, grid)
    assert len(trials) == 2 * 2 * 2 * 2
    assert trials[0] == Trial("point", "metra", 0, ("agent.lr=1e-4", "hidden=32,32"))
    assert trials[0].name == "point-metra-seed0-agent.lr=1e-4-hidden=32,32"
    assert trials[0].label == "metra agent.lr=1e-4 hidden=32,32"
    assert len({t.name for t in trials}) == len(trials)
    for bad in (["lr"], ["lr="], ["=1"]):
        with pytest.raises(ValueError, match="is not KEY=V1,V2"):
            parse_grid(bad)
    with pytest.raises(ValueError, match="unknown config key"):
        sweep(["point"], ["metra"], 1, {"nope": ["1"]}, 800, progress=False)


@pytest.mark.slow
def test_sweep_runs_resumes_and_skips(tmp_path, capsys) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    grid = {"lr": ["3e-4", "1e-3"]}
    # One trial was interrupted at 800 env steps by an earlier sweep: the sweep resumes it.
    early = out / "point-metra-seed0-lr=3e-4"
    metra.train("point", 800, 0, early, [*OVERRIDES, "lr=3e-4"], progress=False)
    first_row = read_progress(early)[0]
    ((csv_path, png),) = sweep(
        ["point"], ["metra"], 1, grid, 1600, out, OVERRIDES, num_cpus=1, progress=False
    )
    for value in grid["lr"]:
        run_dir = out / f"point-metra-seed0-lr={value}"
        assert saved_env_steps(run_dir) == 1600
        assert [int(r["env_steps"]) for r in read_progress(run_dir)] == [800, 1600]
    assert read_progress(early)[0] == first_row  # resumed, not retrained
    with csv_path.open() as f:
        rows = {(r["algo"], r["env_steps"]): r for r in csv.DictReader(f)}
    assert set(rows) == {
        *((f"metra lr={v}", s) for v in grid["lr"] for s in ("800", "1600")),
        ("random", "0"),
        ("random", "1600"),
    }
    assert all(int(r["seeds"]) == 1 and float(r["coverage_mean"]) > 0 for r in rows.values())
    assert png.name == "compare.png" and png.stat().st_size > 1000
    assert final_table(csv_path).count("| metra lr=") == 2
    assert any((out / "tune").iterdir())  # Tune's own experiment state lives beside the runs
    # A rerun of the same command finds every trial finished: no Ray, no training.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoints/state.json")}
    args = ["sweep", "--seeds", "1", "--grid", "lr=3e-4,1e-3", "--steps", "1600", "--out"]
    assert main([*args, str(out), "--num-cpus", "1", *OVERRIDES]) == 0
    assert "| metra lr=1e-3 | 1600 |" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoints/state.json")} == stamps
    assert len(stamps) == 2 and all(checkpoint_dir(p.parents[1]).is_dir() for p in stamps)


def test_missing_ray_and_lazy_imports(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RuntimeError, match=r'pip install "metra\[ray\]"'):
        sweep(["point"], ["metra"], 1, {}, 800, tmp_path, OVERRIDES, progress=False)
    code = (
        "import sys, metra, metra.cli, metra.sweep, metra.run.logs; "
        "print(sorted({'ray', 'wandb'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
