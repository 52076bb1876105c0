"""The Python entry points: `metra.train(...)` and `metra.load(run_dir)`."""

from __future__ import annotations

from pathlib import Path

from metra.presets import (
    DEFAULT_PRESET,
    RunConfig,
    apply_overrides,
    preset_config,
    resume_overrides,
)
from metra.run.checkpoint import resume_to
from metra.run.folder import RunDir
from metra.train.device import DeviceSkillTrainer
from metra.train.online import SkillTrainer, read_config


def default_run_dir(preset: str, seed: int, algo: str = "metra", root: Path = Path("runs")) -> Path:
    """runs/PRESET-seedS (runs/PRESET-ALGO-seedS for other algorithms than METRA), with
    -2, -3, ... appended when that folder is taken."""
    name = preset if algo == "metra" else f"{preset}-{algo}"
    base = root / f"{name}-seed{seed}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def skill_trainer(config: RunConfig, run_dir: Path, resume: bool, progress: bool) -> SkillTrainer:
    """The skill trainer of the run's backend: host MuJoCo envs, or one jitted MJX epoch."""
    kind = DeviceSkillTrainer if config.train.backend == "mjx" else SkillTrainer
    return kind(config, run_dir, resume=resume, progress=progress)


def resolve_config(
    preset: str = DEFAULT_PRESET,
    steps: int | None = None,
    seed: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    algo: str | None = None,
) -> RunConfig:
    config = apply_overrides(preset_config(preset, algo), list(overrides))
    changes = {}
    if steps is not None:
        changes["total_steps"] = steps
    if seed is not None:
        changes["seed"] = seed
    return config.with_train(**changes)


def train(
    preset: str = DEFAULT_PRESET,
    steps: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | Path | None = None,
    progress: bool = True,
    algo: str | None = None,
) -> Path:
    """Train a preset (with `key=value` overrides) into a new run folder, or continue the run
    folder `resume` (to a new `steps` total, with the overrides `resume_overrides` allows).
    `algo` picks another registered algorithm than the preset's METRA. Returns the run
    folder; a SIGINT/SIGTERM stops it after a checkpoint with `RunInterrupted`."""
    if resume is not None:
        run = RunDir(resume)
        run.check_resume()
        with run.hold():
            config = resume_to(
                run, resume_overrides(read_config(run.path), list(overrides)), steps, "train"
            )
            return skill_trainer(config, run.path, resume=True, progress=progress).run()
    config = resolve_config(preset, steps, seed, overrides, algo)
    run = RunDir(
        out if out is not None else default_run_dir(preset, config.train.seed, config.train.algo)
    )
    with run.claim(resumable=False):
        return skill_trainer(config, run.path, resume=False, progress=progress).run()
