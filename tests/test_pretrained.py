"""The shipped agents in pretrained/: they load as run folders, act, and their skills move."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

import metra
from metra.envs import make_env
from metra.eval.skills import skill_policy
from metra.rollout import mean_displacement, rollout
from metra.train.online import read_config

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
SHIPPED = sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir())


def test_every_promised_agent_is_shipped() -> None:
    assert {"ant-metra", "half_cheetah-metra"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_agent_loads_acts_and_moves(name: str) -> None:
    run = PRETRAINED / name
    agent = metra.load(run)
    env_name = read_config(run).train.env
    with closing(make_env(env_name, 0, 4)) as env:
        obs, _ = env.reset(0)
        latents = np.asarray(agent.sample_latents(agent.rng, 4))
        actions = np.asarray(agent.act(obs, latents, deterministic=True))
        assert actions.shape == (4, env.spec.act_dim) and np.abs(actions).max() <= 1.0
        assert agent.phi(obs).shape == (4, agent.config.latent_dim)
        traj = rollout(env, skill_policy(agent, latents, deterministic=True), seed=0)
    # Uniformly random actions travel ~1.5 in 200 steps in either env.
    assert mean_displacement(traj.coords[..., : len(env.spec.coord_names)]) > 8.0
