"""Rollouts of a batch env under a latent-conditioned policy, shared by training and eval."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metra.envs import BatchEnv

# policy(obs [n, obs_dim], t) -> (actions [n, act_dim], latents [n, D])
Policy = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class Trajectories:
    """Time-major arrays of one synchronous episode of every env in a batch."""

    obs: np.ndarray  # [T + 1, n, *obs_shape]
    actions: np.ndarray  # [T, n, act_dim]
    latents: np.ndarray  # [T, n, D]
    coords: np.ndarray  # [T + 1, n, k]
    rewards: np.ndarray  # [T, n] task reward
    terminated: np.ndarray  # [T, n]

    def _mask(self, bootstrap_time_limit: bool) -> np.ndarray:
        """[T, n]: 0 where no value is bootstrapped."""
        mask = 1.0 - self.terminated.astype(np.float32)
        if not bootstrap_time_limit:
            mask[-1] = 0.0
        return mask

    def transitions(self, bootstrap_time_limit: bool) -> dict[str, np.ndarray]:
        """Flat transitions for a `ReplayBuffer`."""
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
        major = {
            "frames": self.obs[..., -frame_channels:],
            "action": self.actions,
            "latent": self.latents,
            "reward": self.rewards,
            "mask": self._mask(bootstrap_time_limit),
        }
        return {k: np.swapaxes(v, 0, 1) for k, v in major.items()}


def rollout(env: BatchEnv, policy: Policy, seed: int, steps: int | None = None) -> Trajectories:
    """One episode of every env in the batch, all started with `reset(seed)`."""
    steps = env.spec.episode_len if steps is None else steps
    obs, coords = env.reset(seed)
    all_obs, all_coords = [obs], [coords]
    actions, latents, rewards, terminated = [], [], [], []
    for t in range(steps):
        action, latent = policy(obs, t)
        result = env.step(action)
        if result.terminated.any():
            raise NotImplementedError(
                f"{env.spec.name} reached a terminal state; lockstep rollouts support only "
                "envs that end by their time limit"
            )
        obs = result.obs
        all_obs.append(obs)
        all_coords.append(result.coords)
        actions.append(np.asarray(action, np.float32))
        latents.append(np.asarray(latent, np.float32))
        rewards.append(result.reward)
        terminated.append(result.terminated)
    return Trajectories(
        obs=np.stack(all_obs),
        actions=np.stack(actions),
        latents=np.stack(latents),
        coords=np.stack(all_coords),
        rewards=np.stack(rewards),
        terminated=np.stack(terminated),
    )


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
