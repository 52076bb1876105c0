"""PEARL: probabilistic embeddings for actor-critic meta-RL (Rakelly et al., ICML 2019).

A context encoder maps each transition c_n = (s, a, r[, s']) of a task to a Gaussian factor
N(mu_n, sigma_n^2); the posterior over the task latent z is their product,

    sigma^2 = 1 / sum_n 1 / sigma_n^2,    mu = sigma^2 * sum_n mu_n / sigma_n^2,

held near the unit Gaussian prior by a KL term. SAC learns pi(a | s, z) and Q(s, a, z); the
encoder learns from the critic's TD loss (gradient through z) and the KL term, the actor sees
z with its gradient stopped. An update takes a meta-batch of tasks, each with its own context
(recent data of that task) and its own RL batch.

Defaults are PEARL's: latent 5, encoder 3x200, actor and critics 3x300, Adam 3e-4, KL weight
0.1, reward scale 5. PEARL's SAC keeps a separate state-value network with a fixed entropy
weight; here the twin target critics give the soft value (the same fixed point) and the
entropy weight is fixed at 1 against rewards scaled by 5, as in PEARL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
from flax.training.train_state import TrainState

from metra.agents.base import Agent, Batch, Metrics, adam_state
from metra.agents.sac import SACConfig, SACCore, sac_config_of
from metra.networks import MLP

VAR_MIN = 1e-7  # PEARL's floor on each factor's variance


@dataclass(frozen=True)
class PearlConfig:
    """PEARL's published defaults (its `configs/default.py`)."""

    latent_dim: int = 5  # size of the task latent z
    hidden: tuple[int, ...] = (300, 300, 300)  # actor and critic MLPs
    encoder_hidden: tuple[int, ...] = (200, 200, 200)  # context encoder MLP
    lr: float = 3e-4  # Adam step size of actor, critics and encoder
    discount: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics
    reward_scale: float = 5.0  # rewards are multiplied by this in the TD target
    kl_weight: float = 0.1  # weight of KL(q(z | c) || N(0, I)), summed over the meta-batch
    next_obs_in_context: bool = False  # PEARL sets it for tasks that differ in dynamics
    learn_temperature: bool = False  # PEARL fixes the entropy weight (1 / reward_scale)

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.reward_scale <= 0 or self.kl_weight < 0:
            raise ValueError("PEARL needs latent_dim >= 1, reward_scale > 0 and kl_weight >= 0")

    def sac(self) -> SACConfig:
        """SAC with this config's shared fields; the entropy weight is fixed at 1 (PEARL)."""
        return sac_config_of(self, init_temperature=1.0)


def _flat(x: jax.Array) -> jax.Array:
    """[m, B, ...] -> [m * B, ...]: a meta-batch's tasks and transitions as one batch."""
    return x.reshape(-1, *x.shape[2:])


def context_dim(obs_dim: int, act_dim: int, next_obs_in_context: bool) -> int:
    """Size of one context transition: (s, a, r) or (s, a, r, s')."""
    return obs_dim * (2 if next_obs_in_context else 1) + act_dim + 1


def product_of_gaussians(
    mu: jax.Array, var: jax.Array, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of the product of Gaussian factors [..., N, L] over N; factors with
    mask 0 drop out (their precision is zeroed)."""
    precision = 1.0 / jnp.maximum(var, VAR_MIN)
    if mask is not None:
        precision = precision * mask[..., None]
    post_var = 1.0 / precision.sum(-2)
    return post_var * (mu * precision).sum(-2), post_var


def kl_to_unit_gaussian(mu: jax.Array, var: jax.Array) -> jax.Array:
    """KL(N(mu, diag var) || N(0, I)) over the last axis."""
    return 0.5 * (var + mu**2 - 1.0 - jnp.log(var)).sum(-1)


def sample_gaussian(key: jax.Array, mu: jax.Array, var: jax.Array) -> jax.Array:
    """A reparameterized sample of N(mu, diag var)."""
    return mu + jnp.sqrt(var) * jax.random.normal(key, mu.shape)


def with_latent(obs: jax.Array, z: jax.Array) -> jax.Array:
    """Observations [m, B, d] with their task's latent z [m, L] appended: [m, B, d + L]."""
    return jnp.concatenate([obs, jnp.broadcast_to(z[:, None], (*obs.shape[:-1], z.shape[-1]))], -1)


class PearlAgent(Agent):
    """SAC conditioned on a task latent inferred from context by a product of Gaussians.

    An update batch holds a meta-batch of m tasks: obs, action, next_obs [m, B, ...], reward
    and mask [m, B] (raw reward; mask 0 at terminal states) and context [m, N, c] (the
    layout of `context_dim`).
    """

    sac: SACCore
    encoder: TrainState  # params {"encoder": ...}; CoCOA adds its own learned pieces
    rng: jax.Array
    config: PearlConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, config: PearlConfig, obs_dim: int, act_dim: int, seed: int) -> Any:
        return cls(**cls._init_fields(config, obs_dim, act_dim, seed))

    @classmethod
    def _init_fields(
        cls, config: PearlConfig, obs_dim: int, act_dim: int, seed: int
    ) -> dict[str, Any]:
        """The constructor's fields; subclasses add theirs."""
        key, k_sac, k_enc = jax.random.split(jax.random.PRNGKey(seed), 3)
        ctx_dim = context_dim(obs_dim, act_dim, config.next_obs_in_context)
        net = MLP(config.encoder_hidden, 2 * config.latent_dim)
        params = {"encoder": net.init(k_enc, jnp.zeros((1, ctx_dim)))}
        return {
            "sac": SACCore.create(k_sac, obs_dim + config.latent_dim, act_dim, config.sac()),
            "encoder": adam_state(params, config.lr, net),
            "rng": key,
            "config": config,
        }

    @property
    def crop_window(self) -> int:
        """Length of the trajectory crops the update needs (0: none)."""
        return 0

    def _factors(self, net_params: Any, context: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = self.encoder.apply_fn(net_params, context)
        mu, raw = jnp.split(out, 2, axis=-1)
        return mu, jax.nn.softplus(raw)

    def posterior_of(
        self, net_params: Any, context: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """q(z | context [..., N, c]) with the encoder `net_params`: (mu, var) [..., L]."""
        return product_of_gaussians(*self._factors(net_params, context), mask)

    @jax.jit
    def infer(
        self, context: jax.Array, mask: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """The posterior (mu, var) [n, L] of n tasks' contexts [n, N, c]."""
        return self.posterior_of(self.encoder.params["encoder"], context, mask)

    def prior(self, n: int) -> tuple[jax.Array, jax.Array]:
        """The unit Gaussian prior of n tasks."""
        shape = (n, self.config.latent_dim)
        return jnp.zeros(shape), jnp.ones(shape)

    def _action(
        self, obs: jax.Array, latent: jax.Array | None, key: jax.Array | None, deterministic: bool
    ) -> jax.Array:
        """The latent is the task's z."""
        return self.sac.sample_action(jnp.concatenate([obs, latent], -1), key, deterministic)

    def _aux_loss(self, params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        """An extra encoder loss (CoCOA's contrastive task); PEARL has none."""
        return jnp.zeros(()), {}

    def _after_step(self) -> Any:
        """Bookkeeping after the gradient steps (CoCOA's momentum encoder); none here."""
        return self

    def critic_encoder_loss(
        self, params: tuple[Any, Any], batch: Batch, keys: tuple[jax.Array, ...]
    ) -> tuple[jax.Array, tuple[Metrics, jax.Array]]:
        """PEARL's joint loss of the critics and the context encoder (params in that order):
        the TD error under z drawn from the posterior of the context, its KL to the prior,
        and the encoder's auxiliary loss (CoCOA's). The info is (metrics, the z drawn, held
        fixed for the actor)."""
        cfg, sac = self.config, self.sac
        k_z, k_next, k_aux = keys
        critic_params, enc_params = params
        mu, var = self.posterior_of(enc_params["encoder"], batch["context"])
        z = sample_gaussian(k_z, mu, var)
        z_fixed = jax.lax.stop_gradient(z)
        target = sac.td_target(
            {
                "reward": cfg.reward_scale * _flat(batch["reward"]),
                "next_obs": _flat(with_latent(batch["next_obs"], z_fixed)),
                "mask": _flat(batch["mask"]),
            },
            k_next,
        )
        obs_z = _flat(with_latent(batch["obs"], z))
        loss_q, q_mean = sac.critic_loss(critic_params, obs_z, _flat(batch["action"]), target)
        kl = kl_to_unit_gaussian(mu, var).sum()
        aux, aux_metrics = self._aux_loss(enc_params, batch, k_aux)
        # Our critic loss is half PEARL's summed MSE; halving the KL keeps PEARL's ratio.
        total = loss_q + 0.5 * cfg.kl_weight * kl + aux
        metrics = {
            "critic_loss": loss_q,
            "q": q_mean,
            "kl": kl / mu.shape[0],
            "z_var": var.mean(),
            **aux_metrics,
        }
        return total, (metrics, z_fixed)

    def update_step(self, batch: Batch) -> tuple[Any, Metrics]:
        rng, k_z, k_next, k_pi, k_aux = jax.random.split(self.rng, 5)
        sac = self.sac
        (_, (metrics, z)), (g_critic, g_enc) = jax.value_and_grad(
            self.critic_encoder_loss, has_aux=True
        )((sac.critic.params, self.encoder.params), batch, (k_z, k_next, k_aux))
        sac = sac.apply_critic_grads(g_critic)
        sac, actor_metrics = sac.actor_step(_flat(with_latent(batch["obs"], z)), k_pi)
        agent = self.replace(sac=sac, encoder=self.encoder.apply_gradients(grads=g_enc), rng=rng)
        metrics = {**metrics, **actor_metrics, "reward": batch["reward"].mean()}
        return agent._after_step(), metrics
