"""`metra train | eval | plot | curves | export | compare | sweep | downstream | data | qrl |
sac | meta-train | meta-test | meta-compare`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metra import __version__
from metra.agents import META_AGENTS, SKILL_AGENTS
from metra.envs.gym_tasks import SAC_ENVS
from metra.envs.meta import META_TASK_NAMES
from metra.errors import MetraError
from metra.presets import DEFAULT_PRESET, PRESETS
from metra.run.folder import RunDir, dumps


def _preset_table() -> str:
    return "presets:\n" + "\n".join(
        f"  {name:<14} {desc}" for name, (desc, _, _) in PRESETS.items()
    )


# ---- arguments, shared and per command -------------------------------------------------------


def _run_arguments(
    parser: argparse.ArgumentParser, steps: str, out: str, seed: bool = True
) -> None:
    """The vocabulary every training command shares: --steps, --seed, --out, --resume and
    key=value overrides."""
    parser.add_argument("--steps", type=int, metavar="N", help=steps)
    if seed:
        parser.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    parser.add_argument("--out", metavar="DIR", help=out)
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR (its own config; --steps may raise the total)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        metavar="NAME",
        help=f"one of: {', '.join(PRESETS)} (default {DEFAULT_PRESET})",
    )
    p.add_argument(
        "--algo",
        choices=list(SKILL_AGENTS),
        help=f"skill-discovery algorithm: {', '.join(SKILL_AGENTS)} (default metra)",
    )
    _run_arguments(
        p, "total env steps (default: the preset's)", "run folder (default runs/PRESET-seedS)"
    )
    p.add_argument("--no-eval", action="store_true", help="skip `metra eval` after training")
    p.add_argument(
        "--wandb",
        action="store_true",
        help='also log to Weights & Biases (logger=wandb; pip install "metra[wandb]")',
    )


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--skills", type=int, default=48, help="skills to roll out (default 48)")
    p.add_argument(
        "--goals",
        type=int,
        default=50,
        help="goals for goal reaching (default 50); a QRL run: episodes per task",
    )
    p.add_argument(
        "--goal-range", type=float, help="goals within +-R of the start (default: the env's)"
    )


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), metavar="NAME")
    p.add_argument(
        "--algos",
        default=",".join(SKILL_AGENTS),
        help=f"comma-separated (default {','.join(SKILL_AGENTS)})",
    )
    p.add_argument("--steps", type=int, help="env steps per run (default: the preset's)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per algorithm (3)")
    p.add_argument("--workers", type=int, help="runs at once (default: one per CPU core)")
    p.add_argument("--out", help="folder of the runs and plots (default runs/compare-PRESET)")
    p.add_argument("overrides", nargs="*", metavar="key=value")


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", default=DEFAULT_PRESET, help="comma-separated preset names")
    p.add_argument("--algos", default="metra", help="comma-separated (default metra)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per trial (3)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="an override's values, one trial each (repeatable; ';' splits values that hold "
        "commas: agent.hidden=64,64;256,256)",
    )
    p.add_argument("--steps", type=int, help="env steps per trial (default: the preset's)")
    p.add_argument("--out", help="folder of the trials and plots (default runs/sweep)")
    p.add_argument("--address", help="a running Ray cluster (ray.init address, e.g. auto)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="(default 1)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every trial")


def _downstream_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a skill run (its env must match the task's)")
    p.add_argument(
        "--task",
        required=True,
        help="ant_multi_goals (ant skills), half_cheetah_goal or half_cheetah_hurdle "
        "(half_cheetah skills)",
    )
    p.add_argument("--steps", type=int, help="low-level env steps per agent (400000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default RUN_DIR/downstream/TASK)")
    p.add_argument("--no-flat", action="store_true", help="skip the flat SAC baseline")
    p.add_argument("--skill-steps", type=int, default=25, help="K, low-level steps per skill (25)")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("env", help="pointmaze-medium or pointmaze-large")
    p.add_argument("--episodes", type=int, default=1000, help="episodes (1000, as OGBench)")
    p.add_argument("--episode-len", type=int, default=1000, help="steps per episode (1000)")
    p.add_argument("--noise", type=float, default=0.5, help="action noise std (0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--goals",
        default="ogbench",
        choices=("ogbench", "cells"),
        help="ogbench: vertex cells with +-1 noise (default); cells: any free cell's center",
    )
    p.add_argument("--out", help="npz file (default data/ENV-navigate-Nep.npz)")


def _qrl_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", help="a goal env (required for a new run)")
    p.add_argument("--data", help="offline dataset (npz); without it QRL trains online")
    p.add_argument(
        "--eval-episodes",
        type=int,
        help="evaluation episodes per task (default 50, as OGBench; fewer for quick runs)",
    )
    _run_arguments(
        p,
        "gradient steps offline, env steps online",
        "run folder (default runs/qrl-ENV-MODE-seedS); rerun resumes",
    )


def _sac_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="half_cheetah", choices=list(SAC_ENVS), metavar="NAME")
    _run_arguments(
        p, "env steps (default 1M)", "run folder (default runs/sac-ENV-seedS); rerun resumes"
    )


def _meta_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=META_TASK_NAMES, metavar="NAME", help="a task family")
    p.add_argument("--algo", default="pearl", choices=list(META_AGENTS))
    _run_arguments(
        p,
        "training env steps (default 1M)",
        "run folder (default runs/meta-TASK-ALGO-seedS); rerun resumes",
    )


def _meta_test_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--rollouts", type=int, help="test-task rollouts (default: the run's)")


def _meta_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", required=True, help="folder for compare.csv and compare.png")
    p.add_argument("--metric", default="test_return", help="test_return or test_success")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="a new folder, e.g. pretrained/ant-metra")


def _curves_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", required=True, help="path without suffix, e.g. docs/img/hc")


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--skills", type=int, default=48)
    p.add_argument("--video", action="store_true", help="also write plots/skills.mp4")


# ---- running a command -----------------------------------------------------------------------
# Each imports its workflow when it runs, so `metra --help` never imports jax, flax or MuJoCo.


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _resume_or_new(args: argparse.Namespace, required: str) -> Path | None:
    """The folder to continue for --resume (which must hold a checkpoint), else None; a new
    run then needs `required` (e.g. --env)."""
    if args.resume is None:
        if getattr(args, required) is None:
            raise ValueError(f"--{required} is required (or --resume RUN_DIR)")
        return None
    if args.out is not None:
        raise ValueError("give --out or --resume, not both: --resume continues that folder")
    run = RunDir(args.resume)
    run.check_resume()
    return run.path


def _run_train(args: argparse.Namespace) -> None:
    from metra.api import train
    from metra.train.runs import evaluate

    if args.resume and (args.seed is not None or args.out or args.algo or args.preset):
        raise ValueError("--resume takes the seed, folder, algo and preset from the run")
    run_dir = train(
        preset=args.preset or DEFAULT_PRESET,
        steps=args.steps,
        seed=args.seed,
        out=args.out,
        overrides=[*args.overrides, *(["logger=wandb"] if args.wandb else [])],
        resume=args.resume,
        algo=args.algo,
    )
    if not args.no_eval:
        print(dumps(evaluate(run_dir)))


def _run_eval(args: argparse.Namespace) -> None:
    from metra.train.runs import evaluate

    print(
        dumps(
            evaluate(args.run_dir, skills=args.skills, goals=args.goals, goal_range=args.goal_range)
        )
    )


def _run_compare(args: argparse.Namespace) -> None:
    from metra.compare import compare, final_table

    paths = compare(
        preset=args.preset,
        algos=_comma_list(args.algos),
        steps=args.steps,
        seeds=args.seeds,
        out=args.out,
        workers=args.workers,
        overrides=args.overrides,
    )
    print(final_table(paths[0]))
    print("\n".join(str(p) for p in paths))


def _run_sweep(args: argparse.Namespace) -> None:
    from metra.compare import final_table
    from metra.sweep import parse_grid, sweep

    summaries = sweep(
        presets=_comma_list(args.presets),
        algos=_comma_list(args.algos),
        seeds=args.seeds,
        grid=parse_grid(args.grid),
        steps=args.steps,
        out=args.out,
        overrides=args.overrides,
        address=args.address,
        num_cpus=args.num_cpus,
        cpus_per_trial=args.cpus_per_trial,
    )
    for csv_path, png in summaries:
        print(f"{final_table(csv_path)}\n{csv_path}\n{png}")


def _run_downstream(args: argparse.Namespace) -> None:
    from metra.train.downstream import run_downstream

    paths = run_downstream(
        skill_run=args.run_dir,
        task=args.task,
        steps=args.steps,
        seed=args.seed,
        out=args.out,
        flat=not args.no_flat,
        skill_steps=args.skill_steps,
    )
    print("\n".join(str(p) for p in paths))


def _run_data(args: argparse.Namespace) -> None:
    from metra.data import generate_pointmaze, save_dataset

    name = f"{args.env}-navigate-{args.episodes}ep.npz"
    out = Path(args.out or f"data/{name}")
    if out.is_dir():  # a folder: the default file name inside it
        out = out / name
    data = generate_pointmaze(
        name=args.env,
        episodes=args.episodes,
        episode_len=args.episode_len,
        noise=args.noise,
        seed=args.seed,
        goals=args.goals,
    )
    save_dataset(out, data)
    print(out)


def _run_workflow(
    args: argparse.Namespace,
    train: Callable[..., Path],
    required: str,
    overrides: list[str],
    **named: Any,
) -> None:
    """A training command of the shared vocabulary: a new run in --out (which needs
    `required`), or --resume of a folder with a checkpoint."""
    resume = _resume_or_new(args, required)
    out = resume or args.out
    print(train(steps=args.steps, seed=args.seed or 0, out=out, overrides=overrides, **named))


def _run_qrl(args: argparse.Namespace) -> None:
    from metra.train.goals import train_qrl

    overrides = list(args.overrides)
    if args.eval_episodes is not None:
        overrides.append(f"eval_episodes={args.eval_episodes}")
    _run_workflow(args, train_qrl, "env", overrides, env=args.env, data=args.data)


def _run_sac(args: argparse.Namespace) -> None:
    from metra.train.sac import train_sac

    _run_workflow(args, train_sac, "env", args.overrides, env=args.env)


def _run_meta_train(args: argparse.Namespace) -> None:
    from metra.train.meta import train_meta

    _run_workflow(args, train_meta, "task", args.overrides, task=args.task, algo=args.algo)


def _run_meta_test(args: argparse.Namespace) -> None:
    from metra.train.meta import evaluate_run

    print(dumps(evaluate_run(args.run_dir, rollouts=args.rollouts)))


def _run_meta_compare(args: argparse.Namespace) -> None:
    from metra.train.meta import compare_runs

    for path in compare_runs(args.run_dirs, out=args.out, metric=args.metric):
        print(path)


def _run_export(args: argparse.Namespace) -> None:
    from metra.train.runs import export

    print(export(args.run_dir, args.out))


def _run_curves(args: argparse.Namespace) -> None:
    from metra.eval.plots import write_diagnostics

    for path in write_diagnostics([Path(p) for p in args.run_dirs], Path(args.out)):
        print(path)


def _run_plot(args: argparse.Namespace) -> None:
    from metra.train.runs import plot

    for path in plot(args.run_dir, skills=args.skills, video=args.video):
        print(path)


# ---- the table -------------------------------------------------------------------------------

OVERRIDES_HELP = "overrides: key=value on the train or agent config, e.g. "


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, its arguments, and what it runs."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]
    epilog: str = ""


COMMANDS: dict[str, Command] = {
    "train": Command(
        "train a preset into a run folder",
        _train_arguments,
        _run_train,
        _preset_table() + "\n\n" + OVERRIDES_HELP + "grad_steps=10 agent.hidden=256,256 lr=3e-4"
        "\n--resume with overrides of step sizes and cadences only: lr, log_every, eval_every, "
        "checkpoint_every, eval_skills, logger",
    ),
    "eval": Command(
        "coverage and goal reaching; writes RUN_DIR/eval.json", _eval_arguments, _run_eval
    ),
    "compare": Command(
        "train several algorithms x seeds on a preset; plot coverage against env steps",
        _compare_arguments,
        _run_compare,
        _preset_table(),
    ),
    "sweep": Command(
        'presets x algorithms x seeds x override grids on Ray Tune (pip install "metra[ray]")',
        _sweep_arguments,
        _run_sweep,
        _preset_table() + "\n\nexample: metra sweep --presets point --algos metra,lsd --seeds 2 "
        "--grid agent.lr=1e-4,3e-4 --out runs/sweep-lr\n"
        "a rerun of the same command skips finished trials and resumes the others",
    ),
    "downstream": Command(
        "hierarchical SAC over a run's frozen skills on a task, against flat SAC",
        _downstream_arguments,
        _run_downstream,
    ),
    "data": Command(
        "generate an offline goal-reaching dataset (OGBench's navigate protocol)",
        _data_arguments,
        _run_data,
    ),
    "qrl": Command(
        "Quasimetric RL: offline from a `metra data` file, or online without one",
        _qrl_arguments,
        _run_qrl,
        "envs: pointmaze-medium, pointmaze-large (offline), fetch_reach, fetch_push (online)\n\n"
        + OVERRIDES_HELP
        + "batch_size=256 agent.hidden=256,256,256 quasimetric=mrn",
    ),
    "sac": Command(
        "plain SAC on a Gymnasium MuJoCo task reward (the backbone against SB3 and SBX)",
        _sac_arguments,
        _run_sac,
        f"envs: {', '.join(f'{k} ({v})' for k, v in SAC_ENVS.items())}\n\n"
        + OVERRIDES_HELP
        + "batch_size=256 agent.hidden=256,256",
    ),
    "meta-train": Command(
        "context-based meta-RL (PEARL, CoCOA) on a task family; meta-test curves",
        _meta_train_arguments,
        _run_meta_train,
        f"tasks: {', '.join(META_TASK_NAMES)}\n\n"
        + OVERRIDES_HELP
        + "grad_steps=200 meta_batch=8 agent.hidden=256,256 window=16",
    ),
    "meta-test": Command(
        "meta-test a meta-train run; writes meta_test.json", _meta_test_arguments, _run_meta_test
    ),
    "meta-compare": Command(
        "meta-test curves of runs (seeds averaged per algorithm)",
        _meta_compare_arguments,
        _run_meta_compare,
    ),
    "export": Command(
        "copy a run's weights (no optimizer state or replay) to ship it",
        _export_arguments,
        _run_export,
    ),
    "curves": Command(
        "diagnostics of skill runs side by side: OUT.csv and OUT.png",
        _curves_arguments,
        _run_curves,
    ),
    "plot": Command("skill trajectories, phi space, coverage curve", _plot_arguments, _run_plot),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metra",
        description="Unsupervised skill discovery (METRA) in JAX.",
        epilog=_preset_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"metra {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.arguments(
            sub.add_parser(
                name,
                help=command.help,
                epilog=command.epilog or None,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command].run(args)
    except MetraError as err:
        print(f"metra: {err}" if err.exit_code > 128 else f"metra: error: {err}", file=sys.stderr)
        return err.exit_code
    except (ValueError, OSError, RuntimeError) as err:
        print(f"metra: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: aborted at once
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
