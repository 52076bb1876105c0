"""Quasimetric heads: d(x, y) >= 0, d(x, x) = 0 and d(x, z) <= d(x, y) + d(y, z), but
d(x, y) may differ from d(y, x), as optimal goal-reaching costs do.

Every head takes latents x [..., n] and y [..., n] that broadcast against each other, so
`d(x[:, None], y[None])` gives all pairs; nothing loops in Python, so each is one fused
computation under `jax.jit`.

- IQE, the Interval Quasimetric Embedding (Wang & Isola, 2022): the latent is K components
  of size D; component k's distance is the total length of the union of the intervals
  [x_ki, max(x_ki, y_ki)], i = 1..D; components are reduced by a learned mix of their max
  and their mean.
- MRN, Metric Residual Networks (Liu et al., 2022), in its true quasimetric form: the
  Euclidean distance of the first half of the latent plus max_i relu(x_i - y_i) over the
  second half.
- The Euclidean metric, the symmetric special case (METRA's latent distance).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

HEADS = ("iqe", "mrn", "euclidean")


def euclidean(x: jax.Array, y: jax.Array) -> jax.Array:
    sq = jnp.sum((x - y) ** 2, axis=-1)
    # The inner `where` keeps the gradient finite (zero) at x = y; the value is exact.
    return jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)


def mrn(x: jax.Array, y: jax.Array) -> jax.Array:
    """||x_s - y_s|| + max_i relu(x_a,i - y_a,i), x = [x_s, x_a] split in halves."""
    half = x.shape[-1] // 2
    if half == 0 or x.shape[-1] % 2:
        raise ValueError(f"MRN needs an even latent size, got {x.shape[-1]}")
    sym = euclidean(x[..., :half], y[..., :half])
    asym = jnp.max(jax.nn.relu(x[..., half:] - y[..., half:]), axis=-1)
    return sym + asym


def iqe_components(x: jax.Array, y: jax.Array, components: int) -> jax.Array:
    """Per component k, the length of the union of [x_ki, max(x_ki, y_ki)]: [..., K]."""
    n = x.shape[-1]
    if n % components:
        raise ValueError(f"latent size {n} is not a multiple of {components} components")
    x, y = jnp.broadcast_arrays(x, y)
    lo = x.reshape(*x.shape[:-1], components, n // components)
    hi = jnp.maximum(lo, y.reshape(lo.shape))
    # Sweep the intervals in order of their start: each adds what lies beyond the furthest
    # end seen so far.
    order = jnp.argsort(lo, axis=-1)
    lo = jnp.take_along_axis(lo, order, axis=-1)
    hi = jnp.take_along_axis(hi, order, axis=-1)
    furthest = jax.lax.cummax(hi, axis=hi.ndim - 1)
    before = jnp.concatenate([jnp.full_like(hi[..., :1], -jnp.inf), furthest[..., :-1]], -1)
    return jax.nn.relu(hi - jnp.maximum(lo, before)).sum(-1)


def iqe(x: jax.Array, y: jax.Array, components: int, max_weight: jax.Array | float) -> jax.Array:
    """IQE with the reduction max_weight * max_k d_k + (1 - max_weight) * mean_k d_k."""
    d = iqe_components(x, y, components)
    return max_weight * d.max(-1) + (1.0 - max_weight) * d.mean(-1)


class QuasimetricHead(nn.Module):
    """d(x, y) of one kind; IQE learns its max/mean mix (as a logit, initially 0.5)."""

    kind: str = "iqe"
    components: int = 8  # IQE only: K

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        if self.kind == "iqe":
            logit = self.param("max_weight_logit", nn.initializers.zeros, ())
            return iqe(x, y, self.components, jax.nn.sigmoid(logit))
        if self.kind == "mrn":
            return mrn(x, y)
        if self.kind == "euclidean":
            return euclidean(x, y)
        raise ValueError(f"unknown quasimetric {self.kind!r}; known: {', '.join(HEADS)}")
