"""Speed figures of the meta-RL stack (PEARL, CoCOA), printed as each is measured.

    python bench/meta.py            # every figure (a few minutes on a 2-core CPU)
    python bench/meta.py --quick    # fewer repetitions

Figures: env steps/s of each MuJoCo task family through its batch (5 envs, random actions,
envs that terminated early are not counted); updates/s of PEARL and CoCOA at PEARL's
published size (meta-batch 16 x 256 transitions, 3x300 actor/critics, context 64) and at the
CPU-budget size of bench/meta_sweep.sh (meta-batch 8 x 128, 2x256); one meta-test on
cheetah_vel (30 test tasks, 3 trajectories each); and the wall-clock cost per 1M env steps of
PEARL's schedule (0.4 updates per env step) implied by the update rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

from bench import timed, timed_updates
from metra.agents import META_AGENTS
from metra.agents.pearl import context_dim
from metra.envs.meta import make_meta_tasks
from metra.train.meta import meta_test

FAMILIES = ("cheetah_vel", "ant_dir", "ant_goal", "humanoid_dir", "walker_rand_params")
SIZES = {
    "pearl_size": dict(meta_batch=16, batch=256, hidden=(300, 300, 300)),
    "budget_size": dict(meta_batch=8, batch=128, hidden=(256, 256)),
}


def family_steps_per_s(name: str, steps: int) -> float:
    family = make_meta_tasks(name)
    envs = family.make_envs(family.train_tasks[:5])
    rng = np.random.default_rng(0)
    envs.reset(0)
    counted, start = 0, time.perf_counter()
    for t in range(steps):
        if t % family.episode_len == 0:
            envs.reset(t)
        _, _, terminated, _ = envs.step(rng.uniform(-1, 1, (envs.num_envs, family.act_dim)))
        counted += int((~terminated).sum())
    envs.close()
    return counted / (time.perf_counter() - start)


def updates_per_s(algo: str, meta_batch: int, batch: int, hidden: tuple, calls: int) -> float:
    """Updates/s on cheetah_vel-sized inputs (obs 20, action 6), 10 updates per call."""
    config_cls, agent_cls = META_AGENTS[algo]
    config = config_cls(hidden=hidden)
    obs_dim, act_dim, k, n = 20, 6, 10, 64
    agent = agent_cls.create(config, obs_dim, act_dim, 0)
    c = context_dim(obs_dim, act_dim, False)
    rng = np.random.default_rng(0)

    def arr(*shape: int) -> np.ndarray:
        return rng.normal(size=(k, *shape)).astype(np.float32)

    batches = {
        "obs": arr(meta_batch, batch, obs_dim),
        "action": np.tanh(arr(meta_batch, batch, act_dim)),
        "reward": arr(meta_batch, batch),
        "next_obs": arr(meta_batch, batch, obs_dim),
        "mask": np.ones((k, meta_batch, batch), np.float32),
        "context": arr(meta_batch, n, c),
    }
    if agent.crop_window:
        w = agent.crop_window
        batches.update(query=arr(meta_batch, w, c), key=arr(meta_batch, w, c))
        batches.update(query_mask=np.ones((k, meta_batch, w), np.float32))
        batches.update(key_mask=np.ones((k, meta_batch, w), np.float32))
    return timed_updates(agent, batches, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls = 2 if args.quick else 5
    machine = platform.processor() or platform.machine()
    print(json.dumps({"machine": machine, "jax_backend": jax.default_backend()}))
    for name in FAMILIES:
        rate = family_steps_per_s(name, 400 if args.quick else 2000)
        print(json.dumps({f"{name}_env_steps_per_s": round(rate)}), flush=True)
    rates = {}
    for size, spec in SIZES.items():
        for algo in META_AGENTS:
            rate = updates_per_s(algo, spec["meta_batch"], spec["batch"], spec["hidden"], calls)
            rates[algo, size] = rate
            print(json.dumps({f"{algo}_{size}_updates_per_s": round(rate, 2)}), flush=True)
    family = make_meta_tasks("cheetah_vel")
    agent = META_AGENTS["pearl"][1].create(META_AGENTS["pearl"][0](), 20, 6, 0)
    seconds = timed(lambda: meta_test(agent, family, family.test_tasks, 2, 30)["test_return"], 1)
    print(json.dumps({"cheetah_vel_meta_test_s": round(seconds, 1)}), flush=True)
    # PEARL: 2000 updates per 5000 env steps (5 tasks x (400 prior + 600 posterior)).
    hours = 1e6 * 0.4 / rates["pearl", "pearl_size"] / 3600
    print(json.dumps({"pearl_hours_per_1M_env_steps_updates_only": round(hours, 1)}))


if __name__ == "__main__":
    main()
