"""DIAYN: Diversity is All You Need (Eysenbach et al., ICLR 2019).

A discriminator q(z | s') learns to tell the skill from the state it reached; the skill
policy is rewarded by how well it does, log q(z | s'): a softmax over one-hot skills, or for
continuous ones a Gaussian N(z; mu(s'), diag sigma(s')^2) whose sigma is learned by its own
network, as the official code's discriminator (garage's GaussianMLPIndependentStdModule).
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
from metra.losses import gaussian_log_density
from metra.networks import GARAGE_LOG_STD_MIN, LECUN, MLP, Initializer, kernel_inits


@dataclass(frozen=True)
class DIAYNConfig(SkillConfig):
    """METRA's backbone. DIAYN's paper uses one-hot skills; continuous ones are drawn from
    N(0, I) (the official `--unit_length 0`)."""

    continuous_prior: str = "gaussian"
    # True (official): continuous skills' sigma(s') comes from a separate MLP, its log
    # clamped below at log 1e-6 and unbounded above. False: a fixed unit variance.
    learned_std: bool = True
    # False (official): the one-hot reward is log q(z | s'). True: the DIAYN paper's
    # log q(z | s') - log p(z), i.e. + log D, which shifts every reward by a constant.
    subtract_log_prior: bool = False


def diayn_log_likelihood(
    out: jax.Array,
    log_std: jax.Array,
    z: jax.Array,
    discrete: bool,
    subtract_log_prior: bool = False,
) -> jax.Array:
    """The intrinsic reward from the discriminator's output `out` (logits, or the mean) and
    log-std for skill z: log softmax(out)[z] (+ log D with `subtract_log_prior`) for one-hot
    skills, log N(z; out, diag exp(log_std)^2) for continuous ones."""
    d = z.shape[-1]
    if discrete:
        log_q = (jax.nn.log_softmax(out) * z).sum(-1)
        return log_q + jnp.log(d) if subtract_log_prior else log_q
    return gaussian_log_density((z - out) * jnp.exp(-log_std), log_std).sum(-1)


class Discriminator(nn.Module):
    """q(z | s'): an MLP for the logits or mean and, with `learned_std`, an MLP of the same
    shape for the log-std, which starts from a zero bias (std near 1)."""

    hidden: Sequence[int]
    latent_dim: int
    learned_std: bool
    kernel_init: Initializer = LECUN

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(logits or mean, log-std), each [..., D]."""
        out = MLP(self.hidden, self.latent_dim, kernel_init=self.kernel_init)(obs)
        if not self.learned_std:
            return out, jnp.zeros_like(out)
        log_std = MLP(self.hidden, self.latent_dim, kernel_init=self.kernel_init)(obs)
        return out, jnp.maximum(log_std, GARAGE_LOG_STD_MIN)


class DIAYNAgent(SkillAgent):
    """A skill discriminator q(z | s') and a SAC skill policy."""

    disc_state: TrainState

    @classmethod
    def init_representation(cls, key: jax.Array, config: DIAYNConfig, obs_dim: int) -> dict:
        net = Discriminator(
            config.hidden,
            config.latent_dim,
            learned_std=config.learned_std and not config.discrete,
            kernel_init=kernel_inits(config.init)["mlp"],
        )
        state = adam_state(net.init(key, jnp.zeros((1, obs_dim))), config.lr, net)
        return {"disc_state": state}

    def _log_q(self, params: Any, batch: Batch) -> jax.Array:
        cfg = self.config
        out, log_std = self.disc_state.apply_fn(params, self._normalize(batch["next_obs"]))
        return diayn_log_likelihood(
            out, log_std, batch["latent"], cfg.discrete, cfg.subtract_log_prior
        )

    def _reward(self, batch: Batch) -> jax.Array:
        return self._log_q(self.disc_state.params, batch)

    def discriminator_loss(self, params: Any, batch: Batch) -> tuple[jax.Array, Metrics]:
        """DIAYN's discriminator: maximize log q(z | s')."""
        loss = -self._log_q(params, batch).mean()
        return loss, {"discriminator_loss": loss}

    def update_representation(self, batch: Batch) -> tuple[DIAYNAgent, jax.Array, Metrics]:
        state, info = gradient_step(self.disc_state, lambda p: self.discriminator_loss(p, batch))
        agent = self.replace(disc_state=state)
        return agent, agent._reward(batch), info
