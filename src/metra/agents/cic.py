"""CIC: Contrastive Intrinsic Control (Laskin et al., 2022).

Two parts. A contrastive representation: a state encoder g, a transition head on
(g(s), g(s')) and a skill head on z, trained with InfoNCE so each transition's embedding
picks out its own skill among the batch's. An exploration reward: the particle-based entropy
estimate of APT, the mean distance from g(s) to its k nearest g(s') in the batch, divided by
a running standard deviation of those distances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.training.train_state import TrainState

from metra.agents.base import Batch, Metrics, adam_state, gradient_step
from metra.agents.skill import SkillAgent, SkillConfig
from metra.losses import info_nce
from metra.networks import MLP


@dataclass(frozen=True)
class CICConfig(SkillConfig):
    """METRA's backbone with CIC's own settings. CIC's skills are uniform in [0, 1]^64; the
    presets keep their skill size for every method (agent.latent_dim=64 gives the paper's)."""

    continuous_prior: str = "uniform"
    embed_dim: int = 64  # size of g(s) and of the contrastive embeddings (CIC's skill_dim)
    contrastive_temperature: float = 0.5
    knn_k: int = 16  # neighbours in the particle entropy estimate
    knn_clip: float = 0.0005  # subtracted from normalized distances, then clipped at 0


class CICNetwork(nn.Module):
    """g (state encoder), the transition head and the skill head."""

    hidden: Sequence[int]
    embed_dim: int

    def setup(self) -> None:
        self.state_net = MLP(self.hidden, self.embed_dim)
        self.transition_net = MLP(self.hidden, self.embed_dim)
        self.skill_net = MLP(self.hidden, self.embed_dim)

    def __call__(
        self, obs: jax.Array, next_obs: jax.Array, z: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(skill query, transition key), both L2-normalized."""
        key = self.transition_net(jnp.concatenate([self.embed(obs), self.embed(next_obs)], -1))
        query = self.skill_net(z)
        unit = lambda x: x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)  # noqa: E731
        return unit(query), unit(key)

    def embed(self, obs: jax.Array) -> jax.Array:
        return self.state_net(obs)


def knn_distances(source: jax.Array, target: jax.Array, k: int) -> jax.Array:
    """Distances [B, k] from each source point to its k nearest target points."""
    dist = jnp.linalg.norm(source[:, None] - target[None], axis=-1)
    return -jax.lax.top_k(-dist, k)[0]


def update_moments(moments: jax.Array, x: jax.Array) -> jax.Array:
    """Running (mean, variance, count) updated with the samples in x (parallel algorithm)."""
    mean, var, count = moments
    n = x.size
    delta = x.mean() - mean
    total = count + n
    new_var = (var * count + x.var() * n + delta**2 * count * n / total) / total
    return jnp.stack([mean + delta * n / total, new_var, total])


def apt_reward(dists: jax.Array, moments: jax.Array, clip: float) -> jax.Array:
    """Mean over neighbours of max(d / running std - clip, 0)."""
    return jnp.maximum(dists / jnp.sqrt(moments[1]) - clip, 0.0).mean(-1)


class CICAgent(SkillAgent):
    """The contrastive networks, the distance moments and a SAC skill policy."""

    cic_state: TrainState
    moments: jax.Array  # running (mean, variance, count) of the kNN distances

    @classmethod
    def init_representation(cls, key: jax.Array, config: CICConfig, obs_dim: int) -> dict:
        net = CICNetwork(config.hidden, config.embed_dim)
        obs, z = jnp.zeros((1, obs_dim)), jnp.zeros((1, config.latent_dim))
        state = adam_state(net.init(key, obs, obs, z), config.lr, net)
        return {"cic_state": state, "moments": jnp.array([0.0, 1.0, 1e-4])}

    def _distances(self, batch: Batch) -> jax.Array:
        def embed(obs: jax.Array) -> jax.Array:
            params = self.cic_state.params
            return self.cic_state.apply_fn(params, self._normalize(obs), method=CICNetwork.embed)

        return knn_distances(embed(batch["obs"]), embed(batch["next_obs"]), self.config.knn_k)

    def _reward(self, batch: Batch) -> jax.Array:
        return apt_reward(self._distances(batch), self.moments, self.config.knn_clip)

    def update_representation(self, batch: Batch) -> tuple[CICAgent, jax.Array, Metrics]:
        cfg = self.config
        state, info = gradient_step(self.cic_state, lambda p: self.contrastive_loss(p, batch))
        agent = self.replace(cic_state=state)
        dists = agent._distances(batch)
        agent = agent.replace(moments=update_moments(agent.moments, dists))
        reward = apt_reward(dists, agent.moments, cfg.knn_clip)
        return agent, reward, info

    def contrastive_loss(self, params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
        """CIC's InfoNCE between transitions (s, s') and their skills z."""
        obs, next_obs = self._normalize(batch["obs"]), self._normalize(batch["next_obs"])
        query, key = self.cic_state.apply_fn(params, obs, next_obs, batch["latent"])
        loss = info_nce(query @ key.T / self.config.contrastive_temperature)
        return loss, {"contrastive_loss": loss}
