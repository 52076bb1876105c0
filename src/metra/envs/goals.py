"""Goal-conditioned environments for goal-reaching agents (QRL), one episode at a time.

Each env gives an observation and a goal, and says when the goal is reached by the benchmark's
own rule, so success rates compare with published ones:

- `pointmaze-medium`, `pointmaze-large` (`metra.envs.maze`): OGBench's
  `pointmaze-*-navigate-v0` (no dataset is downloaded). A goal is an observation (the x-y of
  the point), evaluation follows OGBench: five fixed tasks, an episode ends at success or after
  1000 steps.
- `fetch_reach`, `fetch_push` (`metra.envs.robotics`): Gymnasium-Robotics `FetchReach-v4` /
  `FetchPush-v4`. A goal is a 3-D position (gripper / block), episodes last 50 steps and do not
  end at success.

This module holds the specs and the registry; an env's module (and OGBench or
Gymnasium-Robotics) is imported when the env is built, so `import metra` stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from metra.envs.base import StepResult, no_coords
from metra.envs.registry import Registry

__all__ = [
    "GOAL_ENV_NAMES",
    "GoalEnv",
    "GoalEnvBatch",
    "GoalEnvSpec",
    "UnwrappedEnv",
    "check_task",
    "goal_env_spec",
    "make_goal_env",
    "make_goal_envs",
]


@dataclass(frozen=True)
class GoalEnvSpec:
    """Static facts about a goal-conditioned env that agents, trainers and datasets need."""

    name: str
    obs_dim: int
    goal_dim: int
    act_dim: int
    episode_len: int
    # True when a goal is an observation (pointmaze): one encoder serves both.
    goal_is_state: bool
    # Number of fixed evaluation tasks (OGBench: 5); 0 means random goals each episode.
    eval_tasks: int
    # Where the achieved goal sits in the observation: obs[..., goal_index] = achieved goal.
    goal_index: tuple[int, ...]
    # True when an episode ends at success (OGBench); Fetch's go on for all their steps.
    ends_at_success: bool = True


class GoalEnv(Protocol):
    """One goal-conditioned env; actions are in [-1, 1]."""

    spec: GoalEnvSpec

    def reset(
        self, seed: int | None = None, task: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(obs float32 [obs_dim], goal float32 [goal_dim]); task in 1..eval_tasks picks a fixed
        evaluation task, None a random goal. A seed restarts the env's random stream; None
        continues it (the first episode uses the seed given at make)."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        """(obs, success, done): success when the goal is reached by the benchmark's own rule;
        done at the time limit (or at success when the benchmark ends episodes there)."""
        ...

    def render(self) -> np.ndarray:
        """An RGB frame [H, W, 3] uint8."""
        ...

    def close(self) -> None: ...


_SPECS: dict[str, GoalEnvSpec] = {
    f"pointmaze-{size}": GoalEnvSpec(
        name=f"pointmaze-{size}",
        obs_dim=2,  # x-y of the point
        goal_dim=2,
        act_dim=2,
        episode_len=1000,
        goal_is_state=True,
        eval_tasks=5,
        goal_index=(0, 1),
    )
    for size in ("medium", "large")
}
_SPECS["fetch_reach"] = GoalEnvSpec(
    name="fetch_reach",
    obs_dim=10,  # gripper position 3, finger positions 2, gripper velocity 3, finger velocities 2
    goal_dim=3,
    act_dim=4,
    episode_len=50,
    goal_is_state=False,
    eval_tasks=0,
    goal_index=(0, 1, 2),  # the gripper position
    ends_at_success=False,
)
_SPECS["fetch_push"] = GoalEnvSpec(
    name="fetch_push",
    # gripper position 3, block position 3, block relative to gripper 3, fingers 2, block rotation
    # 3, block velocity 3 + 3, gripper velocity 3, finger velocities 2
    obs_dim=25,
    goal_dim=3,
    act_dim=4,
    episode_len=50,
    goal_is_state=False,
    eval_tasks=0,
    goal_index=(3, 4, 5),  # the block position
    ends_at_success=False,
)
GOAL_ENV_NAMES: tuple[str, ...] = tuple(_SPECS)
# name -> the class built as cls(spec, seed)
GOAL_ENVS = Registry(
    "goal env",
    {
        "pointmaze-medium": "metra.envs.maze:PointMaze",
        "pointmaze-large": "metra.envs.maze:PointMaze",
        "fetch_reach": "metra.envs.robotics:Fetch",
        "fetch_push": "metra.envs.robotics:Fetch",
    },
)


def goal_env_spec(name: str) -> GoalEnvSpec:
    """The spec of goal env `name` without building it (no simulator import)."""
    if name not in _SPECS:
        raise ValueError(f"unknown goal env {name!r}; known goal envs: {', '.join(GOAL_ENV_NAMES)}")
    return _SPECS[name]


def make_goal_env(name: str, seed: int = 0) -> GoalEnv:
    """Build goal env `name`; its first episode is seeded with `seed`."""
    spec = goal_env_spec(name)
    return GOAL_ENVS.load(name)(spec, seed)  # type: ignore[no-any-return]


def make_goal_envs(name: str, seed: int, n: int) -> GoalEnvBatch:
    """n envs `name` as one batch, env i built with seed + i."""
    return GoalEnvBatch([make_goal_env(name, seed + i) for i in range(n)])


def check_task(spec: GoalEnvSpec, task: int | None) -> None:
    """Reject a task number the env does not have (None: a random goal)."""
    if task is None:
        return
    if spec.eval_tasks == 0:
        raise ValueError(f"{spec.name} has no fixed evaluation tasks; pass task=None")
    if not 1 <= task <= spec.eval_tasks:
        raise ValueError(f"{spec.name} has evaluation tasks 1..{spec.eval_tasks}, got task={task}")


class GoalEnvBatch:
    """Goal envs on the one batch-env protocol (`metra.envs.base.Stepper`), so the goal
    workflow rolls out as every other does. Env i restarts with seed + i; after each `reset`
    `goals` [n, goal_dim] holds the episode's goals. A step reports `info["success"]` (the
    benchmark's rule) and the success flag as its reward; an env whose episode ended at
    success is frozen, and the time limit is not a terminal state."""

    def __init__(self, envs: Sequence[GoalEnv]) -> None:
        self.envs = list(envs)
        self.spec = self.envs[0].spec
        self.num_envs = len(self.envs)
        self.goals = np.zeros((self.num_envs, self.spec.goal_dim), np.float32)

    def reset(self, seed: int, task: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """New episodes on evaluation task `task` (None: random goals)."""
        starts = [env.reset(seed=seed + i, task=task) for i, env in enumerate(self.envs)]
        self._obs = np.stack([obs for obs, _ in starts])
        self.goals = np.stack([goal for _, goal in starts])
        self._done = np.zeros(self.num_envs, bool)
        self._terminal = np.zeros(self.num_envs, bool)
        self._steps = 0
        return self._obs.copy(), no_coords(self.num_envs)

    def step(self, actions: np.ndarray) -> StepResult:
        self._steps += 1
        success = np.zeros(self.num_envs, np.float32)
        was_done = self._done.copy()
        for i, env in enumerate(self.envs):
            if not self._done[i]:
                self._obs[i], success[i], self._done[i] = env.step(actions[i])
        # Before the time limit only a goal ends an episode; at it, only where success does.
        time_up = self._steps >= self.spec.episode_len
        by_goal = np.logical_or(not time_up, (success > 0) & self.spec.ends_at_success)
        self._terminal |= self._done & ~was_done & by_goal
        return StepResult(
            obs=self._obs.copy(),
            reward=success.copy(),
            terminated=self._terminal.copy(),
            coords=no_coords(self.num_envs),
            info={"success": success},
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


class UnwrappedEnv:
    """What both goal envs share: a Gymnasium env stepped unwrapped in `_env`."""

    _env: Any

    def render(self) -> np.ndarray:
        return np.asarray(self._env.render(), np.uint8)

    def close(self) -> None:
        self._env.close()
