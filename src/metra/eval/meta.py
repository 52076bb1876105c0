"""Meta-test of a context-based agent (PEARL, CoCOA) on a task family, and the batched
rollout it and meta-training collect with.

On every held-out task: `explore` trajectories with z drawn from the prior, the posterior
inferred from all their transitions, then one more trajectory with z drawn from it; its return
(and success, where the family has one) is the score. Actions are deterministic throughout, as
in PEARL's evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import numpy as np

from metra.agents.pearl import PearlAgent, sample_gaussian
from metra.envs.meta import MetaEnvBatch, MetaTasks, Task
from metra.replay import context_features

EVAL_SEED = 10_000  # meta-test episodes are seeded from here on


@dataclass
class Rollout:
    """One episode in each env of a batch: fields [n, T, ...], lengths, returns, success."""

    episodes: dict[str, np.ndarray]
    returns: np.ndarray
    success: np.ndarray  # 1 where any step of the episode succeeded

    def task(self, i: int) -> dict[str, np.ndarray]:
        """Env i's episode as a batch of one (the `TaskReplay.add` layout)."""
        return {k: v[i : i + 1] for k, v in self.episodes.items()}


Policy = Callable[[np.ndarray, int], np.ndarray]  # (obs [n, d], step t) -> actions [n, a]


def agent_policy(agent: PearlAgent, latents: jax.Array, key: jax.Array | None) -> Policy:
    """The agent under task latents [n, L]; deterministic actions when `key` is None, else
    step t acts with `key` folded with t."""

    def policy(obs: np.ndarray, t: int) -> np.ndarray:
        k = None if key is None else jax.random.fold_in(key, t)
        return np.asarray(agent.act(obs, latents, deterministic=key is None, key=k))

    return policy


def random_policy(act_dim: int, seed: int) -> Policy:
    """Uniform random actions in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return lambda obs, t: rng.uniform(-1, 1, (len(obs), act_dim))


def rollout(envs: MetaEnvBatch, policy: Policy, episode_len: int, seed: int) -> Rollout:
    """One episode per env. An env that terminates stays frozen; its steps past `length` are
    padding."""
    obs = envs.reset(seed)
    n = envs.num_envs
    steps: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "action", "reward", "next_obs")}
    masks, alive = [], np.ones(n, bool)
    length = np.zeros(n, np.int32)
    success = np.zeros(n, np.float32)
    for t in range(episode_len):
        action = np.asarray(policy(obs, t), np.float32)
        next_obs, reward, terminated, succ = envs.step(action)
        for name, value in zip(steps, (obs, action, reward, next_obs), strict=True):
            steps[name].append(value)
        masks.append(1.0 - terminated.astype(np.float32))
        length += alive
        success = np.maximum(success, succ * alive)
        alive &= ~terminated
        obs = next_obs
        if not alive.any():
            break
    pad = episode_len - len(masks)
    episodes = {
        k: np.pad(np.stack(v, 1), [(0, 0), (0, pad)] + [(0, 0)] * (np.ndim(v[0]) - 1))
        for k, v in [*steps.items(), ("mask", masks)]
    }
    episodes["length"] = length
    episodes["reward"] = episodes["reward"].astype(np.float32)
    valid = np.arange(episode_len) < length[:, None]
    returns = (episodes["reward"] * valid).sum(1)
    return Rollout(episodes, returns, success)


def repeated(tasks: Sequence[Task], rollouts: int) -> list[Task]:
    """`tasks` repeated until there are at least `rollouts` of them (few-task families)."""
    return list(tasks) * max(1, math.ceil(rollouts / len(tasks)))


def episode_context(
    runs: Sequence[Rollout], next_obs_in_context: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The context of each env over several rollouts: [n, k * T, c] and its mask [n, k * T]
    (0 on padding past an episode's end)."""
    ctx = np.concatenate([context_features(r.episodes, next_obs_in_context) for r in runs], 1)
    t = np.arange(runs[0].episodes["obs"].shape[1])
    mask = np.concatenate([(t < r.episodes["length"][:, None]) for r in runs], 1)
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
        for j in range(explore):
            z = sample_gaussian(jax.random.fold_in(key, j), *agent.prior(envs.num_envs))
            policy = agent_policy(agent, z, None)
            runs.append(rollout(envs, policy, family.episode_len, seed + 1000 * j))
        ctx, mask = episode_context(runs, agent.config.next_obs_in_context)
        z = sample_gaussian(jax.random.fold_in(key, explore), *agent.infer(ctx, mask))
        final = rollout(
            envs, agent_policy(agent, z, None), family.episode_len, seed + 1000 * explore
        )
    finally:
        envs.close()
    scores = {
        "test_return": float(final.returns.mean()),
        "test_return_explore": float(np.mean([r.returns.mean() for r in runs])),
    }
    if family.has_success:
        scores["test_success"] = float(final.success.mean())
        scores["test_success_explore"] = float(np.mean([r.success.mean() for r in runs]))
    return scores
