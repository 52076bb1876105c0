"""Gymnasium's MuJoCo tasks with their own rewards, for plain SAC (`metra sac`).

The v5 tasks run on the `mujoco` bindings (no mujoco-py) and are what Stable-Baselines3 and
SBX train on, so returns compare with theirs. Gymnasium is imported when a task is built.
"""

from __future__ import annotations

from typing import Any

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
