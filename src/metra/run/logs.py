"""Run logs: progress.csv (always), TensorBoard events, and Weights & Biases when asked."""

from __future__ import annotations

import csv
import json
import math
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tensorboardX import SummaryWriter

from metra.errors import DamagedFileError
from metra.run.folder import CONFIG_FILE, PROGRESS_FILE

# The throughput columns `run_epochs` adds to every row, and the SAC terms every agent logs.
TIME_COLUMNS = ("updates", "time_s", "env_steps_per_s", "updates_per_s")
SAC_METRICS = ("critic_loss", "q", "actor_loss", "entropy", "alpha", "reward")

WANDB_ID_FILE = "wandb_id.txt"  # the run folder's W&B run id, so a resume continues that run
WANDB_INSTALL = 'pip install "metra[wandb]"'


def import_wandb() -> Any:
    """The wandb module, imported only when a run asks for it (never at `import metra`)."""
    try:
        import wandb
    except ImportError:
        raise RuntimeError(
            f"logger=wandb needs the wandb package, which is not installed: {WANDB_INSTALL}"
        ) from None
    return wandb


def wandb_run_id(run_dir: Path) -> str:
    """The run folder's W&B id: read from WANDB_ID_FILE, or made and stored there (W&B ids
    must be unique within a project, so it is random rather than the folder's name)."""
    path = Path(run_dir) / WANDB_ID_FILE
    if path.exists():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:16]
    path.write_text(run_id + "\n")
    return run_id


def metric_tag(name: str, evaluated: bool) -> str:
    """The TensorBoard and W&B name of log column `name`, so their panels group by kind:
    `eval/` for evaluation scores, `time/` for throughput, `train/` for statistics of the
    collected data (`train_*` columns), `sac/` for the SAC terms every agent shares, `rep/`
    for the rest (what each agent learns its latent space with: phi and lambda, the context
    encoder, the quasimetric critic). progress.csv keeps the flat names, so every run folder
    and its plots read the same."""
    if evaluated:
        return f"eval/{name}"
    if name in TIME_COLUMNS:
        return f"time/{name}"
    if name.startswith("train_"):
        return f"train/{name.removeprefix('train_')}"
    return f"{'sac' if name in SAC_METRICS else 'rep'}/{name}"


class WandbSink:
    """One W&B run per run folder: the folder's config.json as its config, the folder's name
    as its name, and a stable id (WANDB_ID_FILE) so `--resume` continues the same run. Its
    files go to $WANDB_DIR, or to RUN_DIR/wandb when that is unset; the project is
    $WANDB_PROJECT, or "metra"."""

    def __init__(self, run_dir: Path) -> None:
        wandb = import_wandb()
        self.wandb = wandb
        config_path = run_dir / CONFIG_FILE
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "metra"),
            name=run_dir.name,
            id=wandb_run_id(run_dir),
            resume="allow",
            config=config,
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
        )

    def log(self, step: int, row: dict[str, float]) -> None:
        # A resumed run repeats the steps between its checkpoint and the crash; W&B drops
        # (with a warning) what it already holds at those steps, the same run's values.
        self.run.log(row, step=step)

    def log_images(self, step: int, paths: Iterable[Path]) -> None:
        images = {f"plots/{Path(p).stem}": self.wandb.Image(str(p)) for p in paths}
        if images:
            self.run.log(images, step=step)

    def close(self) -> None:
        self.run.finish()


class RunLogger:
    """Appends one row per log step to progress.csv (the step column, `env_steps` unless
    named otherwise, first) and mirrors every number to TensorBoard, and to W&B with
    `wandb=True` (a train config's `logger="wandb"`), under its `metric_tag`. A new key
    widens the CSV; rows keep empty cells."""

    def __init__(
        self,
        run_dir: Path,
        resume_step: int | None = None,
        step_name: str = "env_steps",
        wandb: bool = False,
    ) -> None:
        self.step_name = step_name
        self.path = run_dir / PROGRESS_FILE
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.exists():
            # Rows written after the checkpoint would be repeated by the resumed run: drop them.
            self.rows = [r for r in progress_rows(self.path) if int(r[step_name]) <= resume_step]
        self.columns = [
            step_name,
            *(k for k in (self.rows[0] if self.rows else {}) if k != step_name),
        ]
        self._rewrite()
        # TensorBoard hides the events from `purge_step` on that an earlier process wrote.
        purge = None if resume_step is None else resume_step + 1
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
        self.wandb = WandbSink(run_dir) if wandb else None

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)

    def log(self, step: int, values: dict[str, float], evaluated: Iterable[str] = ()) -> None:
        """One row; `evaluated` names the columns that are evaluation scores."""
        row = {self.step_name: step, **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, self.columns, restval="").writerow(row)
        scores = set(evaluated)
        tagged = {metric_tag(k, k in scores): v for k, v in row.items() if k != self.step_name}
        for tag, value in tagged.items():
            if math.isfinite(value):
                self.tb.add_scalar(tag, value, step)
        self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(step, tagged)

    def log_images(self, step: int, paths: Iterable[Path]) -> None:
        """Plots (PNG files) of this step; only W&B keeps them (the files stay on disk)."""
        if self.wandb is not None:
            self.wandb.log_images(step, paths)

    def close(self) -> None:
        self.tb.close()
        if self.wandb is not None:
            self.wandb.close()
            self.wandb = None


def read_progress(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's progress.csv as strings ('' where a column has no value)."""
    path = Path(run_dir) / PROGRESS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a metra run folder?")
    return progress_rows(path)


def logged(run_dir: Path, column: str, step: str = "env_steps") -> dict[int, float]:
    """`step` -> `column` over the rows of a run's progress.csv that hold the column (an
    evaluation's metric is logged only at evaluations)."""
    return {int(r[step]): float(r[column]) for r in read_progress(run_dir) if r.get(column)}


def progress_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a progress.csv. A cut-off last line (a crash while writing it) is left
    out; any other line that is not a row is an error naming the line."""
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    if not lines:
        return []
    header, body = lines[0], lines[1:]
    rows = []
    for number, cells in enumerate(body, start=2):
        if len(cells) != len(header) or not cells[0].isdigit():
            if number == len(lines):
                break
            raise DamagedFileError(
                f"{path}, line {number}, is not a row of the run's log: delete that line "
                "(or restore the file from a copy) and run again"
            )
        rows.append(dict(zip(header, cells, strict=True)))
    return rows
