"""DIAYN: Diversity is All You Need (Eysenbach et al., ICLR 2019).

A discriminator q(z | s') learns to tell the skill from the state it reached; the skill
policy is rewarded by how well it does: log q(z | s') - log p(z) for one-hot skills, and the
Gaussian log-likelihood log N(z; mu(s'), I) for continuous ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from metra.agents.base import Batch, Metrics
from metra.agents.skill import SkillAgent, SkillConfig
from metra.networks import MLP


@dataclass(frozen=True)
class DIAYNConfig(SkillConfig):
    """METRA's backbone. DIAYN's paper uses one-hot skills; continuous ones are drawn from
    N(0, I), the prior under which the unit-variance Gaussian likelihood is the reward."""

    continuous_prior: str = "gaussian"


def diayn_log_likelihood(out: jax.Array, z: jax.Array, discrete: bool) -> jax.Array:
    """The intrinsic reward from the discriminator output `out` for skill z:
    log softmax(out)[z] + log D (one-hot), or log N(z; out, I) (continuous)."""
    d = z.shape[-1]
    if discrete:
        return (jax.nn.log_softmax(out) * z).sum(-1) + jnp.log(d)
    return -0.5 * ((z - out) ** 2).sum(-1) - 0.5 * d * jnp.log(2 * jnp.pi)


class DIAYNAgent(SkillAgent):
    """A skill discriminator q(z | s') and a SAC skill policy."""

    disc_state: TrainState

    @classmethod
    def init_representation(cls, key: jax.Array, config: DIAYNConfig, obs_dim: int) -> dict:
        net = MLP(config.hidden, config.latent_dim)
        state = TrainState.create(
            apply_fn=net.apply,
            params=net.init(key, jnp.zeros((1, obs_dim))),
            tx=optax.adam(config.lr),
        )
        return {"disc_state": state}

    def _log_q(self, params: Any, batch: Batch) -> jax.Array:
        out = self.disc_state.apply_fn(params, self._normalize(batch["next_obs"]))
        return diayn_log_likelihood(out, batch["latent"], self.config.discrete)

    def _reward(self, batch: Batch) -> jax.Array:
        return self._log_q(self.disc_state.params, batch)

    def update_representation(self, batch: Batch) -> tuple[DIAYNAgent, jax.Array, Metrics]:
        def loss(params: Any) -> jax.Array:
            return -self._log_q(params, batch).mean()

        value, grads = jax.value_and_grad(loss)(self.disc_state.params)
        agent = self.replace(disc_state=self.disc_state.apply_gradients(grads=grads))
        return agent, agent._reward(batch), {"discriminator_loss": value}
