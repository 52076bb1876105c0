"""Where one skill epoch's time goes, printed as JSON: the serial baseline of the throughput
work (issue 14).

    python bench/epoch_profile.py                 # ant at widths 256 and 1024 (~3 minutes)
    python bench/epoch_profile.py --widths 256 --epochs 3

One epoch of the `ant` preset: 8 envs x 200 steps under the skill policy (one batched policy
call per step), the replay insert, 50 gradient steps in one jitted call, and a log row. Each
part is timed on its own after a warm-up epoch (compiles excluded): the env alone under
uniform random actions, the same rollout under the policy (its excess is the policy calls),
the insert, the replay sampling of 50 x 256 transitions, the update block and the logger's row;
then whole epochs, serial and overlapped (collect=overlapped), beside the two limits.
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
import numpy as np

from metra.api import resolve_config
from metra.rollout import agent_policy, random_policy, rollout
from metra.train.online import SkillTrainer, store


def seconds(fn: Any, repeats: int) -> float:
    """Mean seconds of `fn()` over `repeats` calls, after one untimed call."""
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn())
    return (time.perf_counter() - start) / repeats


def trainer_for(width: int, collect: str, folder: Path) -> SkillTrainer:
    overrides = [f"hidden={width},{width}", "normalizer_episodes=16", "min_replay=1600"]
    config = resolve_config("ant", overrides=[*overrides, f"collect={collect}"])
    return SkillTrainer(config, folder / f"w{width}-{collect}", resume=False, progress=False)


def overlapped_epoch_s(width: int, epochs: int, folder: Path) -> float:
    """Seconds per epoch with the collector thread (collect=overlapped)."""
    trainer = trainer_for(width, "overlapped", folder)
    trainer.train_epoch()
    epoch = seconds(trainer.train_epoch, epochs)
    trainer.logger.close()
    return epoch


def profile(width: int, epochs: int, folder: Path) -> dict[str, float]:
    trainer = trainer_for(width, "serial", folder)
    config = trainer.config
    trainer.train_epoch()  # fills the replay past min_replay and compiles the update
    cfg, env, n = config.train, trainer.env, config.train.num_envs
    latents = np.asarray(trainer.agent.sample_latents(jax.random.PRNGKey(0), n))
    key = jax.random.PRNGKey(1)
    uniform = seconds(lambda: rollout(env, random_policy(env.spec.act_dim, 0, latents), 0), epochs)
    policy = agent_policy(trainer.agent, latents, deterministic=False, key=key)
    with_policy = seconds(lambda: rollout(env, policy, 0), epochs)
    trajectories = rollout(env, policy, 0)
    insert = seconds(lambda: store(trainer.replay, trajectories, cfg.bootstrap_time_limit), epochs)
    rng = np.random.default_rng(0)
    sample = seconds(lambda: trainer.replay.sample(rng, cfg.grad_steps, cfg.batch_size), epochs)
    batches = trainer.replay.sample(rng, cfg.grad_steps, cfg.batch_size)
    update = seconds(lambda: trainer.agent.update(batches)[1], epochs)
    row = {"reward": 1.0, "coverage": 3.0, "phi_objective": 0.5}
    log = seconds(lambda: trainer.logger.log(trainer.counters.env_steps, row), epochs)
    epoch = seconds(trainer.train_epoch, epochs)
    trainer.logger.close()
    overlapped = overlapped_epoch_s(width, epochs, folder)
    parts = {
        "env_s": uniform,
        "policy_calls_s": with_policy - uniform,
        "replay_insert_s": insert,
        "replay_sampling_s": sample,
        "updates_s": update,
        "logging_s": log,
    }
    steps = n * env.spec.episode_len
    return {
        "width": width,
        **{k: round(v, 4) for k, v in parts.items()},
        "sum_of_parts_s": round(sum(parts.values()), 4),
        "epoch_s": round(epoch, 4),
        "env_steps_per_epoch": steps,
        "end_to_end_env_steps_per_s": round(steps / epoch, 1),
        "overlapped_epoch_s": round(overlapped, 4),
        "overlapped_env_steps_per_s": round(steps / overlapped, 1),
        "env_only_env_steps_per_s": round(steps / with_policy, 1),
        "update_only_env_steps_per_s": round(steps / update, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="256,1024")
    parser.add_argument("--epochs", type=int, default=5, help="timed repeats of each part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = [profile(int(w), args.epochs, Path(folder)) for w in args.widths.split(",")]
    device = jax.devices()[0]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
                "jax": jax.__version__,
                "profiles": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
