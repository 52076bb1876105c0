"""Goal-conditioned environments for goal-reaching agents (QRL), one episode at a time.

Each env gives an observation and a goal, and says when the goal is reached by the benchmark's
own rule, so success rates compare with published ones:

- `pointmaze-medium`, `pointmaze-large`: OGBench's `pointmaze-*-navigate-v0` (no dataset is
  downloaded). A goal is an observation (the x-y of the point), evaluation follows OGBench: five
  fixed tasks, an episode ends at success or after 1000 steps. `MazeOracle` gives shortest-path
  actions over the maze cells, for the dataset generator in `metra.data`.
- `fetch_reach`, `fetch_push`: Gymnasium-Robotics `FetchReach-v4` / `FetchPush-v4`. A goal is a
  3-D position (gripper / block), episodes last 50 steps and do not end at success.

OGBench and Gymnasium-Robotics are imported when an env is built, so `import metra` stays light.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = [
    "GOAL_ENV_NAMES",
    "Fetch",
    "GoalEnv",
    "GoalEnvSpec",
    "MazeOracle",
    "PointMaze",
    "goal_env_spec",
    "make_goal_env",
    "patch_gymnasium_robotics",
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
_OGBENCH_IDS = {
    "pointmaze-medium": "pointmaze-medium-navigate-v0",
    "pointmaze-large": "pointmaze-large-navigate-v0",
}
_FETCH_IDS = {"fetch_reach": "FetchReach-v4", "fetch_push": "FetchPush-v4"}


def goal_env_spec(name: str) -> GoalEnvSpec:
    """The spec of goal env `name` without building it (no simulator import)."""
    if name not in _SPECS:
        raise ValueError(f"unknown goal env {name!r}; known goal envs: {', '.join(GOAL_ENV_NAMES)}")
    return _SPECS[name]


def make_goal_env(name: str, seed: int = 0) -> GoalEnv:
    """Build goal env `name`; its first episode is seeded with `seed`."""
    spec = goal_env_spec(name)
    if name in _OGBENCH_IDS:
        return PointMaze(spec, seed)
    return Fetch(spec, seed)


def _check_task(spec: GoalEnvSpec, task: int | None) -> None:
    if task is None:
        return
    if spec.eval_tasks == 0:
        raise ValueError(f"{spec.name} has no fixed evaluation tasks; pass task=None")
    if not 1 <= task <= spec.eval_tasks:
        raise ValueError(f"{spec.name} has evaluation tasks 1..{spec.eval_tasks}, got task={task}")


@contextmanager
def _global_numpy_seeded(rng: np.random.Generator) -> Iterator[None]:
    """OGBench draws start and goal noise from numpy's global RNG; seed it from `rng` for one
    call and restore it after, so episodes repeat given a seed and nobody else's draws change."""
    saved = np.random.get_state()
    np.random.seed(int(rng.integers(2**32)))
    try:
        yield
    finally:
        np.random.set_state(saved)


class MazeOracle:
    """Shortest paths between the free cells of an OGBench maze (breadth-first search), for the
    noisy waypoint-following policy that makes OGBench's navigate datasets.

    Cell (i, j) is row i (y) and column j (x) of `maze_map` (1 = wall); its center is
    `origin + cell_size * (j, i)` in x-y.
    """

    _MOVES = ((-1, 0), (0, -1), (1, 0), (0, 1))

    def __init__(self, maze_map: np.ndarray, origin: tuple[float, float], cell_size: float) -> None:
        self.maze_map = np.asarray(maze_map)
        self.origin = np.asarray(origin, np.float64)
        self.cell_size = float(cell_size)
        rows, cols = self.maze_map.shape
        self.free_cells: tuple[tuple[int, int], ...] = tuple(
            (i, j) for i in range(rows) for j in range(cols) if self.maze_map[i, j] == 0
        )
        self._index = {cell: k for k, cell in enumerate(self.free_cells)}
        # OGBench's "vertex" cells, the goals of its navigate data: free cells that are not in
        # the middle of a straight corridor (corners, junctions, dead ends, rooms).
        self.vertex_cells: tuple[tuple[int, int], ...] = tuple(
            cell for cell in self.free_cells if not self._is_hallway(*cell)
        )
        # _next_cell[k, i, j]: the neighbour of free cell (i, j) one step closer to free cell k.
        self._next_cell = np.full((len(self.free_cells), rows, cols, 2), -1, np.int64)
        for k, target in enumerate(self.free_cells):
            dist = self._distances_to(target)
            for i, j in self.free_cells:
                if (i, j) == target or dist[i, j] < 0:
                    continue
                self._next_cell[k, i, j] = min(
                    (n for n in self._neighbours(i, j) if dist[n] >= 0), key=lambda n: dist[n]
                )

    @classmethod
    def from_ogbench(cls, maze_env: Any) -> MazeOracle:
        """The oracle of an (unwrapped) OGBench maze env, through its public map and helpers."""
        origin = np.asarray(maze_env.ij_to_xy((0, 0)), np.float64)
        step = np.asarray(maze_env.ij_to_xy((1, 1)), np.float64) - origin
        if step[0] != step[1]:
            raise ValueError(f"maze cells are not square: {step}")
        return cls(maze_env.maze_map, (origin[0], origin[1]), step[0])

    def _free(self, i: int, j: int) -> bool:
        rows, cols = self.maze_map.shape
        return 0 <= i < rows and 0 <= j < cols and self.maze_map[i, j] == 0

    def _is_hallway(self, i: int, j: int) -> bool:
        """Free above and below with walls left and right, or the transpose (OGBench's rule)."""
        up, down = self._free(i - 1, j), self._free(i + 1, j)
        left, right = self._free(i, j - 1), self._free(i, j + 1)
        return (up and down and not left and not right) or (left and right and not up and not down)

    def _neighbours(self, i: int, j: int) -> Iterator[tuple[int, int]]:
        rows, cols = self.maze_map.shape
        for di, dj in self._MOVES:
            ni, nj = i + di, j + dj
            if 0 <= ni < rows and 0 <= nj < cols and self.maze_map[ni, nj] == 0:
                yield ni, nj

    def _distances_to(self, target: tuple[int, int]) -> np.ndarray:
        """Steps from every cell to `target` (-1: unreachable or wall)."""
        dist = np.full(self.maze_map.shape, -1, np.int64)
        dist[target] = 0
        queue = deque([target])
        while queue:
            cell = queue.popleft()
            for n in self._neighbours(*cell):
                if dist[n] < 0:
                    dist[n] = dist[cell] + 1
                    queue.append(n)
        return dist

    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        """The maze cell that holds point `xy` (clipped to the map)."""
        rows, cols = self.maze_map.shape
        j = int(np.floor((xy[0] - self.origin[0]) / self.cell_size + 0.5))
        i = int(np.floor((xy[1] - self.origin[1]) / self.cell_size + 0.5))
        return min(max(i, 0), rows - 1), min(max(j, 0), cols - 1)

    def cell_center(self, cell: tuple[int, int]) -> np.ndarray:
        """x-y of the center of `cell`."""
        return self.origin + self.cell_size * np.array([cell[1], cell[0]], np.float64)

    def next_waypoint(self, xy: np.ndarray, target_xy: np.ndarray) -> np.ndarray:
        """The center of the next cell on a shortest path from `xy` to `target_xy`, or the target
        itself once in its cell (or when there is no path, e.g. `xy` inside a wall's cell)."""
        here, target = self.cell_of(xy), self.cell_of(target_xy)
        if here == target or target not in self._index:
            return np.asarray(target_xy, np.float64)
        nxt = self._next_cell[self._index[target], here[0], here[1]]
        if nxt[0] < 0:
            return np.asarray(target_xy, np.float64)
        return self.cell_center((int(nxt[0]), int(nxt[1])))

    def action(self, xy: np.ndarray, target_xy: np.ndarray) -> np.ndarray:
        """Unit-length (the action bound) move toward the next waypoint to `target_xy`."""
        direction = self.next_waypoint(xy, target_xy) - np.asarray(xy, np.float64)
        return direction / max(float(np.linalg.norm(direction)), 1e-6)


class _UnwrappedEnv:
    """What both goal envs share: a Gymnasium env stepped unwrapped in `_env`."""

    _env: Any

    def render(self) -> np.ndarray:
        return np.asarray(self._env.render(), np.uint8)

    def close(self) -> None:
        self._env.close()


class PointMaze(_UnwrappedEnv):
    """OGBench pointmaze: the observation and the goal are x-y positions; success within 1.0."""

    def __init__(self, spec: GoalEnvSpec, seed: int = 0) -> None:
        import ogbench

        self.spec = spec
        # Stepped unwrapped: the time limit is ours, Gymnasium's checker wrappers cost time.
        self._env = ogbench.make_env_and_datasets(_OGBENCH_IDS[spec.name], env_only=True).unwrapped
        self.oracle = MazeOracle.from_ogbench(self._env)
        self._seed: int | None = seed
        self._rng = np.random.default_rng(seed)
        self._t = 0

    def reset(
        self, seed: int | None = None, task: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        _check_task(self.spec, task)
        if seed is not None:
            self._seed, self._rng = seed, np.random.default_rng(seed)
        if task is None:
            # A random start and a different random goal cell; OGBench adds its own noise to both.
            picks = self._rng.choice(len(self.oracle.free_cells), size=2, replace=False)
            start, goal = (self.oracle.free_cells[k] for k in picks)
            options: dict[str, Any] = {"task_info": {"init_ij": start, "goal_ij": goal}}
        else:
            options = {"task_id": task}
        if self._seed is not None:
            # Reset's warm-up steps sample the action space, which has its own RNG.
            self._env.action_space.seed(self._seed)
        with _global_numpy_seeded(self._rng):
            obs, info = self._env.reset(seed=self._seed, options=options)
        self._seed = None
        self._t = 0
        return obs.astype(np.float32), np.asarray(info["goal"], np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        obs, _, _, _, info = self._env.step(action)
        self._t += 1
        success = bool(info["success"])
        # OGBench's evaluation ends an episode at success.
        return obs.astype(np.float32), success, success or self._t >= self.spec.episode_len


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


class Fetch(_UnwrappedEnv):
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
        _check_task(self.spec, task)
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
