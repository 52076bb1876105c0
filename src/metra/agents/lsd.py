"""LSD: Lipschitz-constrained Skill Discovery (Park et al., ICLR 2022).

The same reward as METRA, (phi(s') - phi(s))^T z, but phi is made 1-Lipschitz in the
Euclidean sense of the (normalized) state by spectral normalization of every layer, instead
of METRA's temporal-distance constraint; there is no dual variable. phi maximizes the
reward directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from metra.agents.base import Batch, Metrics
from metra.agents.metra import DirectionalAgent, directional_reward
from metra.agents.skill import SkillConfig


@dataclass(frozen=True)
class LSDConfig(SkillConfig):
    """METRA's backbone and skill prior: the METRA repository's LSD runs use unit-length
    skills (the LSD paper draws continuous skills from N(0, I): continuous_prior=gaussian)."""

    power_iterations: int = 1  # power-iteration steps per update of each sigma(W) estimate


class SpectralMLP(nn.Module):
    """A ReLU MLP whose every weight matrix is divided by its largest singular value, so the
    whole map is 1-Lipschitz in the L2 norm (ReLU is 1-Lipschitz)."""

    hidden: Sequence[int]
    out_dim: int
    power_iterations: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        widths = (*self.hidden, self.out_dim)
        for i, width in enumerate(widths):
            layer = nn.SpectralNorm(nn.Dense(width), n_steps=self.power_iterations)
            x = layer(x, update_stats=update_stats)
            if i < len(widths) - 1:
                x = nn.relu(x)
        return x


class LSDAgent(DirectionalAgent):
    """Spectrally normalized phi and a SAC skill policy."""

    phi_stats: Any  # the power-iteration vectors and sigma estimates of every layer

    @classmethod
    def init_representation(cls, key: jax.Array, config: LSDConfig, obs_dim: int) -> dict:
        net = SpectralMLP(config.hidden, config.latent_dim, config.power_iterations)
        variables = net.init(key, jnp.zeros((1, obs_dim)))
        state = TrainState.create(
            apply_fn=net.apply, params=variables["params"], tx=optax.adam(config.lr)
        )
        return {"phi_state": state, "phi_stats": variables["batch_stats"]}

    def _phi(self, params: Any, obs: jax.Array) -> jax.Array:
        variables = {"params": params, "batch_stats": self.phi_stats}
        return self.phi_state.apply_fn(variables, self._normalize(obs))

    def refresh_spectral_stats(self) -> LSDAgent:
        """One more power-iteration step for every layer's sigma (no gradient step)."""
        x = jnp.zeros((1, self.obs_mean.shape[0]))
        variables = {"params": self.phi_state.params, "batch_stats": self.phi_stats}
        _, stats = self.phi_state.apply_fn(variables, x, update_stats=True, mutable=["batch_stats"])
        return self.replace(phi_stats=stats["batch_stats"])

    def update_representation(self, batch: Batch) -> tuple[LSDAgent, jax.Array, Metrics]:
        agent = self.refresh_spectral_stats()

        def phi_loss(params: Any) -> jax.Array:
            diff = agent._phi(params, batch["next_obs"]) - agent._phi(params, batch["obs"])
            return -directional_reward(diff, batch["latent"], agent.config.discrete).mean()

        loss, grads = jax.value_and_grad(phi_loss)(agent.phi_state.params)
        agent = agent.replace(phi_state=agent.phi_state.apply_gradients(grads=grads))
        return agent, agent._reward(batch), {"phi_objective": -loss}
