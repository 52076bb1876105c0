"""CoCOA: PEARL's context encoder with a contrastive auxiliary task (the CoCOA report).

Two random temporal crops of w consecutive transitions from one trajectory are a query and
its key; the crops of the other trajectories in the meta-batch are its negatives. Each crop
is embedded as a Gaussian by the product of its transitions' factors: the query by the
encoder being trained, the key by a momentum copy of it,

    theta_k <- m theta_k + (1 - m) theta_q,

so keys change slowly (MoCo). The similarity of two Gaussian embeddings is the
Bhattacharyya-based

    s(q, k) = -(mu_q - mu_k)^T Sigma^-1 (mu_q - mu_k),   Sigma = (Sigma_q + Sigma_k) / 2,

which is largest (zero) for identical means and symmetric in q and k; the ablation is a
learned bilinear q^T W k on the means. InfoNCE over the meta-batch, plus a KL term holding the
query embeddings near the unit prior, is added to PEARL's encoder loss.

The report publishes no code; window, momentum and weights below are our choices (see
docs/meta-rl.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax

from metra.agents.base import Batch, Metrics
from metra.agents.pearl import PearlAgent, PearlConfig, kl_to_unit_gaussian
from metra.losses import info_nce

SIMILARITIES = ("bhattacharyya", "bilinear")


@dataclass(frozen=True)
class CocoaConfig(PearlConfig):
    """PEARL's defaults plus the contrastive task."""

    window: int = 32  # w: transitions per temporal crop
    momentum: float = 0.99  # m of the key encoder's Polyak average
    similarity: str = "bhattacharyya"  # or "bilinear", the ablation
    contrastive_weight: float = 1.0  # weight of InfoNCE + query KL in the encoder loss

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if self.window < 1 or not 0.0 <= self.momentum < 1.0:
            raise ValueError("CoCOA needs window >= 1 and 0 <= momentum < 1")


def bhattacharyya_similarity(
    mu_q: jax.Array, var_q: jax.Array, mu_k: jax.Array, var_k: jax.Array
) -> jax.Array:
    """-(mu_q - mu_k)^T Sigma^-1 (mu_q - mu_k), Sigma = (Sigma_q + Sigma_k) / 2, diagonal
    covariances, over broadcastable batches."""
    return -(((mu_q - mu_k) ** 2) / (0.5 * (var_q + var_k))).sum(-1)


class CocoaAgent(PearlAgent):
    """PEARL plus the contrastive task. The update batch also holds `query` and `key` crops
    [m, w, c] with masks `query_mask`, `key_mask` [m, w] (0 past a trajectory's end)."""

    key_encoder: Any  # momentum copy of the encoder's parameters
    config: CocoaConfig = struct.field(pytree_node=False)

    @classmethod
    def _init_fields(
        cls, config: PearlConfig, obs_dim: int, act_dim: int, seed: int
    ) -> dict[str, Any]:
        fields = super()._init_fields(config, obs_dim, act_dim, seed)
        encoder = fields["encoder"]
        params = dict(encoder.params)
        if config.similarity == "bilinear":  # type: ignore[attr-defined]
            params["bilinear"] = jnp.eye(config.latent_dim)
        fields["encoder"] = encoder.replace(params=params, opt_state=encoder.tx.init(params))
        fields["key_encoder"] = params["encoder"]
        return fields

    @property
    def crop_window(self) -> int:
        return self.config.window

    def _aux_loss(self, params: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        """InfoNCE of every query crop (encoder `params`) against every key crop (momentum
        encoder) of the meta-batch, plus the KL of the queries to the prior."""
        mu_q, var_q = self.posterior_of(params["encoder"], batch["query"], batch["query_mask"])
        mu_k, var_k = self.posterior_of(self.key_encoder, batch["key"], batch["key_mask"])
        mu_k, var_k = jax.lax.stop_gradient(mu_k), jax.lax.stop_gradient(var_k)
        if self.config.similarity == "bilinear":
            logits = mu_q @ params["bilinear"] @ mu_k.T
        else:
            logits = bhattacharyya_similarity(
                mu_q[:, None], var_q[:, None], mu_k[None], var_k[None]
            )
        nce = info_nce(logits)
        kl_q = self.config.kl_weight * kl_to_unit_gaussian(mu_q, var_q).mean()
        accuracy = (logits.argmax(-1) == jnp.arange(logits.shape[0])).mean()
        return self.config.contrastive_weight * (nce + kl_q), {
            "infonce": nce,
            "contrastive_accuracy": accuracy,
        }

    def _after_step(self) -> CocoaAgent:
        # theta_k <- m theta_k + (1 - m) theta_q
        key = optax.incremental_update(
            self.encoder.params["encoder"], self.key_encoder, 1.0 - self.config.momentum
        )
        return self.replace(key_encoder=key)
