"""OGBench's pointmaze as a goal env, and the shortest-path oracle over its cells that the
dataset generator (`metra.data`) follows."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from metra.envs.goals import GoalEnvSpec, UnwrappedEnv, check_task

_OGBENCH_IDS = {
    "pointmaze-medium": "pointmaze-medium-navigate-v0",
    "pointmaze-large": "pointmaze-large-navigate-v0",
}


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


class PointMaze(UnwrappedEnv):
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
        check_task(self.spec, task)
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
