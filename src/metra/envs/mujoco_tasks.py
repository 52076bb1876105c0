"""PEARL's MuJoCo meta-RL task families on Gymnasium v5.

The families, reward formulas, task distributions and task counts are those of PEARL
(Rakelly, Zhou, Quillen, Finn, Levine: "Efficient Off-Policy Meta-Reinforcement Learning via
Probabilistic Context Variables", ICML 2019; github.com/katerakelly/oyster, `rlkit/envs/*.py`,
`configs/*.json`, and the `rand_param_envs` submodule for Walker). The simulators are Gymnasium's
v5 MuJoCo envs; every reward is computed here from the simulator state (positions before and
after the step, dt, the action, cfrc_ext), so Gymnasium's own reward is never used.

| family             | obs | act | train/test tasks | task                                    |
|--------------------|-----|-----|------------------|-----------------------------------------|
| cheetah_vel        |  20 |   6 | 100 / 30         | target velocity ~ U[0, 3]               |
| cheetah_dir        |  20 |   6 | 2 = 2 (same)     | direction -1 or +1                      |
| ant_dir            |  27 |   8 | 2 = 2 (same)     | angle 0 or pi (forward / backward)      |
| ant_goal           | 107 |   8 | 150 / 30         | goal on the disk of radius 3            |
| humanoid_dir       | 348 |  17 | 100 / 30         | direction angle ~ U[0, 2 pi]            |
| walker_rand_params |  17 |   6 | 40 / 10          | log-uniform scales of the physics       |

Observations follow PEARL's: cheetah qpos[1:] (8) + qvel (9) + the torso's position (3, its
absolute x included, as PEARL's `get_body_com("torso")`); ant_dir qpos[2:] (13) + qvel (14);
ant_goal qpos (15) + qvel (14) + contact forces clipped to [-1, 1] (13 bodies x 6); humanoid
qpos[2:], qvel, cinert, cvel, qfrc_actuator, cfrc_ext; walker qpos[1:] (8) + clip(qvel, +-10)
(9). Gymnasium v5 drops the world body's cinert/cvel/cfrc_ext and the free joint's actuator
forces, which are always 0 (PEARL's humanoid obs has 376 entries, ant_goal's 113).

Actions are in [-1, 1] and mapped linearly onto each env's action space as PEARL's
`NormalizedBoxEnv` does: the identity for HalfCheetah, Ant and Walker2d, times 0.4 for Humanoid
(ctrlrange [-0.4, 0.4]); control costs use the mapped action (PEARL's humanoid uses data.ctrl).

Differences from PEARL: a seed draws the tasks (PEARL's cheetah_vel always used
np.random.seed(1337), the others unseeded np.random); ant_dir uses the paper's forward/backward
pair {0, pi} (oyster's config leaves `forward_backward` off and so draws two random angles);
Ant positions are read from qpos rather than the body frame, which MuJoCo updates one physics
substep late (the fix Gymnasium v5 also made); Walker runs Gymnasium's older walker2d.xml (feet
friction 0.9 / 1.9, as the gym model rand_param_envs shipped) with PEARL's frame_skip of 5, on
MuJoCo 3 instead of MuJoCo 1.31, and its scaled masses and inertias do not recompute the
model's derived constants (as with rand_param_envs). Episodes are 200 steps (PEARL's
max_path_length); the time limit is the caller's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco import MujocoEnv

from metra.envs.base import StepResult, no_coords
from metra.envs.meta import Task, meta_step

EPISODE_LEN = 200

# One env step: advance the simulation with the (mapped) action, return (reward, terminated).
StepFn = Callable[[MujocoEnv, Task, np.ndarray], tuple[float, bool]]


def _sq(action: np.ndarray) -> float:
    return float(np.sum(np.square(action)))


def _ant_contact_cost(env: MujocoEnv) -> float:
    """PEARL's Ant contact cost: external body forces clipped to [-1, 1]."""
    return 0.5e-3 * float(np.sum(np.square(np.clip(env.data.cfrc_ext, -1.0, 1.0))))


# --- rewards (PEARL's formulas) ----------------------------------------------------------


def _cheetah_vel_step(env: MujocoEnv, task: Task, action: np.ndarray) -> tuple[float, bool]:
    """-|forward velocity - target| - 0.05 |a|^2; never terminates."""
    x0 = float(env.data.qpos[0])
    env.do_simulation(action, env.frame_skip)
    vel = (float(env.data.qpos[0]) - x0) / env.dt
    return -abs(vel - task["velocity"]) - 0.5 * 0.1 * _sq(action), False


def _cheetah_dir_step(env: MujocoEnv, task: Task, action: np.ndarray) -> tuple[float, bool]:
    """direction * forward velocity - 0.05 |a|^2; never terminates."""
    x0 = float(env.data.qpos[0])
    env.do_simulation(action, env.frame_skip)
    vel = (float(env.data.qpos[0]) - x0) / env.dt
    return task["direction"] * vel - 0.5 * 0.1 * _sq(action), False


def _ant_dir_step(env: MujocoEnv, task: Task, action: np.ndarray) -> tuple[float, bool]:
    """Torso velocity along the direction - 0.5 |a|^2 - contact cost + 1; ends when unhealthy."""
    xy0 = env.data.qpos[:2].copy()
    env.do_simulation(action, env.frame_skip)
    vel = (env.data.qpos[:2] - xy0) / env.dt
    direction = np.array([np.cos(task["angle"]), np.sin(task["angle"])])
    reward = float(vel @ direction) - 0.5 * _sq(action) - _ant_contact_cost(env) + 1.0
    healthy = bool(np.isfinite(env.state_vector()).all()) and 0.2 <= env.data.qpos[2] <= 1.0
    return reward, not healthy


def _ant_goal_step(env: MujocoEnv, task: Task, action: np.ndarray) -> tuple[float, bool]:
    """-L1(torso xy, goal) - 0.1 |a|^2 - contact cost; never terminates (as PEARL's)."""
    env.do_simulation(action, env.frame_skip)
    dist = float(np.sum(np.abs(env.data.qpos[:2] - task["goal"])))
    return -dist - 0.1 * _sq(action) - _ant_contact_cost(env), False


def _mass_center_xy(env: MujocoEnv) -> np.ndarray:
    mass = env.model.body_mass
    return (mass @ env.data.xipos)[:2] / mass.sum()


def _humanoid_dir_step(env: MujocoEnv, task: Task, action: np.ndarray) -> tuple[float, bool]:
    """PEARL's humanoid: 0.25 * displacement of the mass center along the direction / physics
    timestep (= 1.25 x velocity, since dt = 5 timesteps) - 0.1 |ctrl|^2 - min(5e-7 |cfrc_ext|^2,
    10) + 5; ends when the torso height leaves [1, 2]."""
    c0 = _mass_center_xy(env)
    env.do_simulation(action, env.frame_skip)
    direction = np.array([np.cos(task["angle"]), np.sin(task["angle"])])
    lin_vel = 0.25 * float((_mass_center_xy(env) - c0) @ direction) / env.model.opt.timestep
    ctrl_cost = 0.1 * _sq(env.data.ctrl)
    impact_cost = min(0.5e-6 * _sq(env.data.cfrc_ext), 10.0)
    z = env.data.qpos[2]
    return lin_vel - ctrl_cost - impact_cost + 5.0, bool(z < 1.0 or z > 2.0)


def _walker_step(env: MujocoEnv, task: Task, action: np.ndarray) -> tuple[float, bool]:
    """Forward velocity + 1 - 1e-3 |a|^2; ends when height leaves (0.8, 2) or |angle| >= 1."""
    x0 = float(env.data.qpos[0])
    env.do_simulation(action, env.frame_skip)
    x, height, angle = env.data.qpos[:3]
    reward = (x - x0) / env.dt + 1.0 - 1e-3 * _sq(action)
    healthy = 0.8 < height < 2.0 and -1.0 < angle < 1.0
    return float(reward), not healthy


# --- observations ------------------------------------------------------------------------


def _gym_obs(env: MujocoEnv) -> np.ndarray:
    return env._get_obs()


def _cheetah_obs(env: MujocoEnv) -> np.ndarray:
    """PEARL's HalfCheetah obs: Gymnasium's qpos[1:] + qvel, then the torso body's position."""
    return np.concatenate([env._get_obs(), env.data.xpos[1]])  # body 1 is the torso


# --- task distributions ------------------------------------------------------------------

_WALKER_XML = "walker2d.xml"  # Gymnasium's pre-v5 Walker model (as rand_param_envs')
# Scaled model arrays and the base of their log-uniform factor base ** U[-3, 3].
_WALKER_SCALES = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}
_LOG_SCALE_LIMIT = 3.0


def _velocities(rng: np.random.Generator, n: int) -> list[Task]:
    return [{"velocity": float(v)} for v in rng.uniform(0.0, 3.0, n)]


def _angles(rng: np.random.Generator, n: int) -> list[Task]:
    return [{"angle": float(a)} for a in rng.uniform(0.0, 2.0 * np.pi, n)]


def _goals(rng: np.random.Generator, n: int) -> list[Task]:
    """Uniform on the disk of radius 3: angle uniform, radius 3 sqrt(u)."""
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    radius = 3.0 * np.sqrt(rng.uniform(0.0, 1.0, n))
    goals = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
    return [{"goal": g} for g in goals]


@functools.cache
def _walker_shapes() -> dict[str, tuple[int, ...]]:
    path = Path(gym.envs.mujoco.__file__).parent / "assets" / _WALKER_XML
    model = mujoco.MjModel.from_xml_path(str(path))
    return {name: getattr(model, name).shape for name in _WALKER_SCALES}


def _walker_params(rng: np.random.Generator, n: int) -> list[Task]:
    """Per-element multipliers of the model arrays, as rand_param_envs samples them."""
    lim, shapes = _LOG_SCALE_LIMIT, _walker_shapes()
    return [
        {
            name: base ** rng.uniform(-lim, lim, shapes[name])
            for name, base in _WALKER_SCALES.items()
        }
        for _ in range(n)
    ]


def _fixed(tasks: list[Task]) -> Callable[[np.random.Generator, int], list[Task]]:
    def draw(rng: np.random.Generator, n: int) -> list[Task]:
        assert n == len(tasks)
        return [dict(t) for t in tasks]

    return draw


# --- the table of families ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Family:
    gym_id: str
    gym_kwargs: dict[str, Any] = field(default_factory=dict)
    obs_dim: int
    act_dim: int
    n_train: int
    n_test: int  # 0: the test tasks are the train tasks (PEARL's two-task families)
    draw: Callable[[np.random.Generator, int], list[Task]]  # n tasks
    step: StepFn
    obs: Callable[[MujocoEnv], np.ndarray] = _gym_obs
    model_scales: tuple[str, ...] = ()  # model arrays a task multiplies (walker)


_CHEETAH: dict[str, Any] = dict(gym_id="HalfCheetah-v5", obs_dim=20, act_dim=6, obs=_cheetah_obs)
_FAMILIES: dict[str, _Family] = {
    "cheetah_vel": _Family(
        **_CHEETAH, n_train=100, n_test=30, draw=_velocities, step=_cheetah_vel_step
    ),
    "cheetah_dir": _Family(
        **_CHEETAH,
        n_train=2,
        n_test=0,
        draw=_fixed([{"direction": -1.0}, {"direction": 1.0}]),
        step=_cheetah_dir_step,
    ),
    "ant_dir": _Family(
        gym_id="Ant-v5",
        gym_kwargs={"include_cfrc_ext_in_observation": False},
        obs_dim=27,
        act_dim=8,
        n_train=2,
        n_test=0,
        draw=_fixed([{"angle": 0.0}, {"angle": float(np.pi)}]),
        step=_ant_dir_step,
    ),
    "ant_goal": _Family(
        gym_id="Ant-v5",
        gym_kwargs={
            "exclude_current_positions_from_observation": False,
            "include_cfrc_ext_in_observation": True,
        },
        obs_dim=107,
        act_dim=8,
        n_train=150,
        n_test=30,
        draw=_goals,
        step=_ant_goal_step,
    ),
    "humanoid_dir": _Family(
        gym_id="Humanoid-v5",
        obs_dim=348,
        act_dim=17,
        n_train=100,
        n_test=30,
        draw=_angles,
        step=_humanoid_dir_step,
    ),
    "walker_rand_params": _Family(
        gym_id="Walker2d-v5",
        gym_kwargs={"xml_file": _WALKER_XML, "frame_skip": 5},
        obs_dim=17,
        act_dim=6,
        n_train=40,
        n_test=10,
        draw=_walker_params,
        step=_walker_step,
        model_scales=tuple(_WALKER_SCALES),
    ),
}
MUJOCO_META_NAMES = tuple(_FAMILIES)


# --- envs --------------------------------------------------------------------------------


class MujocoMetaBatch:
    """One Gymnasium env per task, stepped in a plain loop (faster than AsyncVectorEnv here).

    A terminated env is frozen until `reset`: it returns its last obs, reward 0, terminated.
    """

    def __init__(self, family: _Family, tasks: Sequence[Task]) -> None:
        self._family = family
        self.num_envs = len(tasks)
        self._envs: list[MujocoEnv] = [
            gym.make(family.gym_id, max_episode_steps=None, **family.gym_kwargs).unwrapped
            for _ in tasks
        ]
        space = self._envs[0].action_space
        # [-1, 1] -> [low, high], as PEARL's NormalizedBoxEnv.
        self._act_low, self._act_high = space.low.astype(np.float64), space.high.astype(np.float64)
        self._originals = [
            {name: getattr(env.model, name).copy() for name in family.model_scales}
            for env in self._envs
        ]
        self._obs = np.zeros((self.num_envs, family.obs_dim), np.float32)
        self._done = np.zeros(self.num_envs, bool)
        self._started = False
        self.set_tasks(tasks)

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Give env i task i (reusing the envs); takes effect at once, call `reset` next."""
        assert len(tasks) == self.num_envs, (len(tasks), self.num_envs)
        self.tasks = list(tasks)
        for env, task, originals in zip(self._envs, self.tasks, self._originals, strict=True):
            for name, value in originals.items():
                getattr(env.model, name)[:] = value * task[name]
        self._started = False

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        for i, env in enumerate(self._envs):
            env.reset(seed=seed + i)
            self._obs[i] = self._family.obs(env)
        self._done[:] = False
        self._started = True
        return self._obs.copy(), no_coords(self.num_envs)

    def step(self, actions: np.ndarray) -> StepResult:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, np.float64)
        assert actions.shape == (self.num_envs, self._family.act_dim), actions.shape
        scaled = self._act_low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (
            self._act_high - self._act_low
        )
        reward = np.zeros(self.num_envs, np.float32)
        for i, (env, task) in enumerate(zip(self._envs, self.tasks, strict=True)):
            if self._done[i]:
                continue
            reward[i], self._done[i] = self._family.step(env, task, scaled[i])
            self._obs[i] = self._family.obs(env)
        return meta_step(self._obs.copy(), reward, self._done.copy(), np.zeros(self.num_envs))

    def close(self) -> None:
        for env in self._envs:
            env.close()


class MujocoMetaTasks:
    """A PEARL family with its train and test tasks drawn from one seed."""

    episode_len = EPISODE_LEN
    has_success = False

    def __init__(self, name: str, seed: int) -> None:
        if name not in _FAMILIES:
            known = ", ".join(MUJOCO_META_NAMES)
            raise ValueError(f"unknown MuJoCo meta-RL family {name!r}; known: {known}")
        fam = _FAMILIES[name]
        self.name, self._family = name, fam
        self.obs_dim, self.act_dim = fam.obs_dim, fam.act_dim
        rng = np.random.default_rng(seed)
        tasks = fam.draw(rng, fam.n_train + fam.n_test)
        # As PEARL: the first n_train tasks train, the last n_test test.
        self.train_tasks = tasks[: fam.n_train]
        self.test_tasks = tasks[fam.n_train :] if fam.n_test else [dict(t) for t in tasks]

    def make_envs(self, tasks: Sequence[Task]) -> MujocoMetaBatch:
        return MujocoMetaBatch(self._family, tasks)


def make(name: str, seed: int = 0) -> MujocoMetaTasks:
    """Registry hook of `metra.envs.meta.make_meta_tasks`."""
    return MujocoMetaTasks(name, seed)
