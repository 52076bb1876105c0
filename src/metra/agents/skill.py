"""What every skill-discovery agent shares: the skill prior, the observation normalizer and
the SAC backbone.

A skill agent is this base plus a representation (phi, a discriminator, a skill-dynamics
model, ...) that it updates on each batch and that defines the intrinsic reward. One update
step is: the representation, then SAC on the reward from the representation just updated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp

from metra.agents.base import Agent, Batch, Metrics
from metra.agents.sac import SACConfig, SACCore, check_network_fields, sac_config_of
from metra.networks import GARAGE_LOG_STD_MIN

PRIORS = ("sphere", "gaussian", "uniform")


@dataclass(frozen=True)
class SkillConfig:
    """The skill space and the SAC backbone; the defaults are METRA's official state-based
    ones, which the METRA paper uses for every method it compares."""

    latent_dim: int = 2  # D: size of the skill
    discrete: bool = False  # one-hot skills of size D instead of a continuous prior
    # Continuous prior: "sphere" (unit vectors), "gaussian" (N(0, I)), "uniform" ([0, 1]^D).
    continuous_prior: str = "sphere"
    hidden: tuple[int, ...] = (1024, 1024)  # width of every MLP of the agent
    lr: float = 1e-4  # Adam step size for every network and learned scalar
    discount: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics
    init_temperature: float = 0.01  # initial SAC alpha
    learn_temperature: bool = True
    target_entropy_scale: float = 0.5  # target entropy = -scale * |A|
    # The official modules (docs/metra-fidelity.md has the A/B of each):
    # "official" = xavier-uniform phi and policy trunk, xavier-normal critics, 0.1 x
    # xavier-normal policy heads; "lecun" = Flax's default everywhere.
    init: str = "official"
    policy_activation: str = "tanh"  # garage's policy trunk; critics and phi stay ReLU
    log_std_min: float = GARAGE_LOG_STD_MIN  # log-std in [log 1e-6, 2]
    # "official": log(clip(1 - tanh(u)^2, 0, 1) + 1e-6) as garage's TanhNormal; "exact".
    tanh_logdet: str = "official"

    def __post_init__(self) -> None:
        check_network_fields(self)
        if self.continuous_prior not in PRIORS:
            raise ValueError(f"continuous_prior must be one of {PRIORS}")
        if self.latent_dim < 1 or (self.discrete and self.latent_dim < 2):
            raise ValueError(f"latent_dim {self.latent_dim} is too small")

    def sac(self) -> SACConfig:
        """SAC with this config's shared fields."""
        return sac_config_of(self)


def sample_skills(
    key: jax.Array, n: int, latent_dim: int, discrete: bool, prior: str = "sphere"
) -> jax.Array:
    """n skills from the prior: uniform one-hot, or a continuous prior from `PRIORS`."""
    if discrete:
        return jax.nn.one_hot(jax.random.randint(key, (n,), 0, latent_dim), latent_dim)
    if prior == "uniform":
        return jax.random.uniform(key, (n, latent_dim))
    z = jax.random.normal(key, (n, latent_dim))
    if prior == "gaussian":
        return z
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def normalizer(obs_dim: int, mean: Any, std: Any) -> tuple[jax.Array, jax.Array]:
    """Checked normalizer statistics (None: identity)."""
    mean = jnp.zeros(obs_dim) if mean is None else jnp.asarray(mean, jnp.float32)
    std = jnp.ones(obs_dim) if std is None else jnp.asarray(std, jnp.float32)
    if mean.shape != (obs_dim,) or std.shape != (obs_dim,):
        raise ValueError(f"normalizer shapes {mean.shape}, {std.shape} != ({obs_dim},)")
    return mean, std


class SkillAgent(Agent):
    """The shared part of a skill agent; subclasses add their representation's fields and
    define `init_representation`, `update_representation` and `_reward`."""

    sac: SACCore
    obs_mean: jax.Array
    obs_std: jax.Array
    rng: jax.Array
    config: Any = struct.field(pytree_node=False)
    pixels: bool = struct.field(pytree_node=False)  # observations are uint8 frame stacks

    @classmethod
    def create(
        cls,
        config: SkillConfig,
        obs_dim: int | tuple[int, ...],
        act_dim: int,
        seed: int,
        obs_mean: Any = None,
        obs_std: Any = None,
    ) -> Any:
        """`obs_dim`: a state size, or an image shape (H, W, C) for pixel observations.
        `obs_mean`/`obs_std` fix the state normalizer (None: identity)."""
        key, k_sac, k_rep = jax.random.split(jax.random.PRNGKey(seed), 3)
        obs_shape = (obs_dim,) if isinstance(obs_dim, int) else tuple(obs_dim)
        features = cls.feature_size(config, obs_shape)
        pixels = len(obs_shape) == 3
        if pixels:  # frames are scaled inside the encoder, never normalized
            mean, std = jnp.zeros(()), jnp.ones(())
        else:
            mean, std = normalizer(obs_shape[0], obs_mean, obs_std)
        return cls(
            sac=SACCore.create(k_sac, features + config.latent_dim, act_dim, config.sac()),
            obs_mean=mean,
            obs_std=std,
            rng=key,
            config=config,
            pixels=pixels,
            **cls.init_representation(k_rep, config, obs_shape if pixels else obs_shape[0]),
        )

    @classmethod
    def feature_size(cls, config: Any, obs_shape: tuple[int, ...]) -> int:
        """Size of the observation features the policy and critics read. Agents that can
        learn from pixels override it."""
        if len(obs_shape) != 1:
            raise ValueError(
                f"{cls.__name__} learns from state vectors only, not observations of shape "
                f"{obs_shape}; pixel envs run with --algo metra"
            )
        return obs_shape[0]

    @classmethod
    def init_representation(
        cls, key: jax.Array, config: Any, obs_dim: int | tuple[int, ...]
    ) -> dict[str, Any]:
        """The subclass's own fields, freshly initialized."""
        raise NotImplementedError

    def update_representation(self, batch: Batch) -> tuple[Any, jax.Array, Metrics]:
        """One step of the representation; returns (agent, reward of the batch, metrics)."""
        raise NotImplementedError

    def _reward(self, batch: Batch) -> jax.Array:
        raise NotImplementedError

    # ---- shared ---------------------------------------------------------------------
    @property
    def has_convolutions(self) -> bool:
        return self.pixels

    def _normalize(self, obs: jax.Array) -> jax.Array:
        return obs if self.pixels else (obs - self.obs_mean) / self.obs_std

    def _features(self, obs: jax.Array) -> jax.Array:
        """What the policy and critics see of an observation: the normalized state."""
        return self._normalize(obs)

    def _policy_input(self, obs: jax.Array, latent: jax.Array) -> jax.Array:
        return jnp.concatenate([self._features(obs), latent], -1)

    @jax.jit
    def intrinsic_reward(self, batch: Batch) -> jax.Array:
        """The reward SAC would get for `batch` (obs, next_obs, latent) right now."""
        return self._reward(batch)

    @partial(jax.jit, static_argnames="n")
    def sample_latents(self, key: jax.Array, n: int) -> jax.Array:
        cfg = self.config
        return sample_skills(key, n, cfg.latent_dim, cfg.discrete, cfg.continuous_prior)

    @property
    def obs_rank(self) -> int:
        return 3 if self.pixels else 1

    def _action(
        self, obs: jax.Array, latent: jax.Array | None, key: jax.Array | None, deterministic: bool
    ) -> jax.Array:
        return self.sac.sample_action(self._policy_input(obs, latent), key, deterministic)

    def update_step(self, batch: Batch) -> tuple[Any, Metrics]:
        """The representation, then SAC (critics, policy, temperature) on its reward; the
        batch has obs, action, next_obs, latent and mask."""
        agent, reward, rep_metrics = self.update_representation(batch)
        sac_batch = {
            "obs": agent._policy_input(batch["obs"], batch["latent"]),
            "next_obs": agent._policy_input(batch["next_obs"], batch["latent"]),
            "action": batch["action"],
            "reward": jax.lax.stop_gradient(reward),
            "mask": batch["mask"],
        }
        rng, key = jax.random.split(agent.rng)
        sac, metrics = agent.sac.update(sac_batch, key)
        return agent.replace(sac=sac, rng=rng), {**metrics, **rep_metrics}
