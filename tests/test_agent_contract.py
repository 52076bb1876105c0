"""The agent contract, checked on every registered agent: creation follows the seed, an update
is a pure function of the agent and its batches, and a checkpoint restores everything an
update reads (parameters, optimizer moments, target critics, RNG), so training continues bit
for bit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest

from metra.agents import META_AGENTS, SKILL_AGENTS
from metra.agents.qrl import QRLAgent, QRLConfig
from metra.agents.sac import SACAgent, SACConfig
from metra.envs.meta import make_meta_tasks
from metra.replay import TaskReplay, episode_buffer, sample_goal_batch
from metra.rollout import random_policy, rollout
from metra.run.checkpoint import Counters, load_checkpoint, save_checkpoint
from metra.train.meta import MetaTrainConfig, meta_batches

OBS, ACT, STEPS, BATCH = 4, 2, 2, 16  # state size, action size, K gradient steps, batch


def _transitions(rng: np.random.Generator, extra: dict[str, np.ndarray]) -> dict[str, Any]:
    """K random batches of transitions with the fields every SAC-based update reads."""
    shape = (STEPS, BATCH)
    return {
        "obs": rng.normal(size=(*shape, OBS)).astype(np.float32),
        "next_obs": rng.normal(size=(*shape, OBS)).astype(np.float32),
        "action": rng.uniform(-1, 1, (*shape, ACT)).astype(np.float32),
        "reward": rng.normal(size=shape).astype(np.float32),
        "mask": np.ones(shape, np.float32),
        **extra,
    }


def _skill(algo: str) -> tuple[Callable[[int], Any], Callable[[Any], Any]]:
    config_cls, agent_cls = SKILL_AGENTS[algo]
    config = config_cls(hidden=(16, 16))

    def batches(agent: Any) -> dict[str, Any]:
        latents = agent.sample_latents(jax.random.PRNGKey(3), STEPS * BATCH)
        latent = np.asarray(latents).reshape(STEPS, BATCH, -1)
        return _transitions(np.random.default_rng(0), {"latent": latent})

    return lambda seed: agent_cls.create(config, OBS, ACT, seed), batches


def _meta(algo: str) -> tuple[Callable[[int], Any], Callable[[Any], Any]]:
    config_cls, agent_cls = META_AGENTS[algo]
    config = config_cls(hidden=(16,), encoder_hidden=(16,))
    family = make_meta_tasks("point_goal", seed=0)
    train = MetaTrainConfig(
        task="point_goal", algo=algo, meta_batch=2, batch_size=8, context_size=8
    )

    def batches(agent: Any) -> dict[str, Any]:
        replay = TaskReplay(3, 4, family.episode_len, family.obs_dim, family.act_dim)
        envs = family.make_envs(family.train_tasks[:3])
        for j in range(2):
            rows = rollout(envs, random_policy(2, j), j, 20).env_major()
            for i in range(3):
                replay.add(i, {k: v[i : i + 1] for k, v in rows.items()}, for_context=True)
        envs.close()
        return meta_batches(replay, np.random.default_rng(0), STEPS, train, agent.crop_window)

    return lambda seed: agent_cls.create(config, family.obs_dim, family.act_dim, seed), batches


def _qrl() -> tuple[Callable[[int], Any], Callable[[Any], Any]]:
    config = QRLConfig(hidden=(16, 16), latent_dim=8, components=4)

    def batches(agent: Any) -> dict[str, Any]:
        rng = np.random.default_rng(0)
        buffer = episode_buffer(4, 10, OBS, ACT)
        obs = rng.normal(size=(4, 11, OBS)).astype(np.float32)
        buffer.add(
            {
                "obs": obs[:, :-1],
                "next_obs": obs[:, 1:],
                "action": rng.uniform(-1, 1, (4, 10, ACT)).astype(np.float32),
            }
        )
        rows = [sample_goal_batch(buffer, rng, BATCH) for _ in range(STEPS)]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    return lambda seed: QRLAgent.create(config, OBS, ACT, seed), batches


def _sac() -> tuple[Callable[[int], Any], Callable[[Any], Any]]:
    config = SACConfig(hidden=(16, 16))
    return (
        lambda seed: SACAgent.create(config, OBS, ACT, seed),
        lambda agent: _transitions(np.random.default_rng(0), {}),
    )


AGENTS = {
    **{algo: (lambda algo=algo: _skill(algo)) for algo in SKILL_AGENTS},
    **{algo: (lambda algo=algo: _meta(algo)) for algo in META_AGENTS},
    "qrl": _qrl,
    "sac": _sac,
}


def _same(a: Any, b: Any) -> bool:
    """Every array of two agents (parameters, optimizer states, RNG keys) equal."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(x, y) for x, y in pairs)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_seeded_pure_update_and_a_checkpoint_that_continues_exactly(name: str, tmp_path) -> None:
    create, batches = AGENTS[name]()
    agent = create(0)
    assert _same(agent, create(0)) and not _same(agent, create(1))  # creation follows the seed
    # Agents of one config share their static fields (networks, optimizers), so a fresh agent
    # reuses the compiled update of an earlier one instead of compiling it again.
    assert jax.tree.structure(agent) == jax.tree.structure(create(1))
    data = batches(agent)
    trained, metrics = agent.update(data)
    again, metrics_again = agent.update(data)
    assert _same(trained, again) and not _same(trained, agent)
    assert metrics.keys() == metrics_again.keys()
    for key in metrics:
        np.testing.assert_array_equal(metrics[key], metrics_again[key], err_msg=key)
    save_checkpoint(tmp_path, trained, Counters(env_steps=1), None)
    restored, counters = load_checkpoint(tmp_path, agent)  # into the untrained agent
    assert counters.env_steps == 1 and _same(restored, trained)
    assert _same(restored.update(data)[0], trained.update(data)[0])
