"""Soft actor-critic (Haarnoja et al., 2018): the RL core under every latent-conditioned agent.

`SACCore` holds the networks and optimizers and does one critic / actor / temperature step on
transitions whose observations already include any latent. `SACAgent` wraps it to learn from
a task reward alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from metra.agents.base import Agent, Batch, Metrics, adam_state
from metra.networks import (
    ACTIVATIONS,
    INITS,
    LOG_STD_MIN,
    TANH_LOGDETS,
    TanhGaussianPolicy,
    TwinCritic,
    activation,
    kernel_inits,
    sample_tanh_gaussian,
)


@dataclass(frozen=True)
class SACConfig:
    """Defaults of the SAC paper (v2, learned temperature)."""

    hidden: tuple[int, ...] = (256, 256)  # width of actor and critic MLPs
    lr: float = 3e-4  # Adam step size for actor, critics and temperature
    discount: float = 0.99
    tau: float = 0.005  # Polyak rate of the target critics
    init_temperature: float = 1.0  # initial alpha
    learn_temperature: bool = True  # False keeps alpha at init_temperature
    target_entropy_scale: float = 1.0  # target entropy = -scale * |A|
    # Network details (networks.py): Flax's lecun-normal init, a ReLU policy trunk, log-std
    # >= -5 and the exact tanh log-det; the skill agents set the official METRA ones.
    init: str = "lecun"
    policy_activation: str = "relu"
    log_std_min: float = LOG_STD_MIN
    tanh_logdet: str = "exact"

    def __post_init__(self) -> None:
        check_network_fields(self)


def check_network_fields(config: Any) -> None:
    """One error for a bad init, policy activation or tanh log-det name."""
    checks = {
        "init": (config.init, INITS),
        "policy_activation": (config.policy_activation, tuple(ACTIVATIONS)),
        "tanh_logdet": (config.tanh_logdet, TANH_LOGDETS),
    }
    for name, (value, allowed) in checks.items():
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def sac_config_of(config: Any, **fixed: Any) -> SACConfig:
    """The SAC backbone of an agent config: every `SACConfig` field the config also has (by
    name), then `fixed` for the ones the agent sets itself."""
    shared = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(SACConfig)
        if hasattr(config, f.name)
    }
    return SACConfig(**{**shared, **fixed})


def log_scalar_state(init: float, lr: float) -> TrainState:
    """A positive scalar (temperature, dual variable) learned as its log with Adam."""
    params = {"log": jnp.log(jnp.asarray(init, jnp.float32))}
    return adam_state(params, lr)


def policy_action(
    actor: TrainState, inputs: jax.Array, key: jax.Array | None, deterministic: bool
) -> jax.Array:
    """An action of a tanh-Gaussian actor: tanh(mean) when deterministic, else a sample."""
    mean, log_std = actor.apply_fn(actor.params, inputs)
    if deterministic:
        return jnp.tanh(mean)
    return sample_tanh_gaussian(mean, log_std, key)[0]


def temperature_step(
    log_alpha: TrainState, logp: jax.Array, act_dim: int, target_entropy_scale: float
) -> TrainState:
    """One step of the learned temperature toward the target entropy -scale * |A|."""
    entropy_gap = jax.lax.stop_gradient(-logp.mean() + target_entropy_scale * act_dim)
    # d/d(log alpha) of log_alpha * (H - H_target): alpha falls while H is above target.
    return log_alpha.apply_gradients(grads={"log": entropy_gap})


class SACCore(struct.PyTreeNode):
    """Actor, twin critics with Polyak targets, and a log-parameterized temperature."""

    actor: TrainState
    critic: TrainState
    target_critic: Any
    log_alpha: TrainState
    config: SACConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, key: jax.Array, obs_dim: int, act_dim: int, config: SACConfig) -> SACCore:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
        inits = kernel_inits(config.init)
        actor_net = TanhGaussianPolicy(
            config.hidden,
            act_dim,
            act=activation(config.policy_activation),
            kernel_init=inits["mlp"],
            head_init=inits["policy_head"],
            log_std_min=config.log_std_min,
        )
        critic_net = TwinCritic(config.hidden, kernel_init=inits["critic"])
        critic_params = critic_net.init(k_critic, obs, act)
        return cls(
            actor=adam_state(actor_net.init(k_actor, obs), config.lr, actor_net),
            critic=adam_state(critic_params, config.lr, critic_net),
            target_critic=critic_params,
            log_alpha=log_scalar_state(config.init_temperature, config.lr),
            config=config,
        )

    def sample_action(
        self, obs: jax.Array, key: jax.Array | None, deterministic: bool
    ) -> jax.Array:
        return policy_action(self.actor, obs, key, deterministic)

    def td_target(self, batch: Batch, key: jax.Array) -> jax.Array:
        """The soft Bellman target of the twin target critics, without gradient.

        `batch` has reward, next_obs and mask (0 where the next state is terminal).
        """
        alpha = jnp.exp(self.log_alpha.params["log"])
        mean, log_std = self.actor.apply_fn(self.actor.params, batch["next_obs"])
        next_action, next_logp = sample_tanh_gaussian(mean, log_std, key, self.config.tanh_logdet)
        next_q = self.critic.apply_fn(self.target_critic, batch["next_obs"], next_action).min(0)
        target = batch["reward"] + self.config.discount * batch["mask"] * (
            next_q - alpha * next_logp
        )
        return jax.lax.stop_gradient(target)

    def critic_loss(
        self, params: Any, obs: jax.Array, action: jax.Array, target: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Half the squared TD error, mean over the batch, summed over the two heads; also
        the mean Q. Differentiable in `obs` too, so an encoder upstream can learn from it."""
        q = self.critic.apply_fn(params, obs, action)
        return 0.5 * ((q - target) ** 2).mean(-1).sum(), q.mean()

    def apply_critic_grads(self, grads: Any) -> SACCore:
        """One Adam step of the critics, then the Polyak step of their targets."""
        critic = self.critic.apply_gradients(grads=grads)
        target = optax.incremental_update(critic.params, self.target_critic, self.config.tau)
        return self.replace(critic=critic, target_critic=target)

    def actor_loss(
        self, params: Any, obs: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """SAC's actor: alpha log pi(a|s) - min Q(s, a) at a sampled action, mean over the
        batch; the info is (log pi, the actions)."""
        alpha = jnp.exp(self.log_alpha.params["log"])
        mean, log_std = self.actor.apply_fn(params, obs)
        action, logp = sample_tanh_gaussian(mean, log_std, key, self.config.tanh_logdet)
        q = self.critic.apply_fn(self.critic.params, obs, action).min(0)
        return (alpha * logp - q).mean(), (logp, action)

    def actor_step(self, obs: jax.Array, key: jax.Array) -> tuple[SACCore, Metrics]:
        """One step of the actor against the current critics, then of the temperature."""
        cfg = self.config
        alpha = jnp.exp(self.log_alpha.params["log"])
        (loss_pi, (logp, action)), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            self.actor.params, obs, key
        )
        actor = self.actor.apply_gradients(grads=grads)
        log_alpha = self.log_alpha
        if cfg.learn_temperature:
            act_dim = action.shape[-1]
            log_alpha = temperature_step(log_alpha, logp, act_dim, cfg.target_entropy_scale)
        metrics = {"actor_loss": loss_pi, "entropy": -logp.mean(), "alpha": alpha}
        return self.replace(actor=actor, log_alpha=log_alpha), metrics

    def update(self, batch: Batch, key: jax.Array) -> tuple[SACCore, Metrics]:
        """One step: critics, then actor, then temperature (the official METRA order).

        `batch` has obs, action, reward, next_obs and mask (0 where the next state is terminal).
        """
        k_next, k_pi = jax.random.split(key)
        target = self.td_target(batch, k_next)
        (loss_q, q_mean), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            self.critic.params, batch["obs"], batch["action"], target
        )
        core, metrics = self.apply_critic_grads(grads).actor_step(batch["obs"], k_pi)
        metrics = {
            "critic_loss": loss_q,
            "q": q_mean,
            **metrics,
            "reward": batch["reward"].mean(),
        }
        return core, metrics


class SACAgent(Agent):
    """SAC on a task reward; the latent argument of `act` is accepted and ignored."""

    core: SACCore
    rng: jax.Array
    config: SACConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, config: SACConfig, obs_dim: int, act_dim: int, seed: int) -> SACAgent:
        key, init_key = jax.random.split(jax.random.PRNGKey(seed))
        return cls(SACCore.create(init_key, obs_dim, act_dim, config), key, config)

    def update_step(self, batch: Batch) -> tuple[SACAgent, Metrics]:
        rng, key = jax.random.split(self.rng)
        core, metrics = self.core.update(batch, key)
        return self.replace(core=core, rng=rng), metrics

    def _action(
        self, obs: jax.Array, latent: jax.Array | None, key: jax.Array | None, deterministic: bool
    ) -> jax.Array:
        return self.core.sample_action(obs, key, deterministic)
