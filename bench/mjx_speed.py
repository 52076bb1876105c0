"""Env steps/s of the MJX backend (`backend=mjx`), printed as JSON, beside the MuJoCo backend
measured in the same run.

    python bench/mjx_speed.py                          # ant, N = 8, 256, 2048 envs (a GPU's)
    python bench/mjx_speed.py --sizes 8,256 --width 256   # what a CPU finishes in minutes

For each N: the preset of --env (ant, or half_cheetah) on MJX with N envs and the official
ratio of gradient steps to env steps (50 per 8 x 200, so N x 200 / 32 per epoch);
`env_steps_per_s` times the epoch's rollout under the skill policy and its replay insert alone
(one jitted call with the updates left out), `end_to_end_steps_per_s` whole epochs
(`train_epoch`, updates included), each after one untimed call that compiles. The reference
is the MuJoCo backend's whole epoch at the official 8 envs and the same width.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import jax

from metra.api import resolve_config, skill_trainer

EPISODE = 200
ENV_STEPS_PER_GRAD_STEP = 32  # official: 50 gradient steps per 8 x 200 env steps


def seconds(fn: Any) -> float:
    """Seconds of one `fn()` after one untimed (compiling) call."""
    jax.block_until_ready(fn())
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def trainer(env: str, backend: str, n: int, width: int, folder: Path) -> Any:
    per_epoch = n * EPISODE
    overrides = [
        f"backend={backend}",
        f"num_envs={n}",
        f"grad_steps={max(1, per_epoch // ENV_STEPS_PER_GRAD_STEP)}",
        f"hidden={width},{width}",
        f"min_replay={per_epoch}",
        f"replay_size={max(1_000_000, per_epoch)}",
        "normalizer_episodes=16",
    ]
    config = resolve_config(env, overrides=overrides)
    return skill_trainer(config, folder / f"{backend}-{n}", resume=False, progress=False)


def rollout_only(t: Any) -> Any:
    """One epoch's rollout and insert without updates (the env-only limit, policy included)."""
    replay = t.replay
    key = jax.random.PRNGKey(t.counters.epoch)
    args = (t.agent, replay.data, replay.ptr, replay.size, key)
    _, data, coords, _ = t._epoch(*args, uniform=False, update=False)
    replay.data = data  # the call donated the rows it was given
    return coords


def measure(env: str, backend: str, n: int, width: int, folder: Path) -> dict[str, float]:
    t = trainer(env, backend, n, width, folder)
    row = {"end_to_end_steps_per_s": n * EPISODE / seconds(t.train_epoch)}
    if backend == "mjx":
        row["env_steps_per_s"] = n * EPISODE / seconds(lambda: rollout_only(t))
    t.logger.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="ant", choices=("ant", "half_cheetah"))
    parser.add_argument("--sizes", default="8,256,2048", help="numbers of envs, comma-separated")
    parser.add_argument("--width", type=int, default=1024, help="hidden width (official: 1024)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0]}",
            "env": args.env,
            "width": args.width,
            "mujoco_8_envs": measure(args.env, "mujoco", 8, args.width, folder),
            "mjx": {n: measure(args.env, "mjx", n, args.width, folder) for n in sizes},
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
