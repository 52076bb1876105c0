"""Rolling out skills: the policy closure and the coverage evaluation of the METRA paper."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from metra.envs import BatchEnv
from metra.rollout import Policy, Trajectories, coverage, rollout


def skill_policy(
    agent: Any, latents: np.ndarray, deterministic: bool, key: jax.Array | None = None
) -> Policy:
    """Each env keeps its own fixed skill for the whole episode."""

    def policy(obs: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        step_key = None if deterministic else jax.random.fold_in(key, t)
        action = agent.act(obs, latents, deterministic=deterministic, key=step_key)
        return np.asarray(action), latents

    return policy


def evaluation_latents(agent: Any, n: int, key: jax.Array) -> np.ndarray:
    """Every skill when skills are discrete, else n skills from the prior."""
    if agent.config.discrete:
        return np.eye(agent.config.latent_dim, dtype=np.float32)
    return np.asarray(agent.sample_latents(key, n))


def skill_rollouts(agent: Any, env: BatchEnv, latents: np.ndarray, seed: int) -> Trajectories:
    """Deterministic rollouts of `latents` (one per env of `env`)."""
    if len(latents) != env.num_envs:
        raise ValueError(f"{len(latents)} skills for {env.num_envs} envs")
    return rollout(env, skill_policy(agent, latents, deterministic=True), seed)


def coverage_of(trajectories: Trajectories) -> int:
    """The METRA paper's state coverage: distinct 1x1 bins of the coverage coordinates."""
    return coverage(trajectories.coords)


def random_policy(act_dim: int, latents: np.ndarray, seed: int) -> Policy:
    """Uniform random actions (reported with `latents`): the warm-up policy, and the baseline
    every coverage is read against."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.uniform(-1, 1, (len(obs), act_dim)).astype(np.float32), latents

    return policy
