import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.agents.sac import SACAgent, SACConfig


def test_polyak_target_update_is_exact() -> None:
    agent = SACAgent.create(SACConfig(hidden=(16,)), 3, 2, seed=0)
    batch = {
        "obs": jnp.ones((8, 3)),
        "next_obs": jnp.ones((8, 3)),
        "action": jnp.zeros((8, 2)),
        "reward": jnp.ones(8),
        "mask": jnp.ones(8),
    }
    new, _ = agent.update_step(batch)
    expected = jax.tree.map(
        lambda online, target: 0.005 * online + 0.995 * target,
        new.core.critic.params,
        agent.core.target_critic,
    )
    for a, b in zip(
        jax.tree.leaves(new.core.target_critic), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_sac_alone_learns_a_task_reward() -> None:
    """A one-step task (mask 0): reward -||a - a*||^2 with a* depending on the state's sign."""
    rng = np.random.default_rng(0)
    agent = SACAgent.create(SACConfig(hidden=(64, 64), lr=3e-3, init_temperature=0.1), 1, 2, 0)
    target = np.array([0.6, -0.4], np.float32)

    def batches(k: int, n: int = 128) -> dict[str, np.ndarray]:
        obs = rng.choice([-1.0, 1.0], size=(k, n, 1)).astype(np.float32)
        action = rng.uniform(-1, 1, (k, n, 2)).astype(np.float32)
        reward = -((action - obs * target) ** 2).sum(-1)
        zeros = np.zeros((k, n), np.float32)
        return {"obs": obs, "next_obs": obs, "action": action, "reward": reward, "mask": zeros}

    def error(a: SACAgent) -> float:
        obs = np.array([[1.0], [-1.0]], np.float32)
        act = np.asarray(a.act(obs, deterministic=True))
        return float(np.abs(act - obs * target).max())

    start = error(agent)
    for _ in range(8):
        agent, metrics = agent.update(batches(50))
    assert error(agent) < 0.15 < start  # measured: 0.02-0.06 over seeds 0-2
    assert float(metrics["alpha"]) < 0.08  # the temperature is learned (from 0.1)


def test_critic_loss_is_the_per_transition_td_error() -> None:
    """With mask 0 the target is the reward; the loss is 0.5 * sum over heads of the batch
    mean of squared errors, independent of the batch size."""
    agent = SACAgent.create(SACConfig(hidden=(16,)), 3, 2, seed=0)
    rng = np.random.default_rng(0)
    for n in (8, 512):
        batch = {
            "obs": rng.normal(size=(n, 3)).astype(np.float32),
            "next_obs": rng.normal(size=(n, 3)).astype(np.float32),
            "action": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
            "reward": rng.normal(size=n).astype(np.float32),
            "mask": np.zeros(n, np.float32),
        }
        q = agent.core.critic.apply_fn(agent.core.critic.params, batch["obs"], batch["action"])
        expected = 0.5 * ((np.asarray(q) - batch["reward"]) ** 2).mean(-1).sum()
        _, metrics = agent.update_step(batch)
        assert float(metrics["critic_loss"]) == pytest.approx(expected, rel=1e-5)
