"""The baselines' rewards against their formulas, on hand-made inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.agents import SKILL_AGENTS
from metra.agents.cic import apt_reward, info_nce, knn_distances, update_moments
from metra.agents.dads import DADSAgent, DADSConfig, dads_reward
from metra.agents.diayn import DIAYNAgent, DIAYNConfig, diayn_log_likelihood
from metra.agents.lsd import LSDAgent, LSDConfig

OBS, ACT, D = 5, 2, 4


def _batch(n: int = 64, discrete: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = np.eye(D)[rng.integers(0, D, n)] if discrete else rng.normal(size=(n, D))
    return {
        "obs": rng.normal(size=(n, OBS)).astype(np.float32),
        "next_obs": rng.normal(size=(n, OBS)).astype(np.float32),
        "action": rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
        "latent": z.astype(np.float32),
        "mask": np.ones(n, np.float32),
    }


def _create(cls, config_cls, **kw):
    return cls.create(config_cls(latent_dim=D, hidden=(32, 32), lr=1e-3, **kw), OBS, ACT, 0)


@pytest.mark.parametrize("algo", list(SKILL_AGENTS))
@pytest.mark.parametrize("discrete", [False, True])
def test_every_agent_updates(algo: str, discrete: bool) -> None:
    if discrete and algo == "qmetra":
        pytest.skip("the quasimetric METRA has continuous skills only")
    config_cls, agent_cls = SKILL_AGENTS[algo]
    agent = _create(agent_cls, config_cls, discrete=discrete)
    batch = _batch(discrete=discrete)
    z = agent.sample_latents(jax.random.PRNGKey(0), 7)
    assert z.shape == (7, D)
    assert agent.intrinsic_reward(batch).shape == (64,)
    stacked = {k: np.stack([v, v]) for k, v in batch.items()}
    new, metrics = agent.update(stacked)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert not np.allclose(
        new.act(batch["obs"], batch["latent"], deterministic=True),
        agent.act(batch["obs"], batch["latent"], deterministic=True),
    )


def test_lsd_phi_is_one_lipschitz() -> None:
    agent = _create(LSDAgent, LSDConfig)
    for _ in range(30):  # let the power iterations converge to each layer's sigma
        agent = agent.refresh_spectral_stats()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 500, OBS)).astype(np.float32) * 3
    ratio = np.linalg.norm(agent.phi(x) - agent.phi(y), axis=-1) / np.linalg.norm(x - y, axis=-1)
    assert ratio.max() <= 1.0 + 1e-3
    assert ratio.max() > 0.05  # not collapsed to a constant


def test_lsd_reward_is_phi_difference_dot_skill() -> None:
    agent = _create(LSDAgent, LSDConfig)
    batch = _batch()
    diff = np.asarray(agent.phi(batch["next_obs"]) - agent.phi(batch["obs"]))
    expected = (diff * batch["latent"]).sum(-1)
    np.testing.assert_allclose(agent.intrinsic_reward(batch), expected, rtol=1e-5, atol=1e-6)


def test_diayn_log_likelihood_by_hand() -> None:
    logits = jnp.array([[0.0, np.log(3.0), 0.0]])  # softmax = (1/5, 3/5, 1/5)
    z = jnp.array([[0.0, 1.0, 0.0]])
    got = float(diayn_log_likelihood(logits, z, discrete=True)[0])
    assert got == pytest.approx(np.log(3 / 5) - np.log(1 / 3), rel=1e-5)
    mean, z = jnp.array([[1.0, 2.0, 0.0]]), jnp.zeros((1, 3))
    got = float(diayn_log_likelihood(mean, z, discrete=False)[0])
    assert got == pytest.approx(-0.5 * 5 - 1.5 * np.log(2 * np.pi), rel=1e-5)


def test_diayn_agent_reward_uses_discriminator_on_next_state() -> None:
    agent = _create(DIAYNAgent, DIAYNConfig, discrete=True)
    batch = _batch(discrete=True)
    logits = agent.disc_state.apply_fn(agent.disc_state.params, batch["next_obs"])
    log_p = np.asarray(jax.nn.log_softmax(logits))
    expected = log_p[np.arange(64), batch["latent"].argmax(-1)] + np.log(D)
    np.testing.assert_allclose(agent.intrinsic_reward(batch), expected, rtol=1e-5, atol=1e-5)


def test_dads_reward_by_hand() -> None:
    log_q = jnp.log(jnp.array([0.5]))
    log_q_prior = jnp.log(jnp.array([[0.5], [0.1], [0.3], [0.1]]))  # mean 0.25
    assert float(dads_reward(log_q, log_q_prior)[0]) == pytest.approx(np.log(2.0), rel=1e-5)


def test_dads_reward_is_zero_when_dynamics_ignore_the_skill() -> None:
    agent = _create(DADSAgent, DADSConfig)
    batch = _batch()
    assert np.abs(np.asarray(agent.intrinsic_reward(batch))).max() > 1e-3
    params = jax.tree.map(lambda x: x, agent.dyn_state.params)
    first = params["params"]["Dense_0"]["kernel"]
    params["params"]["Dense_0"]["kernel"] = first.at[OBS:].set(0.0)  # rows that read z
    agent = agent.replace(dyn_state=agent.dyn_state.replace(params=params))
    np.testing.assert_allclose(agent.intrinsic_reward(batch), 0.0, atol=1e-5)


def test_info_nce_is_minimal_when_positives_align() -> None:
    eye = jnp.eye(4)
    aligned = float(info_nce(eye, eye, 0.5))
    shuffled = float(info_nce(eye, eye[jnp.array([1, 2, 3, 0])], 0.5))
    assert aligned == pytest.approx(np.log(1 + 3 * np.exp(-2.0)), rel=1e-5)
    assert shuffled > aligned


def test_knn_and_apt_reward_by_hand() -> None:
    source = jnp.array([[0.0], [10.0]])
    target = jnp.array([[1.0], [3.0], [10.0]])
    np.testing.assert_allclose(knn_distances(source, target, 2), [[1.0, 3.0], [0.0, 7.0]])
    moments = jnp.array([0.0, 4.0, 10.0])  # std 2
    np.testing.assert_allclose(
        apt_reward(jnp.array([[1.0, 3.0]]), moments, 0.5), [(0.0 + 1.0) / 2], rtol=1e-6
    )


def test_running_moments_match_numpy() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(50, 4)) for _ in range(5)]
    moments = jnp.array([0.0, 1.0, 1e-9])
    for chunk in chunks:
        moments = update_moments(moments, jnp.asarray(chunk))
    data = np.concatenate(chunks)
    np.testing.assert_allclose(moments[:2], [data.mean(), data.var()], rtol=1e-4)
    assert float(moments[2]) == pytest.approx(data.size)
