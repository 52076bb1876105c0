"""Speed figures of the state-based skill-discovery stack, printed as JSON.

    python bench/bench.py            # all figures (about 8 minutes on a 2-core CPU)
    python bench/bench.py --quick    # fewer repetitions, width 256 only

Figures: raw Ant-v5 env steps/s (one env, random actions); updates/s (representation + SAC)
of every skill algorithm at batch 256 for MLP widths 256 and 1024 (50 steps per jitted call,
compile excluded); end-to-end env steps/s of the `ant` preset at steady state (rollouts +
updates, warm-up and compile excluded); offline QRL updates/s (OGBench's: one critic,
dynamics, actor; `QRLConfig.offline()`) on
pointmaze-sized inputs at OGBench's size (3x512, latent 512, batch 1024) and at the size this
project's CPU runs use (3x256, latent 128, batch 256).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from typing import Any

import jax
import numpy as np

from metra.agents import SKILL_AGENTS
from metra.agents.qrl import QRLAgent, QRLConfig
from metra.api import resolve_config
from metra.envs import make_env
from metra.train.online import SkillTrainer


def env_steps_per_s(name: str, steps: int) -> float:
    env = make_env(name)
    env.reset(0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 1, env.spec.act_dim))
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return steps / (time.perf_counter() - start)


def timed(fn: Any, calls: int) -> float:
    """Seconds per call of `fn()` (which returns something to block on), the compiling first
    call excluded."""
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(calls):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def timed_updates(agent: Any, batches: dict[str, np.ndarray], calls: int) -> float:
    """Gradient steps per second of `agent.update` on the stacked `batches`."""
    steps = len(next(iter(batches.values())))
    return steps / timed(lambda: agent.update(batches)[1], calls)


def updates_per_s(algo: str, width: int, calls: int, obs_dim: int = 29, act_dim: int = 8) -> float:
    config_cls, agent_cls = SKILL_AGENTS[algo]
    agent = agent_cls.create(config_cls(hidden=(width, width)), obs_dim, act_dim, seed=0)
    rng = np.random.default_rng(0)
    k, b = 50, 256
    batch = {
        "obs": rng.normal(size=(k, b, obs_dim)).astype(np.float32),
        "next_obs": rng.normal(size=(k, b, obs_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, (k, b, act_dim)).astype(np.float32),
        "latent": np.asarray(agent.sample_latents(jax.random.PRNGKey(0), k * b)).reshape(k, b, -1),
        "mask": np.ones((k, b), np.float32),
    }
    return timed_updates(agent, batch, calls)


def qrl_updates_per_s(width: int, latent: int, batch: int, calls: int) -> float:
    config = QRLConfig.offline(hidden=(width,) * 3, latent_dim=latent, components=latent // 8)
    agent = QRLAgent.create(config, obs_dim=2, act_dim=2, seed=0)
    rng = np.random.default_rng(0)
    k = 10
    batches = {
        key: rng.normal(size=(k, batch, 2)).astype(np.float32)
        for key in ("obs", "next_obs", "value_goal", "actor_goal")
    }
    batches["action"] = rng.uniform(-1, 1, (k, batch, 2)).astype(np.float32)
    return timed_updates(agent, batches, calls)


def end_to_end(preset: str, epochs: int) -> dict[str, float]:
    """Env steps/s of the full loop once the replay is warm (updates every epoch)."""
    config = resolve_config(preset, overrides=["min_replay=1600", "replay_size=100000"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SkillTrainer(config, tmp, resume=False, progress=False)
        for _ in range(2):  # warm-up epoch, then the epoch that compiles the update
            trainer.train_epoch()
        steps0, updates0 = trainer.counters.env_steps, trainer.counters.updates
        start = time.perf_counter()
        for _ in range(epochs):
            trainer.train_epoch()
        elapsed = time.perf_counter() - start
        trainer.logger.close()
    steps = trainer.counters.env_steps - steps0
    return {
        "env_steps_per_s": steps / elapsed,
        "updates_per_s": (trainer.counters.updates - updates0) / elapsed,
        "s_per_1m_env_steps": elapsed / steps * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 1 if args.quick else 3
    figures = {
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{jax.devices()[0].platform} x{jax.device_count()}",
        "jax": jax.__version__,
        "ant_env_steps_per_s": env_steps_per_s("ant", 2000 * reps),
        "updates_per_s_width256": {a: updates_per_s(a, 256, 4 * reps) for a in SKILL_AGENTS},
        "ant_preset_end_to_end": end_to_end("ant", 2 * reps),
        "qrl_updates_per_s_cpu_runs": qrl_updates_per_s(256, 128, 256, 2 * reps),
    }
    if not args.quick:
        figures["updates_per_s_width1024"] = {a: updates_per_s(a, 1024, 1) for a in SKILL_AGENTS}
        figures["qrl_updates_per_s_ogbench_size"] = qrl_updates_per_s(512, 512, 1024, 1)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
