"""Soft actor-critic (Haarnoja et al., 2018): the RL core under every latent-conditioned agent.

`SACCore` holds the networks and optimizers and does one critic / actor / temperature step on
transitions whose observations already include any latent. `SACAgent` wraps it to learn from
a task reward alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from metra.agents.base import Agent, Batch, Metrics, require_key
from metra.networks import TanhGaussianPolicy, TwinCritic, sample_tanh_gaussian


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


def log_scalar_state(init: float, lr: float) -> TrainState:
    """A positive scalar (temperature, dual variable) learned as its log with Adam."""
    params = {"log": jnp.log(jnp.asarray(init, jnp.float32))}
    return TrainState.create(apply_fn=None, params=params, tx=optax.adam(lr))


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
        actor_net = TanhGaussianPolicy(config.hidden, act_dim)
        critic_net = TwinCritic(config.hidden)
        critic_params = critic_net.init(k_critic, obs, act)
        return cls(
            actor=TrainState.create(
                apply_fn=actor_net.apply,
                params=actor_net.init(k_actor, obs),
                tx=optax.adam(config.lr),
            ),
            critic=TrainState.create(
                apply_fn=critic_net.apply, params=critic_params, tx=optax.adam(config.lr)
            ),
            target_critic=critic_params,
            log_alpha=log_scalar_state(config.init_temperature, config.lr),
            config=config,
        )

    def sample_action(
        self, obs: jax.Array, key: jax.Array | None, deterministic: bool
    ) -> jax.Array:
        return policy_action(self.actor, obs, key, deterministic)

    def update(self, batch: Batch, key: jax.Array) -> tuple[SACCore, Metrics]:
        """One step: critics, then actor, then temperature (the official METRA order).

        `batch` has obs, action, reward, next_obs and mask (0 where the next state is terminal).
        """
        cfg = self.config
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(self.log_alpha.params["log"])
        act_dim = batch["action"].shape[-1]

        mean, log_std = self.actor.apply_fn(self.actor.params, batch["next_obs"])
        next_action, next_logp = sample_tanh_gaussian(mean, log_std, k_next)
        next_q = self.critic.apply_fn(self.target_critic, batch["next_obs"], next_action).min(0)
        target = batch["reward"] + cfg.discount * batch["mask"] * (next_q - alpha * next_logp)
        target = jax.lax.stop_gradient(target)

        def critic_loss(params: Any) -> tuple[jax.Array, jax.Array]:
            q = self.critic.apply_fn(params, batch["obs"], batch["action"])
            loss = 0.5 * ((q - target) ** 2).mean(-1).sum()  # mean over batch, sum over heads
            return loss, q.mean()

        (loss_q, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(self.critic.params)
        critic = self.critic.apply_gradients(grads=grads)
        target_critic = optax.incremental_update(critic.params, self.target_critic, cfg.tau)

        def actor_loss(params: Any) -> tuple[jax.Array, jax.Array]:
            mean, log_std = self.actor.apply_fn(params, batch["obs"])
            action, logp = sample_tanh_gaussian(mean, log_std, k_pi)
            q = critic.apply_fn(critic.params, batch["obs"], action).min(0)
            return (alpha * logp - q).mean(), logp

        (loss_pi, logp), grads = jax.value_and_grad(actor_loss, has_aux=True)(self.actor.params)
        actor = self.actor.apply_gradients(grads=grads)

        log_alpha = self.log_alpha
        if cfg.learn_temperature:
            log_alpha = temperature_step(log_alpha, logp, act_dim, cfg.target_entropy_scale)

        metrics = {
            "critic_loss": loss_q,
            "actor_loss": loss_pi,
            "q": q_mean,
            "entropy": -logp.mean(),
            "alpha": alpha,
            "reward": batch["reward"].mean(),
        }
        new = self.replace(
            actor=actor, critic=critic, target_critic=target_critic, log_alpha=log_alpha
        )
        return new, metrics


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

    @partial(jax.jit, static_argnames="deterministic")
    def act(
        self,
        obs: jax.Array,
        latent: jax.Array | None = None,
        deterministic: bool = False,
        key: jax.Array | None = None,
    ) -> jax.Array:
        require_key(key, deterministic)
        return self.core.sample_action(obs, key, deterministic)
