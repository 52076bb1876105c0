"""SAC steps/s on HalfCheetah-v5: `metra sac` against SBX and Stable-Baselines3, interleaved.

Every library runs the same settings: width 256 (two hidden layers), batch 256, one gradient
step per env step, Adam 3e-4, learned temperature, a 1M replay, on one CPU core with one
thread. Each measurement is its own process: it fills the replay with `--warmup` random
steps, runs one learning episode (compilation included) and then times `--steps` more;
rounds alternate the libraries so that a change in the machine's load hits all of them.

    python bench/sac_speed.py --other-python /path/to/venv/bin/python --rounds 2

`--other-python` is an interpreter with `sbx-rl` and `stable-baselines3` installed (they
are never metra's dependencies). `--returns` instead trains each library for `--steps` env
steps per seed and reports the deterministic return (SBX reached ~6100 at 100k steps on one
seed). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LIBS = ("metra", "sbx", "sb3")
ENV = "HalfCheetah-v5"
ONE_THREAD = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
}


def worker_metra(warmup: int, steps: int, seed: int, returns: bool) -> dict[str, float]:
    import tempfile

    from metra.train.sac import SACRunConfig, SACTrainConfig, SACTrainer

    total = steps if returns else 10**9
    train = SACTrainConfig(env="half_cheetah", seed=seed, total_steps=total, learning_starts=warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SACTrainer(SACRunConfig(train), Path(tmp) / "run", resume=False)
        try:
            if returns:
                while trainer.counters.env_steps < steps:
                    trainer.train_epoch()
                return {"return": trainer.evaluate()["eval_return"]}
            while trainer.counters.env_steps < warmup + 1000:  # fill, then compile and learn
                trainer.train_epoch()
            start, t0 = trainer.counters.env_steps, time.perf_counter()
            while trainer.counters.env_steps < start + steps:
                trainer.train_epoch()
            elapsed = time.perf_counter() - t0
            return {"steps_per_s": (trainer.counters.env_steps - start) / elapsed}
        finally:
            trainer.logger.close()


def worker_baselines(lib: str, warmup: int, steps: int, seed: int, returns: bool) -> dict:
    import gymnasium as gym

    if lib == "sbx":
        from sbx import SAC
    else:
        import torch
        from stable_baselines3 import SAC

        torch.set_num_threads(1)
    env = gym.make(ENV)
    model = SAC(
        "MlpPolicy",
        env,
        learning_rate=3e-4,
        buffer_size=1_000_000,
        learning_starts=warmup,
        batch_size=256,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    if returns:
        model.learn(total_timesteps=steps)
        from metra.envs.gym_tasks import episode_return

        act = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
        return {"return": episode_return(gym.make(ENV), act, 10)}
    model.learn(total_timesteps=warmup + 1000)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    return {"steps_per_s": steps / (time.perf_counter() - t0)}


def measure(python: str, lib: str, args: argparse.Namespace, seed: int) -> dict:
    cmd = [python, __file__, "--worker", lib, "--warmup", str(args.warmup)]
    cmd += ["--steps", str(args.steps), "--seed", str(seed)]
    cmd += ["--returns"] if args.returns else []
    if args.core is not None:
        cmd = ["taskset", "-c", str(args.core), *cmd]
    # every worker imports metra from this checkout (the others for its evaluation episodes)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": src}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other-python", required=False, help="python with sbx-rl and SB3")
    parser.add_argument("--steps", type=int, default=3000, help="timed env steps (or --returns)")
    parser.add_argument(
        "--warmup", type=int, default=1000, help="random steps first (10k for --returns)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3, help="--returns: seeds per library")
    parser.add_argument("--first-seed", type=int, default=0, help="--returns: seeds from here on")
    parser.add_argument("--libs", default=",".join(LIBS), help="comma-separated subset of LIBS")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (taskset)")
    parser.add_argument("--returns", action="store_true")
    parser.add_argument("--worker", choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker == "metra":
            result = worker_metra(args.warmup, args.steps, args.seed, args.returns)
        else:
            result = worker_baselines(args.worker, args.warmup, args.steps, args.seed, args.returns)
        print(json.dumps(result))
        return
    if not args.other_python:
        parser.error("--other-python is required: an interpreter with sbx-rl and stable-baselines3")
    pythons = {"metra": sys.executable, "sbx": args.other_python, "sb3": args.other_python}
    libs = [lib for lib in LIBS if lib in args.libs.split(",")]
    runs: dict[str, list[float]] = {lib: [] for lib in libs}
    key = "return" if args.returns else "steps_per_s"
    first = args.first_seed if args.returns else 0
    repeats = range(first, first + args.seeds) if args.returns else range(args.rounds)
    for r in repeats:
        for lib in libs:
            runs[lib].append(measure(pythons[lib], lib, args, seed=r)[key])
            print(
                f"{lib} {'seed' if args.returns else 'round'} {r}: {runs[lib][-1]:.1f}",
                file=sys.stderr,
            )
    summary = {lib: sum(v) / len(v) for lib, v in runs.items()}
    result = {
        "env": ENV,
        "settings": "width 256x2, batch 256, 1 update/env step, one core, one thread",
        "measure": key,
        "steps": args.steps,
        "runs": runs,
        "mean": summary,
    }
    if not args.returns and {"metra", "sbx", "sb3"} <= set(libs):
        result["metra_over_sbx"] = summary["metra"] / summary["sbx"]
        result["metra_over_sb3"] = summary["metra"] / summary["sb3"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
