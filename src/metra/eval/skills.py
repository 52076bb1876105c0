"""Rolling out skills: the policy closure and the coverage evaluation of the METRA paper."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from typing import Any

import jax
import numpy as np

from metra.envs import BatchEnv, EnvSpec, make_env
from metra.rollout import (
    Trajectories,
    agent_policy,
    coverage,
    mean_displacement,
    random_policy,
    rollout,
)

EVAL_SEED = 12345  # skill evaluations never share seeds with training ones (figures use it)


def evaluation_count(discrete: bool, latent_dim: int, n: int) -> int:
    """How many trajectories an evaluation of n skills rolls out: every discrete skill n // D
    times (at least once; the official 48 are 3 per skill for 16 skills), else n."""
    return latent_dim * max(1, n // latent_dim) if discrete else n


def evaluation_latents(agent: Any, n: int, key: jax.Array) -> np.ndarray:
    """The `evaluation_count` skills of an evaluation of n: discrete ones in order, else
    drawn from the prior."""
    if agent.config.discrete:
        d = agent.config.latent_dim
        return np.tile(np.eye(d, dtype=np.float32), (evaluation_count(True, d, n) // d, 1))
    return np.asarray(agent.sample_latents(key, n))


def evaluation_draw(fresh_skills: bool, env_steps: int) -> int:
    """The `draw` of `skill_trajectories` for an evaluation at `env_steps`: the step itself
    when every evaluation draws fresh skills, else 0 (one draw for every evaluation)."""
    return env_steps if fresh_skills else 0


def skill_trajectories(
    agent: Any, env_name: str, n: int, seed: int = EVAL_SEED, draw: int = 0
) -> Trajectories:
    """One deterministic episode for each of n evaluation skills, all stepped as one batch of
    envs (env i starts from reset seed `seed + i`). Continuous skills are drawn from the
    prior with a key of (`seed`, `draw`): training passes its env step, so every evaluation
    draws fresh skills as the official code does, and `metra eval` passes the checkpoint's
    step, so it reports the coverage logged at that step."""
    latents = evaluation_latents(agent, n, jax.random.fold_in(jax.random.PRNGKey(seed), draw))
    with closing(make_env(env_name, seed, len(latents))) as env:
        return rollout(env, agent_policy(agent, latents, deterministic=True), seed)


def coverage_coords(trajectories: Trajectories, spec: EnvSpec) -> np.ndarray:
    """The coverage coordinates of every step [T + 1, n, k] (without per-step flags such as
    the kitchen's subtasks, which follow them in `coords`)."""
    return trajectories.coords[..., : len(spec.coord_names)]


def coverage_of(trajectories: Trajectories, spec: EnvSpec) -> int:
    """The METRA paper's state coverage: distinct 1x1 bins of the coverage coordinates."""
    return coverage(coverage_coords(trajectories, spec))


def skill_metrics(trajectories: Trajectories, spec: EnvSpec) -> dict[str, float]:
    """Coverage; `displacement`, the mean distance from start to end in the coverage
    coordinates (for half_cheetah the mean final |x| the METRA reproduction reports); and for
    envs with subtasks (the kitchen) `kitchen_tasks`: how many of them any trajectory
    completes at some step (the METRA paper's kitchen metric)."""
    coords = coverage_coords(trajectories, spec)
    metrics: dict[str, float] = {
        "coverage": coverage(coords),
        "displacement": mean_displacement(coords),
    }
    if spec.task_names:
        flags = trajectories.coords[..., len(spec.coord_names) :]
        metrics["kitchen_tasks"] = int((flags.reshape(-1, flags.shape[-1]) > 0.5).any(0).sum())
    return metrics


def in_chunks(
    fn: Callable[[np.ndarray], Any], x: np.ndarray, item_ndim: int, chunk: int = 1024
) -> np.ndarray:
    """fn over x [..., *item] (items of `item_ndim` axes) in chunks of items, reshaped back: a
    whole evaluation of frame stacks through a conv net at once would not fit in memory."""
    lead = x.shape[: x.ndim - item_ndim]
    flat = x.reshape(-1, *x.shape[x.ndim - item_ndim :])
    out = np.concatenate([np.asarray(fn(flat[i : i + chunk])) for i in range(0, len(flat), chunk)])
    return out.reshape(*lead, *out.shape[1:])


def random_rollout(env: BatchEnv, seed: int) -> Trajectories:
    """One episode of uniformly random actions in every env of the batch."""
    return rollout(env, random_policy(env.spec.act_dim, seed), seed)


def random_coverage(env_name: str, episodes: int, seed: int = EVAL_SEED) -> int:
    """Coverage of `episodes` uniformly random episodes: the floor every skill agent must beat."""
    with closing(make_env(env_name, seed, episodes)) as env:
        return coverage_of(random_rollout(env, seed), env.spec)
