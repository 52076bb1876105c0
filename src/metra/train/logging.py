"""Run logs: progress.csv (always) and TensorBoard events."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from tensorboardX import SummaryWriter

from metra.errors import DamagedFileError


class RunLogger:
    """Appends one row per log step to progress.csv (the step column, `env_steps` unless
    named otherwise, first) and mirrors every number to TensorBoard. A new key widens the
    CSV; rows keep empty cells."""

    def __init__(
        self, run_dir: Path, resume_step: int | None = None, step_name: str = "env_steps"
    ) -> None:
        self.step_name = step_name
        self.path = run_dir / "progress.csv"
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

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {self.step_name: step, **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, self.columns, restval="").writerow(row)
        for key, value in row.items():
            if key != self.step_name and math.isfinite(float(value)):
                self.tb.add_scalar(key, float(value), step)
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


def read_progress(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's progress.csv as strings ('' where a column has no value)."""
    path = Path(run_dir) / "progress.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a metra run folder?")
    return progress_rows(path)


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
