"""Speed and memory figures of METRA from pixels, printed as JSON.

    python bench/pixels.py            # all figures (about 10 minutes on a 2-core CPU)
    python bench/pixels.py --quick    # fewer repetitions

Figures: env steps/s of each pixel env (physics with action repeat + one rendered 64x64 frame
per step), for one env and a batch of 8; updates/s of the pixel METRA update (phi with its
conv encoder, lambda, SAC on the encoder's features) at batch 256 with the official widths;
forward+backward/s of the conv encoder alone on the 512 frame stacks of one batch (obs and
next_obs), which prices the official one-encoder-per-network arrangement; replay sampling
time and memory per 100k transitions; and what one official epoch and 1M env steps cost.
JAX runs on whatever device it finds (a GPU with `pip install "jax[cuda13]"`).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from contextlib import closing
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench import timed, timed_updates  # bench/bench.py: this script's folder is on sys.path
from metra.agents.metra import MetraAgent
from metra.envs import env_spec, make_env
from metra.networks import PixelEncoder
from metra.presets import preset_config
from metra.replay import FrameReplay
from metra.train.online import skill_replay

BATCH = 256


def frames_per_s(name: str, num_envs: int, steps: int) -> float:
    """Env steps (= rendered frames) per second of a batch of `num_envs`."""
    with closing(make_env(name, 0, num_envs)) as env:
        env.reset(0)
        actions = np.random.default_rng(0).uniform(-1, 1, (steps, num_envs, env.spec.act_dim))
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        return steps * num_envs / (time.perf_counter() - start)


def pixel_batches(spec: Any, latent_dim: int, k: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (k, BATCH, *spec.obs_shape)
    return {
        "obs": rng.integers(0, 256, shape, dtype=np.uint8),
        "next_obs": rng.integers(0, 256, shape, dtype=np.uint8),
        "action": rng.uniform(-1, 1, (k, BATCH, spec.act_dim)).astype(np.float32),
        "latent": rng.normal(size=(k, BATCH, latent_dim)).astype(np.float32),
        "mask": np.ones((k, BATCH), np.float32),
    }


def metra_updates_per_s(preset: str, calls: int) -> float:
    """Gradient steps/s of the pixel METRA update with the preset's networks (one step per
    jitted call: on a CPU a step takes seconds, so the call overhead does not matter)."""
    config = preset_config(preset).agent
    spec = env_spec(preset)
    agent = MetraAgent.create(config, spec.obs_shape, spec.act_dim, seed=0)
    return timed_updates(agent, pixel_batches(spec, config.latent_dim, 1), calls)


def encoder_fwd_bwd_per_s(calls: int) -> float:
    """Forward+backward passes/s of the conv encoder over one batch's obs and next_obs."""
    encoder = PixelEncoder()
    frames = jnp.asarray(pixel_batches(env_spec("quadruped_pixel"), 1, 1)["obs"][0])
    frames = jnp.concatenate([frames, frames])
    params = encoder.init(jax.random.PRNGKey(0), frames[:1])
    grad = jax.jit(jax.grad(lambda p, x: encoder.apply(p, x).sum()))
    return 1.0 / timed(lambda: grad(params, frames), calls)


def replay_figures(preset: str) -> dict[str, float]:
    config = preset_config(preset)
    spec = env_spec(preset)
    per_100k = skill_replay(spec, 100_000, config.agent.latent_dim)
    assert isinstance(per_100k, FrameReplay)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, per_100k.data["frames"].shape[1:], dtype=np.uint8)
    for row in range(per_100k.capacity):  # touch every page, so sampling reads real memory
        per_100k.data["frames"][row] = frames
    per_100k.size = per_100k.capacity
    start = time.perf_counter()
    per_100k.sample(rng, 10, BATCH)
    sample_s = (time.perf_counter() - start) / 10
    full = skill_replay(spec, config.train.replay_size, config.agent.latent_dim)
    return {
        "gib_per_100k_transitions": per_100k.nbytes() / 2**30,
        f"gib_at_replay_size_{config.train.replay_size}": full.nbytes() / 2**30,
        "gib_if_stacks_were_stored_obs_and_next_obs": 2
        * spec.frame_stack
        * float(np.prod(spec.frame_shape))
        * config.train.replay_size
        / 2**30,
        "sample_batch_256_ms": 1000 * sample_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 1 if args.quick else 3
    envs = ("quadruped_pixel", "humanoid_pixel", "kitchen_pixel")
    figures: dict[str, Any] = {}

    def report(key: str, value: Any) -> Any:
        """Print each figure as soon as it is measured (the slow ones come last)."""
        figures[key] = value
        print(json.dumps({key: value}), flush=True)
        return value

    report("machine", f"{platform.machine()} {jax.devices()[0].platform} x{jax.device_count()}")
    report("jax", jax.__version__)
    report("frames_per_s_1_env", {e: frames_per_s(e, 1, 100 * reps) for e in envs})
    report("frames_per_s_8_envs", {e: frames_per_s(e, 8, 25 * reps) for e in envs})
    replay = report("replay_quadruped_pixel", replay_figures("quadruped_pixel"))
    report("encoder_fwd_bwd_per_s_512_frames", encoder_fwd_bwd_per_s(reps))
    updates = report("metra_updates_per_s_batch_256", metra_updates_per_s("quadruped_pixel", reps))
    # One official quadruped epoch: 8 trajectories of 200 steps, then 200 gradient steps.
    cfg = preset_config("quadruped_pixel").train
    epoch_s = (
        cfg.num_envs * 200 / figures["frames_per_s_8_envs"]["quadruped_pixel"]
        + cfg.grad_steps / updates
        + cfg.grad_steps * replay["sample_batch_256_ms"] / 1000
    )
    report("quadruped_pixel_epoch_s", epoch_s)
    report("quadruped_pixel_hours_per_1m_env_steps", epoch_s * 1e6 / 1600 / 3600)


if __name__ == "__main__":
    main()
