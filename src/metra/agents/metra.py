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

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from metra.agents.base import Agent, Batch, Metrics, require_key
from metra.agents.sac import SACConfig, SACCore, log_scalar_state
from metra.networks import MLP


@dataclass(frozen=True)
class MetraConfig:
    """Defaults of the official METRA state-based runs (Ant)."""

    latent_dim: int = 2  # D: size of phi's output and of the skill
    discrete: bool = False  # one-hot skills of size D instead of the unit sphere in R^D
    hidden: tuple[int, ...] = (1024, 1024)  # width of phi, actor and critic MLPs
    lr: float = 1e-4  # Adam step size for every network, lambda and the temperature
    discount: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics
    init_temperature: float = 0.01  # initial SAC alpha
    learn_temperature: bool = True
    target_entropy_scale: float = 0.5  # target entropy = -|A| / 2
    dual_init: float = 30.0  # initial lambda (learned as log lambda)
    dual_slack: float = 1e-3  # eps in min(eps, 1 - ||phi(s') - phi(s)||^2)
    # How the squared distance reduces over the D latent dims: "mean" as the official code
    # does (the constraint is then ||.||^2 <= D), "sum" for the paper's ||.||^2 <= 1.
    dist_reduce: str = "mean"

    def __post_init__(self) -> None:
        if self.dist_reduce not in ("mean", "sum"):
            raise ValueError(f"dist_reduce must be 'mean' or 'sum', got {self.dist_reduce!r}")
        if self.latent_dim < 1 or (self.discrete and self.latent_dim < 2):
            raise ValueError(f"latent_dim {self.latent_dim} is too small")

    def sac(self) -> SACConfig:
        return SACConfig(
            hidden=self.hidden,
            lr=self.lr,
            discount=self.discount,
            tau=self.tau,
            init_temperature=self.init_temperature,
            learn_temperature=self.learn_temperature,
            target_entropy_scale=self.target_entropy_scale,
        )


def centered_latent(z: jax.Array, discrete: bool) -> jax.Array:
    """The z used in the reward: one-hot skills are centered, (z - 1/D) * D / (D - 1), so the
    D skill directions sum to zero; continuous skills are used as they are."""
    if not discrete:
        return z
    d = z.shape[-1]
    return (z - 1.0 / d) * d / (d - 1)


def sample_skills(key: jax.Array, n: int, latent_dim: int, discrete: bool) -> jax.Array:
    """n skills from the prior: uniform one-hot, or a normalized Gaussian (uniform on the
    unit sphere)."""
    if discrete:
        return jax.nn.one_hot(jax.random.randint(key, (n,), 0, latent_dim), latent_dim)
    z = jax.random.normal(key, (n, latent_dim))
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


class MetraAgent(Agent):
    """phi, lambda and a SAC skill policy; observations are normalized inside."""

    sac: SACCore
    phi_state: TrainState
    log_lambda: TrainState
    obs_mean: jax.Array
    obs_std: jax.Array
    rng: jax.Array
    config: MetraConfig = struct.field(pytree_node=False)

    @classmethod
    def create(
        cls,
        config: MetraConfig,
        obs_dim: int,
        act_dim: int,
        seed: int,
        obs_mean: Any = None,
        obs_std: Any = None,
    ) -> MetraAgent:
        """`obs_mean`/`obs_std` fix the observation normalizer (None: identity)."""
        key, k_sac, k_phi = jax.random.split(jax.random.PRNGKey(seed), 3)
        phi_net = MLP(config.hidden, config.latent_dim)
        mean = jnp.zeros(obs_dim) if obs_mean is None else jnp.asarray(obs_mean, jnp.float32)
        std = jnp.ones(obs_dim) if obs_std is None else jnp.asarray(obs_std, jnp.float32)
        if mean.shape != (obs_dim,) or std.shape != (obs_dim,):
            raise ValueError(f"normalizer shapes {mean.shape}, {std.shape} != ({obs_dim},)")
        return cls(
            sac=SACCore.create(k_sac, obs_dim + config.latent_dim, act_dim, config.sac()),
            phi_state=TrainState.create(
                apply_fn=phi_net.apply,
                params=phi_net.init(k_phi, jnp.zeros((1, obs_dim))),
                tx=optax.adam(config.lr),
            ),
            log_lambda=log_scalar_state(config.dual_init, config.lr),
            obs_mean=mean,
            obs_std=std,
            rng=key,
            config=config,
        )

    # ---- the representation -------------------------------------------------------------
    def _normalize(self, obs: jax.Array) -> jax.Array:
        return (obs - self.obs_mean) / self.obs_std

    def _phi(self, params: Any, obs: jax.Array) -> jax.Array:
        return self.phi_state.apply_fn(params, self._normalize(obs))

    @jax.jit
    def phi(self, obs: jax.Array) -> jax.Array:
        """phi(s) for raw observations [..., obs_dim]."""
        return self._phi(self.phi_state.params, obs)

    def _sq_dist(self, diff: jax.Array) -> jax.Array:
        sq = diff**2
        return sq.mean(-1) if self.config.dist_reduce == "mean" else sq.sum(-1)

    @jax.jit
    def intrinsic_reward(self, batch: Batch) -> jax.Array:
        """r = (phi(s') - phi(s))^T z with the current phi."""
        return self._reward(self.phi_state.params, batch)

    def _reward(self, params: Any, batch: Batch) -> jax.Array:
        diff = self._phi(params, batch["next_obs"]) - self._phi(params, batch["obs"])
        return (diff * centered_latent(batch["latent"], self.config.discrete)).sum(-1)

    @partial(jax.jit, static_argnames="n")
    def sample_latents(self, key: jax.Array, n: int) -> jax.Array:
        return sample_skills(key, n, self.config.latent_dim, self.config.discrete)

    @jax.jit
    def goal_latent(self, obs: jax.Array, goal_obs: jax.Array) -> jax.Array:
        """Zero-shot goal reaching: z = (phi(g) - phi(s)) / ||phi(g) - phi(s)||."""
        diff = self.phi(goal_obs) - self.phi(obs)
        return diff / (jnp.linalg.norm(diff, axis=-1, keepdims=True) + 1e-8)

    # ---- acting and learning ------------------------------------------------------------
    def _policy_input(self, obs: jax.Array, latent: jax.Array) -> jax.Array:
        return jnp.concatenate([self._normalize(obs), latent], -1)

    @partial(jax.jit, static_argnames="deterministic")
    def act(
        self,
        obs: jax.Array,
        latent: jax.Array,
        deterministic: bool = False,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Actions in [-1, 1] for raw observations and skills."""
        require_key(key, deterministic)
        return self.sac.sample_action(self._policy_input(obs, latent), key, deterministic)

    def update_step(self, batch: Batch) -> tuple[MetraAgent, Metrics]:
        """phi, lambda, then SAC (critics, policy, temperature) on one batch of transitions
        with keys obs, action, next_obs, latent, mask."""
        cfg = self.config
        lam = jnp.exp(self.log_lambda.params["log"])
        z = centered_latent(batch["latent"], cfg.discrete)

        def phi_loss(params: Any) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
            diff = self._phi(params, batch["next_obs"]) - self._phi(params, batch["obs"])
            objective = (diff * z).sum(-1)
            penalty = jnp.minimum(cfg.dual_slack, 1.0 - self._sq_dist(diff))
            return -(objective + lam * penalty).mean(), (objective, penalty)

        (_, (objective, penalty)), grads = jax.value_and_grad(phi_loss, has_aux=True)(
            self.phi_state.params
        )
        phi_state = self.phi_state.apply_gradients(grads=grads)
        # d/d(log lambda) of log_lambda * penalty: lambda grows while the constraint is violated.
        grad_log_lambda = {"log": jax.lax.stop_gradient(penalty.mean())}
        log_lambda = self.log_lambda.apply_gradients(grads=grad_log_lambda)

        reward = self._reward(phi_state.params, batch)
        sac_batch = {
            "obs": self._policy_input(batch["obs"], batch["latent"]),
            "next_obs": self._policy_input(batch["next_obs"], batch["latent"]),
            "action": batch["action"],
            "reward": reward,
            "mask": batch["mask"],
        }
        rng, key = jax.random.split(self.rng)
        sac, metrics = self.sac.update(sac_batch, key)
        metrics = {
            **metrics,
            "phi_objective": objective.mean(),
            "constraint_penalty": penalty.mean(),
            "lambda": lam,
        }
        return self.replace(sac=sac, phi_state=phi_state, log_lambda=log_lambda, rng=rng), metrics
