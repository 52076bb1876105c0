"""`metra compare`: several algorithms and seeds on one preset, then one coverage plot.

Each (algorithm, seed) trains in its own process (`metra train`) into OUT/ALGO-seedS, as
many at once as there are workers; a rerun resumes unfinished runs and skips finished ones.
The curves come from each run's progress.csv (coverage at every `eval_every`), beside the
coverage of a uniformly random policy.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from metra.agents import SKILL_AGENTS
from metra.api import resolve_config
from metra.eval.plots import common_steps, write_comparison
from metra.eval.skills import EVAL_SEED, evaluation_count, random_coverage
from metra.presets import RunConfig
from metra.run.checkpoint import saved_env_steps
from metra.run.logs import logged

# One XLA thread per process when several runs share the CPU, so they do not oversubscribe it.
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _command(
    preset: str, algo: str, seed: int, steps: int, run_dir: Path, overrides: list[str]
) -> list[str]:
    base = [sys.executable, "-m", "metra.cli", "train", "--steps", str(steps), "--no-eval"]
    if saved_env_steps(run_dir) > 0:
        return [*base, "--resume", str(run_dir)]
    return [
        *base,
        *("--preset", preset, "--algo", algo, "--seed", str(seed), "--out", str(run_dir)),
        *overrides,
    ]


def run_all(
    preset: str,
    algos: list[str],
    seeds: int,
    steps: int,
    out: Path,
    workers: int,
    overrides: list[str],
    progress: bool = True,
) -> None:
    """Train every (algo, seed) not yet at `steps`, `workers` processes at a time; each
    writes its output to OUT/ALGO-seedS.log. Raises if any run fails."""
    jobs = [
        (algo, seed, out / f"{algo}-seed{seed}")
        for algo in algos
        for seed in range(seeds)
        if saved_env_steps(out / f"{algo}-seed{seed}") < steps
    ]
    env = dict(os.environ)
    if workers > 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()
    running: list[tuple[str, subprocess.Popen]] = []
    failed: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(jobs), unit="run", disable=not progress, desc="compare")
    pending = list(jobs)
    try:
        while pending or running:
            while pending and len(running) < workers:
                algo, seed, run_dir = pending.pop(0)
                cmd = _command(preset, algo, seed, steps, run_dir, overrides)
                with (out / f"{algo}-seed{seed}.log").open("a") as log:
                    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                running.append((run_dir.name, proc))
            time.sleep(1.0)
            for name, proc in list(running):
                if proc.poll() is not None:
                    running.remove((name, proc))
                    bar.update(1)
                    if proc.returncode != 0:
                        failed.append(name)
            bar.set_postfix_str(", ".join(name for name, _ in running), refresh=False)
    except KeyboardInterrupt:
        # The runs got the same Ctrl-C: each checkpoints at the end of its epoch.
        print("\nwaiting for the running runs to write their checkpoints ...")
        for _, proc in running:
            proc.wait()
        print("stopped; rerun the same command to resume")
        raise
    bar.close()
    if failed:
        raise RuntimeError(
            f"runs failed: {', '.join(failed)}; see their .log files in {out}, fix, and rerun "
            "the same command to resume"
        )


def coverage_curves(groups: dict[str, list[Path]]) -> dict[str, dict[int, list[float]]]:
    """label -> env steps -> coverage of each run of the label's group (its seeds), at the
    steps every run of the group has reached."""
    return {
        label: common_steps([logged(run_dir, "coverage") for run_dir in run_dirs])
        for label, run_dirs in groups.items()
    }


def random_reference(config: RunConfig, seeds: int) -> list[int]:
    """The coverage of a uniformly random policy in the run's env, once per seed, with as
    many episodes as the evaluation has skills."""
    agent = config.agent
    episodes = evaluation_count(agent.discrete, agent.latent_dim, config.train.eval_skills)
    return [random_coverage(config.train.env, episodes, EVAL_SEED + i) for i in range(seeds)]


def summarize(
    out: Path,
    groups: dict[str, list[Path]],
    config: RunConfig,
    seeds: int,
    title: str,
    stem: str = "compare",
) -> tuple[Path, Path]:
    """OUT/STEM.csv and OUT/STEM.png of finished runs, one curve per group (label -> its
    run folders), beside the random policy in `config`'s env: what `metra compare` and
    `metra sweep` both write."""
    curves = coverage_curves(groups)
    floor = random_reference(config, seeds)
    return write_comparison(out, stem, curves, floor, "coverage", "coverage (1x1 bins)", title)


def final_table(csv_path: Path) -> str:
    """A Markdown table of each algorithm's coverage at its last evaluation."""
    last: dict[str, dict[str, str]] = {}
    with Path(csv_path).open(newline="") as f:
        for row in csv.DictReader(f):
            last[row["algo"]] = row
    lines = ["| algo | env steps | coverage mean | std | min | max | seeds |", "|" + " --- |" * 7]
    for algo, r in last.items():
        cells = [algo, r["env_steps"], r["coverage_mean"], r["coverage_std"]]
        cells += [r["coverage_min"], r["coverage_max"], r["seeds"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(
    preset: str,
    algos: list[str],
    steps: int | None = None,
    seeds: int = 3,
    out: str | Path | None = None,
    workers: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> tuple[Path, Path]:
    """Train `algos` x `seeds` on `preset` and write OUT/compare.csv and OUT/compare.png."""
    unknown = [a for a in algos if a not in SKILL_AGENTS]
    if unknown or not algos:
        raise ValueError(f"unknown algos {unknown}; known: {', '.join(SKILL_AGENTS)}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    config = resolve_config(preset, steps, overrides=overrides)
    steps = config.train.total_steps
    out = Path(out) if out is not None else Path("runs") / f"compare-{preset}"
    workers = workers or min(len(algos) * seeds, os.cpu_count() or 1)
    run_all(preset, algos, seeds, steps, out, workers, list(overrides), progress)
    groups = {algo: [out / f"{algo}-seed{seed}" for seed in range(seeds)] for algo in algos}
    return summarize(out, groups, config, seeds, f"{preset}, {steps} env steps")
