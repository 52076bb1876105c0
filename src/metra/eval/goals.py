"""Zero-shot goal reaching with a METRA representation (paper, Sec. 5.3).

The goal state is the start state with its coverage coordinates set to the goal; at every
step the skill is z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||, so no goal-conditioned
training is needed.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import numpy as np

from metra.envs import make_env
from metra.rollout import rollout

SUCCESS_RADII = (3.0, 1.0)


def goal_reaching(
    agent: Any, env_name: str, num_goals: int = 50, seed: int = 0, goal_range: float | None = None
) -> dict[str, float]:
    """Mean final distance to goals drawn uniformly within +-goal_range (default: the env's)
    of the start, and the fraction of episodes that end within each success radius."""
    with closing(make_env(env_name, seed, num_goals)) as env:
        reach = env.spec.goal_range if goal_range is None else goal_range
        if reach <= 0:
            raise ValueError(f"goal range must be > 0, got {reach}")
        obs0, coords0 = env.reset(seed)
        rng = np.random.default_rng(seed)
        goals = coords0 + rng.uniform(-reach, reach, coords0.shape)
        goal_obs = env.set_coords(obs0, goals)

        def policy(obs: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
            z = agent.goal_latent(obs, goal_obs)
            return np.asarray(agent.act(obs, z, deterministic=True)), np.asarray(z)

        traj = rollout(env, policy, seed)
    dist = np.linalg.norm(traj.coords[-1] - goals, axis=-1)
    out = {"goal_range": float(reach), "goal_final_distance": float(dist.mean())}
    for radius in SUCCESS_RADII:
        out[f"goal_success_{radius:g}"] = float((dist <= radius).mean())
    return out
