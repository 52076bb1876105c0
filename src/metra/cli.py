"""`metra train | eval | plot | curves | export | compare | sweep | downstream | data | qrl |
sac | meta-train | meta-test | meta-compare`."""

from __future__ import annotations

import argparse
import sys

from metra import __version__
from metra.agents import META_AGENTS, SKILL_AGENTS
from metra.envs.gym_tasks import SAC_ENVS
from metra.envs.meta import META_TASK_NAMES
from metra.errors import MetraError
from metra.presets import DEFAULT_PRESET, PRESETS
from metra.run.folder import dumps


def _preset_table() -> str:
    return "presets:\n" + "\n".join(
        f"  {name:<14} {desc}" for name, (desc, _, _) in PRESETS.items()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metra",
        description="Unsupervised skill discovery (METRA) in JAX.",
        epilog=_preset_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"metra {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser(
        "train",
        help="train a preset into a run folder",
        epilog=_preset_table()
        + "\n\noverrides: key=value on the train or agent config, e.g. grad_steps=10 "
        "agent.hidden=256,256 lr=3e-4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument(
        "--preset",
        choices=list(PRESETS),
        metavar="NAME",
        help=f"one of: {', '.join(PRESETS)} (default {DEFAULT_PRESET})",
    )
    tr.add_argument(
        "--algo",
        choices=list(SKILL_AGENTS),
        help=f"skill-discovery algorithm: {', '.join(SKILL_AGENTS)} (default metra)",
    )
    tr.add_argument("--steps", type=int, help="total env steps (default: the preset's)")
    tr.add_argument("--seed", type=int, help="random seed (default 0)")
    tr.add_argument("--out", help="run folder (default runs/PRESET-seedS)")
    tr.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR (with --steps, and overrides of step sizes and "
        "cadences only: lr, log_every, eval_every, checkpoint_every, eval_skills, logger)",
    )
    tr.add_argument("--no-eval", action="store_true", help="skip `metra eval` after training")
    tr.add_argument(
        "--wandb",
        action="store_true",
        help='also log to Weights & Biases (logger=wandb; pip install "metra[wandb]")',
    )
    tr.add_argument("overrides", nargs="*", metavar="key=value")

    ev = sub.add_parser("eval", help="coverage and goal reaching; writes RUN_DIR/eval.json")
    ev.add_argument("run_dir")
    ev.add_argument("--skills", type=int, default=48, help="skills to roll out (default 48)")
    ev.add_argument(
        "--goals",
        type=int,
        default=50,
        help="goals for goal reaching (default 50); a QRL run: episodes per task",
    )
    ev.add_argument(
        "--goal-range", type=float, help="goals within +-R of the start (default: the env's)"
    )

    cp = sub.add_parser(
        "compare",
        help="train several algorithms x seeds on a preset; plot coverage against env steps",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_preset_table(),
    )
    cp.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), metavar="NAME")
    cp.add_argument(
        "--algos",
        default=",".join(SKILL_AGENTS),
        help=f"comma-separated (default {','.join(SKILL_AGENTS)})",
    )
    cp.add_argument("--steps", type=int, help="env steps per run (default: the preset's)")
    cp.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per algorithm (3)")
    cp.add_argument("--workers", type=int, help="runs at once (default: one per CPU core)")
    cp.add_argument("--out", help="folder of the runs and plots (default runs/compare-PRESET)")
    cp.add_argument("overrides", nargs="*", metavar="key=value")

    sw = sub.add_parser(
        "sweep",
        help='presets x algorithms x seeds x override grids on Ray Tune (pip install "metra[ray]")',
        epilog=_preset_table()
        + "\n\nexample: metra sweep --presets point --algos metra,lsd --seeds 2 "
        "--grid agent.lr=1e-4,3e-4 --out runs/sweep-lr\n"
        "a rerun of the same command skips finished trials and resumes the others",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sw.add_argument("--presets", default=DEFAULT_PRESET, help="comma-separated preset names")
    sw.add_argument("--algos", default="metra", help="comma-separated (default metra)")
    sw.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per trial (3)")
    sw.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="an override's values, one trial each (repeatable; ';' splits values that hold "
        "commas: agent.hidden=64,64;256,256)",
    )
    sw.add_argument("--steps", type=int, help="env steps per trial (default: the preset's)")
    sw.add_argument("--out", help="folder of the trials and plots (default runs/sweep)")
    sw.add_argument("--address", help="a running Ray cluster (ray.init address, e.g. auto)")
    sw.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    sw.add_argument("--cpus-per-trial", type=float, default=1.0, help="(default 1)")
    sw.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every trial")

    ds = sub.add_parser(
        "downstream",
        help="hierarchical SAC over a run's frozen skills on a task, against flat SAC",
    )
    ds.add_argument("run_dir", help="a skill run (its env must match the task's)")
    ds.add_argument(
        "--task",
        required=True,
        help="ant_multi_goals (ant skills), half_cheetah_goal or half_cheetah_hurdle "
        "(half_cheetah skills)",
    )
    ds.add_argument("--steps", type=int, help="low-level env steps per agent (400000)")
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--out", help="output folder (default RUN_DIR/downstream/TASK)")
    ds.add_argument("--no-flat", action="store_true", help="skip the flat SAC baseline")
    ds.add_argument("--skill-steps", type=int, default=25, help="K, low-level steps per skill (25)")

    da = sub.add_parser(
        "data",
        help="generate an offline goal-reaching dataset (OGBench's navigate protocol)",
    )
    da.add_argument("env", help="pointmaze-medium or pointmaze-large")
    da.add_argument("--episodes", type=int, default=1000, help="episodes (1000, as OGBench)")
    da.add_argument("--episode-len", type=int, default=1000, help="steps per episode (1000)")
    da.add_argument("--noise", type=float, default=0.5, help="action noise std (0.5)")
    da.add_argument("--seed", type=int, default=0)
    da.add_argument(
        "--goals",
        default="ogbench",
        choices=("ogbench", "cells"),
        help="ogbench: vertex cells with +-1 noise (default); cells: any free cell's center",
    )
    da.add_argument("--out", help="npz file (default data/ENV-navigate-Nep.npz)")

    qr = sub.add_parser(
        "qrl",
        help="Quasimetric RL: offline from a `metra data` file, or online without one",
        epilog="envs: pointmaze-medium, pointmaze-large (offline), fetch_reach, fetch_push "
        "(online)\n\noverrides: key=value on the train or agent config, e.g. batch_size=256 "
        "agent.hidden=256,256,256 quasimetric=mrn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    qr.add_argument("--env", required=True)
    qr.add_argument("--data", help="offline dataset (npz); without it QRL trains online")
    qr.add_argument("--steps", type=int, help="gradient steps offline, env steps online")
    qr.add_argument("--seed", type=int, default=0)
    qr.add_argument("--out", help="run folder (default runs/qrl-ENV-MODE-seedS); rerun resumes")
    qr.add_argument(
        "--eval-episodes",
        type=int,
        help="evaluation episodes per task (default 50, as OGBench; fewer for quick runs)",
    )
    qr.add_argument("overrides", nargs="*", metavar="key=value")

    sa = sub.add_parser(
        "sac",
        help="plain SAC on a Gymnasium MuJoCo task reward (the backbone against SB3 and SBX)",
        epilog=f"envs: {', '.join(f'{k} ({v})' for k, v in SAC_ENVS.items())}\n\noverrides: "
        "key=value on the train or agent config, e.g. batch_size=256 agent.hidden=256,256",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sa.add_argument("--env", default="half_cheetah", choices=list(SAC_ENVS), metavar="NAME")
    sa.add_argument("--steps", type=int, help="env steps (default 1M)")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--out", help="run folder (default runs/sac-ENV-seedS); rerun resumes")
    sa.add_argument("overrides", nargs="*", metavar="key=value")

    mt = sub.add_parser(
        "meta-train",
        help="context-based meta-RL (PEARL, CoCOA) on a task family; meta-test curves",
        epilog=f"tasks: {', '.join(META_TASK_NAMES)}\n\noverrides: key=value on the train or "
        "agent config, e.g. grad_steps=200 meta_batch=8 agent.hidden=256,256 window=16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mt.add_argument("--task", required=True, choices=META_TASK_NAMES, metavar="NAME")
    mt.add_argument("--algo", default="pearl", choices=list(META_AGENTS))
    mt.add_argument("--steps", type=int, help="training env steps (default 1M)")
    mt.add_argument("--seed", type=int, default=0)
    mt.add_argument("--out", help="run folder (default runs/meta-TASK-ALGO-seedS); rerun resumes")
    mt.add_argument("overrides", nargs="*", metavar="key=value")

    me = sub.add_parser("meta-test", help="meta-test a meta-train run; writes meta_test.json")
    me.add_argument("run_dir")
    me.add_argument("--rollouts", type=int, help="test-task rollouts (default: the run's)")

    mc = sub.add_parser(
        "meta-compare", help="meta-test curves of runs (seeds averaged per algorithm)"
    )
    mc.add_argument("run_dirs", nargs="+")
    mc.add_argument("--out", required=True, help="folder for compare.csv and compare.png")
    mc.add_argument("--metric", default="test_return", help="test_return or test_success")

    ex = sub.add_parser(
        "export", help="copy a run's weights (no optimizer state or replay) to ship it"
    )
    ex.add_argument("run_dir")
    ex.add_argument("--out", required=True, help="a new folder, e.g. pretrained/ant-metra")

    cu = sub.add_parser(
        "curves", help="diagnostics of skill runs side by side: OUT.csv and OUT.png"
    )
    cu.add_argument("run_dirs", nargs="+")
    cu.add_argument("--out", required=True, help="path without suffix, e.g. docs/img/hc")

    pl = sub.add_parser("plot", help="skill trajectories, phi space, coverage curve")
    pl.add_argument("run_dir")
    pl.add_argument("--skills", type=int, default=48)
    pl.add_argument("--video", action="store_true", help="also write plots/skills.mp4")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            from metra.api import train
            from metra.eval.run import evaluate

            if args.resume and (args.seed is not None or args.out or args.algo or args.preset):
                raise ValueError("--resume takes the seed, folder, algo and preset from the run")
            run_dir = train(
                args.preset or DEFAULT_PRESET,
                args.steps,
                args.seed,
                args.out,
                [*args.overrides, *(["logger=wandb"] if args.wandb else [])],
                args.resume,
                algo=args.algo,
            )
            if not args.no_eval:
                print(dumps(evaluate(run_dir)))
        elif args.command == "compare":
            from metra.compare import compare, final_table

            algos = [a.strip() for a in args.algos.split(",") if a.strip()]
            paths = compare(
                args.preset,
                algos,
                args.steps,
                args.seeds,
                args.out,
                args.workers,
                args.overrides,
            )
            print(final_table(paths[0]))
            print("\n".join(str(p) for p in paths))
        elif args.command == "sweep":
            from metra.compare import final_table
            from metra.sweep import parse_grid, sweep

            summaries = sweep(
                [p.strip() for p in args.presets.split(",") if p.strip()],
                [a.strip() for a in args.algos.split(",") if a.strip()],
                args.seeds,
                parse_grid(args.grid),
                args.steps,
                args.out,
                args.overrides,
                args.address,
                args.num_cpus,
                args.cpus_per_trial,
            )
            for csv_path, png in summaries:
                print(f"{final_table(csv_path)}\n{csv_path}\n{png}")
        elif args.command == "downstream":
            from metra.train.downstream import run_downstream

            paths = run_downstream(
                args.run_dir,
                args.task,
                args.steps,
                args.seed,
                args.out,
                flat=not args.no_flat,
                skill_steps=args.skill_steps,
            )
            print("\n".join(str(p) for p in paths))
        elif args.command == "data":
            from pathlib import Path

            from metra.data import generate_pointmaze, save_dataset

            name = f"{args.env}-navigate-{args.episodes}ep.npz"
            out = Path(args.out or f"data/{name}")
            if out.is_dir():  # a folder: the default file name inside it
                out = out / name
            data = generate_pointmaze(
                args.env, args.episodes, args.episode_len, args.noise, args.seed, goals=args.goals
            )
            save_dataset(out, data)
            print(out)
        elif args.command == "qrl":
            from metra.train.goals import train_qrl

            overrides = list(args.overrides)
            if args.eval_episodes is not None:
                overrides.append(f"eval_episodes={args.eval_episodes}")
            print(train_qrl(args.env, args.data, args.steps, args.seed, args.out, overrides))
        elif args.command == "sac":
            from metra.train.sac import train_sac

            print(train_sac(args.env, args.steps, args.seed, args.out, args.overrides))
        elif args.command == "meta-train":
            from metra.train.meta import train_meta

            print(train_meta(args.task, args.algo, args.steps, args.seed, args.out, args.overrides))
        elif args.command == "meta-test":
            from metra.train.meta import evaluate_run

            print(dumps(evaluate_run(args.run_dir, args.rollouts)))
        elif args.command == "meta-compare":
            from metra.train.meta import compare_runs

            for path in compare_runs(args.run_dirs, args.out, args.metric):
                print(path)
        elif args.command == "curves":
            from pathlib import Path

            from metra.eval.plots import write_diagnostics

            for path in write_diagnostics([Path(p) for p in args.run_dirs], Path(args.out)):
                print(path)
        elif args.command == "export":
            from metra.eval.run import export

            print(export(args.run_dir, args.out))
        elif args.command == "eval":
            from metra.eval.run import evaluate

            result = evaluate(args.run_dir, args.skills, args.goals, args.goal_range)
            print(dumps(result))
        else:
            from metra.eval.run import plot

            for path in plot(args.run_dir, args.skills, args.video):
                print(path)
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
