"""`half_cheetah` and `ant` on MuJoCo MJX: the same models as pure JAX.

The MuJoCo envs (`metra.envs.locomotion`) step Gymnasium's C simulator one env at a time in
Python; here reset and step are JAX functions of a batch of states, so a batch of thousands
of envs steps in one compiled call (on a GPU, the point of MJX) and can sit inside a larger
jitted function with the policy. Everything that defines the task is read from the Gymnasium
env the MuJoCo path builds: the XML and its options, the initial state, the frame skip (5),
the reset noise (qpos + U(-0.1, 0.1), qvel + 0.1 N(0, 1)), the observation (qpos then qvel,
torso position kept), the v5 reward's weights and the coverage coordinates; actions are
clipped to [-1, 1] and written to the controls, as there.

Two differences remain, both measured in tests/test_mjx.py. MJX computes in float32 (MuJoCo
in float64), so trajectories agree closely at first and then drift apart as chaotic dynamics
amplify rounding. And MJX orients a contact's tangent frame from its normal alone, where
MuJoCo's capsule-plane contact aligns it with the capsule: with the pyramidal friction cone
of Gymnasium's Ant (whose four edges sit in that frame) the friction forces differ from the
first foot contact on, while with an elliptic cone, which is the same in every tangent
direction, the two agree to the solver's tolerance. The Ant on MJX is thus a faithful Ant
whose friction pyramid is rotated about each contact normal, not MuJoCo's trajectory.
Needs the `mujoco-mjx` wheel of the pinned mujoco (`pip install "metra[mjx]"`).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import numpy as np

from metra.envs import env_spec
from metra.envs.base import EnvSpec
from metra.envs.locomotion import GymLocomotion

MJX_ENVS = ("half_cheetah", "ant")


def import_mjx() -> Any:
    """`mujoco.mjx`, without the line it prints when its optional Warp backend is missing."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from mujoco import mjx
    except ImportError:
        raise RuntimeError(
            "the MJX backend needs the mujoco-mjx wheel, which is not installed: "
            'pip install "metra[mjx]"'
        ) from None
    return mjx


@dataclass(frozen=True)
class TaskReward:
    """Gymnasium v5's locomotion reward with the weights its env holds: forward velocity of
    the torso minus a control cost, and for the Ant a survival bonus while the torso's height
    is in range and a cost on the clipped external contact forces."""

    forward_weight: float
    ctrl_weight: float
    body: int | None = None  # Ant: the torso, whose x in xpos moves; None: qpos[0] (HalfCheetah)
    healthy_reward: float = 0.0
    healthy_z: tuple[float, float] = (-np.inf, np.inf)
    contact_weight: float = 0.0
    contact_range: tuple[float, float] = (-1.0, 1.0)

    @classmethod
    def of(cls, gym_env: Any) -> TaskReward:
        """The weights of a Gymnasium HalfCheetah-v5 or Ant-v5 env."""
        weights = dict(
            forward_weight=float(gym_env._forward_reward_weight),
            ctrl_weight=float(gym_env._ctrl_cost_weight),
        )
        if hasattr(gym_env, "_healthy_reward"):
            weights.update(
                body=int(gym_env.data.body(gym_env._main_body).id),
                healthy_reward=float(gym_env._healthy_reward),
                healthy_z=tuple(map(float, gym_env._healthy_z_range)),
                contact_weight=float(gym_env._contact_cost_weight),
                contact_range=tuple(map(float, gym_env._contact_force_range)),
            )
        return cls(**weights)


class MJXState(struct.PyTreeNode):
    """A batch of simulator states [n, ...] and their observations."""

    data: Any  # mjx.Data with a leading batch axis
    obs: jax.Array  # [n, obs_dim] float32
    reward: jax.Array  # [n] float32: the task reward of the step that led here (0 at reset)


@dataclass(frozen=True, eq=False)
class MJXEnv:
    """Pure reset/step of one locomotion task for batches of envs; hashed by identity, so it
    can be a static argument of jitted code (`make_mjx_env` returns one per name)."""

    spec: EnvSpec
    model: Any  # mjx.Model
    init_qpos: jax.Array
    init_qvel: jax.Array
    frame_skip: int
    reset_noise: float
    reward: TaskReward

    def _observe(self, data: Any) -> jax.Array:
        return jnp.concatenate([data.qpos, data.qvel], -1).astype(jnp.float32)

    @partial(jax.jit, static_argnums=0)
    def from_qpos_qvel(self, qpos: jax.Array, qvel: jax.Array) -> MJXState:
        """States [n] at given positions and velocities (forward kinematics computed)."""
        mjx = import_mjx()

        def one(qp: jax.Array, qv: jax.Array) -> Any:
            data = mjx.make_data(self.model).replace(qpos=qp, qvel=qv)
            # MJX's forward normalizes the free joint's quaternion; MuJoCo's leaves qpos as
            # set (Gymnasium's reset noise unnormalizes it) until the first step does it.
            return mjx.forward(self.model, data).replace(qpos=qp)

        data = jax.vmap(one)(jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))
        return MJXState(data=data, obs=self._observe(data), reward=jnp.zeros(len(qpos)))

    @partial(jax.jit, static_argnums=(0, 2))
    def reset(self, key: jax.Array, n: int) -> MJXState:
        """`n` fresh episodes with Gymnasium's reset noise."""
        k_pos, k_vel = jax.random.split(key)
        nq, nv = self.init_qpos.shape[0], self.init_qvel.shape[0]
        noise = self.reset_noise
        qpos = self.init_qpos + jax.random.uniform(k_pos, (n, nq), minval=-noise, maxval=noise)
        qvel = self.init_qvel + noise * jax.random.normal(k_vel, (n, nv))
        return self.from_qpos_qvel(qpos, qvel)

    @partial(jax.jit, static_argnums=0)
    def step(self, state: MJXState, actions: jax.Array) -> MJXState:
        """One env step (`frame_skip` physics steps) of every env under actions [n, act_dim]."""
        mjx = import_mjx()

        actions = jnp.clip(actions, -1.0, 1.0)

        def one(data: Any, action: jax.Array) -> Any:
            data = data.replace(ctrl=action)
            return jax.lax.fori_loop(0, self.frame_skip, lambda _, d: mjx.step(self.model, d), data)

        data = jax.vmap(one)(state.data, actions)
        if self.reward.contact_weight:  # Gymnasium computes cfrc_ext after the step, as here
            data = jax.vmap(lambda d: mjx.rne_postconstraint(self.model, d))(data)
        reward = self._reward(state, data, actions)
        return MJXState(data=data, obs=self._observe(data), reward=reward)

    def _reward(self, before: MJXState, data: Any, actions: jax.Array) -> jax.Array:
        """The v5 reward of the step from `before` to `data`. The Ant's forward velocity is its
        torso's x in xpos, the kinematics of the last physics step's start, here as in MuJoCo."""
        r = self.reward
        dt = self.model.opt.timestep * self.frame_skip
        if r.body is None:
            x = (before.data.qpos[:, 0], data.qpos[:, 0])
        else:
            x = (before.data.xpos[:, r.body, 0], data.xpos[:, r.body, 0])
        reward = r.forward_weight * (x[1] - x[0]) / dt - r.ctrl_weight * jnp.sum(actions**2, -1)
        if r.healthy_reward:
            z = data.qpos[:, 2]
            finite = jnp.isfinite(jnp.concatenate([data.qpos, data.qvel], -1)).all(-1)
            healthy = finite & (z >= r.healthy_z[0]) & (z <= r.healthy_z[1])
            reward += r.healthy_reward * healthy
        if r.contact_weight:
            # MJX 3.17 keeps cfrc_ext with its backend's data (`Data.cfrc_ext` is deprecated).
            forces = jnp.clip(data._impl.cfrc_ext, *r.contact_range)
            reward -= r.contact_weight * jnp.sum(forces**2, (-2, -1))
        return reward.astype(jnp.float32)

    def coords(self, state: MJXState) -> jax.Array:
        """The coverage coordinates [n, k] (Ant x-y, HalfCheetah x), as the MuJoCo env's."""
        return state.obs[:, list(self.spec.coord_index)]


def mjx_twin(spec: EnvSpec, gym_env: Any) -> MJXEnv:
    """The MJX twin of one Gymnasium MuJoCo env, its model as that env holds it now."""
    return MJXEnv(
        spec=spec,
        model=import_mjx().put_model(gym_env.model),
        init_qpos=jnp.asarray(np.asarray(gym_env.init_qpos), jnp.float32),
        init_qvel=jnp.asarray(np.asarray(gym_env.init_qvel), jnp.float32),
        frame_skip=int(gym_env.frame_skip),
        reset_noise=float(gym_env._reset_noise_scale),
        reward=TaskReward.of(gym_env),
    )


def mirror(env: GymLocomotion) -> tuple[MJXEnv, MJXState]:
    """The MJX twin of a batch of MuJoCo envs (their model as it is now, e.g. with another
    friction cone) and the twin's state at theirs: the two simulators side by side."""
    inner = env._envs
    twin = mjx_twin(env.spec, inner[0])
    qpos = np.stack([e.data.qpos for e in inner])
    qvel = np.stack([e.data.qvel for e in inner])
    return twin, twin.from_qpos_qvel(qpos, qvel)


def ant_side_by_side(n: int, steps: int) -> dict[str, np.ndarray]:
    """`n` MuJoCo Ants (reset with seed 3) and their MJX twin (`mirror`) from the same states
    under the same uniform actions (seed 1) for `steps` steps: per simulator (MuJoCo, MJX) and
    env, the return, the x-y displacement and the mean torso height, each [2, n]."""
    rng = np.random.default_rng(1)
    env = GymLocomotion(env_spec("ant"), num_envs=n, seed=3)
    try:
        env.reset()
        twin, state = mirror(env)
        start = np.asarray(state.obs)[:, :2]
        returns, heights = np.zeros((2, n)), np.zeros((2, n))
        for _ in range(steps):
            actions = rng.uniform(-1, 1, (n, env.spec.act_dim)).astype(np.float32)
            result = env.step(actions)
            state = twin.step(state, jnp.asarray(actions))
            returns += [result.reward, np.asarray(state.reward)]
            heights += [result.obs[:, 2], np.asarray(state.obs)[:, 2]]
    finally:
        env.close()
    ends = [result.obs[:, :2], np.asarray(state.obs)[:, :2]]
    return {
        "return": returns,
        "displacement": np.stack([np.linalg.norm(e - start, axis=1) for e in ends]),
        "torso_height": heights / steps,
    }


@cache
def make_mjx_env(name: str) -> MJXEnv:
    """The MJX twin of MuJoCo env `name` (one of MJX_ENVS), one per process so that every
    run of it shares the compiled epoch."""
    if name not in MJX_ENVS:
        raise ValueError(f"no MJX backend for {name!r}; it has {', '.join(MJX_ENVS)}")
    import_mjx()
    gym_env = GymLocomotion(env_spec(name), num_envs=1)._envs[0]
    try:
        return mjx_twin(env_spec(name), gym_env)
    finally:
        gym_env.close()
