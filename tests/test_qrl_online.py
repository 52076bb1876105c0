"""Online QRL as the official implementation runs it (quasimetric-learning/quasimetric-rl,
`online/`): its goal mixture, transform, dynamics loss, unnormalized actor loss, exploration
noise, schedule and any-step success; each with the flag that restores what ran before."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.agents.qrl import QRLAgent, QRLConfig, actor_distance, push_transform
from metra.envs.goals import GoalEnvBatch, GoalEnvSpec
from metra.replay import sample_goal_batch, truncated_geometric
from metra.rollout import agent_policy, rollout
from metra.train.goals import GoalRunConfig
from tests.test_qrl import _numbered_buffer


def test_truncated_geometric_has_the_discounted_proportions_within_the_episode() -> None:
    rng = np.random.default_rng(0)
    k = truncated_geometric(rng, 0.9, np.full(200_000, 1000))
    expected = 0.1 * 0.9 ** np.arange(4)  # P(k) = (1 - g) g^k far from the end
    np.testing.assert_allclose(np.bincount(k, minlength=4)[:4] / len(k), expected, atol=3e-3)
    short = truncated_geometric(rng, 0.99, np.full(100_000, 3))  # renormalized over 0, 1, 2
    weights = 0.99 ** np.arange(3)
    np.testing.assert_allclose(np.bincount(short) / len(short), weights / weights.sum(), atol=5e-3)
    assert truncated_geometric(rng, 0.5, np.array([1, 1])).tolist() == [0, 0]


def test_mixed_actor_goals_are_half_random_half_geometric_future() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    batch = sample_goal_batch(
        _numbered_buffer(40, 50), rng, n, actor_goals="mixed", future_discount=0.9
    )
    obs, goal = batch["obs"], batch["actor_goal"]
    future, random = slice(n // 2, None), slice(None, n // 2)
    assert (goal[future, 0] == obs[future, 0]).all()  # same episode, at or after s'
    offset = (goal[future, 1] - obs[future, 1] - 1).astype(int)
    assert (offset >= 0).all()
    # near the start of an episode the offsets follow 0.1 * 0.9^k
    early = obs[future, 1] < 10
    share = np.bincount(offset[early], minlength=3)[:3] / early.sum()
    np.testing.assert_allclose(share, 0.1 * 0.9 ** np.arange(3), atol=0.015)
    # the random half comes from other episodes about 39 times in 40
    assert abs((goal[random, 0] != obs[random, 0]).mean() - 39 / 40) < 0.01
    # "future" (OGBench's, the default) stays the uniform later state of the same episode
    plain = sample_goal_batch(_numbered_buffer(40, 50), rng, 2000)
    assert (plain["actor_goal"][:, 0] == plain["obs"][:, 0]).all()
    with pytest.raises(ValueError, match="actor_goals"):
        sample_goal_batch(_numbered_buffer(40, 50), rng, 4, actor_goals="random")


def test_online_default_is_the_official_online_qrl() -> None:
    config = GoalRunConfig.default("fetch_reach")
    train, agent = config.train, config.agent
    assert (train.batch_size, train.num_envs, train.grad_steps, train.min_replay_episodes) == (
        256,
        10,
        500,
        200,
    )
    # one update per env step (10 Fetch episodes of 50 steps per 500 updates), after 10k
    # random steps
    assert train.grad_steps == train.num_envs * 50 and train.min_replay_episodes * 50 == 10_000
    assert (train.exploration_noise, train.actor_goals, train.future_discount) == (
        0.3,
        "mixed",
        0.99,
    )
    assert (agent.transform_scale, agent.transform_offset) == (10.0, 1.5)
    assert (agent.dynamics_loss, agent.dynamics_weight, agent.actor_normalize) == (
        "squared",
        0.1,
        False,
    )
    assert (agent.lr, agent.actor_lr, agent.alpha_lr, agent.lambda_init) == (
        1e-4,
        3e-5,
        3e-4,
        0.01,
    )
    # An online run saved before these fields existed reads back as what it trained.
    saved = config.to_dict()
    for key in ("exploration_noise", "actor_goals", "future_discount"):
        del saved["train"][key]
    for key in ("dynamics_loss", "actor_normalize", "actor_lr", "alpha_lr"):
        del saved["agent"][key]
    old = GoalRunConfig.from_dict(saved)
    assert (old.train.exploration_noise, old.train.actor_goals) == (0.0, "future")
    assert (old.agent.dynamics_loss, old.agent.actor_normalize) == ("distance", True)
    assert old.agent.actor_lr is None and old.agent.alpha_lr is None


def test_push_transform_is_the_official_softplus_with_beta() -> None:
    d = jnp.linspace(0.0, 60.0, 13)
    # torch's softplus(15 - d, beta=0.1) = log(1 + exp(0.1 (15 - d))) / 0.1
    official = jnp.log1p(jnp.exp(0.1 * (15.0 - d))) / 0.1
    np.testing.assert_allclose(push_transform(d, 10.0, 1.5), official, rtol=1e-5)
    ogbench = 100.0 * jnp.log1p(jnp.exp(5.0 - d / 100.0))
    np.testing.assert_allclose(push_transform(d, 100.0, 5.0), ogbench, rtol=1e-5)


def test_actor_distance_is_raw_online_and_scale_free_offline() -> None:
    cost = jnp.array([10.0, 30.0])
    assert float(actor_distance(cost, normalize=False)) == pytest.approx(20.0)
    assert float(actor_distance(cost, normalize=True)) == pytest.approx(1.0, rel=1e-5)
    assert float(actor_distance(100 * cost, normalize=True)) == pytest.approx(1.0, rel=1e-5)


def _batch(rng: np.random.Generator, n: int = 32) -> dict[str, jnp.ndarray]:
    return {
        "obs": jnp.asarray(rng.normal(size=(1, n, 5)), jnp.float32),
        "next_obs": jnp.asarray(rng.normal(size=(1, n, 5)), jnp.float32),
        "action": jnp.asarray(rng.uniform(-1, 1, (1, n, 3)), jnp.float32),
        "value_goal": jnp.asarray(rng.normal(size=(1, n, 2)), jnp.float32),
        "actor_goal": jnp.asarray(rng.normal(size=(1, n, 2)), jnp.float32),
        "achieved": jnp.asarray(rng.normal(size=(1, n, 2)), jnp.float32),
    }


def test_squared_dynamics_loss_is_the_mean_square_of_both_directions() -> None:
    small = {"hidden": (32, 32), "latent_dim": 16, "components": 2}
    batch = _batch(np.random.default_rng(0))
    losses = {}
    for kind in ("distance", "squared"):
        cfg = QRLConfig.official_online(dynamics_loss=kind, critics=1, **small)
        agent = QRLAgent.create(cfg, obs_dim=5, act_dim=3, seed=0, goal_dim=2)
        _, metrics = agent.update(batch)
        losses[kind] = float(metrics["dynamics_loss"])
    # same weights (same seed): the squared loss is at least the square of the mean distance
    assert losses["squared"] >= losses["distance"] ** 2 - 1e-6
    assert losses["squared"] != pytest.approx(losses["distance"])
    with pytest.raises(ValueError, match="dynamics_loss"):
        QRLConfig(dynamics_loss="huber")


def test_actor_step_sizes_are_separate() -> None:
    cfg = QRLConfig.official_online(hidden=(16,), latent_dim=8, components=2, critics=1)
    agent = QRLAgent.create(cfg, obs_dim=5, act_dim=3, seed=0, goal_dim=2)
    new, _ = agent.update(_batch(np.random.default_rng(1)))

    def largest_step(before: Any, after: Any) -> float:
        steps = jax.tree_util.tree_map(lambda b, a: jnp.abs(b - a).max(), before, after)
        return float(max(jax.tree_util.tree_leaves(steps)))

    # Adam's first step moves every weight by about its step size
    assert largest_step(agent.actor.params, new.actor.params) == pytest.approx(3e-5, rel=0.05)
    assert largest_step(agent.critic.params, new.critic.params) == pytest.approx(1e-4, rel=0.05)
    step_alpha = abs(float(new.log_alpha.params["log"] - agent.log_alpha.params["log"]))
    assert step_alpha == pytest.approx(3e-4, rel=0.05)


class _FlashEnv:
    """Succeeds at step 2 of 4 only: any-step success 1, last-step success 0."""

    spec = GoalEnvSpec("flash", 1, 1, 1, 4, False, 0, (0,), ends_at_success=False)

    def reset(self, seed: int | None = None, task: int | None = None) -> tuple[Any, Any]:
        self.t = 0
        return np.zeros(1, np.float32), np.zeros(1, np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        self.t += 1
        return np.full(1, self.t, np.float32), self.t == 2, self.t >= 4


def test_goal_rollout_reports_last_and_any_step_success() -> None:
    envs = GoalEnvBatch([_FlashEnv(), _FlashEnv()])
    traj = rollout(envs, lambda o, t: (0 * o, envs.goals), seed=0)
    assert traj.env_major()["obs"].shape == (2, 4, 1) and traj.lengths.tolist() == [4, 4]
    assert traj.ever("success").tolist() == [1, 1] and traj.last("success").tolist() == [0, 0]
    assert not traj.terminated.any()  # Fetch-like: the time limit is not a terminal state


class _GoalAtTwo(_FlashEnv):
    """Ends its episode at success (OGBench's rule) at step 2 of 4."""

    spec = GoalEnvSpec("goal_at_two", 1, 1, 1, 4, False, 0, (0,), ends_at_success=True)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, bool]:
        obs, success, done = super().step(action)
        return obs, success, done or success


def test_an_episode_that_ends_at_its_goal_is_frozen_padding_after() -> None:
    envs = GoalEnvBatch([_GoalAtTwo()])
    traj = rollout(envs, lambda o, t: (0 * o, envs.goals), seed=0)
    assert traj.lengths.tolist() == [2] and traj.ever("success").tolist() == [1]
    assert traj.last("success").tolist() == [1] and traj.terminated[1].all()
    assert traj.returns().tolist() == [1.0]  # the reward is the success flag
    assert len(traj.actions) == 4 and not traj.obs[3:].any()  # stopped early, zero-padded


def test_exploration_noise_is_seeded_gaussian_and_clipped() -> None:
    class Still:
        def act(self, obs: Any, goal: Any, deterministic: bool, key: Any) -> np.ndarray:
            return np.full((len(obs), 4), 0.9, np.float32)

    obs, goal = np.zeros((50_000, 1)), np.zeros((50_000, 1))
    noisy, _ = agent_policy(Still(), goal, True, noise=0.3, seed=3)(obs, 0)
    again, _ = agent_policy(Still(), goal, True, noise=0.3, seed=3)(obs, 0)
    np.testing.assert_array_equal(noisy, again)
    assert noisy.max() == 1.0 and (noisy == 1.0).mean() == pytest.approx(0.37, abs=0.01)
    inside = noisy[noisy < 1.0]
    assert np.median(inside) < 0.9  # the clipped upper tail moved to 1
    quiet, _ = agent_policy(Still(), goal, True)(obs, 0)
    assert (quiet == np.float32(0.9)).all()
