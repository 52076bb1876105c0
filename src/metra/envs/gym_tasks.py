"""Gymnasium's MuJoCo tasks with their own rewards, for plain SAC (`metra sac`).

The v5 tasks run on the `mujoco` bindings (no mujoco-py) and are what Stable-Baselines3 and
SBX train on, so returns compare with theirs. Gymnasium is imported when a task is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from metra.envs.base import EVAL_SEED

# our name -> Gymnasium id
SAC_ENVS = {
    "half_cheetah": "HalfCheetah-v5",
    "ant": "Ant-v5",
    "hopper": "Hopper-v5",
    "inverted_pendulum": "InvertedPendulum-v5",  # learned in a few thousand steps: the tests'
}


def make_task_env(name: str) -> Any:
    """The Gymnasium task `SAC_ENVS[name]` with its time limit (its default episode length)."""
    if name not in SAC_ENVS:
        raise ValueError(f"unknown SAC env {name!r}; known: {', '.join(SAC_ENVS)}")
    import gymnasium as gym

    return gym.make(SAC_ENVS[name])


def episode_return(env: Any, act: Callable[[np.ndarray], Any], episodes: int) -> float:
    """Mean return of `act(obs) -> action` over `episodes` episodes of a Gymnasium env on
    the evaluation seeds. Imports nothing but numpy, so the SAC bench's other libraries
    evaluate through it too."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))
