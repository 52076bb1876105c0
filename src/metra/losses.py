"""Loss pieces more than one agent uses, each once."""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOG_2PI = float(jnp.log(2 * jnp.pi))


def gaussian_log_density(scaled: jax.Array, log_std: jax.Array | float) -> jax.Array:
    """Elementwise log N(x; mean, std^2) given scaled = (x - mean) / std and log std; sum the
    last axis for a diagonal Gaussian's log-likelihood."""
    return -0.5 * (scaled**2 + 2 * log_std + LOG_2PI)


def info_nce(logits: jax.Array) -> jax.Array:
    """InfoNCE of a [B, B] similarity matrix whose positives lie on the diagonal: the
    cross-entropy of picking key i for query i among all keys of the batch."""
    return -jnp.diagonal(jax.nn.log_softmax(logits, axis=-1)).mean()
