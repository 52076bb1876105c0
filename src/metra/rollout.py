"""The one rollout: a batch of envs stepped together under a latent-conditioned policy.

Every workflow collects and evaluates with it: skill epochs and coverage (`BatchEnv`),
meta-RL tasks (`MetaEnvBatch`) and goal reaching (`GoalEnvBatch`). An env whose episode
ends before the others is frozen by the env itself; its later steps are padding, marked by
`Trajectories.lengths`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from metra.envs.base import Stepper

# policy(obs [n, *obs_shape], t) -> (actions [n, act_dim], latents [n, D]): the latent each
# env acted under at step t (a skill, a task latent or a goal; [n, 0] for none).
Policy = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class Trajectories:
    """Time-major arrays of one episode of every env in a batch."""

    obs: np.ndarray  # [T + 1, n, *obs_shape]
    actions: np.ndarray  # [T, n, act_dim]
    latents: np.ndarray  # [T, n, D]
    coords: np.ndarray  # [T + 1, n, k]
    rewards: np.ndarray  # [T, n] task reward
    terminated: np.ndarray  # [T, n]
    lengths: np.ndarray = field(default=None)  # type: ignore[assignment]  # [n]; None: all T
    info: dict[str, np.ndarray] = field(default_factory=dict)  # per-step fields [T, n]

    def __post_init__(self) -> None:
        if self.lengths is None:
            self.lengths = np.full(self.actions.shape[1], len(self.actions), np.int32)

    @property
    def valid(self) -> np.ndarray:
        """[T, n]: True on the steps before each env's episode ended."""
        return np.arange(len(self.actions))[:, None] < self.lengths[None]

    def returns(self) -> np.ndarray:
        """[n] the sum of each episode's rewards (summed env-major, as the task replays hold
        them, so a figure does not move in its last float digit)."""
        return np.ascontiguousarray((self.rewards * self.valid).T).sum(1)

    def ever(self, name: str) -> np.ndarray:
        """[n] 1.0 where per-step field `name` (e.g. success) was set at any step."""
        return ((self.info[name] > 0) & self.valid).any(0).astype(np.float32)

    def last(self, name: str) -> np.ndarray:
        """[n] per-step field `name` at each episode's last step."""
        return self.info[name][self.lengths - 1, np.arange(len(self.lengths))]

    def _mask(self, bootstrap_time_limit: bool) -> np.ndarray:
        """[T, n]: 0 where no value is bootstrapped."""
        mask = 1.0 - self.terminated.astype(np.float32)
        if not bootstrap_time_limit:
            mask[-1] = 0.0
        return mask

    def _require_full(self) -> None:
        if (self.lengths < len(self.actions)).any():
            raise NotImplementedError(
                "an env reached a terminal state; skill replays take only episodes that end "
                "by their time limit"
            )

    def transitions(self, bootstrap_time_limit: bool) -> dict[str, np.ndarray]:
        """Flat transitions for a `ReplayBuffer`."""
        self._require_full()
        steps, n = self.actions.shape[:2]

        def flat(x: np.ndarray) -> np.ndarray:
            return x.reshape(steps * n, *x.shape[2:])

        return {
            "obs": flat(self.obs[:-1]),
            "next_obs": flat(self.obs[1:]),
            "action": flat(self.actions),
            "latent": flat(self.latents),
            "reward": flat(self.rewards),
            "mask": flat(self._mask(bootstrap_time_limit)),
        }

    def episodes(self, bootstrap_time_limit: bool, frame_channels: int) -> dict[str, np.ndarray]:
        """Episode rows for a `FrameReplay`: the newest frame of every observation (the last
        `frame_channels` channels) and the per-step fields, env-major."""
        self._require_full()
        major = {
            "frames": self.obs[..., -frame_channels:],
            "action": self.actions,
            "latent": self.latents,
            "reward": self.rewards,
            "mask": self._mask(bootstrap_time_limit),
        }
        return {k: np.swapaxes(v, 0, 1) for k, v in major.items()}

    def env_major(self) -> dict[str, np.ndarray]:
        """Each env's episode as rows [n, T, ...] (obs, action, reward, next_obs, mask) and
        its `length` [n]: the layout of the task and goal replays."""
        major = {
            "obs": self.obs[:-1],
            "action": self.actions,
            "reward": self.rewards,
            "next_obs": self.obs[1:],
            "mask": 1.0 - self.terminated.astype(np.float32),
        }
        rows = {k: np.swapaxes(v, 0, 1) for k, v in major.items()}
        rows["length"] = self.lengths
        return rows


def rollout(env: Stepper, policy: Policy, seed: int, steps: int | None = None) -> Trajectories:
    """One episode of every env in the batch, all started with `reset(seed)` and stepped up
    to `steps` times (default: the env's episode length); stops early once all have ended."""
    return rollout_from(env, env.reset(seed), policy, steps)


def rollout_from(
    env: Stepper,
    start: tuple[np.ndarray, np.ndarray],
    policy: Policy,
    steps: int | None = None,
) -> Trajectories:
    """`rollout` from `start`, the (obs, coords) the env's `reset` just returned (for callers
    that read the episode's goals before choosing the policy)."""
    steps = env.spec.episode_len if steps is None else steps
    obs, coords = start
    n = len(obs)
    all_obs, all_coords = [obs], [coords]
    actions, latents, rewards, terminated = [], [], [], []
    info: dict[str, list[np.ndarray]] = {}
    lengths = np.zeros(n, np.int32)
    alive = np.ones(n, bool)
    for t in range(steps):
        action, latent = policy(obs, t)
        result = env.step(action)
        lengths += alive
        alive &= ~result.terminated
        obs = result.obs
        all_obs.append(obs)
        all_coords.append(result.coords)
        actions.append(np.asarray(action, np.float32))
        latents.append(np.asarray(latent, np.float32))
        rewards.append(np.asarray(result.reward, np.float32))
        terminated.append(result.terminated)
        for name, value in result.info.items():
            info.setdefault(name, []).append(value)
        if not alive.any():
            break
    pad = steps - len(actions)

    def stack(parts: list[np.ndarray]) -> np.ndarray:
        """Time-major, padded with zeros past an early end of every episode."""
        x = np.stack(parts)
        return np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x

    return Trajectories(
        obs=stack(all_obs),
        actions=stack(actions),
        latents=stack(latents),
        coords=stack(all_coords),
        rewards=stack(rewards),
        terminated=stack(terminated),
        lengths=lengths,
        info={name: stack(values) for name, values in info.items()},
    )


def _latents_of(latents: Any, obs: np.ndarray) -> Any:
    """The latents a policy reports: the given ones, or [n, 0] for a policy without any."""
    return np.zeros((len(obs), 0), np.float32) if latents is None else latents


def random_policy(act_dim: int, seed: int, latents: np.ndarray | None = None) -> Policy:
    """Uniform random actions in [-1, 1] (reported with `latents`, None for none): every
    workflow's warm-up policy and the floor every figure is read against."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        actions = rng.uniform(-1, 1, (len(obs), act_dim)).astype(np.float32)
        return actions, _latents_of(latents, obs)

    return policy


def agent_policy(
    agent: Any,
    latents: Any,
    deterministic: bool,
    key: jax.Array | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> Policy:
    """Any agent's `act` under fixed latents [n, D] (skills, task latents or goals; None for
    an agent without, plain SAC); a stochastic step t acts with `key` folded with t. `noise`
    > 0 adds N(0, noise^2) from a generator seeded with `seed`, clipped to [-1, 1] (the
    official online QRL's exploration)."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        step_key = None if deterministic else jax.random.fold_in(key, t)
        action = np.asarray(agent.act(obs, latents, deterministic=deterministic, key=step_key))
        if noise > 0:
            action = np.clip(action + noise * rng.standard_normal(action.shape), -1.0, 1.0)
        return action, _latents_of(latents, obs)

    return policy


def visited_bins(coords: np.ndarray, bin_size: float = 1.0) -> np.ndarray:
    """The distinct bin_size-wide bins [m, k] visited, over all leading axes of coords [..., k]."""
    bins = np.floor(np.asarray(coords).reshape(-1, coords.shape[-1]) / bin_size).astype(np.int64)
    return np.unique(bins, axis=0)


def mean_displacement(coords: np.ndarray) -> float:
    """Mean distance from the first to the last step of time-major coords [T + 1, n, k]."""
    return float(np.linalg.norm(coords[-1] - coords[0], axis=-1).mean())


def coverage(coords: np.ndarray, bin_size: float = 1.0) -> int:
    """Number of distinct bin_size-wide bins visited, over all leading axes of coords [..., k]."""
    return len(visited_bins(coords, bin_size))
