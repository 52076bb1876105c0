"""Pixel observations: frame stacks, cheap headless rendering, and the METRA paper's
dm_control Quadruped and Humanoid with a position-colored floor.

The agent sees only the last 3 RGB frames of 64x64 from a camera that follows the body
(quadruped camera 2, humanoid camera 0, as in the paper); the floor's color varies smoothly
with x and y, so a frame tells where the body is. Coverage counts 1x1 x-y bins of the
simulator's true torso position. All envs of a batch render through one MuJoCo context.
"""

from __future__ import annotations

import atexit
import weakref
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from metra.envs.base import EnvSpec, StepResult

FRAME = (64, 64, 3)
FRAME_STACK = 3
VIEW_SIZE = 192  # side of each half of a video frame: the agent's view (upscaled), a third person
FLOOR_HALF_SIZE = 30.0  # metres from the origin to the floor's edge; its colors span this square


class FrameStack:
    """The latest k frames of every env in a batch, concatenated on channels. A reset fills
    the stack with the first frame, so a replay can rebuild every stack from single frames."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._frames: list[np.ndarray] = []

    def reset(self, frames: np.ndarray) -> np.ndarray:
        """frames [n, H, W, C] -> observation [n, H, W, C * k]."""
        self._frames = [frames] * self.k
        return self.observation()

    def push(self, frames: np.ndarray) -> np.ndarray:
        self._frames = [*self._frames[1:], frames]
        return self.observation()

    def observation(self) -> np.ndarray:
        return np.concatenate(self._frames, axis=-1)


def cheap_scene(model: mujoco.MjModel, size: int) -> None:
    """Rendering settings that make a small frame ~10x cheaper on a CPU rasterizer: no
    shadows, no multisampling, no reflections, an offscreen buffer of `size`. Set them
    before the renderer is made (the context reads them once)."""
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    model.mat_reflectance[:] = 0.0
    model.vis.global_.offwidth = size
    model.vis.global_.offheight = size


def floor_colors(height: int, width: int) -> np.ndarray:
    """An RGB texture [height, width, 3] uint8 whose color changes smoothly with both axes:
    red grows with u, green with v, blue with their difference, so that no two points of
    the floor share a color."""
    v, u = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    rgb = np.stack([0.15 + 0.8 * u, 0.15 + 0.8 * v, 0.55 + 0.4 * (u - v)], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def color_floor(model: mujoco.MjModel, geom: str = "floor") -> None:
    """Paint `floor_colors` onto the floor's texture and stretch it once over a floor of
    FLOOR_HALF_SIZE (MuJoCo planes collide everywhere; the size only bounds what is drawn)."""
    geom_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, geom)
    mat = model.geom_matid[geom_id]
    tex = model.mat_texid[mat, mujoco.mjtTextureRole.mjTEXROLE_RGB]
    height, width, channels = model.tex_height[tex], model.tex_width[tex], model.tex_nchannel[tex]
    if channels != 3:
        raise ValueError(f"floor texture has {channels} channels, expected RGB")
    start = model.tex_adr[tex]
    model.tex_data[start : start + height * width * 3] = floor_colors(height, width).ravel()
    model.mat_texuniform[mat] = 0
    model.mat_texrepeat[mat] = (1.0, 1.0)
    model.geom_size[geom_id, :2] = FLOOR_HALF_SIZE


@dataclass(frozen=True)
class DMCTask:
    """Which dm_control model an env loads and how the paper renders it."""

    domain: str
    task: str
    camera: int  # the agent's camera (tracks the body's center of mass)
    action_repeat: int = 2


_TASKS = {
    "quadruped_pixel": DMCTask("quadruped", "run", camera=2),
    "humanoid_pixel": DMCTask("humanoid", "run", camera=0),
}


def _dmc_spec(name: str, act_dim: int) -> EnvSpec:
    return EnvSpec(
        name=name,
        obs_dim=int(np.prod(FRAME)) * FRAME_STACK,
        act_dim=act_dim,
        episode_len=200,
        coord_names=("x", "y"),
        coord_index=(),  # coordinates come from the simulator, not the pixels
        goal_range=7.5,
        frame_shape=FRAME,
        frame_stack=FRAME_STACK,
    )


QUADRUPED = _dmc_spec("quadruped_pixel", 12)
HUMANOID = _dmc_spec("humanoid_pixel", 21)


class PixelBatch:
    """What every pixel batch env shares: one cheap renderer draws the agent's frames of every
    env in the batch (all are built from the same XML), a second one, made on demand, the
    third-person view of videos; and the frame stack. Subclasses hold their simulators in
    `self._envs` and give `_data(i)`, each env's MjData."""

    _envs: list[Any]

    def __init__(
        self,
        spec: EnvSpec,
        num_envs: int,
        seed: int,
        model: mujoco.MjModel,
        camera: int | mujoco.MjvCamera,
        view_camera: mujoco.MjvCamera,
    ) -> None:
        self.spec, self.num_envs, self.seed = spec, num_envs, seed
        self._model, self._camera, self._view_camera = model, camera, view_camera
        cheap_scene(model, FRAME[0])
        self._renderer = mujoco.Renderer(model, FRAME[0], FRAME[1])
        self._viewer: mujoco.Renderer | None = None
        self._stack = FrameStack(spec.frame_stack)
        _close_at_exit(self)

    # ---- what a subclass gives --------------------------------------------------------
    def _data(self, index: int) -> mujoco.MjData:
        raise NotImplementedError

    def _reset_env(self, index: int, seed: int) -> None:
        raise NotImplementedError

    def _step_env(self, index: int, action: np.ndarray) -> float:
        """Advance env `index` by one agent step; returns its task reward."""
        raise NotImplementedError

    def _coords(self) -> np.ndarray:
        """[n, k] coverage coordinates (then task flags) from the simulators."""
        raise NotImplementedError

    # ---- BatchEnv ---------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        seed = self.seed if seed is None else seed
        for i in range(self.num_envs):
            self._reset_env(i, seed + i)
        return self._stack.reset(self._frames()), self._coords()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.clip(np.asarray(actions, np.float64), -1.0, 1.0)
        rewards = [self._step_env(i, action) for i, action in enumerate(actions)]
        return StepResult(
            obs=self._stack.push(self._frames()),
            reward=np.asarray(rewards, np.float32),
            terminated=np.zeros(self.num_envs, bool),
            coords=self._coords(),
        )

    def _frame(self, data: mujoco.MjData) -> np.ndarray:
        self._renderer.update_scene(data, camera=self._camera)
        return self._renderer.render()

    def _frames(self) -> np.ndarray:
        return np.stack([self._frame(self._data(i)) for i in range(self.num_envs)])

    def render(self, index: int = 0) -> np.ndarray:
        """The agent's 64x64 view (upscaled) beside the third-person view."""
        if self._viewer is None:
            self._model.vis.global_.offwidth = VIEW_SIZE
            self._model.vis.global_.offheight = VIEW_SIZE
            self._viewer = mujoco.Renderer(self._model, VIEW_SIZE, VIEW_SIZE)
        data = self._data(index)
        self._viewer.update_scene(data, camera=self._view_camera)
        third = self._viewer.render()
        scale = VIEW_SIZE // FRAME[0]
        own = np.repeat(np.repeat(self._frame(data), scale, axis=0), scale, axis=1)
        return np.concatenate([own, third], axis=1)

    def close(self) -> None:
        """Both renderers, then the subclass's envs (`self._envs`); a second call does
        nothing."""
        for renderer in (self._renderer, self._viewer):
            if renderer is not None:
                renderer.close()
        self._renderer = self._viewer = None  # type: ignore[assignment]
        for env in self._envs:
            env.close()
        self._envs = []
        _OPEN.discard(self)


# Pixel envs not yet closed. At interpreter exit they are closed while EGL still exists: left
# to the garbage collector, a renderer's __del__ runs after EGL's teardown and prints
# tracebacks. MuJoCo registers EGL's teardown when the first renderer is made; exit hooks run
# last-registered first, so ours is registered after that.
_OPEN: weakref.WeakSet[PixelBatch] = weakref.WeakSet()


def _close_open_envs() -> None:
    for env in list(_OPEN):
        env.close()


def _close_at_exit(env: PixelBatch) -> None:
    if not _OPEN:
        atexit.unregister(_close_open_envs)
        atexit.register(_close_open_envs)
    _OPEN.add(env)


def tracking_camera(body: int = 1) -> mujoco.MjvCamera:
    """A third-person camera that follows `body` (1: the root body) from behind and above."""
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = body
    camera.distance, camera.elevation, camera.azimuth = 6.0, -25.0, 135.0
    return camera


class DMCPixels(PixelBatch):
    """`num_envs` dm_control envs stepped in lockstep, seen as stacks of 64x64 frames."""

    def __init__(self, spec: EnvSpec, num_envs: int = 1, seed: int = 0) -> None:
        from dm_control import suite

        self.task = _TASKS[spec.name]
        self._envs = [
            suite.load(self.task.domain, self.task.task, task_kwargs={"random": seed + i})
            for i in range(num_envs)
        ]
        bounds = self._envs[0].action_spec()
        self._low, self._high = bounds.minimum, bounds.maximum
        if self._low.shape != (spec.act_dim,):
            raise ValueError(f"{spec.name}: action size {self._low.shape} != {spec.act_dim}")
        model = self._envs[0].physics.model.ptr
        color_floor(model)
        super().__init__(spec, num_envs, seed, model, self.task.camera, tracking_camera())

    def _data(self, index: int) -> mujoco.MjData:
        return self._envs[index].physics.data.ptr

    def _coords(self) -> np.ndarray:
        xy = [env.physics.named.data.xpos["torso", :2] for env in self._envs]
        return np.asarray(xy, np.float32)

    def _reset_env(self, index: int, seed: int) -> None:
        env = self._envs[index]
        env.task._random = np.random.RandomState(seed)  # dm_control reads it at reset
        env.reset()

    def _step_env(self, index: int, action: np.ndarray) -> float:
        scaled = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        return sum(
            self._envs[index].step(scaled).reward or 0.0 for _ in range(self.task.action_repeat)
        )

    def set_coords(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """Goal images: each env's current pose moved to `coords`, rendered and stacked as a
        still observation; the simulation itself is left as it was."""
        frames = []
        for i, env in enumerate(self._envs):
            physics = env.physics
            state = physics.get_state()
            physics.data.qpos[:2] = coords[i]  # the root free joint's x-y
            physics.forward()
            frames.append(self._frame(self._data(i)))
            physics.set_state(state)
            physics.forward()
        return np.concatenate([np.stack(frames)] * self.spec.frame_stack, axis=-1)


def make(spec: EnvSpec, num_envs: int, seed: int) -> DMCPixels:
    """Registry hook."""
    return DMCPixels(spec, num_envs, seed)
