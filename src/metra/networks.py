"""Networks shared by every agent: MLP, pixel encoder, tanh-Gaussian policy, twin critics."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class MLP(nn.Module):
    """ReLU MLP with a linear output layer; `layer_norm` normalizes each hidden layer (QRL's
    networks use it to keep distances well scaled)."""

    hidden: Sequence[int]
    out_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
            if self.layer_norm:
                x = nn.LayerNorm()(x)
        return nn.Dense(self.out_dim)(x)


PIXEL_CHANNELS = (48, 96, 192, 384)  # the official METRA pixel encoder


def conv_output_size(obs_shape: Sequence[int], channels: Sequence[int]) -> int:
    """Flat size of `PixelEncoder`'s output for images of `obs_shape` (H, W, C)."""
    height, width = obs_shape[0], obs_shape[1]
    for _ in channels:
        height, width = (height - 4) // 2 + 1, (width - 4) // 2 + 1
    if height < 1 or width < 1:
        raise ValueError(f"images of {tuple(obs_shape)} are too small for {len(channels)} convs")
    return height * width * channels[-1]


class PixelEncoder(nn.Module):
    """The METRA pixel encoder: 4x4 convolutions of stride 2 (no padding), ELU, then
    flattened; uint8 frames [..., H, W, C] are scaled to [0, 1] first."""

    channels: Sequence[int] = PIXEL_CHANNELS

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        x = frames.astype(jnp.float32) / 255.0
        batch_shape = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        for width in self.channels:
            x = nn.elu(nn.Conv(width, (4, 4), strides=(2, 2), padding="VALID")(x))
        return x.reshape(*batch_shape, -1)


class TanhGaussianPolicy(nn.Module):
    """pi(a | s): a Gaussian squashed by tanh into [-1, 1]^act_dim."""

    hidden: Sequence[int]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns the pre-tanh mean and log-std."""
        out = MLP(self.hidden, 2 * self.act_dim)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def sample_tanh_gaussian(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A reparameterized action and its log-probability under the squashed Gaussian."""
    std = jnp.exp(log_std)
    noise = jax.random.normal(key, mean.shape)
    pre = mean + std * noise
    action = jnp.tanh(pre)
    log_prob = -0.5 * (noise**2 + 2 * log_std + jnp.log(2 * jnp.pi))
    # log |d tanh(u) / du| = 2 (log 2 - u - softplus(-2u)), the stable form.
    log_prob -= 2 * (jnp.log(2.0) - pre - jax.nn.softplus(-2 * pre))
    return action, log_prob.sum(-1)


class TwinCritic(nn.Module):
    """Two independent Q(s, a) heads; returns shape [2, batch]."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], -1)
        heads = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=2,
        )(self.hidden, 1)
        return heads(x)[..., 0]
