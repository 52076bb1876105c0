"""PEARL's point robot as a meta-RL family in numpy: fast enough for learning tests.

A point starts at the origin and moves by its action scaled to at most 0.1 per axis; each
task is a goal on the upper half of the unit circle and the reward is minus the distance to
it (PEARL's dense `point-robot`: 40 train and 10 test goals, 20-step episodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metra.envs.base import StepResult, no_coords
from metra.envs.meta import Task, meta_step

MAX_STEP = 0.1


@dataclass
class PointGoalBatch:
    """One point per goal, stepped together; the family never terminates early."""

    goals: np.ndarray  # [n, 2]
    num_envs: int = field(init=False)
    pos: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.num_envs = len(self.goals)
        self.pos = np.zeros((self.num_envs, 2), np.float32)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.pos = np.zeros((self.num_envs, 2), np.float32)
        return self.pos.copy(), no_coords(self.num_envs)

    def step(self, actions: np.ndarray) -> StepResult:
        self.pos = (self.pos + MAX_STEP * np.clip(actions, -1.0, 1.0)).astype(np.float32)
        reward = -np.linalg.norm(self.pos - self.goals, axis=-1)
        zeros = np.zeros(self.num_envs)
        return meta_step(self.pos.copy(), reward, zeros, zeros)

    def close(self) -> None:
        pass


@dataclass
class PointGoalTasks:
    """Goals at angles uniform in [0, pi] on the unit circle, train and test drawn apart."""

    seed: int
    num_train: int = 40
    num_test: int = 10
    name: str = "point_goal"
    obs_dim: int = 2
    act_dim: int = 2
    episode_len: int = 20
    has_success: bool = False
    train_tasks: list[Task] = field(init=False)
    test_tasks: list[Task] = field(init=False)

    def __post_init__(self) -> None:
        angles = np.random.default_rng(self.seed).uniform(0, np.pi, self.num_train + self.num_test)
        tasks = [{"goal": np.array([np.cos(a), np.sin(a)], np.float32)} for a in angles]
        self.train_tasks, self.test_tasks = tasks[: self.num_train], tasks[self.num_train :]

    def make_envs(self, tasks: Sequence[Task]) -> PointGoalBatch:
        return PointGoalBatch(np.stack([t["goal"] for t in tasks]))


def make(name: str, seed: int) -> PointGoalTasks:
    """Registry hook."""
    return PointGoalTasks(seed)
