"""METRA: Metric-Aware Abstraction (Park, Rybkin & Levine, ICLR 2024).

phi maps states to R^D. It maximizes (phi(s') - phi(s))^T z subject to
||phi(s') - phi(s)||^2 <= 1 on every transition (a temporal-distance Lipschitz constraint),
relaxed with a learned dual variable lambda. The skill policy pi(a | s, z) is SAC on the
reward (phi(s') - phi(s))^T z computed from the current phi at update time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.training.train_state import TrainState

from metra.agents.base import Batch, Metrics, adam_state, gradient_step
from metra.agents.sac import log_scalar_state
from metra.agents.skill import SkillAgent, SkillConfig, sample_skills
from metra.networks import MLP, PIXEL_CHANNELS, PixelEncoder, conv_output_size, kernel_inits
from metra.quasimetric import mrn

__all__ = [
    "MetraAgent",
    "MetraConfig",
    "QuasimetricMetraAgent",
    "QuasimetricMetraConfig",
    "centered_latent",
    "sample_skills",
]


@dataclass(frozen=True)
class MetraConfig(SkillConfig):
    """Defaults of the official METRA state-based runs (Ant)."""

    dual_init: float = 30.0  # initial lambda (learned as log lambda)
    dual_slack: float = 1e-3  # eps in min(eps, 1 - ||phi(s') - phi(s)||^2)
    # How the squared distance reduces over the D latent dims: "mean" as the official code
    # does (the constraint is then ||.||^2 <= D), "sum" for the paper's ||.||^2 <= 1.
    dist_reduce: str = "mean"
    # Pixel observations only: the conv encoder at the root of phi. The policy and critics
    # read its features with the gradient stopped, so one encoder serves every network
    # (the official code gives each network its own; see docs/pixels.md for the measured
    # cost that decided this).
    encoder_channels: tuple[int, ...] = PIXEL_CHANNELS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dist_reduce not in ("mean", "sum"):
            raise ValueError(f"dist_reduce must be 'mean' or 'sum', got {self.dist_reduce!r}")


def centered_latent(z: jax.Array, discrete: bool) -> jax.Array:
    """The z used in the reward: one-hot skills are centered, (z - 1/D) * D / (D - 1), so the
    D skill directions sum to zero; continuous skills are used as they are."""
    if not discrete:
        return z
    d = z.shape[-1]
    return (z - 1.0 / d) * d / (d - 1)


def directional_reward(diff: jax.Array, z: jax.Array, discrete: bool) -> jax.Array:
    """(phi(s') - phi(s))^T z, the reward of METRA and LSD, from diff = phi(s') - phi(s)."""
    return (diff * centered_latent(z, discrete)).sum(-1)


def goal_direction(phi_obs: jax.Array, phi_goal: jax.Array) -> jax.Array:
    """Zero-shot goal reaching: z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||."""
    diff = phi_goal - phi_obs
    return diff / (jnp.linalg.norm(diff, axis=-1, keepdims=True) + 1e-8)


class PixelPhi(nn.Module):
    """phi over frame stacks: `PixelEncoder`, then an MLP; `encode` gives the features."""

    channels: tuple[int, ...]
    hidden: tuple[int, ...]
    out_dim: int
    init_scheme: str = "official"  # `kernel_inits` name (a field may not be called `init`)

    def setup(self) -> None:
        self.encoder = PixelEncoder(self.channels)
        inits = kernel_inits(self.init_scheme)
        self.head = MLP(self.hidden, self.out_dim, kernel_init=inits["mlp"])

    def __call__(self, frames: jax.Array) -> jax.Array:
        return self.head(self.encoder(frames))

    def encode(self, frames: jax.Array) -> jax.Array:
        return self.encoder(frames)


def phi_train_state(
    key: jax.Array, config: MetraConfig, obs_dim: int | tuple[int, ...]
) -> TrainState:
    """phi as an MLP over states, or a `PixelPhi` when `obs_dim` is an image shape."""
    if isinstance(obs_dim, tuple):
        phi_net: nn.Module = PixelPhi(
            config.encoder_channels, config.hidden, config.latent_dim, config.init
        )
        example = jnp.zeros((1, *obs_dim), jnp.uint8)
    else:
        phi_net = MLP(
            config.hidden, config.latent_dim, kernel_init=kernel_inits(config.init)["mlp"]
        )
        example = jnp.zeros((1, obs_dim))
    return adam_state(phi_net.init(key, example), config.lr, phi_net)


class DirectionalAgent(SkillAgent):
    """A skill agent rewarded by (phi(s') - phi(s))^T z that reaches goals zero-shot by
    following phi(g) - phi(s): what METRA and LSD share. Subclasses define `_phi`."""

    phi_state: TrainState

    def _phi(self, params: Any, obs: jax.Array) -> jax.Array:
        raise NotImplementedError

    @jax.jit
    def phi(self, obs: jax.Array) -> jax.Array:
        """phi(s) for raw observations [..., obs_dim]."""
        return self._phi(self.phi_state.params, obs)

    def _reward(self, batch: Batch) -> jax.Array:
        params = self.phi_state.params
        diff = self._phi(params, batch["next_obs"]) - self._phi(params, batch["obs"])
        return directional_reward(diff, batch["latent"], self.config.discrete)

    @jax.jit
    def goal_latent(self, obs: jax.Array, goal_obs: jax.Array) -> jax.Array:
        return goal_direction(self.phi(obs), self.phi(goal_obs))


class MetraAgent(DirectionalAgent):
    """phi, lambda and a SAC skill policy; observations are normalized inside."""

    log_lambda: TrainState

    @classmethod
    def feature_size(cls, config: MetraConfig, obs_shape: tuple[int, ...]) -> int:
        if len(obs_shape) == 3:
            return conv_output_size(obs_shape, config.encoder_channels)
        return super().feature_size(config, obs_shape)

    def _features(self, obs: jax.Array) -> jax.Array:
        if not self.pixels:
            return super()._features(obs)
        params = self.phi_state.params
        return jax.lax.stop_gradient(self.phi_state.apply_fn(params, obs, method=PixelPhi.encode))

    @classmethod
    def init_representation(
        cls, key: jax.Array, config: MetraConfig, obs_dim: int | tuple[int, ...]
    ) -> dict[str, Any]:
        return {
            "phi_state": phi_train_state(key, config, obs_dim),
            "log_lambda": log_scalar_state(config.dual_init, config.lr),
        }

    def _phi(self, params: Any, obs: jax.Array) -> jax.Array:
        return self.phi_state.apply_fn(params, self._normalize(obs))

    def _sq_dist(self, diff: jax.Array) -> jax.Array:
        sq = diff**2
        return sq.mean(-1) if self.config.dist_reduce == "mean" else sq.sum(-1)

    def phi_loss(self, params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
        """METRA's dual objective for phi at fixed lambda: maximize (phi(s') - phi(s))^T z
        plus lambda * min(slack, 1 - ||phi(s') - phi(s)||^2)."""
        cfg = self.config
        lam = jnp.exp(self.log_lambda.params["log"])
        diff = self._phi(params, batch["next_obs"]) - self._phi(params, batch["obs"])
        objective = directional_reward(diff, batch["latent"], cfg.discrete)
        sq_dist = self._sq_dist(diff)
        penalty = jnp.minimum(cfg.dual_slack, 1.0 - sq_dist)
        info = {
            "phi_objective": objective.mean(),
            "constraint_penalty": penalty.mean(),
            "latent_step_sq": sq_dist.mean(),
            "lambda": lam,
        }
        return -(objective + lam * penalty).mean(), info

    def update_representation(self, batch: Batch) -> tuple[MetraAgent, jax.Array, Metrics]:
        """phi, then lambda; the reward comes from the phi just updated."""
        phi_state, info = gradient_step(self.phi_state, lambda p: self.phi_loss(p, batch))
        # d/d(log lambda) of log_lambda * penalty: lambda grows while the constraint is violated.
        grad_log_lambda = {"log": jax.lax.stop_gradient(info["constraint_penalty"])}
        agent = self.replace(
            phi_state=phi_state, log_lambda=self.log_lambda.apply_gradients(grads=grad_log_lambda)
        )
        return agent, agent._reward(batch), info


@dataclass(frozen=True)
class QuasimetricMetraConfig(MetraConfig):
    """METRA whose latent distance is MRN's quasimetric (see `QuasimetricMetraAgent`); the
    latent's first half is Euclidean, its second half asymmetric."""

    latent_dim: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.discrete or self.latent_dim < 2 or self.latent_dim % 2:
            raise ValueError(
                "the quasimetric METRA needs continuous skills of an even size >= 2 "
                f"(half Euclidean, half asymmetric), got latent_dim={self.latent_dim}"
            )


def asymmetric_norm(v: jax.Array) -> jax.Array:
    """N(v) = ||v_s|| + max_i relu(-v_a,i) for v = [v_s, v_a]: MRN's d(x, x + v)."""
    return mrn(jnp.zeros_like(v), v)


def dual_ball_direction(v: jax.Array) -> jax.Array:
    """The skill z of the dual ball that maximizes z^T v: z_s = v_s / ||v_s||, and
    z_a = -e_k with k = argmin_i v_a,i where some v_a,i < 0 (else z_a = 0)."""
    half = v.shape[-1] // 2
    sym, asym = v[..., :half], v[..., half:]
    z_sym = sym / (jnp.linalg.norm(sym, axis=-1, keepdims=True) + 1e-8)
    lowest = jax.nn.one_hot(jnp.argmin(asym, -1), asym.shape[-1])
    z_asym = -lowest * (asym.min(-1, keepdims=True) < 0)
    return jnp.concatenate([z_sym, z_asym], -1)


class QuasimetricMetraAgent(MetraAgent):
    """METRA with the quasimetric latent distance d(x, y) = N(y - x) of MRN, so that one-way
    transitions need not bound the way back. Derivation (docs/quasimetric-metra.md):

    - constraint: d(phi(s), phi(s')) <= 1 on every transition;
    - reward: z^T (phi(s') - phi(s)) with z in the dual ball {z : z^T v <= N(v) for all v}
      = {||z_s|| <= 1} x {z_a <= 0, sum |z_a| <= 1}, so each step pays at most
      d(phi(s), phi(s')) <= 1, the property METRA's unit z gives with the Euclidean norm;
    - prior: z_s uniform on the unit sphere (as METRA) and z_a = -p, p uniform on the corner
      simplex {p >= 0, sum p <= 1}, so skills differ in how much one-way progress they seek;
    - goals: the z of the dual ball maximizing z^T (phi(g) - phi(s)) (`dual_ball_direction`).
    """

    def _sq_dist(self, diff: jax.Array) -> jax.Array:
        return asymmetric_norm(diff) ** 2

    @partial(jax.jit, static_argnames="n")
    def sample_latents(self, key: jax.Array, n: int) -> jax.Array:
        half = self.config.latent_dim // 2
        k_sym, k_asym = jax.random.split(key)
        z_sym = sample_skills(k_sym, n, half, discrete=False, prior="sphere")
        # D_a + 1 normalized exponentials are uniform on a simplex; dropping one leaves p
        # uniform on the corner simplex.
        weights = jax.random.exponential(k_asym, (n, half + 1))
        p = (weights / weights.sum(-1, keepdims=True))[:, :half]
        return jnp.concatenate([z_sym, -p], -1)

    @jax.jit
    def goal_latent(self, obs: jax.Array, goal_obs: jax.Array) -> jax.Array:
        return dual_ball_direction(self.phi(goal_obs) - self.phi(obs))
