"""What every agent shares: K gradient steps in one jitted `lax.scan`, and batch types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import flax.linen as nn
import flax.struct as struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class Agent(struct.PyTreeNode):
    """Base of the agent contract: subclasses define `update_step(batch) -> (agent, metrics)`.

    `update(batches)` takes batches stacked on a leading axis of K gradient steps and runs all
    K inside one compiled call, which is where the speed of the official schedule comes from.
    """

    def update_step(self, batch: Batch) -> tuple[Any, Metrics]:
        raise NotImplementedError

    @partial(jax.jit, static_argnames="deterministic")
    def act(
        self,
        obs: jax.Array,
        latent: jax.Array | None = None,
        deterministic: bool = False,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Actions in [-1, 1] for observations [n, ...] under latents [n, L] (or one latent
        [L] for all): a skill, a goal or a task latent (plain SAC ignores it). Stochastic
        actions need `key`."""
        require_key(key, deterministic)
        if latent is not None:
            latent = per_observation(obs, latent, self.obs_rank)
        return self._action(obs, latent, key, deterministic)

    @property
    def obs_rank(self) -> int:
        """Dimensions of one observation (1 for a state vector, 3 for stacked frames)."""
        return 1

    def _action(
        self, obs: jax.Array, latent: jax.Array | None, key: jax.Array | None, deterministic: bool
    ) -> jax.Array:
        raise NotImplementedError

    @property
    def has_convolutions(self) -> bool:
        """True when the update runs conv nets: XLA's CPU backend runs convolutions inside a
        `lax.scan` about 9x slower than in a plain jitted call (measured: 8.8 s against 0.95 s
        per pixel METRA step at batch 64), so those agents step in a Python loop."""
        return False

    def update(self, batches: Batch) -> tuple[Any, Metrics]:
        """K gradient steps on `batches` (every leaf shaped [K, batch, ...]); metrics are
        averaged over the K steps."""
        if not self.has_convolutions:
            return self._scan_update(batches)
        agent, rows = self, []
        for k in range(len(next(iter(batches.values())))):
            agent, metrics = agent._jit_step(jax.tree.map(lambda x, k=k: x[k], batches))
            rows.append(metrics)
        return agent, jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *rows)

    @jax.jit
    def _scan_update(self, batches: Batch) -> tuple[Any, Metrics]:
        return self.scan_updates(batches, lambda batch: batch)

    def scan_updates(self, xs: Any, batch_of: Callable[[Any], Batch]) -> tuple[Any, Metrics]:
        """One gradient step per leading entry of `xs` on the batch `batch_of(x)`, in one
        `lax.scan` (traced inside the caller's jit); metrics averaged over the steps. `xs` are
        the batches themselves, or keys that draw each batch on the device (the MJX epoch)."""

        def body(agent: Agent, x: Any) -> tuple[Agent, Metrics]:
            return agent.update_step(batch_of(x))

        agent, metrics = jax.lax.scan(body, self, xs)
        return agent, jax.tree.map(jnp.mean, metrics)

    @jax.jit
    def _jit_step(self, batch: Batch) -> tuple[Any, Metrics]:
        return self.update_step(batch)


def gradient_step(state: Any, loss_fn: Callable[[Any], tuple[jax.Array, Any]]) -> tuple[Any, Any]:
    """One optimizer step of a train state on `loss_fn(params) -> (loss, info)`, the shape of
    every named loss term; returns the new state and the info."""
    (_, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), info


def per_observation(obs: jax.Array, latent: jax.Array, obs_rank: int) -> jax.Array:
    """`latent` with one row per observation: a single latent [L] is repeated over the batch;
    any other mismatch is an error naming both shapes."""
    batch = obs.shape[: obs.ndim - obs_rank]
    if latent.shape[:-1] == batch:
        return latent
    if latent.ndim == 1:
        return jnp.broadcast_to(latent, (*batch, latent.shape[-1]))
    raise ValueError(
        f"act got observations of shape {obs.shape} and latents of shape {latent.shape}: give "
        f"one latent [L] for all or one per observation {(*batch, latent.shape[-1])}"
    )


def require_key(key: jax.Array | None, deterministic: bool) -> None:
    """Shared argument check of every agent's `act`."""
    if key is None and not deterministic:
        raise ValueError("stochastic actions need a PRNG key: act(..., key=jax.random.key(0))")


@dataclass(frozen=True)
class ModuleApply:
    """`module.apply`, equal for equal modules (two bound `apply`s of equal modules are not)."""

    module: nn.Module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.apply(*args, **kwargs)


@cache
def adam(lr: float) -> optax.GradientTransformation:
    """One Adam per step size, shared by every train state that uses it."""
    return optax.adam(lr)


def adam_state(params: Any, lr: float, net: nn.Module | None = None) -> TrainState:
    """A train state of `net` on Adam. Its static parts (apply function, optimizer) are equal
    for equal networks and step sizes, so two agents created from one config have the same
    tree structure and share jit's compiled updates instead of compiling again."""
    return TrainState.create(
        apply_fn=None if net is None else ModuleApply(net), params=params, tx=adam(lr)
    )
