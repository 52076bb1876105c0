"""Offline goal-conditioned datasets: generation, saving and checked loading.

A dataset is one `.npz` file (plain `np.savez`, no pickles) with these fields, N transitions:

| field               | shape           | dtype   | meaning                                        |
| ------------------- | --------------- | ------- | ---------------------------------------------- |
| `observations`      | [N, obs_dim]    | float32 | state before the action                        |
| `next_observations` | [N, obs_dim]    | float32 | state after it                                 |
| `actions`           | [N, act_dim]    | float32 | in [-1, 1]                                     |
| `terminals`         | [N]             | float32 | 1.0 on the last transition of each episode     |
| `env`               | [] (0-d)        | str     | the goal env name (`metra.envs.goals`)         |

Episodes are contiguous and in order: within an episode `next_observations[t]` equals
`observations[t + 1]`, so goal-conditioned samplers can draw future states of the same episode.
A terminal marks the end of a recorded episode (a time limit), not a task outcome: there are no
rewards, goals are relabelled from the data.

`generate_pointmaze` follows OGBench's "navigate" protocol (data_gen_scripts/generate_locomaze.py;
its published pointmaze datasets are 1000 episodes of 1001 steps, ours 1000 of 1000): a noisy
oracle walks shortest paths to random goals, a new goal each time the current one is reached.
By default the goals are OGBench's: "vertex" cells (not inside a straight corridor) with uniform
+-1 (a quarter cell) position noise per coordinate, walked to through cell centers and reached
within 1.0 of the noisy goal. `goals="cells"` is ours before: the exact center of any other free
cell.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from metra.envs.goals import GoalEnvSpec, make_goal_env
from metra.envs.maze import PointMaze
from metra.errors import DamagedFileError

__all__ = ["FIELDS", "generate_pointmaze", "load_dataset", "save_dataset"]

FIELDS = ("observations", "next_observations", "actions", "terminals", "env")
_ARRAY_NDIM = {"observations": 2, "next_observations": 2, "actions": 2, "terminals": 1}
# OGBench's success radius for the point: a target counts as reached within it.
_REACH = 1.0
GOAL_MODES = ("ogbench", "cells")


def generate_pointmaze(
    name: str,
    episodes: int,
    episode_len: int = 1000,
    noise: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    goals: str = "ogbench",
    with_targets: bool = False,
) -> dict[str, np.ndarray]:
    """A navigate dataset for pointmaze `name`: each episode starts in a random free cell (with
    OGBench's start noise) and follows shortest paths to random goals, a new one once within
    reach (1.0) of the current one; each action is the unit direction to the next waypoint plus
    N(0, noise^2) per coordinate, clipped to [-1, 1].

    `goals`: "ogbench", a vertex cell's center plus U(-1, 1) per coordinate (the oracle walks
    to the goal cell's center, as OGBench's `get_oracle_subgoal`); "cells", the exact center of
    any other free cell. `with_targets` adds `targets` [N, 2], the goal each step walks to (not
    part of the file format; `save_dataset` drops it)."""
    if episodes < 1 or episode_len < 1:
        raise ValueError(f"episodes and episode_len must be >= 1, got {episodes}, {episode_len}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if goals not in GOAL_MODES:
        raise ValueError(f"goals must be one of {GOAL_MODES}, got {goals!r}")
    env = make_goal_env(name, seed)
    if not isinstance(env, PointMaze):
        env.close()
        raise ValueError(f"generate_pointmaze makes pointmaze datasets, got {name!r}")
    oracle, spec = env.oracle, env.spec
    rng = np.random.default_rng([seed, 1])  # a stream apart from the env's own
    n = episodes * episode_len
    observations = np.empty((n, spec.obs_dim), np.float32)
    next_observations = np.empty((n, spec.obs_dim), np.float32)
    actions = np.empty((n, spec.act_dim), np.float32)
    terminals = np.zeros(n, np.float32)
    terminals[episode_len - 1 :: episode_len] = 1.0
    targets = np.empty((n, 2), np.float32)
    cells = oracle.free_cells
    vertices = oracle.vertex_cells
    goal_noise = oracle.cell_size / 4  # OGBench's add_noise: U(-1, 1) * maze_unit / 4

    def new_target(xy: np.ndarray) -> np.ndarray:
        if goals == "ogbench":
            cell = vertices[rng.integers(len(vertices))]
            return oracle.cell_center(cell) + rng.uniform(-goal_noise, goal_noise, 2)
        here = oracle.cell_of(xy)
        choices = [cell for cell in cells if cell != here]
        return oracle.cell_center(choices[rng.integers(len(choices))])

    def waypoint_goal(target: np.ndarray) -> np.ndarray:
        """Where the oracle walks: OGBench heads for the goal cell's center, not the goal."""
        return oracle.cell_center(oracle.cell_of(target)) if goals == "ogbench" else target

    with tqdm(total=n, unit="step", desc=name, disable=not progress) as bar:
        for ep in range(episodes):
            obs, _ = env.reset()  # obs is the point's x-y
            target = new_target(obs)
            for t in range(ep * episode_len, (ep + 1) * episode_len):
                if np.linalg.norm(obs - target) <= _REACH:
                    target = new_target(obs)
                action = oracle.action(obs, waypoint_goal(target))
                action = np.clip(action + noise * rng.standard_normal(spec.act_dim), -1.0, 1.0)
                next_obs, _, _ = env.step(action)  # episodes here ignore the env's time limit
                observations[t], actions[t], next_observations[t] = obs, action, next_obs
                targets[t] = target
                obs = next_obs
            bar.update(episode_len)
    env.close()
    data = {
        "observations": observations,
        "next_observations": next_observations,
        "actions": actions,
        "terminals": terminals,
        "env": np.array(name),
    }
    if with_targets:
        data["targets"] = targets
    return data


def _check(data: dict[str, np.ndarray], source: str, spec: GoalEnvSpec | None) -> None:
    """Raise ValueError naming `source` and the fix when `data` breaks the format."""
    fix = "regenerate it with metra.data.generate_pointmaze and save_dataset"
    missing = [k for k in FIELDS if k not in data]
    if missing:
        raise ValueError(
            f"{source}: missing field(s) {missing} (has {sorted(data)}); "
            f"a dataset needs {list(FIELDS)}: {fix}"
        )
    env = data["env"]
    if env.ndim != 0 or env.dtype.kind != "U":
        raise ValueError(
            f"{source}: 'env' must be a 0-d string array (the goal env name), got {env.dtype} "
            f"with shape {env.shape}; {fix}"
        )
    for key, ndim in _ARRAY_NDIM.items():
        arr = data[key]
        if arr.dtype != np.float32 or arr.ndim != ndim:
            raise ValueError(
                f"{source}: {key!r} must be float32 with {ndim} dims, got {arr.dtype} with shape "
                f"{arr.shape}; {fix}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{source}: {key!r} holds NaN or inf values; {fix}")
    lengths = {k: len(data[k]) for k in _ARRAY_NDIM}
    if len(set(lengths.values())) != 1 or lengths["terminals"] == 0:
        raise ValueError(f"{source}: fields need one common, nonzero length, got {lengths}; {fix}")
    obs, next_obs, actions, terminals = (data[k] for k in _ARRAY_NDIM)
    if obs.shape != next_obs.shape:
        raise ValueError(f"{source}: observations {obs.shape} vs next {next_obs.shape}; {fix}")
    if np.any(np.abs(actions) > 1.0):
        raise ValueError(f"{source}: actions outside [-1, 1]; {fix}")
    if not np.all((terminals == 0.0) | (terminals == 1.0)) or terminals[-1] != 1.0:
        raise ValueError(f"{source}: terminals must be 0 or 1 and end with 1 (episode end); {fix}")
    inside = terminals[:-1] == 0.0
    if not np.array_equal(next_obs[:-1][inside], obs[1:][inside]):
        raise ValueError(
            f"{source}: transitions are not contiguous episodes (next_observations[t] != "
            f"observations[t + 1] inside an episode); {fix}"
        )
    if spec is not None:
        dims = (str(env), obs.shape[1], actions.shape[1])
        wanted = (spec.name, spec.obs_dim, spec.act_dim)
        if dims != wanted:
            raise ValueError(
                f"{source}: made for (env, obs_dim, act_dim) = {dims}, but the env wants "
                f"{wanted}; use a dataset of {spec.name} or the env it was made for"
            )


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the dataset's fields (their dtype, shape and bytes)."""
    sha = hashlib.sha256()
    for key in FIELDS:
        value = np.ascontiguousarray(arrays[key])
        sha.update(f"{key}:{value.dtype.str}:{value.shape}".encode())
        sha.update(value.tobytes())
    return sha.hexdigest()


def save_dataset(path: str | os.PathLike[str], data: dict[str, np.ndarray]) -> None:
    """Check `data` and write it to `path` atomically: a crash leaves the old file or none,
    never a truncated one."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in data.items()}
    _check(arrays, f"dataset for {path}", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: arrays[k] for k in FIELDS}, sha256=np.asarray(_digest(arrays)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_dataset(
    path: str | os.PathLike[str], spec: GoalEnvSpec | None = None
) -> dict[str, np.ndarray]:
    """Read and check a dataset; with `spec`, also check it was made for that env."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"dataset file {path} does not exist; make one with "
            "metra.data.generate_pointmaze and save_dataset, or fix the path"
        )
    unreadable = (
        f"{path} is not a readable .npz dataset (%s); it is truncated or not written by metra "
        "data: regenerate it with metra data"
    )
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DamagedFileError(unreadable % "a single .npy array, not an .npz archive")
        with loaded as npz:
            data = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib.error) as e:
        if isinstance(e, DamagedFileError):
            raise
        raise DamagedFileError(unreadable % type(e).__name__) from None
    _check(data, str(path), spec)
    if "sha256" in data and str(data["sha256"]) != _digest(data):
        raise DamagedFileError(
            f"{path} does not match its own checksum (altered after it was written): "
            "regenerate it with metra data"
        )
    return {k: data[k] for k in FIELDS}
