"""Meta-test of a context-based agent (PEARL, CoCOA) on a task family.

On every held-out task: `explore` trajectories with z drawn from the prior, the posterior
inferred from all their transitions, then one more trajectory with z drawn from it; its return
(and success, where the family has one) is the score. Actions are deterministic throughout, as
in PEARL's evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np

from metra.agents.pearl import PearlAgent, sample_gaussian
from metra.envs.base import EVAL_SEED
from metra.envs.meta import MetaTasks, Task
from metra.replay import context_features
from metra.rollout import Trajectories, agent_policy, rollout


def repeated(tasks: Sequence[Task], rollouts: int) -> list[Task]:
    """`tasks` repeated until there are at least `rollouts` of them (few-task families)."""
    return list(tasks) * max(1, math.ceil(rollouts / len(tasks)))


def episode_context(
    runs: Sequence[Trajectories], next_obs_in_context: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The context of each env over several rollouts: [n, k * T, c] and its mask [n, k * T]
    (0 on padding past an episode's end)."""
    ctx = np.concatenate([context_features(r.env_major(), next_obs_in_context) for r in runs], 1)
    mask = np.concatenate([r.valid.T for r in runs], 1)
    return ctx, mask.astype(np.float32)


def meta_test(
    agent: PearlAgent,
    family: MetaTasks,
    tasks: Sequence[Task],
    explore: int,
    rollouts: int,
    seed: int = EVAL_SEED,
) -> dict[str, float]:
    """PEARL's meta-test on `tasks` (repeated to at least `rollouts` envs): `explore`
    trajectories with z from the prior, then one with z from the posterior of their context.
    Returns the mean return of the last (`test_return`) and of the exploration ones."""
    envs = family.make_envs(repeated(tasks, rollouts))
    key = jax.random.PRNGKey(seed)
    try:
        runs = []
        for j in range(explore + 1):
            if j < explore:
                mu, var = agent.prior(envs.num_envs)
            else:
                mu, var = agent.infer(*episode_context(runs, agent.config.next_obs_in_context))
            z = sample_gaussian(jax.random.fold_in(key, j), mu, var)
            policy = agent_policy(agent, z, deterministic=True)
            runs.append(rollout(envs, policy, seed + 1000 * j, family.episode_len))
    finally:
        envs.close()
    *explored, final = runs
    scores = {
        "test_return": float(final.returns().mean()),
        "test_return_explore": float(np.mean([r.returns().mean() for r in explored])),
    }
    if family.has_success:
        scores["test_success"] = float(final.ever("success").mean())
        scores["test_success_explore"] = float(
            np.mean([r.ever("success").mean() for r in explored])
        )
    return scores
