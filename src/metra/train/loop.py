"""The epoch loop that the downstream and goal-reaching trainers share: a progress bar,
evaluation and checkpoint every so many steps and at the end, one log row per epoch, and a
Ctrl-C that stops after the epoch with a checkpoint."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from tqdm.auto import tqdm

from metra.train.checkpoint import Counters
from metra.train.logging import RunLogger


@contextmanager
def stop_on_interrupt() -> Iterator[list[bool]]:
    """The first Ctrl-C asks the loop to stop at the end of the epoch (and checkpoint); a
    second one interrupts at once."""
    flag = [False]

    def handler(signum: int, frame: Any) -> None:
        flag[0] = True
        signal.signal(signal.SIGINT, previous)
        print("\nstopping after this epoch and writing a checkpoint (Ctrl-C again to abort)")

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]."""
    return after // every > before // every


def finite_metrics(metrics: dict[str, Any], where: str) -> dict[str, float]:
    """The update metrics as floats; a NaN or inf stops the run, naming the resume fix."""
    values = {k: float(v) for k, v in metrics.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(
            f"non-finite {', '.join(bad)} at {where}; resume from the last checkpoint with a "
            "smaller lr (agent.lr=...)"
        )
    return values


class EpochTrainer(Protocol):
    counters: Counters
    logger: RunLogger

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
) -> None:
    """Epochs until `steps(counters)` reaches `total`."""
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
        with stop_on_interrupt() as stop:
            while steps(c) < total and not stop[0]:
                before = steps(c)
                row = trainer.train_epoch()
                if crossed(before, steps(c), eval_every) or steps(c) >= total:
                    scores = trainer.evaluate()
                    row.update(scores)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in scores.items()}, refresh=False)
                    trainer.save()
                trainer.logger.log(steps(c), row)
                bar.update(steps(c) - before)
            if stop[0]:
                trainer.save()
    finally:
        bar.close()
        trainer.logger.close()
