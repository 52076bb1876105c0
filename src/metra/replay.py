"""Numpy ring buffers of transitions on the host: flat transitions, whole episodes (goal
relabeling), and episodes of single frames stacked when sampled (pixels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions stored field by field; the oldest are overwritten."""

    xp: Any = np  # the array module holding the rows

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = {
            k: self.xp.zeros((capacity, *shape), dtype) for k, (shape, dtype) in fields.items()
        }
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
        self._write(batch, n)
        self._advance(n)

    def _write(self, batch: dict[str, np.ndarray], n: int) -> None:
        rows = (self.ptr + np.arange(n)) % self.capacity
        for key, value in batch.items():
            self.data[key][rows] = value

    def _advance(self, n: int) -> None:
        """Move the write position past `n` freshly written rows."""
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
            self._fill(size, f)
            self.ptr, self.size = int(f["ptr"]), size

    def _fill(self, size: int, saved: np.lib.npyio.NpzFile) -> None:
        for key, value in self.data.items():
            value[:size] = saved[key]


class DeviceReplay(ReplayBuffer):
    """A `ReplayBuffer` whose rows are JAX arrays on the device, written and sampled inside
    jitted code (the MJX epoch) by the pure `insert` and `draw`; the host keeps the write
    position, which advances by the same count every epoch. Same checkpoint file format."""

    xp: Any = jnp

    @staticmethod
    def insert(data: dict[str, jax.Array], ptr: jax.Array, batch: dict[str, jax.Array]) -> dict:
        """`data` with the n rows of `batch` written from row `ptr` on, wrapping around."""
        capacity = len(next(iter(data.values())))
        rows = (ptr + jnp.arange(len(next(iter(batch.values()))))) % capacity
        return {k: v.at[rows].set(batch[k]) for k, v in data.items()}

    @staticmethod
    def draw(data: dict[str, jax.Array], size: jax.Array, key: jax.Array, n: int) -> dict:
        """`n` rows drawn uniformly from the first `size`."""
        idx = jax.random.randint(key, (n,), 0, size)
        return {k: v[idx] for k, v in data.items()}

    def written(self, data: dict[str, jax.Array], n: int) -> None:
        """Adopt `data`, returned by a jitted call that `insert`ed n rows at `ptr`."""
        self.data = data
        self._advance(n)

    def _write(self, batch: dict[str, np.ndarray], n: int) -> None:
        self.data = self.insert(self.data, jnp.asarray(self.ptr), batch)

    def _fill(self, size: int, saved: np.lib.npyio.NpzFile) -> None:
        self.data = {k: v.at[:size].set(saved[k]) for k, v in self.data.items()}


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


ACTOR_GOALS = ("future", "mixed")


def truncated_geometric(rng: np.random.Generator, discount: float, count: np.ndarray) -> np.ndarray:
    """Offsets k in [0, count) drawn with P(k) proportional to discount^k (inverse CDF)."""
    u = rng.random(count.shape)
    if discount >= 1.0:
        return np.minimum((u * count).astype(np.int64), count - 1)
    k = np.floor(np.log1p(-u * (1.0 - discount**count)) / np.log(discount)).astype(np.int64)
    return np.clip(k, 0, count - 1)


def sample_goal_batch(
    buffer: ReplayBuffer,
    rng: np.random.Generator,
    n: int,
    goal_index: tuple[int, ...] | None = None,
    actor_goals: str = "future",
    future_discount: float = 0.99,
) -> dict[str, np.ndarray]:
    """Transitions of an `episode_buffer` with the two goals QRL trains on. `value_goal` is a
    random state of the buffer. `actor_goal`, with `actor_goals`:
    - "future" (OGBench): a state the same episode reached later, uniform over the rest of it;
    - "mixed" (the official online QRL, after Contrastive RL): the first half of the batch a
      random next state of the buffer, the second half a later state of the same episode at
      offset k >= 0 from the next state, P(k) proportional to `future_discount`^k within it.

    `goal_index` None: goals are observations; else a goal is obs[goal_index] and the batch
    also carries `achieved`, each obs's own goal."""
    if buffer.size == 0:
        raise ValueError("cannot sample from an empty episode buffer")
    if actor_goals not in ACTOR_GOALS:
        raise ValueError(f"actor_goals must be one of {ACTOR_GOALS}, got {actor_goals!r}")
    data = buffer.data
    horizon = data["obs"].shape[1]
    ep, t = rng.integers(0, buffer.size, n), rng.integers(0, horizon, n)
    if actor_goals == "future":
        later = rng.integers(t, horizon)
    else:
        later = t + truncated_geometric(rng, future_discount, horizon - t)
    other_ep, other_t = rng.integers(0, buffer.size, n), rng.integers(0, horizon, n)
    actor_goal = data["next_obs"][ep, later]
    if actor_goals == "mixed":
        half = n // 2
        actor_goal[:half] = data["next_obs"][other_ep[:half], other_t[:half]]
    batch = {
        "obs": data["obs"][ep, t],
        "action": data["action"][ep, t],
        "next_obs": data["next_obs"][ep, t],
        "value_goal": data["obs"][other_ep, other_t],
        "actor_goal": actor_goal,
    }
    if goal_index is not None:
        index = list(goal_index)
        batch["value_goal"] = batch["value_goal"][:, index]
        batch["actor_goal"] = batch["actor_goal"][:, index]
        batch["achieved"] = batch["obs"][:, index]
    return batch


def context_features(fields: dict[str, np.ndarray], next_obs_in_context: bool) -> np.ndarray:
    """Meta-RL context transitions [..., c]: (obs, action, reward[, next_obs]) concatenated,
    from fields shaped [..., d] (reward [...])."""
    parts = [fields["obs"], fields["action"], fields["reward"][..., None]]
    if next_obs_in_context:
        parts.append(fields["next_obs"])
    return np.concatenate(parts, -1).astype(np.float32)


class TaskReplay:
    """Per-task episode buffers for context-based meta-RL (PEARL's two buffers in one).

    Task t keeps its last `capacity` episodes as rows of `episode_len` steps with their
    lengths (episodes may end early). Every episode trains the actor-critic; only those of the
    task's latest collection that are marked `for_context` are context (PEARL's encoder
    buffer, cleared each time the task is collected again).

    A context transition is (obs, action, reward) or, with `next_obs_in_context`,
    (obs, action, reward, next_obs), concatenated on the last axis.
    """

    def __init__(
        self,
        num_tasks: int,
        capacity: int,
        episode_len: int,
        obs_dim: int,
        act_dim: int,
        next_obs_in_context: bool = False,
    ) -> None:
        step = (episode_len,)
        fields = {
            "obs": ((*step, obs_dim), np.dtype(np.float32)),
            "action": ((*step, act_dim), np.dtype(np.float32)),
            "reward": (step, np.dtype(np.float32)),
            "next_obs": ((*step, obs_dim), np.dtype(np.float32)),
            "mask": (step, np.dtype(np.float32)),  # 0 at a terminal state
            "length": ((), np.dtype(np.int32)),
            "for_context": ((), np.dtype(bool)),
        }
        self.tasks = [ReplayBuffer(capacity, fields) for _ in range(num_tasks)]
        self.episode_len = episode_len
        self.next_obs_in_context = next_obs_in_context

    def add(self, task: int, episodes: dict[str, np.ndarray], for_context: bool) -> None:
        """Append episodes of `task` (fields [n, T, ...] as in __init__ besides `length` [n];
        steps past an episode's length are ignored)."""
        n = len(episodes["length"])
        self.tasks[task].add({**episodes, "for_context": np.full(n, for_context)})

    def clear_context(self, task: int) -> None:
        """Forget `task`'s context episodes (they stay in its RL data)."""
        self.tasks[task].data["for_context"][:] = False

    def _lengths(self, task: int, context_only: bool) -> np.ndarray:
        """Steps of each stored episode of `task` (0 for non-context ones if `context_only`)."""
        buf = self.tasks[task]
        lengths = buf.data["length"][: buf.size].astype(np.int64)
        return lengths * buf.data["for_context"][: buf.size] if context_only else lengths

    def context_size(self, task: int) -> int:
        """Transitions of `task` that are context."""
        return int(self._lengths(task, context_only=True).sum())

    def _steps(
        self, task: int, rng: np.random.Generator, n: int, context_only: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(episode, step) of n transitions of `task`, uniform over its valid steps."""
        lengths = self._lengths(task, context_only)
        ends = np.cumsum(lengths)
        if len(ends) == 0 or ends[-1] == 0:
            what = "context" if context_only else "data"
            raise ValueError(f"task {task} has no {what} to sample from yet")
        flat = rng.integers(0, ends[-1], n)
        ep = np.searchsorted(ends, flat, side="right")
        return ep, flat - (ends[ep] - lengths[ep])

    def _context_of(self, task: int, ep: np.ndarray, t: np.ndarray) -> np.ndarray:
        data = self.tasks[task].data
        fields = {k: data[k][ep, t] for k in ("obs", "action", "reward", "next_obs")}
        return context_features(fields, self.next_obs_in_context)

    def sample_rl(
        self, rng: np.random.Generator, tasks: np.ndarray, n: int
    ) -> dict[str, np.ndarray]:
        """n transitions of each task in `tasks`: obs, action, next_obs [m, n, ...], reward
        and mask [m, n]."""
        rows = []
        for task in tasks:
            ep, t = self._steps(int(task), rng, n, context_only=False)
            d = self.tasks[int(task)].data
            rows.append({k: d[k][ep, t] for k in ("obs", "action", "reward", "next_obs", "mask")})
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def sample_context(self, rng: np.random.Generator, tasks: np.ndarray, n: int) -> np.ndarray:
        """n context transitions of each task in `tasks`: [m, n, c]."""
        out = []
        for task in tasks:
            ep, t = self._steps(int(task), rng, n, context_only=True)
            out.append(self._context_of(int(task), ep, t))
        return np.stack(out)

    def sample_crops(
        self, rng: np.random.Generator, tasks: np.ndarray, window: int
    ) -> dict[str, np.ndarray]:
        """CoCOA's pairs: for each task in `tasks`, one context episode and two random crops of
        `window` consecutive steps from it, `query` and `key` [m, w, c], with masks [m, w]
        that are 0 past the episode's end (an episode shorter than w is one crop)."""
        out: dict[str, list[np.ndarray]] = {
            "query": [],
            "key": [],
            "query_mask": [],
            "key_mask": [],
        }
        offsets = np.arange(window)
        for task in tasks:
            lengths = self._lengths(int(task), context_only=True)
            episodes = np.flatnonzero(lengths)
            if len(episodes) == 0:
                raise ValueError(f"task {task} has no context episode to crop")
            ep = int(rng.choice(episodes))
            length = int(lengths[ep])
            for name in ("query", "key"):
                start = int(rng.integers(0, max(length - window, 0) + 1))
                t = start + offsets
                out[f"{name}_mask"].append((t < length).astype(np.float32))
                out[name].append(self._context_of(int(task), np.full(window, ep), t % length))
        return {k: np.stack(v) for k, v in out.items()}

    def save(self, path: Path) -> None:
        """One npz of every task's buffer (atomically, via a temporary file)."""
        arrays: dict[str, np.ndarray] = {}
        for i, buf in enumerate(self.tasks):
            arrays[f"{i}/ptr"], arrays[f"{i}/size"] = np.asarray(buf.ptr), np.asarray(buf.size)
            arrays.update({f"{i}/{k}": v[: buf.size] for k, v in buf.data.items()})
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    def load(self, path: Path) -> None:
        with np.load(path) as f:
            for i, buf in enumerate(self.tasks):
                size = int(f[f"{i}/size"])
                for key, value in buf.data.items():
                    value[:size] = f[f"{i}/{key}"]
                buf.ptr, buf.size = int(f[f"{i}/ptr"]), size
