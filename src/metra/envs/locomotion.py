"""State-based MuJoCo locomotion (Gymnasium v5) as batch envs.

The observation keeps the torso position (x-y for Ant, x for HalfCheetah) so that skills can
be about where the body goes, as in the METRA and LSD papers. Envs are stepped in a plain
loop: on this machine Gymnasium's AsyncVectorEnv is slower than stepping in one process.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from metra.envs.base import EnvSpec, StepResult, replace_coords

EPISODE_LEN = 200

ANT = EnvSpec(
    name="ant",
    obs_dim=29,  # qpos 15 (x, y, z, quat 4, joints 8) + qvel 14
    act_dim=8,
    episode_len=EPISODE_LEN,
    coord_names=("x", "y"),
    coord_index=(0, 1),
    goal_range=50.0,
)
HALF_CHEETAH = EnvSpec(
    name="half_cheetah",
    obs_dim=18,  # qpos 9 (x, z, pitch, joints 6) + qvel 9
    act_dim=6,
    episode_len=EPISODE_LEN,
    coord_names=("x",),
    coord_index=(0,),
    goal_range=25.0,
)

_GYM_IDS = {
    "ant": (
        "Ant-v5",
        dict(
            exclude_current_positions_from_observation=False,
            include_cfrc_ext_in_observation=False,
            terminate_when_unhealthy=False,
        ),
    ),
    "half_cheetah": ("HalfCheetah-v5", dict(exclude_current_positions_from_observation=False)),
}


class GymLocomotion:
    """`num_envs` Gymnasium MuJoCo envs stepped in lockstep; the time limit is ours."""

    def __init__(
        self,
        spec: EnvSpec,
        num_envs: int = 1,
        seed: int = 0,
        render_size: int = 256,
        xml_file: str | None = None,
    ) -> None:
        """`xml_file` replaces the MuJoCo model (same bodies and joints, e.g. with hurdles)."""
        self.spec = spec
        self.num_envs = num_envs
        self.seed = seed
        gym_id, kwargs = _GYM_IDS[spec.name]
        if xml_file is not None:
            kwargs = {**kwargs, "xml_file": xml_file}
        self._envs = [
            gym.make(
                gym_id,
                render_mode="rgb_array",
                width=render_size,
                height=render_size,
                max_episode_steps=None,
                **kwargs,
            ).unwrapped
            for _ in range(num_envs)
        ]
        for env in self._envs:
            assert env.observation_space.shape == (spec.obs_dim,), env.observation_space

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        seed = self.seed if seed is None else seed
        obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self._envs)])
        obs = obs.astype(np.float32)
        return obs, obs[:, list(self.spec.coord_index)].copy()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.clip(np.asarray(actions, np.float64), -1.0, 1.0)
        obs, rew, term = [], [], []
        for env, act in zip(self._envs, actions, strict=True):
            o, r, terminated, _, _ = env.step(act)
            obs.append(o)
            rew.append(r)
            term.append(terminated)
        obs_arr = np.asarray(obs, np.float32)
        return StepResult(
            obs=obs_arr,
            reward=np.asarray(rew, np.float32),
            terminated=np.asarray(term, bool),
            coords=obs_arr[:, list(self.spec.coord_index)].copy(),
        )

    def set_coords(self, obs: np.ndarray, coords: np.ndarray) -> np.ndarray:
        return replace_coords(self.spec, obs, coords)

    def render(self, index: int = 0) -> np.ndarray:
        return np.asarray(self._envs[index].render(), np.uint8)

    def close(self) -> None:
        for env in self._envs:
            env.close()


def make(spec: EnvSpec, num_envs: int, seed: int) -> GymLocomotion:
    """Registry hook."""
    return GymLocomotion(spec, num_envs, seed)
