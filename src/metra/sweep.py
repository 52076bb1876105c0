"""`metra sweep`: presets x algorithms x seeds x override grids, one Ray Tune trial per run.

Each trial is one `metra.train` into a folder of OUT named by its (preset, algo, seed, grid
point), so the folders, not Tune's experiment state, say what is done: a rerun of the same
command skips the trials whose checkpoint reached the budget and resumes the others from
their metra checkpoint. Ray runs locally by default, or on a running cluster with
`address` (then OUT must be a folder every node sees, e.g. NFS). The summary is the one
`metra compare` writes (compare.csv / compare.png, per preset), from the same function.
`metra compare` stays the path that needs no Ray.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metra.agents import SKILL_AGENTS
from metra.api import resolve_config, train
from metra.compare import SINGLE_THREAD_XLA, summarize
from metra.run.checkpoint import saved_env_steps
from metra.run.logs import read_progress

RAY_INSTALL = 'pip install "metra[ray]"'


def import_tune() -> tuple[Any, Any]:
    """(ray, ray.tune), imported only for a sweep (never at `import metra`)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise RuntimeError(
            f"metra sweep needs Ray Tune, which is not installed: {RAY_INSTALL}"
        ) from None
    return ray, tune


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: a preset, an algorithm, a seed and one point of the grid."""

    preset: str
    algo: str
    seed: int
    point: tuple[str, ...]  # the grid's key=value overrides of this trial

    @property
    def name(self) -> str:
        """The run folder's name: deterministic, so a rerun finds the trial again."""
        name = "-".join([self.preset, self.algo, f"seed{self.seed}", *self.point])
        return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)

    @property
    def label(self) -> str:
        """The curve this trial is a seed of."""
        return " ".join([self.algo, *self.point])


def parse_grid(items: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """`KEY=V1,V2,...` items as KEY -> values; values are split on ';' instead when there is
    one, for fields whose values hold commas (`agent.hidden=64,64;256,256`)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        values = [v.strip() for v in text.split(";" if ";" in text else ",") if v.strip()]
        if not sep or not key or not values:
            raise ValueError(f"grid item {item!r} is not KEY=V1,V2,... (e.g. agent.lr=1e-4,3e-4)")
        if key in grid:
            raise ValueError(f"grid key {key!r} given twice; list all its values in one item")
        grid[key] = values
    return grid


def make_trials(
    presets: list[str], algos: list[str], seeds: int, grid: dict[str, list[str]]
) -> list[Trial]:
    """Every (preset, algo, seed, grid point), in that nesting order."""
    points = [
        tuple(f"{k}={v}" for k, v in zip(grid, values, strict=True))
        for values in itertools.product(*grid.values())
    ]
    return [
        Trial(preset, algo, seed, point)
        for preset in presets
        for algo in algos
        for point in points
        for seed in range(seeds)
    ]


def run_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: train (or resume) one trial's run folder to its budget, then
    report each of its evaluations (coverage against env steps) to Tune."""
    _, tune = import_tune()
    spec = config["trial"]
    run_dir, steps = Path(spec["run_dir"]), int(spec["steps"])
    done = saved_env_steps(run_dir)
    if 0 < done < steps:
        train(resume=run_dir, steps=steps, progress=False)
    elif done == 0:
        overrides = spec["overrides"]
        train(
            spec["preset"],
            steps,
            spec["seed"],
            run_dir,
            overrides,
            algo=spec["algo"],
            progress=False,
        )
    report = getattr(tune, "report", None)
    if report is None:  # Ray before 2.41 reports through ray.train
        from ray.train import report
    for row in read_progress(run_dir):
        if row.get("coverage"):
            report({"env_steps": int(row["env_steps"]), "coverage": float(row["coverage"])})


def _run_on_ray(
    specs: list[dict[str, Any]],
    out: Path,
    address: str | None,
    num_cpus: int | None,
    cpus_per_trial: float,
    progress: bool,
) -> None:
    """Run `specs` as one Tune experiment (stored in OUT/tune) and raise if any failed. A Ray
    this process already started (a notebook's `ray.init`) is used as it is, runtime env
    included; otherwise Ray starts here (locally, or joining `address`) and stops after."""
    ray, tune = import_tune()
    started = not ray.is_initialized()
    if started:
        flags = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()
        with warnings.catch_warnings():
            # JAX warns on any fork; Ray's daemons are fork+exec'd and run none of this process.
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            ray.init(
                address=address,
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=progress,
                # One XLA thread per trial, so that trials sharing a machine do not
                # oversubscribe it.
                runtime_env={"env_vars": {"XLA_FLAGS": flags}},
            )
    try:
        tuner = tune.Tuner(
            tune.with_resources(run_trial, {"cpu": cpus_per_trial}),
            param_space={"trial": tune.grid_search(specs)},
            tune_config=tune.TuneConfig(
                trial_name_creator=lambda t: t.config["trial"]["name"],
                trial_dirname_creator=lambda t: t.config["trial"]["name"],
            ),
            run_config=tune.RunConfig(
                name=time.strftime("sweep-%Y%m%d-%H%M%S"),
                storage_path=str((out / "tune").resolve()),
                verbose=1 if progress else 0,
            ),
        )
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    failed = [r for r in results if r.error is not None]
    if failed:
        names = ", ".join(Path(r.path).name for r in failed)
        first = str(failed[0].error).strip().splitlines()[-1]
        raise RuntimeError(
            f"trials failed: {names} (first error: {first}; the traceback is in "
            f"{Path(failed[0].path) / 'error.txt'}); fix, and rerun the same command to resume"
        )


def sweep(
    presets: list[str],
    algos: list[str],
    seeds: int = 3,
    grid: dict[str, list[str]] | None = None,
    steps: int | None = None,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_trial: float = 1.0,
    progress: bool = True,
) -> list[tuple[Path, Path]]:
    """Train every trial not yet at its budget on Ray Tune, then write OUT/compare.csv and
    OUT/compare.png (OUT/compare-PRESET.* with several presets). `overrides` apply to every
    trial, `grid` (KEY -> values) spans the trials; `num_cpus` caps a local Ray. Returns
    the (csv, png) of each preset."""
    grid = grid or {}
    unknown = [a for a in algos if a not in SKILL_AGENTS]
    if unknown or not algos:
        raise ValueError(f"unknown algos {unknown}; known: {', '.join(SKILL_AGENTS)}")
    if not presets:
        raise ValueError("no presets to sweep")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if cpus_per_trial <= 0:
        raise ValueError(f"cpus per trial must be > 0, got {cpus_per_trial}")
    if address is not None and num_cpus is not None:
        raise ValueError("--num-cpus sizes a local Ray; a cluster (--address) has its own CPUs")
    out = Path(out) if out is not None else Path("runs") / "sweep"
    trials = make_trials(presets, algos, seeds, grid)
    specs, budgets = [], {}
    for trial in trials:  # every config is checked here, before Ray starts
        config = resolve_config(
            trial.preset, steps, trial.seed, [*overrides, *trial.point], trial.algo
        )
        budgets[trial] = config.train.total_steps
        run_dir = (out / trial.name).resolve()
        if saved_env_steps(run_dir) < budgets[trial]:
            specs.append(
                {
                    "name": trial.name,
                    "run_dir": str(run_dir),
                    "preset": trial.preset,
                    "algo": trial.algo,
                    "seed": trial.seed,
                    "steps": budgets[trial],
                    "overrides": [*overrides, *trial.point],
                }
            )
    if progress:
        print(
            f"sweep: {len(trials)} trials, {len(trials) - len(specs)} finished, {len(specs)} to run"
        )
    out.mkdir(parents=True, exist_ok=True)
    if specs:
        _run_on_ray(specs, out, address, num_cpus, cpus_per_trial, progress)
    summaries = []
    for preset in presets:
        groups: dict[str, list[Path]] = {}
        for trial in trials:
            if trial.preset == preset:
                groups.setdefault(trial.label, []).append(out / trial.name)
        base = resolve_config(preset, steps, overrides=overrides, algo=algos[0])
        total = max(b for t, b in budgets.items() if t.preset == preset)
        stem = "compare" if len(presets) == 1 else f"compare-{preset}"
        summaries.append(summarize(out, groups, base, seeds, f"{preset}, {total} env steps", stem))
    return summaries
