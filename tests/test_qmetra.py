"""METRA with a quasimetric latent distance, and the one-way room it is meant for."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.agents.metra import (
    QuasimetricMetraAgent,
    QuasimetricMetraConfig,
    asymmetric_norm,
    dual_ball_direction,
)
from metra.envs import make_env


def test_asymmetric_norm_by_hand() -> None:
    v = jnp.array([[3.0, 4.0, -2.0, 1.0], [0.0, 0.0, 1.0, 5.0], [0.0, 0.0, -1.0, -3.0]])
    np.testing.assert_allclose(asymmetric_norm(v), [5.0 + 2.0, 0.0, 3.0])


def test_odd_or_discrete_skills_are_refused() -> None:
    with pytest.raises(ValueError, match="even size"):
        QuasimetricMetraConfig(latent_dim=3)
    with pytest.raises(ValueError, match="continuous"):
        QuasimetricMetraConfig(discrete=True)


def test_prior_skills_pay_at_most_the_quasimetric_and_goals_take_the_best() -> None:
    """z^T v <= N(v) for every prior skill (a step inside the constraint pays <= 1), and the
    goal rule's z attains max over the prior of z^T v, which is N(v) itself."""
    agent = QuasimetricMetraAgent.create(QuasimetricMetraConfig(hidden=(16,)), 3, 2, 0)
    z = agent.sample_latents(jax.random.PRNGKey(0), 4000)
    assert np.allclose(jnp.linalg.norm(z[:, :2], axis=-1), 1.0, atol=1e-5)
    assert bool((z[:, 2:] <= 0).all()) and bool((z[:, 2:].sum(-1) >= -1.0 - 1e-5).all())
    v = jax.random.normal(jax.random.PRNGKey(1), (50, 4)) * 3
    payoff = v @ z.T  # [50 v, 4000 z]
    assert bool((payoff <= asymmetric_norm(v)[:, None] + 1e-4).all())
    best = (dual_ball_direction(v) * v).sum(-1)
    assert bool((best >= payoff.max(1) - 1e-4).all())
    np.testing.assert_allclose(best, asymmetric_norm(v), rtol=1e-5, atol=1e-5)


def test_the_current_makes_upstream_four_times_slower() -> None:
    env = make_env("point_current", num_envs=3)
    start, _ = env.reset(seed=0)
    actions = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    moved = env.step(actions).obs - start
    np.testing.assert_allclose(moved[:, 0], [0.8, -0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(moved[:, 1], 0.0, atol=1e-6)
