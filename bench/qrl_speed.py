"""Offline QRL updates/s by config: python bench/qrl_speed.py DATA.npz W:LATENT:BATCH:new|old ..."""

import sys
import time

import jax
import numpy as np

from metra.agents.qrl import QRLAgent, QRLConfig
from metra.data import load_dataset
from metra.replay import sample_goal_batch
from metra.train.goals import dataset_episodes

buf = dataset_episodes(load_dataset(sys.argv[1]))
rng = np.random.default_rng(0)


def bench(name, cfg, batch, K=20):
    agent = QRLAgent.create(cfg, 2, 2, 0)
    s = [sample_goal_batch(buf, rng, batch) for _ in range(K)]
    b = {k: np.stack([x[k] for x in s]) for k in s[0]}
    agent, _ = agent.update(b)
    jax.block_until_ready(agent.critic.params)
    t = time.time()
    n = 0
    while time.time() - t < 8:
        agent, _ = agent.update(b)
        jax.block_until_ready(agent.critic.params)
        n += K
    print(f"{name}: {n / (time.time() - t):.1f} updates/s", flush=True)


for spec in sys.argv[2:]:
    w, lat, batch, mode = spec.split(":")
    w, lat, batch = int(w), int(lat), int(batch)
    common = dict(hidden=(w,) * 3, latent_dim=lat, components=lat // 8)
    cfg = (
        QRLConfig.offline(**common)
        if mode == "new"
        else QRLConfig(**common, bc_weight=0.003, offline_actor="tanh")
    )
    bench(spec, cfg, batch)
