"""DADS: Dynamics-Aware Discovery of Skills (Sharma et al., ICLR 2020).

A skill-dynamics model q(s' - s | s, z) (a Gaussian with unit variance over the normalized
state change) is fit by maximum likelihood; the skill policy is rewarded by how much better
its own skill predicts the change than skills from the prior do:
r = log q(s' - s | s, z) - log (1/L sum_i q(s' - s | s, z_i)), z_i ~ p(z).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from metra.agents.base import Batch, Metrics
from metra.agents.skill import SkillAgent, SkillConfig, sample_skills
from metra.networks import MLP


@dataclass(frozen=True)
class DADSConfig(SkillConfig):
    """METRA's backbone. Continuous skills are N(0, I) (the DADS paper samples uniform
    [-1, 1]^D); the skill-dynamics MLP has the backbone's width (the paper's is 512 x 2)."""

    continuous_prior: str = "gaussian"
    prior_samples: int = 100  # L, skills from the prior in the reward's denominator


def dads_reward(log_q: jax.Array, log_q_prior: jax.Array) -> jax.Array:
    """log q(z) - log mean_i q(z_i), from log q [B] and the prior samples' log q_i [L, B]."""
    num = log_q_prior.shape[0]
    return log_q - (jax.nn.logsumexp(log_q_prior, axis=0) - jnp.log(num))


class DADSAgent(SkillAgent):
    """A skill-dynamics model and a SAC skill policy."""

    dyn_state: TrainState

    @classmethod
    def init_representation(cls, key: jax.Array, config: DADSConfig, obs_dim: int) -> dict:
        net = MLP(config.hidden, obs_dim)
        state = TrainState.create(
            apply_fn=net.apply,
            params=net.init(key, jnp.zeros((1, obs_dim + config.latent_dim))),
            tx=optax.adam(config.lr),
        )
        return {"dyn_state": state}

    def _log_q(self, params: Any, obs: jax.Array, delta: jax.Array, z: jax.Array) -> jax.Array:
        """log N(delta; mu(s, z), I) for normalized obs and state change."""
        mean = self.dyn_state.apply_fn(params, jnp.concatenate([obs, z], -1))
        return -0.5 * ((delta - mean) ** 2).sum(-1) - 0.5 * delta.shape[-1] * jnp.log(2 * jnp.pi)

    def _inputs(self, batch: Batch) -> tuple[jax.Array, jax.Array]:
        obs = self._normalize(batch["obs"])
        return obs, self._normalize(batch["next_obs"]) - obs

    def _reward(self, batch: Batch) -> jax.Array:
        cfg, params = self.config, self.dyn_state.params
        obs, delta = self._inputs(batch)
        key = jax.random.fold_in(self.rng, 1)  # fixed for a given agent state
        z_prior = sample_skills(
            key, cfg.prior_samples, cfg.latent_dim, cfg.discrete, cfg.continuous_prior
        )
        z_all = jnp.broadcast_to(z_prior[:, None], (cfg.prior_samples, *batch["latent"].shape))
        log_q_prior = jax.vmap(lambda z: self._log_q(params, obs, delta, z))(z_all)
        return dads_reward(self._log_q(params, obs, delta, batch["latent"]), log_q_prior)

    def update_representation(self, batch: Batch) -> tuple[DADSAgent, jax.Array, Metrics]:
        obs, delta = self._inputs(batch)

        def loss(params: Any) -> jax.Array:
            return -self._log_q(params, obs, delta, batch["latent"]).mean()

        value, grads = jax.value_and_grad(loss)(self.dyn_state.params)
        agent = self.replace(dyn_state=self.dyn_state.apply_gradients(grads=grads))
        return agent, agent._reward(batch), {"dynamics_loss": value}
