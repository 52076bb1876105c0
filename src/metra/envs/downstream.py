"""Downstream tasks of the METRA and LSD papers.

A task wraps a locomotion batch env: its observation is the base observation followed by a
few task entries (e.g. the goal relative to the body), its reward comes from the task, and
episodes end only by the time limit. The hierarchy that solves one with frozen skills is the
downstream workflow's (`metra.train.downstream.SkillHierarchy`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metra.envs.base import EnvSpec, StepResult
from metra.envs.locomotion import ANT, HALF_CHEETAH, GymLocomotion
from metra.envs.registry import Registry


@dataclass(frozen=True)
class TaskInfo:
    """What a task needs from its base env, and what it is."""

    base: EnvSpec
    task_obs_dim: int
    episode_len: int
    description: str


class TaskEnv:
    """Base class: a locomotion batch env plus a task's state, reward and observation."""

    name = "task"
    info: TaskInfo

    def __init__(self, num_envs: int = 1, seed: int = 0) -> None:
        self.num_envs, self.seed = num_envs, seed
        self.base = self._make_base(num_envs, seed)
        base = self.info.base
        self.spec = EnvSpec(
            name=self.name,
            obs_dim=base.obs_dim + self.info.task_obs_dim,
            act_dim=base.act_dim,
            episode_len=self.info.episode_len,
            coord_names=base.coord_names,
            coord_index=base.coord_index,
            goal_range=0.0,
        )

    def _make_base(self, num_envs: int, seed: int) -> GymLocomotion:
        return GymLocomotion(self.info.base, num_envs, seed)

    # ---- what each task defines --------------------------------------------------------
    def _reset_task(self, coords: np.ndarray) -> None:
        raise NotImplementedError

    def _task_reward(self, coords: np.ndarray) -> np.ndarray:
        """The reward of reaching `coords`; advances the task's state."""
        raise NotImplementedError

    def _task_obs(self, coords: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ---- the BatchEnv interface ---------------------------------------------------------
    def _obs(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self._task_obs(coords)], -1).astype(np.float32)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        seed = self.seed if seed is None else seed
        self.rng = np.random.default_rng([seed, 7])
        obs, coords = self.base.reset(seed)
        self._reset_task(coords)
        return self._obs(obs, coords), coords

    def step(self, actions: np.ndarray) -> StepResult:
        result = self.base.step(actions)
        reward = self._task_reward(result.coords).astype(np.float32)
        return StepResult(
            obs=self._obs(result.obs, result.coords),
            reward=reward,
            terminated=np.zeros(self.num_envs, bool),
            coords=result.coords,
        )

    def set_coords(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        raise NotImplementedError("downstream tasks have no goal states")

    def render(self, index: int = 0) -> np.ndarray:
        return self.base.render(index)

    def close(self) -> None:
        self.base.close()


class AntMultiGoals(TaskEnv):
    """Four goals in a row, each uniform within +-7.5 of the body's x-y when it is set;
    2.5 for reaching within 3 of the current goal, which then moves on; each goal has 50
    steps before the next one replaces it (the LSD and METRA papers' AntMultiGoals)."""

    name = "ant_multi_goals"
    info = TaskInfo(ANT, 2, 200, "reach 4 goals in a row, each within +-7.5 (ant skills)")
    GOALS, RANGE, RADIUS, STEPS_PER_GOAL, REWARD = 4, 7.5, 3.0, 50, 2.5

    def _new_goals(self, coords: np.ndarray, which: np.ndarray) -> None:
        fresh = coords + self.rng.uniform(-self.RANGE, self.RANGE, coords.shape)
        self.goal = np.where(which[:, None], fresh, self.goal)
        self.goal_steps = np.where(which, 0, self.goal_steps)

    def _reset_task(self, coords: np.ndarray) -> None:
        self.goal = np.zeros_like(coords)
        self.goal_steps = np.zeros(len(coords), int)
        self.goal_index = np.zeros(len(coords), int)
        self._new_goals(coords, np.ones(len(coords), bool))

    def _task_reward(self, coords: np.ndarray) -> np.ndarray:
        active = self.goal_index < self.GOALS
        reached = active & (np.linalg.norm(coords - self.goal, axis=-1) <= self.RADIUS)
        self.goal_steps += 1
        advance = active & (reached | (self.goal_steps >= self.STEPS_PER_GOAL))
        self.goal_index += advance
        self._new_goals(coords, advance)
        return self.REWARD * reached

    def _task_obs(self, coords: np.ndarray) -> np.ndarray:
        return self.goal - coords


class HalfCheetahGoal(TaskEnv):
    """A goal x uniform in [-25, 25] of the start; 10 the first time the body is within 3
    of it (the tolerance is ours, the same as AntMultiGoals')."""

    name = "half_cheetah_goal"
    info = TaskInfo(HALF_CHEETAH, 2, 200, "reach a goal x in [-25, 25] (half_cheetah skills)")
    RANGE, RADIUS, REWARD = 25.0, 3.0, 10.0

    def _reset_task(self, coords: np.ndarray) -> None:
        self.goal = coords[:, 0] + self.rng.uniform(-self.RANGE, self.RANGE, len(coords))
        self.done = np.zeros(len(coords), bool)

    def _task_reward(self, coords: np.ndarray) -> np.ndarray:
        reached = ~self.done & (np.abs(coords[:, 0] - self.goal) <= self.RADIUS)
        self.done |= reached
        return self.REWARD * reached

    def _task_obs(self, coords: np.ndarray) -> np.ndarray:
        return np.stack([self.goal - coords[:, 0], self.done.astype(np.float32)], -1)


class HalfCheetahHurdle(TaskEnv):
    """Box hurdles in the simulator (they block the body) every 3 along +x, 0.2 high (our
    geometry); +1 for each hurdle the torso passes."""

    name = "half_cheetah_hurdle"
    info = TaskInfo(HALF_CHEETAH, 1, 200, "jump hurdles along +x (half_cheetah skills)")
    SPACING, COUNT, HEIGHT = 3.0, 12, 0.2

    @classmethod
    def hurdle_x(cls) -> np.ndarray:
        return cls.SPACING * np.arange(1, cls.COUNT + 1)

    def _make_base(self, num_envs: int, seed: int) -> GymLocomotion:
        return GymLocomotion(self.info.base, num_envs, seed, xml_file=hurdle_xml())

    def _reset_task(self, coords: np.ndarray) -> None:
        self.cleared = np.zeros(len(coords), int)

    def _task_reward(self, coords: np.ndarray) -> np.ndarray:
        now = (coords[:, :1] > self.hurdle_x()[None]).sum(-1)
        reward = np.maximum(now - self.cleared, 0)
        self.cleared = np.maximum(now, self.cleared)
        return reward

    def _task_obs(self, coords: np.ndarray) -> np.ndarray:
        nxt = np.append(self.hurdle_x(), np.inf)[self.cleared]
        return np.minimum(nxt - coords[:, 0], 10.0)[:, None]


def hurdle_xml() -> str:
    """Gymnasium's half_cheetah.xml with the hurdles added to the world; written once per
    hurdle geometry (the file name carries it, so a changed geometry never reads a stale
    file)."""
    import gymnasium

    cls = HalfCheetahHurdle
    name = f"metra_half_cheetah_hurdle_{cls.SPACING:g}_{cls.COUNT}_{cls.HEIGHT:g}.xml"
    path = os.path.join(tempfile.gettempdir(), name)
    if not os.path.exists(path):
        assets = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets"
        xml = (assets / "half_cheetah.xml").read_text()
        h = cls.HEIGHT / 2
        geoms = "".join(
            f'<geom name="hurdle{i}" type="box" pos="{x:g} 0 {h:g}" size="0.05 1 {h:g}" '
            f'contype="1" conaffinity="1" rgba="0.9 0.3 0.3 1"/>'
            for i, x in enumerate(cls.hurdle_x())
        )
        xml = xml.replace("<worldbody>", "<worldbody>" + geoms, 1)
        tmp = Path(f"{path}.{os.getpid()}.tmp")
        tmp.write_text(xml)
        tmp.replace(path)
    return path


TASKS = Registry(
    "task",
    {
        cls.name: f"{__name__}:{cls.__name__}"
        for cls in (AntMultiGoals, HalfCheetahGoal, HalfCheetahHurdle)
    },
)


def make_task(name: str, num_envs: int = 1, seed: int = 0) -> TaskEnv:
    return TASKS.load(name)(num_envs, seed)  # type: ignore[no-any-return]
