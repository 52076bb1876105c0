"""The shipped agents in pretrained/: they load as run folders, act, and their skills move."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

import metra
from metra.envs import make_env
from metra.rollout import agent_policy, mean_displacement, rollout
from metra.train.online import read_config

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
SHIPPED = sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir() and "qrl-" not in p.name)
GOAL_REACHERS = sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir() and "qrl-" in p.name)


def test_every_promised_agent_is_shipped() -> None:
    assert {"ant-metra", "half_cheetah-metra"} <= set(SHIPPED)
    assert "qrl-pointmaze-medium" in GOAL_REACHERS


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
        traj = rollout(env, agent_policy(agent, latents, deterministic=True), seed=0)
    # Uniformly random actions travel ~1.5 in 200 steps in either env.
    assert mean_displacement(traj.coords[..., : len(env.spec.coord_names)]) > 8.0


@pytest.mark.parametrize("name", GOAL_REACHERS)
@pytest.mark.slow
def test_shipped_goal_reacher_beats_a_random_policy(name: str) -> None:
    """Two deterministic episodes per OGBench task (10 in all) against uniform random actions
    from the same starts; its 5 x 50 figure is in RUN/eval.json."""
    from metra.agents.qrl import QRLAgent
    from metra.train.goals import GoalRunConfig, success_rate

    run = PRETRAINED / name
    agent = metra.load(run)
    assert isinstance(agent, QRLAgent)
    config = GoalRunConfig.from_dict(json.loads((run / "config.json").read_text()))
    ckpt = run / "checkpoints"
    assert json.loads((ckpt / "state.json").read_text())["weights_only"]
    assert sum(f.stat().st_size for f in ckpt.iterdir()) < 8e6  # parameters only, a few MB
    env = config.train.env
    trained = success_rate(agent, env, episodes=2)["success"]
    random = success_rate(None, env, episodes=2)["success"]
    assert trained >= 0.5 and trained > random + 0.3, (trained, random)
