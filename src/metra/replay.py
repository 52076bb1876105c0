"""Numpy ring buffers of transitions on the host: flat transitions, whole episodes (goal
relabeling), and episodes of single frames stacked when sampled (pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions stored field by field; the oldest are overwritten."""

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = {k: np.zeros((capacity, *shape), dtype) for k, (shape, dtype) in fields.items()}
        self.ptr = 0  # next row to write
        self.size = 0  # rows holding data

    def __len__(self) -> int:
        return self.size

    def nbytes(self) -> int:
        """Memory the buffer takes when full."""
        return sum(v.nbytes for v in self.data.values())

    def add(self, batch: dict[str, np.ndarray]) -> None:
        """Append n transitions (every field shaped [n, ...]), wrapping around at capacity."""
        if set(batch) != set(self.data):
            raise ValueError(f"replay fields {sorted(self.data)} != given {sorted(batch)}")
        n = len(next(iter(batch.values())))
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of {self.capacity}")
        rows = (self.ptr + np.arange(n)) % self.capacity
        for key, value in batch.items():
            self.data[key][rows] = value
        self.ptr = int((self.ptr + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, rng: np.random.Generator, *shape: int) -> dict[str, np.ndarray]:
        """Uniformly sampled transitions, every field shaped [*shape, ...]."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=shape)
        return {k: v[idx] for k, v in self.data.items()}

    def save(self, path: Path) -> None:
        """Write the filled rows and the write position (atomically, via a temporary file)."""
        tmp = path.with_suffix(".tmp.npz")
        arrays = {k: v[: self.size] for k, v in self.data.items()}
        np.savez(tmp, ptr=self.ptr, size=self.size, **arrays)
        tmp.replace(path)

    def load(self, path: Path) -> None:
        with np.load(path) as f:
            size = int(f["size"])
            if size > self.capacity:
                raise ValueError(f"{path} holds {size} transitions > capacity {self.capacity}")
            for key, value in self.data.items():
                value[:size] = f[key]
            self.ptr, self.size = int(f["ptr"]), size


class FrameReplay(ReplayBuffer):
    """Transitions whose observations are stacks of the latest k frames, each frame stored
    once as uint8: a row is one episode, `frames` [T + 1, H, W, C] (the newest frame of every
    observation) beside per-step fields [T, ...]. A stack is rebuilt when sampled, its frame
    indices clamped at the episode start, where the env pads a reset with the first frame;
    storing stacks instead would take k times the memory, twice over for next_obs."""

    def __init__(
        self,
        capacity: int,
        episode_len: int,
        frame_shape: tuple[int, ...],
        stack: int,
        fields: dict[str, tuple[tuple[int, ...], np.dtype]],
    ) -> None:
        """`capacity` in transitions (whole episodes are kept); `fields`: per-step fields
        besides the observations (action, latent, ...)."""
        if capacity < episode_len:
            raise ValueError(f"replay capacity {capacity} < one episode ({episode_len} steps)")
        rows = {k: ((episode_len, *shape), dtype) for k, (shape, dtype) in fields.items()}
        frames = ((episode_len + 1, *frame_shape), np.dtype(np.uint8))
        super().__init__(capacity // episode_len, {"frames": frames, **rows})
        self.episode_len, self.stack = episode_len, stack

    def __len__(self) -> int:
        return self.size * self.episode_len

    def _stacks(self, episodes: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Frame stacks ending at frame index `last` of `episodes`, channels concatenated."""
        offsets = np.arange(1 - self.stack, 1)
        index = np.maximum(last[..., None] + offsets, 0)
        frames = self.data["frames"][episodes[..., None], index]  # [..., k, H, W, C]
        return np.concatenate(np.moveaxis(frames, -4, 0), axis=-1)

    def sample(self, rng: np.random.Generator, *shape: int) -> dict[str, np.ndarray]:
        """Uniformly sampled transitions with `obs` and `next_obs` as frame stacks."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        ep = rng.integers(0, self.size, size=shape)
        t = rng.integers(0, self.episode_len, size=shape)
        batch = {k: v[ep, t] for k, v in self.data.items() if k != "frames"}
        return {"obs": self._stacks(ep, t), "next_obs": self._stacks(ep, t + 1), **batch}


def episode_buffer(capacity: int, episode_len: int, obs_dim: int, act_dim: int) -> ReplayBuffer:
    """A buffer whose rows are whole episodes of `episode_len` steps, for goal relabeling."""
    step = (episode_len,)
    return ReplayBuffer(
        capacity,
        {
            "obs": ((*step, obs_dim), np.dtype(np.float32)),
            "action": ((*step, act_dim), np.dtype(np.float32)),
            "next_obs": ((*step, obs_dim), np.dtype(np.float32)),
        },
    )


def sample_goal_batch(
    buffer: ReplayBuffer,
    rng: np.random.Generator,
    n: int,
    goal_index: tuple[int, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Transitions of an `episode_buffer` with the two goals QRL trains on, as OGBench
    samples them: `value_goal`, a random state of the buffer; `actor_goal`, a state the
    same episode reached later (uniform over the rest of the episode).

    `goal_index` None: goals are observations; else a goal is obs[goal_index] and the batch
    also carries `achieved`, each obs's own goal."""
    if buffer.size == 0:
        raise ValueError("cannot sample from an empty episode buffer")
    data = buffer.data
    horizon = data["obs"].shape[1]
    ep, t = rng.integers(0, buffer.size, n), rng.integers(0, horizon, n)
    later = rng.integers(t, horizon)
    other_ep, other_t = rng.integers(0, buffer.size, n), rng.integers(0, horizon, n)
    batch = {
        "obs": data["obs"][ep, t],
        "action": data["action"][ep, t],
        "next_obs": data["next_obs"][ep, t],
        "value_goal": data["obs"][other_ep, other_t],
        "actor_goal": data["next_obs"][ep, later],
    }
    if goal_index is not None:
        index = list(goal_index)
        batch["value_goal"] = batch["value_goal"][:, index]
        batch["actor_goal"] = batch["actor_goal"][:, index]
        batch["achieved"] = batch["obs"][:, index]
    return batch
