"""A 2-D point mass in a walled square room, vectorized in numpy.

Thousands of steps per millisecond, so a skill agent visibly raises its coverage within a
CPU minute: the env for tests and the demo.

`point_current` adds a current that carries the point CURRENT per step in +x: downstream it
covers 0.8 per step, upstream 0.2, so going up the room takes four times as long as coming
down. Temporal distances are asymmetric there, which a Euclidean latent cannot represent.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from metra.envs.base import EnvSpec, StepResult, replace_coords

ROOM = 10.0  # the room is [-ROOM, ROOM]^2, i.e. 20 x 20 = 400 coverage bins
SPEED = 0.5  # largest displacement per step along each axis
EPISODE_LEN = 100

CURRENT = 0.3  # point_current: drift per step along +x

SPEC = EnvSpec(
    name="point",
    obs_dim=2,
    act_dim=2,
    episode_len=EPISODE_LEN,
    coord_names=("x", "y"),
    coord_index=(0, 1),
    goal_range=ROOM,  # goals anywhere in the room
)
CURRENT_SPEC = dataclasses.replace(SPEC, name="point_current")


class PointEnv:
    """Observation = position (x, y); action = velocity in [-1, 1]^2 scaled by SPEED, plus a
    drift of `current` along +x."""

    def __init__(self, num_envs: int = 1, seed: int = 0, current: float = 0.0) -> None:
        self.spec = CURRENT_SPEC if current else SPEC
        self.num_envs = num_envs
        self.seed = seed
        self._drift = np.array([current, 0.0], np.float32)
        self._pos = np.zeros((num_envs, 2), np.float32)
        self._trail = [self._pos]  # positions since the reset, for the rendered trail

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed if seed is None else seed)
        # A small jitter around the centre, so starts are not all identical.
        self._pos = rng.uniform(-0.1, 0.1, (self.num_envs, 2)).astype(np.float32)
        self._trail = [self._pos]
        return self._pos.copy(), self._pos.copy()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.clip(np.asarray(actions, np.float32), -1.0, 1.0)
        step = SPEED * actions + self._drift
        self._pos = np.clip(self._pos + step, -ROOM, ROOM).astype(np.float32)
        self._trail.append(self._pos)
        return StepResult(
            obs=self._pos.copy(),
            reward=np.zeros(self.num_envs, np.float32),
            terminated=np.zeros(self.num_envs, bool),
            coords=self._pos.copy(),
        )

    def set_coords(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return replace_coords(self.spec, obs, coords)

    def render(self, index: int = 0, size: int = 128) -> np.ndarray:
        """The room seen from above: its walls, a grid line every 5 units, the path since the
        reset as a trail and the point as a red square."""
        wall = max(size // 32, 2)
        inner = size - 2 * wall
        frame = np.full((size, size, 3), 70, np.uint8)  # the walls
        frame[wall:-wall, wall:-wall] = 240
        for k in range(1, 4):  # grid lines at -5, 0, 5
            line = wall + k * inner // 4
            frame[wall:-wall, line] = frame[line, wall:-wall] = 215

        def pixel(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            col = wall + ((xy[..., 0] + ROOM) / (2 * ROOM) * (inner - 1)).astype(int)
            row = wall + ((ROOM - xy[..., 1]) / (2 * ROOM) * (inner - 1)).astype(int)
            return row, col

        path = np.stack([p[index] for p in self._trail])
        between = np.linspace(0.0, 1.0, 8, endpoint=False)[:, None, None]
        rows, cols = pixel(path[:-1] + between * (path[1:] - path[:-1]) if len(path) > 1 else path)
        frame[rows, cols] = (230, 120, 120)
        row, col = (int(v) for v in pixel(self._pos[index]))
        r = max(size // 40, 2)
        frame[row - r - 1 : row + r + 2, col - r - 1 : col + r + 2] = (120, 0, 0)
        frame[row - r : row + r + 1, col - r : col + r + 1] = (220, 30, 30)
        return frame

    def close(self) -> None:
        pass


def make(spec: EnvSpec, num_envs: int, seed: int) -> PointEnv:
    """Registry hook."""
    return PointEnv(num_envs, seed, CURRENT if spec is CURRENT_SPEC else 0.0)
