"""What one meta-train run costs at a config, measured through the trainer, printed as JSON.

    python bench/meta_budget.py                    # cheetah_vel at PEARL's published size
    python bench/meta_budget.py --algo cocoa hidden=128,128,128 encoder_hidden=128,128,128 \
        batch_size=128                             # at the CPU budget (bench/meta_budget.sh)

Figures: env steps/s of the first iteration's collection (all train tasks at once, z from the
prior) and of one iteration's (its tasks' prior-z steps, then their posterior-z steps);
updates/s with a warm jit, host-side batch sampling included; seconds of one meta-test; and
the minutes of a run of `--updates` updates on PEARL's schedule (the initial collection, then
iterations of collection + `grad_steps` updates, a meta-test every `eval_every` env steps).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from metra.presets import apply_overrides
from metra.train.meta import MetaRunConfig, MetaTrainer


def timed_collection(
    trainer: MetaTrainer, tasks: np.ndarray, steps: int, prior: float
) -> tuple[int, float]:
    """(env steps, seconds) of collecting `steps` on each of `tasks`, z from the prior for
    `prior` trajectories of each, after a one-trajectory warm-up (compiles excluded)."""
    trainer._collect(tasks, 1, prior, True, seed=1)
    before, start = trainer.counters.env_steps, time.perf_counter()
    trainer._collect(tasks, steps, prior, True, seed=0)
    return trainer.counters.env_steps - before, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="cheetah_vel")
    parser.add_argument("--algo", default="pearl")
    parser.add_argument("--updates", type=int, default=50_000, help="updates of the priced run")
    parser.add_argument("--timed", type=int, default=200, help="updates timed (warm jit)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    overrides = list(args.overrides)
    config = apply_overrides(MetaRunConfig.default(args.task, args.algo), overrides)
    cfg = config.train
    print(
        json.dumps({"machine": platform.processor() or platform.machine(), "overrides": overrides})
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = MetaTrainer(config, Path(tmp) / "run")
        num_train = len(trainer.family.train_tasks)
        # Two trajectories per train task, as the initial collection does (prior z).
        initial = np.divide(*timed_collection(trainer, np.arange(num_train), 400, math.inf))
        # One round of distinct tasks; an iteration collects num_tasks_sample such draws.
        tasks = np.arange(min(cfg.num_tasks_sample, num_train))
        prior = timed_collection(trainer, tasks, cfg.num_steps_prior, math.inf)
        posterior = timed_collection(trainer, tasks, cfg.num_extra_rl_steps_posterior, 1)
        draws = cfg.num_tasks_sample / len(tasks)
        iteration_steps = round(draws * (prior[0] + posterior[0]))
        iteration_collect_s = draws * (prior[1] + posterior[1])
        rng = np.random.default_rng(0)
        agent = trainer.agent
        jax.block_until_ready(agent.update(trainer.batches(rng, cfg.chunk))[1])
        calls = max(1, args.timed // cfg.chunk)
        start = time.perf_counter()
        for _ in range(calls):
            agent, metrics = agent.update(trainer.batches(rng, cfg.chunk))
        jax.block_until_ready(metrics)
        updates_per_s = calls * cfg.chunk / (time.perf_counter() - start)
        trainer.evaluate()  # compiles
        start = time.perf_counter()
        trainer.evaluate()
        meta_test_s = time.perf_counter() - start
    iterations = math.ceil(args.updates / cfg.grad_steps)
    env_steps = num_train * cfg.num_initial_steps + iterations * iteration_steps
    seconds = (
        num_train * cfg.num_initial_steps / initial
        + iterations * iteration_collect_s
        + iterations * cfg.grad_steps / updates_per_s
        + env_steps // cfg.eval_every * meta_test_s
    )
    figures = {
        "initial_collection_env_steps_per_s": round(initial),
        "iteration_collection_env_steps_per_s": round(iteration_steps / iteration_collect_s),
        "updates_per_s": round(updates_per_s, 1),
        "meta_test_s": round(meta_test_s, 1),
        "updates_per_env_step_per_iteration": round(cfg.grad_steps / iteration_steps, 2),
        "run_updates": iterations * cfg.grad_steps,
        "run_env_steps": env_steps,
        "run_minutes": round(seconds / 60, 1),
    }
    for key, value in figures.items():
        print(json.dumps({key: value}))


if __name__ == "__main__":
    main()
