"""The epoch loop every trainer runs: a progress bar; evaluation, log rows and checkpoints at
their own cadence (`Cadence`) and at the end; elapsed time and throughput columns; and
SIGINT/SIGTERM that stop after the epoch with a checkpoint."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from metra.errors import NonFiniteError, RunInterrupted
from metra.run.checkpoint import Counters
from metra.run.logs import RunLogger


@contextmanager
def stop_on_signal() -> Iterator[list[int]]:
    """SIGINT (Ctrl-C) or SIGTERM (what job schedulers send) asks the loop to stop at the end
    of the epoch, checkpoint and exit non-zero; a second signal acts at once. Yields the list
    the received signal is appended to."""
    received: list[int] = []
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        for sig, old in previous.items():
            signal.signal(sig, old)
        name = signal.Signals(signum).name
        print(
            f"\n{name}: stopping after this epoch and writing a checkpoint ({name} again aborts)",
            file=sys.stderr,
        )

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals behave as usual
        previous.clear()
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]."""
    return after // every > before // every


def finite_metrics(metrics: dict[str, Any], where: str) -> dict[str, float]:
    """The update metrics as floats; a NaN or inf stops the run, naming the resume fix."""
    values = {k: float(v) for k, v in metrics.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteError(
            f"non-finite {', '.join(bad)} at {where}; resume from the last checkpoint with a "
            "smaller step size (the resume command plus agent.lr=...)"
        )
    return values


def epoch_seed(seed: int, epoch: int) -> int:
    """The env seed of one epoch, drawn from (seed, epoch) so a resumed run repeats it."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key means over epoch metrics (a key counts in the epochs that have it)."""
    keys = dict.fromkeys(k for row in rows for k in row)
    return {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}


@dataclass(frozen=True)
class Cadence:
    """When the loop stops, evaluates, logs and checkpoints, in the unit `steps` counts (env
    steps, or gradient steps for offline QRL)."""

    total: int
    eval_every: int
    log_every: int | None = None  # None: a row every epoch; else the epochs' mean per crossing
    checkpoint_every: int | None = None  # None: at every evaluation


class EpochTrainer(Protocol):
    counters: Counters
    logger: RunLogger
    run_dir: Path

    def train_epoch(self) -> dict[str, float]: ...

    def evaluate(self) -> dict[str, float]: ...

    def save(self) -> None: ...


def run_epochs(
    trainer: EpochTrainer,
    cadence: Cadence,
    steps: Callable[[Counters], int],
    desc: str,
    progress: bool = True,
    resume_hint: str = "the same command",
    row_extras: Callable[[], dict[str, float]] | None = None,
    at_end: Callable[[], None] | None = None,
) -> None:
    """Epochs until `steps(counters)` reaches the total. Each log row holds the epochs' mean
    metrics, `row_extras()`, the evaluation when one is due, and `updates`, `time_s` (summed
    over resumes, kept in `counters.elapsed_s`), `env_steps_per_s` and `updates_per_s` of
    this process. A signal stops after the epoch with a checkpoint and raises
    `RunInterrupted`, whose message ends in `resume_hint`. A run that reaches its total calls
    `at_end()` (e.g. a final plot) before the logger is closed."""
    c = trainer.counters
    start, base = time.time(), c.elapsed_s
    start_steps, start_updates = c.env_steps, c.updates
    bar = tqdm(
        total=cadence.total,
        initial=min(steps(c), cadence.total),
        unit="step",
        unit_scale=True,
        disable=not progress,
        desc=desc,
        dynamic_ncols=True,
    )
    last_saved = steps(c)

    def save() -> None:
        nonlocal last_saved
        c.elapsed_s = base + time.time() - start
        trainer.save()
        last_saved = steps(c)

    window: list[dict[str, float]] = []  # epoch metrics since the last log row
    try:
        with stop_on_signal() as stop:
            while steps(c) < cadence.total and not stop:
                before = steps(c)
                window.append(trainer.train_epoch())
                now = steps(c)
                elapsed = time.time() - start
                row: dict[str, float] = {}
                if cadence.log_every is None or crossed(before, now, cadence.log_every):
                    row.update(mean_rows(window), **(row_extras() if row_extras else {}))
                    window = []
                evaluated = crossed(before, now, cadence.eval_every) or now >= cadence.total
                post = {"upd/s": f"{(c.updates - start_updates) / elapsed:.3g}"}
                scores: dict[str, float] = {}
                if evaluated:
                    scores = trainer.evaluate()
                    row.update(scores)
                    post.update({k: f"{v:.3g}" for k, v in scores.items()})
                if row:
                    row["updates"] = c.updates
                    row["time_s"] = base + elapsed
                    row["env_steps_per_s"] = (c.env_steps - start_steps) / elapsed
                    row["updates_per_s"] = (c.updates - start_updates) / elapsed
                    trainer.logger.log(now, row, evaluated=scores)
                every = cadence.checkpoint_every
                if (every is None and evaluated) or (every and crossed(before, now, every)):
                    save()
                bar.update(now - before)
                bar.set_postfix(post, refresh=False)
            if steps(c) != last_saved:
                save()
            if stop:
                raise RunInterrupted(stop[0], trainer.run_dir, steps(c), resume_hint)
        if at_end is not None:
            at_end()
    finally:
        bar.close()
        trainer.logger.close()
