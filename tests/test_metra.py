import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.agents.metra import MetraAgent, MetraConfig, centered_latent, sample_skills

OBS, ACT = 4, 2


def _agent(**kw) -> MetraAgent:
    return MetraAgent.create(MetraConfig(hidden=(64, 64), lr=1e-3, **kw), OBS, ACT, seed=0)


def _batch(step: float, n: int = 128, d: int = 2, seed: int = 0) -> dict[str, jax.Array]:
    """Transitions that move the first d state entries by step * z, z a unit skill."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS)).astype(np.float32)
    z = np.asarray(sample_skills(jax.random.PRNGKey(seed), n, d, False))
    next_obs = obs.copy()
    next_obs[:, :d] += step * z
    return {
        "obs": obs,
        "next_obs": next_obs,
        "action": rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
        "latent": z,
        "mask": np.ones(n, np.float32),
    }


def _stack(batch: dict, k: int) -> dict:
    return {key: np.broadcast_to(v, (k, *v.shape)) for key, v in batch.items()}


def test_phi_update_raises_objective_when_constraint_is_slack() -> None:
    agent = _agent()
    batch = _batch(step=0.05)  # tiny steps: ||phi(s') - phi(s)|| stays far below 1
    before = float(agent.intrinsic_reward(batch).mean())
    agent, metrics = agent.update(_stack(batch, 60))
    after = float(agent.intrinsic_reward(batch).mean())
    assert after > before + 0.05
    assert metrics["constraint_penalty"] > 0  # slack all along
    assert float(metrics["lambda"]) < 30.0  # and lambda decays while slack


def test_lambda_rises_when_constraint_is_violated() -> None:
    agent = _agent(dual_init=1e-3)  # a weak dual lets phi stretch large steps past 1
    batch = _batch(step=50.0)
    agent, _ = agent.update(_stack(batch, 30))
    diff = agent.phi(batch["next_obs"]) - agent.phi(batch["obs"])
    assert float((diff**2).mean(-1).mean()) > 1.0  # violated
    lam0 = float(jnp.exp(agent.log_lambda.params["log"]))
    agent, metrics = agent.update(_stack(batch, 5))
    assert metrics["constraint_penalty"] < 0
    assert float(jnp.exp(agent.log_lambda.params["log"])) > lam0


def test_reward_is_phi_difference_dot_skill() -> None:
    agent = _agent()
    batch = _batch(step=0.3)
    diff = agent.phi(batch["next_obs"]) - agent.phi(batch["obs"])
    expected = (np.asarray(diff) * batch["latent"]).sum(-1)
    np.testing.assert_allclose(agent.intrinsic_reward(batch), expected, rtol=1e-5, atol=1e-6)


def test_discrete_centering() -> None:
    d = 4
    z = jnp.eye(d)
    c = np.asarray(centered_latent(z, discrete=True))
    np.testing.assert_allclose(np.diag(c), 1.0, rtol=1e-6)
    np.testing.assert_allclose(c[~np.eye(d, dtype=bool)], -1.0 / (d - 1), rtol=1e-6)
    np.testing.assert_allclose(c.sum(0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(centered_latent(z, discrete=False), z)


def test_skill_priors() -> None:
    cont = np.asarray(sample_skills(jax.random.PRNGKey(0), 500, 3, False))
    np.testing.assert_allclose(np.linalg.norm(cont, axis=-1), 1.0, rtol=1e-5)
    assert np.abs(cont.mean(0)).max() < 0.1
    disc = np.asarray(sample_skills(jax.random.PRNGKey(0), 500, 5, True))
    assert set(disc.sum(-1)) == {1.0} and set(disc.argmax(-1)) == set(range(5))


def test_distance_reduction() -> None:
    diff = jnp.array([[1.0, 2.0, 2.0]])
    assert float(_agent(dist_reduce="sum")._sq_dist(diff)[0]) == pytest.approx(9.0)
    assert float(_agent(dist_reduce="mean")._sq_dist(diff)[0]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="dist_reduce"):
        MetraConfig(dist_reduce="max")


def test_normalizer_and_goal_latent() -> None:
    agent = _agent().replace(obs_mean=jnp.ones(OBS), obs_std=2 * jnp.ones(OBS))
    obs = jnp.arange(OBS, dtype=jnp.float32)[None]
    plain = _agent()
    np.testing.assert_allclose(agent.phi(obs), plain.phi((obs - 1) / 2), rtol=1e-5)
    z = agent.goal_latent(obs, obs + 1.0)
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, rtol=1e-5)


def test_act_shapes_and_key_check() -> None:
    agent = _agent()
    obs, z = jnp.zeros((3, OBS)), jnp.ones((3, 2)) / np.sqrt(2)
    a = agent.act(obs, z, deterministic=True)
    assert a.shape == (3, ACT) and float(jnp.abs(a).max()) <= 1.0
    with pytest.raises(ValueError, match="PRNG key"):
        agent.act(obs, z)
    b = agent.act(obs, z, key=jax.random.PRNGKey(1))
    assert not np.allclose(a, b)
