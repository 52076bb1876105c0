"""DADS: Dynamics-Aware Discovery of Skills (Sharma et al., ICLR 2020).

A skill-dynamics model q(s' - s | s, z) (a Gaussian with unit variance over the state
change) is fit by maximum likelihood; the skill policy is rewarded by how much better its own
skill predicts the change than L skills z_i from the prior do. As the official code does,
the model's input state and target change are standardized by batch norm, and the reward is
the bounded r = log(L + 1) - log(1 + sum_i exp(clip(log q_i - log q, -50, 50))), the log of
q over the mean of q and the q_i (the agent's own skill in the denominator), <= log(L + 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax.training.train_state import TrainState

from metra.agents.base import Batch, Metrics, adam_state, gradient_step
from metra.agents.skill import SkillAgent, SkillConfig, sample_skills
from metra.losses import gaussian_log_density
from metra.networks import MLP, kernel_inits

# The official torch.nn.BatchNorm1d(momentum=0.01) (eps is torch's default).
BATCH_NORM_MOMENTUM = 0.01
BATCH_NORM_EPS = 1e-5
REWARD_CLIP = 50.0  # bound on log q_i - log q in the bounded reward


@dataclass(frozen=True)
class DADSConfig(SkillConfig):
    """METRA's backbone. Continuous skills are N(0, I) (the DADS paper samples uniform
    [-1, 1]^D); the skill-dynamics MLP has the backbone's width (the paper's is 512 x 2) and,
    as the official `--sd_const_std 1`, a constant unit variance."""

    continuous_prior: str = "gaussian"
    prior_samples: int = 100  # L, skills from the prior in the reward's denominator
    # The official `--sd_batch_norm 1`: the model's input s and target s' - s go through batch
    # norm (batch statistics in the model's loss, running ones with momentum 0.01 in the
    # reward, no learned scale). False: the state normalizer alone.
    sd_batch_norm: bool = True
    # True (official): log(L + 1) - log(1 + sum_i exp(clip(log q_i - log q, +-50))). False:
    # the paper's log q - log mean_i q_i, unbounded and without the agent's own skill.
    bounded_reward: bool = True
    # True (official): every transition draws its own L skills. False: one draw of L skills
    # shared by the whole batch.
    alt_skills_per_transition: bool = True
    # True (official): the model's loss skips transitions whose mask is 0 (the last step of
    # an episode under the official no-bootstrap rule). False: every transition counts.
    mask_dynamics_loss: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prior_samples < 1:
            raise ValueError(f"prior_samples must be >= 1, got {self.prior_samples}")


def dads_reward(log_q: jax.Array, log_q_alt: jax.Array, bounded: bool = True) -> jax.Array:
    """The reward from log q [B] of the agent's own skill and log q_i [L, B] of the L
    alternatives: bounded, log((L + 1) q / (q + sum_i q_i)) with each log q_i - log q clipped to
    +-50 (official); or log q - log mean_i q_i (paper)."""
    num = log_q_alt.shape[0]
    if bounded:
        ratios = jnp.exp(jnp.clip(log_q_alt - log_q, -REWARD_CLIP, REWARD_CLIP))
        return jnp.log(num + 1.0) - jnp.log(1.0 + ratios.sum(0))
    return log_q - (jax.nn.logsumexp(log_q_alt, axis=0) - jnp.log(num))


def init_batch_stats(dim: int) -> dict[str, jax.Array]:
    """torch's initial running statistics: mean 0, variance 1."""
    return {"mean": jnp.zeros(dim), "var": jnp.ones(dim)}


def batch_norm(
    x: jax.Array, stats: dict[str, jax.Array], train: bool
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """torch's BatchNorm1d without a learned scale (the official never steps its scale and
    shift): in training, x [B, d] is standardized by its batch mean and biased variance, and
    the running mean and unbiased variance move toward them by the momentum; otherwise x is
    standardized by the running statistics, which stay."""
    if not train:
        return (x - stats["mean"]) / jnp.sqrt(stats["var"] + BATCH_NORM_EPS), stats
    mean, var = x.mean(0), x.var(0)
    n = x.shape[0]
    unbiased = var * n / max(n - 1, 1)
    m = BATCH_NORM_MOMENTUM
    new = {"mean": (1 - m) * stats["mean"] + m * mean, "var": (1 - m) * stats["var"] + m * unbiased}
    return (x - mean) / jnp.sqrt(var + BATCH_NORM_EPS), new


class DADSAgent(SkillAgent):
    """A skill-dynamics model and a SAC skill policy."""

    dyn_state: TrainState
    sd_stats: dict[str, dict[str, jax.Array]]  # batch-norm statistics of "input", "target"

    @classmethod
    def init_representation(cls, key: jax.Array, config: DADSConfig, obs_dim: int) -> dict:
        net = MLP(config.hidden, obs_dim, kernel_init=kernel_inits(config.init)["mlp"])
        state = adam_state(
            net.init(key, jnp.zeros((1, obs_dim + config.latent_dim))), config.lr, net
        )
        stats = {"input": init_batch_stats(obs_dim), "target": init_batch_stats(obs_dim)}
        return {"dyn_state": state, "sd_stats": stats}

    def _log_q(self, params: Any, obs: jax.Array, delta: jax.Array, z: jax.Array) -> jax.Array:
        """log N(delta; mu(s, z), I) for the model's (standardized) input and target."""
        mean = self.dyn_state.apply_fn(params, jnp.concatenate([obs, z], -1))
        return gaussian_log_density(delta - mean, 0.0).sum(-1)

    def _inputs(self, batch: Batch, train: bool) -> tuple[jax.Array, jax.Array, dict]:
        """The model's input state and target change, and the batch-norm statistics after
        them (updated when `train`, as the official's training mode)."""
        obs = self._normalize(batch["obs"])
        delta = self._normalize(batch["next_obs"]) - obs
        if not self.config.sd_batch_norm:
            return obs, delta, self.sd_stats
        obs, input_stats = batch_norm(obs, self.sd_stats["input"], train)
        delta, target_stats = batch_norm(delta, self.sd_stats["target"], train)
        return obs, delta, {"input": input_stats, "target": target_stats}

    def _alt_skills(self, batch_size: int) -> jax.Array:
        """The L alternative skills of every transition, [L, B, D]; the key is fixed for a
        given agent state."""
        cfg = self.config
        key = jax.random.fold_in(self.rng, 1)
        n = cfg.prior_samples * (batch_size if cfg.alt_skills_per_transition else 1)
        z = sample_skills(key, n, cfg.latent_dim, cfg.discrete, cfg.continuous_prior)
        z = z.reshape(cfg.prior_samples, -1, cfg.latent_dim)
        return jnp.broadcast_to(z, (cfg.prior_samples, batch_size, cfg.latent_dim))

    def _reward(self, batch: Batch) -> jax.Array:
        params = self.dyn_state.params
        obs, delta, _ = self._inputs(batch, train=False)
        z_alt = self._alt_skills(obs.shape[0])
        log_q_alt = jax.vmap(lambda z: self._log_q(params, obs, delta, z))(z_alt)
        log_q = self._log_q(params, obs, delta, batch["latent"])
        return dads_reward(log_q, log_q_alt, self.config.bounded_reward)

    def update_representation(self, batch: Batch) -> tuple[DADSAgent, jax.Array, Metrics]:
        obs, delta, stats = self._inputs(batch, train=True)
        state, info = gradient_step(
            self.dyn_state, lambda p: self.dynamics_loss(p, obs, delta, batch)
        )
        agent = self.replace(dyn_state=state, sd_stats=stats)
        return agent, agent._reward(batch), info

    def dynamics_loss(
        self, params: Any, obs: jax.Array, delta: jax.Array, batch: Batch
    ) -> tuple[jax.Array, Metrics]:
        """DADS's skill dynamics: maximize log q(s' - s | s, z) over the (masked) batch, on the
        normalized inputs `obs` and `delta`."""
        weight = batch["mask"] if self.config.mask_dynamics_loss else jnp.ones_like(batch["mask"])
        log_q = self._log_q(params, obs, delta, batch["latent"])
        loss = -(log_q * weight).sum() / (weight.sum() + 1e-12)
        return loss, {"dynamics_loss": loss}
