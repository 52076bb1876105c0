"""The epoch loop that the downstream and goal-reaching trainers share: a progress bar,
evaluation and checkpoint every so many steps and at the end, one log row per epoch, and
SIGINT/SIGTERM that stop after the epoch with a checkpoint."""

from __future__ import annotations

import math
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

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


class EpochTrainer(Protocol):
    counters: Counters
    logger: RunLogger
    run_dir: Path

    def train_epoch(self) -> dict[str, float]: ...

    def evaluate(self) -> dict[str, float]: ...

    def save(self) -> None: ...


def run_epochs(
    trainer: EpochTrainer,
    total: int,
    eval_every: int,
    steps: Callable[[Counters], int],
    desc: str,
    progress: bool = True,
    resume_hint: str = "the same command",
) -> None:
    """Epochs until `steps(counters)` reaches `total`; a signal stops after the epoch with a
    checkpoint and raises `RunInterrupted`, whose message ends in `resume_hint`."""
    c = trainer.counters
    bar = tqdm(
        total=total,
        initial=min(steps(c), total),
        unit="step",
        unit_scale=True,
        disable=not progress,
        desc=desc,
        dynamic_ncols=True,
    )
    try:
        with stop_on_signal() as stop:
            while steps(c) < total and not stop:
                before = steps(c)
                row = trainer.train_epoch()
                if crossed(before, steps(c), eval_every) or steps(c) >= total:
                    scores = trainer.evaluate()
                    row.update(scores)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in scores.items()}, refresh=False)
                    trainer.save()
                trainer.logger.log(steps(c), row)
                bar.update(steps(c) - before)
            if stop:
                trainer.save()
                raise RunInterrupted(stop[0], trainer.run_dir, steps(c), resume_hint)
    finally:
        bar.close()
        trainer.logger.close()
