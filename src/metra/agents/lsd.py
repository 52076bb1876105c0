"""LSD: Lipschitz-constrained Skill Discovery (Park et al., ICLR 2022).

The same reward as METRA, (phi(s') - phi(s))^T z, but phi is made 1-Lipschitz in the
Euclidean sense of the (normalized) state by spectral normalization of every layer, instead
of METRA's temporal-distance constraint; there is no dual variable. phi maximizes the
reward directly.

Each layer's sigma(W) is a power-iteration estimate. The official phi (torch spectral_norm in
training mode) takes one power-iteration step per layer in every forward pass and keeps it:
an update runs phi on s, then s', for the loss, and again on s, then s', with the new
weights for the reward, so four steps per update, each pass with its own estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from metra.agents.base import Batch, Metrics, adam_state, gradient_step
from metra.agents.metra import DirectionalAgent, directional_reward
from metra.agents.skill import SkillConfig
from metra.networks import LECUN, Initializer, kernel_inits

SPECTRAL_REFRESHES = ("forward", "update")


@dataclass(frozen=True)
class LSDConfig(SkillConfig):
    """METRA's backbone and skill prior: the METRA repository's LSD runs use unit-length
    skills (the LSD paper draws continuous skills from N(0, I): continuous_prior=gaussian)."""

    power_iterations: int = 1  # power-iteration steps per refresh of each sigma(W) estimate
    # When the estimates are refreshed. "forward" (official): at each of phi's four passes
    # in an update. "update": once per update, shared by every pass of that update.
    spectral_refresh: str = "forward"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.spectral_refresh not in SPECTRAL_REFRESHES:
            raise ValueError(
                f"spectral_refresh must be one of {SPECTRAL_REFRESHES}, "
                f"got {self.spectral_refresh!r}"
            )
        if self.power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {self.power_iterations}")


class SpectralMLP(nn.Module):
    """A ReLU MLP whose every weight matrix is divided by its largest singular value, so the
    whole map is 1-Lipschitz in the L2 norm (ReLU is 1-Lipschitz)."""

    hidden: Sequence[int]
    out_dim: int
    power_iterations: int = 1
    kernel_init: Initializer = LECUN

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        widths = (*self.hidden, self.out_dim)
        for i, width in enumerate(widths):
            layer = nn.SpectralNorm(
                nn.Dense(width, kernel_init=self.kernel_init), n_steps=self.power_iterations
            )
            x = layer(x, update_stats=update_stats)
            if i < len(widths) - 1:
                x = nn.relu(x)
        return x


class LSDAgent(DirectionalAgent):
    """Spectrally normalized phi and a SAC skill policy."""

    phi_stats: Any  # the power-iteration vectors and sigma estimates of every layer

    @classmethod
    def init_representation(cls, key: jax.Array, config: LSDConfig, obs_dim: int) -> dict:
        net = SpectralMLP(
            config.hidden,
            config.latent_dim,
            config.power_iterations,
            kernel_init=kernel_inits(config.init)["mlp"],
        )
        variables = net.init(key, jnp.zeros((1, obs_dim)))
        state = adam_state(variables["params"], config.lr, net)
        return {"phi_state": state, "phi_stats": variables["batch_stats"]}

    def _pass(self, params: Any, stats: Any, obs: jax.Array, keep: bool) -> tuple[jax.Array, Any]:
        """phi(obs) and the estimates after the pass. Every pass takes `power_iterations`
        steps from the stored estimates; `keep` stores them, as the official's training-mode
        forward pass does."""
        variables = {"params": params, "batch_stats": stats}
        out, new = self.phi_state.apply_fn(
            variables, self._normalize(obs), update_stats=keep, mutable=["batch_stats"]
        )
        return out, new["batch_stats"]

    def _phi(self, params: Any, obs: jax.Array) -> jax.Array:
        return self._pass(params, self.phi_stats, obs, keep=False)[0]

    def _pair_reward(
        self, params: Any, stats: Any, batch: Batch, keep: bool
    ) -> tuple[jax.Array, Any]:
        """The reward from a pass on s, then one on s'."""
        phi_obs, stats = self._pass(params, stats, batch["obs"], keep)
        phi_next, stats = self._pass(params, stats, batch["next_obs"], keep)
        return directional_reward(phi_next - phi_obs, batch["latent"], self.config.discrete), stats

    def refresh_spectral_stats(self) -> LSDAgent:
        """One more power-iteration step for every layer's sigma (no gradient step)."""
        x = jnp.zeros((1, self.obs_mean.shape[0]))
        _, stats = self._pass(self.phi_state.params, self.phi_stats, x, keep=True)
        return self.replace(phi_stats=stats)

    def update_representation(self, batch: Batch) -> tuple[LSDAgent, jax.Array, Metrics]:
        """phi's gradient step, then the reward from the new phi. "forward": each of the
        four passes refreshes the estimates; "update": one refresh first, kept by all."""
        keep = self.config.spectral_refresh == "forward"
        agent = self if keep else self.refresh_spectral_stats()
        phi_state, (info, stats) = gradient_step(
            agent.phi_state, lambda p: agent.phi_loss(p, batch, keep)
        )
        reward, stats = agent._pair_reward(phi_state.params, stats, batch, keep)
        agent = agent.replace(phi_state=phi_state, phi_stats=stats)
        return agent, reward, info

    def phi_loss(self, params: Any, batch: Batch, keep: bool) -> tuple[jax.Array, Any]:
        """LSD's objective for phi: maximize (phi(s') - phi(s))^T z under the spectral norm;
        the info is (metrics, the spectral estimates after the pass)."""
        reward, stats = self._pair_reward(params, self.phi_stats, batch, keep)
        objective = reward.mean()
        return -objective, ({"phi_objective": objective}, stats)
