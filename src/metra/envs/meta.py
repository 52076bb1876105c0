"""Meta-RL task families: the seam between the meta-RL trainer and the simulators.

A family (`MetaTasks`) holds a fixed set of train tasks and a fixed set of test tasks, drawn
once from the family's task distribution with the run's seed, and builds batches of envs with
one task per env. `point_goal` (PEARL's point robot, numpy) is small enough for tests;
MuJoCo families (PEARL's benchmarks on Gymnasium v5) live in
`metra.envs.mujoco_tasks`; Meta-World ML1 runs in its own Python environment and is reached
through `metra.envs.metaworld`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from metra.envs.base import Stepper, StepResult, no_coords
from metra.envs.registry import Registry

Task = dict[str, Any]  # a task's parameters, e.g. {"velocity": 1.3}

# name -> the family's factory make(name, seed)
META_FAMILIES = Registry(
    "meta-RL task",
    {
        "point_goal": "metra.envs.point_tasks:make",
        **{
            name: "metra.envs.mujoco_tasks:make"
            for name in ("cheetah_vel", "cheetah_dir", "ant_dir", "ant_goal", "humanoid_dir")
        },
        "walker_rand_params": "metra.envs.mujoco_tasks:make",
        **{
            name: "metra.envs.metaworld:make"
            for name in ("ml1_reach", "ml1_push", "ml1_pick_place")
        },
    },
)
META_TASK_NAMES = META_FAMILIES.names


class MetaEnvBatch(Stepper, Protocol):
    """`num_envs` envs, env i solving task i of the batch, on the one batch-env protocol
    (`metra.envs.base.Stepper`): no coordinates ([n, 0]), and `info["success"]` [n] float32
    (0 in families without success). An env whose episode terminated early is no longer
    stepped until the next `reset`."""


def meta_step(
    obs: np.ndarray, reward: np.ndarray, terminated: np.ndarray, success: np.ndarray
) -> StepResult:
    """One step of a meta-RL batch in the batch-env protocol."""
    return StepResult(
        obs=np.asarray(obs, np.float32),
        reward=np.asarray(reward, np.float32),
        terminated=np.asarray(terminated, bool),
        coords=no_coords(len(obs)),
        info={"success": np.asarray(success, np.float32)},
    )


class MetaTasks(Protocol):
    """A task family with its fixed train and test tasks."""

    name: str
    obs_dim: int
    act_dim: int
    episode_len: int
    has_success: bool  # True where `step` reports task success (Meta-World)
    train_tasks: list[Task]
    test_tasks: list[Task]

    def make_envs(self, tasks: Sequence[Task]) -> MetaEnvBatch:
        """One env per task in `tasks`."""
        ...


def make_meta_tasks(name: str, seed: int = 0) -> MetaTasks:
    """Family `name` with its train and test tasks drawn from `seed`."""
    return META_FAMILIES.load(name)(name, seed)  # type: ignore[no-any-return]
