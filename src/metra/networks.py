"""Networks shared by every agent: MLP, pixel encoder, tanh-Gaussian policy, twin critics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from metra.losses import gaussian_log_density

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
GARAGE_LOG_STD_MIN = math.log(1e-6)  # garage's min_std = 1e-6, which the official METRA keeps

Initializer = Callable[..., jax.Array]
LECUN = nn.initializers.lecun_normal()  # Flax's default
# torch's xavier_uniform_ and xavier_normal_ (untruncated, unlike jax's glorot_normal)
XAVIER_UNIFORM = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
XAVIER_NORMAL = nn.initializers.variance_scaling(1.0, "fan_avg", "normal")
# the official policy heads: garagei's xavier_normal_ex, 0.1 x the xavier-normal std
XAVIER_NORMAL_TENTH = nn.initializers.variance_scaling(0.01, "fan_avg", "normal")
INITS = ("official", "lecun")
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "gelu": nn.gelu,  # OGBench's MLPs (flax's tanh-approximated GELU, its default)
}
TANH_LOGDETS = ("official", "exact")


def kernel_inits(scheme: str) -> dict[str, Initializer]:
    """Weight initializers by role. "official": the official METRA modules (xavier-uniform
    for phi-like MLPs and the policy trunk, xavier-normal for the critics, 0.1 x
    xavier-normal for the policy's mean and log-std heads); "lecun": Flax's default
    everywhere. Biases are zero in both."""
    if scheme == "official":
        return {"mlp": XAVIER_UNIFORM, "critic": XAVIER_NORMAL, "policy_head": XAVIER_NORMAL_TENTH}
    if scheme == "lecun":
        return {"mlp": LECUN, "critic": LECUN, "policy_head": LECUN}
    raise ValueError(f"init must be one of {INITS}, got {scheme!r}")


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """MLP with a linear output layer (ReLU hidden layers unless told); `layer_norm`
    normalizes each hidden layer (QRL's networks use it to keep distances well scaled)."""

    hidden: Sequence[int]
    out_dim: int | None  # None: no output layer (the trunk of a multi-headed network)
    layer_norm: bool = False
    act: Callable[[jax.Array], jax.Array] = nn.relu
    kernel_init: Initializer = LECUN

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = self.act(nn.Dense(width, kernel_init=self.kernel_init)(x))
            if self.layer_norm:
                x = nn.LayerNorm()(x)
        if self.out_dim is None:
            return x
        return nn.Dense(self.out_dim, kernel_init=self.kernel_init)(x)


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
    """pi(a | s): a Gaussian squashed by tanh into [-1, 1]^act_dim, with separate mean and
    log-std heads on one trunk (garage's two-headed module); the log-std is clamped to
    [log_std_min, 2] and starts near 0 (std 1) when the heads start small."""

    hidden: Sequence[int]
    act_dim: int
    act: Callable[[jax.Array], jax.Array] = nn.relu
    kernel_init: Initializer = LECUN
    head_init: Initializer = LECUN
    log_std_min: float = LOG_STD_MIN

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns the pre-tanh mean and log-std."""
        x = MLP(self.hidden, None, act=self.act, kernel_init=self.kernel_init)(obs)
        mean = nn.Dense(self.act_dim, kernel_init=self.head_init)(x)
        log_std = nn.Dense(self.act_dim, kernel_init=self.head_init)(x)
        return mean, jnp.clip(log_std, self.log_std_min, LOG_STD_MAX)


# OGBench's GCActor mean layer: xavier-uniform scaled by 1e-2 (`final_fc_init_scale`)
OGBENCH_HEAD = nn.initializers.variance_scaling(1e-2, "fan_avg", "uniform")


class ConstStdGaussianPolicy(nn.Module):
    """OGBench's GCActor with `const_std=True`, `tanh_squash=False`: an unsquashed Gaussian
    mean on an MLP trunk (no layer norm, every layer activated) and a constant std of 1.
    Returns the mean; an action is the mean (or a sample) clipped to [-1, 1]."""

    hidden: Sequence[int]
    act_dim: int
    act: Callable[[jax.Array], jax.Array] = nn.gelu
    kernel_init: Initializer = XAVIER_UNIFORM
    head_init: Initializer = OGBENCH_HEAD

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = MLP(self.hidden, None, act=self.act, kernel_init=self.kernel_init)(obs)
        return nn.Dense(self.act_dim, kernel_init=self.head_init)(x)


def _pass_gradient_clip(x: jax.Array, low: float, high: float) -> jax.Array:
    """clip(x) in value, identity in gradient (garage's clip_but_pass_gradient)."""
    return x + jax.lax.stop_gradient(jnp.clip(x, low, high) - x)


def tanh_log_det(pre: jax.Array, action: jax.Array, logdet: str) -> jax.Array:
    """log |d tanh(u) / du| per dimension. "exact": 2 (log 2 - u - softplus(-2u)), the
    stable form; "official": log(clip(1 - tanh(u)^2, 0, 1) + 1e-6) with the clip passing its
    gradient, as garage's TanhNormal, which bounds the penalty of a saturated action at
    log 1e-6."""
    if logdet == "official":
        return jnp.log(_pass_gradient_clip(1.0 - action**2, 0.0, 1.0) + 1e-6)
    if logdet == "exact":
        return 2 * (jnp.log(2.0) - pre - jax.nn.softplus(-2 * pre))
    raise ValueError(f"tanh_logdet must be one of {TANH_LOGDETS}, got {logdet!r}")


def sample_tanh_gaussian(
    mean: jax.Array, log_std: jax.Array, key: jax.Array, logdet: str = "exact"
) -> tuple[jax.Array, jax.Array]:
    """A reparameterized action and its log-probability under the squashed Gaussian."""
    std = jnp.exp(log_std)
    noise = jax.random.normal(key, mean.shape)
    pre = mean + std * noise
    action = jnp.tanh(pre)
    log_prob = gaussian_log_density(noise, log_std) - tanh_log_det(pre, action, logdet)
    return action, log_prob.sum(-1)


class TwinCritic(nn.Module):
    """Two independent Q(s, a) heads; returns shape [2, batch]."""

    hidden: Sequence[int]
    kernel_init: Initializer = LECUN

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
        )(self.hidden, 1, kernel_init=self.kernel_init)
        return heads(x)[..., 0]
