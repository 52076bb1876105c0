"""A small grid world with a one-way door, whose true shortest paths are known.

It checks learned quasimetrics: through the door '>' (entered only by a step to the right)
the left room reaches the right room in a few steps, while the way back goes round by the
bottom corridor, so the true distances are asymmetric.
"""

from __future__ import annotations

from collections import deque

import numpy as np

LAYOUT = (
    "###########",
    "#....#....#",
    "#....#....#",
    "#....>....#",
    "#....#....#",
    "#....#....#",
    "#.........#",
    "###########",
)
MOVES = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)])  # (dx, dy): right, left, down, up


class GridWorld:
    """Observation = (x, y) of the cell (column, row) as floats; an action in [-1, 1]^2
    moves one cell along its larger coordinate (x: right is +, y: down is +)."""

    obs_dim = 2
    act_dim = 2

    def __init__(self, layout: tuple[str, ...] = LAYOUT) -> None:
        self.layout = layout
        self.cells = np.array(
            [(x, y) for y, row in enumerate(layout) for x, c in enumerate(row) if c != "#"]
        )
        self._index = {tuple(c): i for i, c in enumerate(self.cells)}

    def _move(self, cell: tuple[int, int], move: np.ndarray) -> tuple[int, int]:
        x, y = cell[0] + int(move[0]), cell[1] + int(move[1])
        target = self.layout[y][x]
        if target == "#" or (target == ">" and move[0] != 1):
            return cell
        return x, y

    def step(self, cells: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Next cells [n, 2] of cells [n, 2] under actions [n, 2]."""
        actions = np.asarray(actions)
        horizontal = np.abs(actions[:, 0]) >= np.abs(actions[:, 1])
        moves = np.where(
            horizontal[:, None],
            np.stack([np.sign(actions[:, 0]), np.zeros(len(actions))], -1),
            np.stack([np.zeros(len(actions)), np.sign(actions[:, 1])], -1),
        )
        return np.array([self._move(tuple(c), m) for c, m in zip(cells, moves, strict=True)])

    def random_walk(self, episodes: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Uniformly random actions from uniformly random cells, in the offline dataset
        format of `metra.data` (episodes back to back)."""
        rng = np.random.default_rng(seed)
        cells = self.cells[rng.integers(0, len(self.cells), episodes)]
        obs, actions, next_obs = [], [], []
        for _ in range(length):
            action = rng.uniform(-1, 1, (episodes, 2))
            nxt = self.step(cells, action)
            obs.append(cells)
            actions.append(action)
            next_obs.append(nxt)
            cells = nxt

        def flat(steps: list[np.ndarray]) -> np.ndarray:
            return np.stack(steps, 1).reshape(episodes * length, -1).astype(np.float32)

        terminals = np.zeros((episodes, length), np.float32)
        terminals[:, -1] = 1.0
        return {
            "observations": flat(obs),
            "actions": flat(actions),
            "next_observations": flat(next_obs),
            "terminals": terminals.reshape(-1),
        }

    def shortest_paths(self) -> np.ndarray:
        """[i, j]: fewest steps from cell i to cell j (breadth-first search per cell)."""
        n = len(self.cells)
        dist = np.full((n, n), np.inf)
        for start in range(n):
            dist[start, start] = 0
            queue = deque([tuple(self.cells[start])])
            while queue:
                cell = queue.popleft()
                for move in MOVES:
                    nxt = self._move(cell, move)
                    j = self._index[nxt]
                    if np.isinf(dist[start, j]):
                        dist[start, j] = dist[start, self._index[cell]] + 1
                        queue.append(nxt)
        return dist
