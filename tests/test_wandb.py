"""Weights & Biases as an opt-in logger: an offline W&B run holds what progress.csv holds."""

from __future__ import annotations

import csv
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import metra
from metra.cli import main
from metra.run.logs import WANDB_ID_FILE, metric_tag
from metra.train.goals import train_qrl
from metra.train.meta import train_meta
from tests.conftest import TINY

BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of framed records


def wandb_records(path: Path) -> list[Any]:
    """The protobuf records of an offline run's .wandb file (wandb 0.31 ships no reader)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, parts, records = 7, b"", []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (kind == 0 and length == 0):  # the rest of the block is padding
            pos += left
            continue
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            records.append(wandb_internal_pb2.Record.FromString(parts))
            parts = b""
    return records


def finished_records(path: Path, timeout_s: float = 60.0) -> list[Any]:
    """The records of a finished session. wandb-core's writer can flush the file a moment
    after `run.finish()` returns (seen under pytest's output capture), so wait for the exit
    record."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        assert time.monotonic() < deadline, f"{path} has no exit record after {timeout_s} s"
        time.sleep(0.2)


def offline_run(wandb_dir: Path, run_id: str) -> tuple[Any, list[dict[str, Any]]]:
    """(the run record, the history rows) of every offline session of W&B run `run_id`."""
    files = sorted(wandb_dir.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert files, f"no offline run {run_id} under {wandb_dir}"
    run, rows = None, []
    for path in files:
        for record in finished_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
            elif kind == "history":
                row: dict[str, Any] = {}
                for item in record.history.item:
                    key, *sub = [item.key] if item.key else list(item.nested_key)
                    value = json.loads(item.value_json)
                    if sub:  # an image is logged as its fields: plots/NAME/_type, .../path
                        row.setdefault(key, {})["/".join(sub)] = value
                    else:
                        row[key] = value
                rows.append(row)
    return run, rows


def progress_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "progress.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_wandb_logs_the_progress_scalars_and_plots(tmp_path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "point-wandb"
    metra.train("point", 1600, out=run_dir, overrides=[*TINY, "logger=wandb"], progress=False)
    run_id = (run_dir / WANDB_ID_FILE).read_text().strip()
    run, rows = offline_run(tmp_path, run_id)
    assert run.display_name == "point-wandb"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["train"] == json.loads((run_dir / "config.json").read_text())["train"]
    assert config["train"]["logger"] == "wandb"
    csv_rows = progress_rows(run_dir)
    assert [r["_step"] for r in rows] == [int(r["env_steps"]) for r in csv_rows] == [800, 1600]
    for wb, row in zip(rows, csv_rows, strict=True):
        scores = {"coverage", "displacement"} if row["coverage"] else set()
        # Every CSV number under its namespaced tag (eval/, time/, train/, sac/, rep/).
        assert {k for k in wb if not k.startswith(("_", "plots"))} == {
            metric_tag(k, k in scores) for k, v in row.items() if v and k != "env_steps"
        }
        assert wb["eval/coverage" if scores else "time/updates"] == pytest.approx(
            float(row["coverage"] or row["updates"])
        )
    assert wb["sac/alpha"] == pytest.approx(float(csv_rows[-1]["alpha"]))
    assert wb["rep/phi_objective"] == pytest.approx(float(csv_rows[-1]["phi_objective"]))
    assert wb["train/coverage"] == pytest.approx(float(csv_rows[-1]["train_coverage"]))
    # The evaluation's skill plots and the final coverage curve, as W&B images.
    assert {k for k in rows[-1] if k.startswith("plots")} == {
        "plots/skills_xy",
        "plots/skills_phi",
        "plots/coverage",
    }
    assert rows[-1]["plots/skills_xy"]["_type"] == "image-file"
    assert rows[-1]["plots/skills_xy"]["path"].endswith(".png")

    # --resume continues the same W&B run (same id, in a second offline session).
    metra.train(resume=run_dir, steps=2400, progress=False)
    assert (run_dir / WANDB_ID_FILE).read_text().strip() == run_id
    assert len(list(tmp_path.glob(f"wandb/offline-run-*-{run_id}"))) == 2
    _, rows = offline_run(tmp_path, run_id)
    assert [r["_step"] for r in rows] == [800, 1600, 2400]


def test_missing_wandb_is_one_clear_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    with pytest.raises(RuntimeError, match=r'pip install "metra\[wandb\]"'):
        metra.train("point", 800, out=tmp_path / "a", overrides=[*TINY, "logger=wandb"])
    assert not (tmp_path / "a").exists()  # refused before any work
    args = ["train", "--wandb", "--steps", "800", "--out", str(tmp_path / "b"), *TINY]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "metra[wandb]"' in err
    with pytest.raises(ValueError, match="logger must be one of"):
        metra.train("point", 800, out=tmp_path / "c", overrides=["logger=mlflow"])
    # QRL and meta-RL runs take the same override and the same RunLogger sink.
    with pytest.raises(RuntimeError, match=r'pip install "metra\[wandb\]"'):
        train_qrl("fetch_reach", None, 100, 0, tmp_path / "q", ["logger=wandb"], progress=False)
    with pytest.raises(RuntimeError, match=r'pip install "metra\[wandb\]"'):
        train_meta("cheetah_vel", "pearl", 100, 0, tmp_path / "m", ["logger=wandb"], False)
    assert not (tmp_path / "q").exists() and not (tmp_path / "m").exists()
