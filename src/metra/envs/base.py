"""The rollout seam: a batch of environments stepped together.

Every backend (numpy, Gymnasium/MuJoCo, later MJX on a GPU) implements `BatchEnv`, so the
trainer and the evaluation never know which simulator runs underneath.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# Evaluation episodes (SAC's, QRL's goals and starts, meta-test tasks) are seeded from here on,
# far above any training seed. The skill evaluation keeps its own (metra.eval.skills) so that
# its published figures reproduce.
EVAL_SEED = 10_000


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about an environment that agents, trainers and evaluation need."""

    name: str
    obs_dim: int
    act_dim: int
    episode_len: int
    # Names of the coordinates that coverage counts, and where they sit in the observation.
    coord_names: tuple[str, ...]
    coord_index: tuple[int, ...]
    # Goals for zero-shot goal reaching are drawn uniformly within +-goal_range of the start.
    goal_range: float
    # True when the episode only ends by the time limit (no terminal states).
    never_terminates: bool = True
    # Pixel envs: one RGB frame is `frame_shape` (H, W, 3) and an observation is the latest
    # `frame_stack` frames concatenated on channels, uint8 [H, W, 3 * frame_stack]; obs_dim is
    # then its flat size. None for state vectors.
    frame_shape: tuple[int, int, int] | None = None
    frame_stack: int = 1
    # Subtasks whose 0/1 completion flags follow the coverage coordinates in `coords` (kitchen).
    task_names: tuple[str, ...] = ()

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """The shape of one observation: (obs_dim,) or (H, W, 3 * frame_stack)."""
        if self.frame_shape is None:
            return (self.obs_dim,)
        height, width, channels = self.frame_shape
        return (height, width, channels * self.frame_stack)


@dataclass
class StepResult:
    """One synchronous step of every env in the batch."""

    obs: np.ndarray  # [n, *obs_shape]: float32 states or uint8 frame stacks
    reward: np.ndarray  # [n] float32
    terminated: np.ndarray  # [n] bool: a true terminal state (no bootstrap)
    # [n, len(coord_names) + len(task_names)] float32: true simulator coordinates, then the
    # subtask flags ([n, 0] for envs without coordinates)
    coords: np.ndarray
    # Other per-step fields by name, each [n]: `success` for meta-RL and goal envs.
    info: dict[str, np.ndarray] = field(default_factory=dict)


class Stepper(Protocol):
    """The batch-env protocol every rollout runs on: `num_envs` envs stepped together. An env
    whose episode ends before the others' is frozen until the next `reset`: it returns its
    last observation, reward 0 and terminated True."""

    num_envs: int

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Start new episodes (env i seeded with seed + i); returns (obs [n, *obs_shape],
        coords [n, k])."""
        ...

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply actions [n, act_dim] in [-1, 1]."""
        ...

    def close(self) -> None: ...


class BatchEnv(Stepper, Protocol):
    """A batch of `num_envs` copies of one skill env whose episodes start and end together
    (`reset(None)` uses the seed given at make)."""

    spec: EnvSpec

    def set_coords(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """Observations equal to `obs` with their coverage coordinates replaced (goal states;
        pixel envs render the current pose moved to `coords`)."""
        ...

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame [H, W, 3] uint8 of env `index`, for videos (pixel envs: what the agent
        sees beside a third-person view)."""
        ...


def no_coords(n: int) -> np.ndarray:
    """The coordinates [n, 0] of envs that have none to count."""
    return np.zeros((n, 0), np.float32)


def replace_coords(spec: EnvSpec, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Shared `set_coords` for envs whose coordinates are observation entries."""
    out = np.array(obs, dtype=np.float32, copy=True)
    out[..., list(spec.coord_index)] = coords
    return out
