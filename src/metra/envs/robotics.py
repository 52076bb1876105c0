"""Gymnasium-Robotics: Fetch as a goal env, and the joint-accessor patch that Fetch and the
kitchen need on mujoco >= 3.12."""

from __future__ import annotations

from typing import Any

import numpy as np

from metra.envs.goals import GoalEnvSpec, UnwrappedEnv, check_task

_FETCH_IDS = {"fetch_reach": "FetchReach-v4", "fetch_push": "FetchPush-v4"}


_QPOS_WIDTH = {"mjJNT_FREE": 7, "mjJNT_BALL": 4, "mjJNT_SLIDE": 1, "mjJNT_HINGE": 1}
_QVEL_WIDTH = {"mjJNT_FREE": 6, "mjJNT_BALL": 3, "mjJNT_SLIDE": 1, "mjJNT_HINGE": 1}


def _joint_span(model: Any, name: str, velocity: bool) -> slice:
    """Where joint `name` sits in qpos (or qvel)."""
    import mujoco

    joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if joint_id == -1:
        raise ValueError(f"joint {name!r} is not part of the model")
    # The cast is the fix: an np.int32 joint type no longer matches mjtJoint members with `in`.
    kind = mujoco.mjtJoint(int(model.jnt_type[joint_id])).name
    if velocity:
        start, width = int(model.jnt_dofadr[joint_id]), _QVEL_WIDTH[kind]
    else:
        start, width = int(model.jnt_qposadr[joint_id]), _QPOS_WIDTH[kind]
    return slice(start, start + width)


def _set_span(target: np.ndarray, span: slice, name: str, value: Any) -> None:
    value = np.asarray(value, np.float64).reshape(-1)
    if value.size != span.stop - span.start:
        raise ValueError(f"joint {name!r} takes {span.stop - span.start} values, got {value.size}")
    target[span] = value


def _get_joint_qpos(model: Any, data: Any, name: str) -> np.ndarray:
    return data.qpos[_joint_span(model, name, velocity=False)].copy()


def _get_joint_qvel(model: Any, data: Any, name: str) -> np.ndarray:
    return data.qvel[_joint_span(model, name, velocity=True)].copy()


def _set_joint_qpos(model: Any, data: Any, name: str, value: Any) -> None:
    _set_span(data.qpos, _joint_span(model, name, velocity=False), name, value)


def _set_joint_qvel(model: Any, data: Any, name: str, value: Any) -> None:
    _set_span(data.qvel, _joint_span(model, name, velocity=True), name, value)


def patch_gymnasium_robotics() -> None:
    """Replace the joint accessors of `gymnasium_robotics.utils.mujoco_utils` (1.4.2).

    On mujoco >= 3.12 `model.jnt_type[id]` is an np.int32 that `in (mjJNT_HINGE, mjJNT_SLIDE)`
    no longer matches, so Fetch fails at construction with an AssertionError; upstream still has
    the bug. The envs call these functions through the module, so replacing the module's
    attributes fixes every env; site-packages stays untouched. The replacements also give a ball
    joint 3 velocities (the originals say 4). Idempotent.
    """
    from gymnasium_robotics.utils import mujoco_utils

    mujoco_utils.get_joint_qpos = _get_joint_qpos
    mujoco_utils.get_joint_qvel = _get_joint_qvel
    mujoco_utils.set_joint_qpos = _set_joint_qpos
    mujoco_utils.set_joint_qvel = _set_joint_qvel


class Fetch(UnwrappedEnv):
    """Gymnasium-Robotics Fetch: the observation holds the achieved goal, the goal is a position."""

    def __init__(self, spec: GoalEnvSpec, seed: int = 0, render_size: int = 256) -> None:
        import gymnasium as gym
        import gymnasium_robotics

        patch_gymnasium_robotics()
        gym.register_envs(gymnasium_robotics)
        self.spec = spec
        # Stepped unwrapped: the time limit is ours, Gymnasium's checker wrappers cost time.
        self._env = gym.make(
            _FETCH_IDS[spec.name],
            render_mode="rgb_array",
            width=render_size,
            height=render_size,
        ).unwrapped
        self._seed: int | None = seed
        self._t = 0

    def reset(
        self, seed: int | None = None, task: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        check_task(self.spec, task)
        if seed is not None:
            self._seed = seed
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None
        self._t = 0
        return obs["observation"].astype(np.float32), obs["desired_goal"].astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        obs, _, _, _, info = self._env.step(action)
        self._t += 1
        return (
            obs["observation"].astype(np.float32),
            bool(info["is_success"]),
            self._t >= self.spec.episode_len,
        )
