"""The Franka kitchen from pixels (Gymnasium-Robotics `FrankaKitchen-v1`) as a batch env, as in
the LEXA and METRA papers.

The agent sees the last 3 RGB frames of 64x64 from a fixed camera over the kitchen counter and
moves the 9 joints of the arm with velocity actions in [-1, 1]; episodes last 50 steps. Coverage
counts the end effector's x-y-z, and `coords` carries a 0/1 flag per subtask that says whether
the object is in its completed state at that step, by Gymnasium-Robotics' own rule (the
object's joints within `BONUS_THRESH` of the task's goal). "burner" counts as completed when
either the bottom or the top burner is, so the six flags are the six tasks of the LEXA and
METRA evaluations. The reward is the env's own (how many of its 7 tasks were completed for the
first time in the episode at that step). All envs of a batch render through one MuJoCo context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from metra.envs.base import EnvSpec
from metra.envs.pixels import FRAME, FRAME_STACK, PixelBatch
from metra.envs.robotics import patch_gymnasium_robotics

KITCHEN = EnvSpec(
    name="kitchen_pixel",
    obs_dim=int(np.prod(FRAME)) * FRAME_STACK,
    act_dim=9,  # joint velocities of the 7 arm joints and the 2 fingers
    episode_len=50,
    coord_names=("x", "y", "z"),  # the end effector, between the fingertips
    coord_index=(),  # coordinates come from the simulator, not the pixels
    goal_range=0.0,  # no goal-reaching evaluation
    frame_shape=FRAME,
    frame_stack=FRAME_STACK,
    task_names=("microwave", "kettle", "light switch", "burner", "slide cabinet", "hinge cabinet"),
)

# Each reported task and the Gymnasium-Robotics tasks of which any one completes it.
_SUBTASKS: dict[str, tuple[str, ...]] = {
    "microwave": ("microwave",),
    "kettle": ("kettle",),
    "light switch": ("light switch",),
    "burner": ("bottom burner", "top burner"),
    "slide cabinet": ("slide cabinet",),
    "hinge cabinet": ("hinge cabinet",),
}
_END_EFFECTOR = "end_effector"  # a site on the hand, between the fingertips


@dataclass(frozen=True)
class FreeCamera:
    """A fixed camera given by the point it looks at and where it sits around that point."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float

    def mjv(self) -> mujoco.MjvCamera:
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.lookat[:] = self.lookat
        camera.distance = self.distance
        camera.azimuth = self.azimuth
        camera.elevation = self.elevation
        return camera


# The agent's camera: from in front of and above the counter, it shows the microwave, the kettle,
# the burner knobs, the light switch and the bottoms of both wall cabinets with their handles.
AGENT_CAMERA = FreeCamera(lookat=(-0.25, 0.6, 2.1), distance=2.3, azimuth=90.0, elevation=-45.0)
# The video's third-person camera: the D4RL kitchen's default view, from the front left.
VIEW_CAMERA = FreeCamera(lookat=(-0.2, 0.5, 2.0), distance=2.2, azimuth=70.0, elevation=-35.0)


class KitchenPixels(PixelBatch):
    """`num_envs` Franka kitchens stepped in lockstep, seen as stacks of 64x64 frames."""

    def __init__(self, spec: EnvSpec, num_envs: int = 1, seed: int = 0) -> None:
        import gymnasium as gym
        import gymnasium_robotics
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
            BONUS_THRESH,
            OBS_ELEMENT_GOALS,
            OBS_ELEMENT_INDICES,
        )

        patch_gymnasium_robotics()
        gym.register_envs(gymnasium_robotics)
        # Stepped unwrapped: the time limit is ours, Gymnasium's checker wrappers cost time.
        self._envs: list[Any] = [gym.make("FrankaKitchen-v1").unwrapped for _ in range(num_envs)]
        if self._envs[0].action_space.shape != (spec.act_dim,):
            raise ValueError(f"{spec.name}: action size {self._envs[0].action_space.shape}")
        self._threshold = BONUS_THRESH
        self._tasks = [
            [(OBS_ELEMENT_INDICES[task], OBS_ELEMENT_GOALS[task]) for task in _SUBTASKS[name]]
            for name in spec.task_names
        ]
        model = self._envs[0].model
        super().__init__(spec, num_envs, seed, model, AGENT_CAMERA.mjv(), VIEW_CAMERA.mjv())
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False

    def _data(self, index: int) -> mujoco.MjData:
        return self._envs[index].data

    def _completed(self, qpos: np.ndarray) -> list[bool]:
        """Per reported task: whether any of its objects is within the threshold of its goal."""
        return [
            any(np.linalg.norm(qpos[index] - goal) < self._threshold for index, goal in options)
            for options in self._tasks
        ]

    def _coords(self) -> np.ndarray:
        """[n, 3 + tasks]: the end effector's x-y-z, then the task flags."""
        rows = []
        for i in range(self.num_envs):
            data = self._data(i)
            rows.append([*data.site(_END_EFFECTOR).xpos, *self._completed(data.qpos)])
        return np.asarray(rows, np.float32)

    # ---- BatchEnv ---------------------------------------------------------------------
    def _reset_env(self, index: int, seed: int) -> None:
        # The seed drives the observation noise that the velocity control reads.
        self._envs[index].reset(seed=seed)

    def _step_env(self, index: int, action: np.ndarray) -> float:
        return float(self._envs[index].step(action)[1])

    def set_coords(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        raise NotImplementedError(
            f"{self.spec.name} has no goal-reaching evaluation: its coordinates (the end "
            "effector and the task flags) do not define a goal image; evaluate the tasks instead"
        )


def make(spec: EnvSpec, num_envs: int, seed: int) -> KitchenPixels:
    """Registry hook."""
    return KitchenPixels(spec, num_envs, seed)
