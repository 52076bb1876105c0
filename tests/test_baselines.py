"""The baselines' rewards against their formulas, on hand-made inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.agents import SKILL_AGENTS
from metra.agents.cic import apt_reward, knn_distances, update_moments
from metra.agents.dads import DADSAgent, DADSConfig, batch_norm, dads_reward, init_batch_stats
from metra.agents.diayn import DIAYNAgent, DIAYNConfig, diayn_log_likelihood
from metra.agents.lsd import LSDAgent, LSDConfig
from metra.losses import gaussian_log_density, info_nce

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


@jax.jit
def _represent(agent, batch):
    """One jitted step of an agent's representation: (agent, reward, metrics)."""
    return agent.update_representation(batch)


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
    zeros = jnp.zeros((1, 3))
    got = float(diayn_log_likelihood(logits, zeros, z, discrete=True)[0])
    assert got == pytest.approx(np.log(3 / 5), rel=1e-5)  # the official: log q(z | s')
    got = float(diayn_log_likelihood(logits, zeros, z, True, subtract_log_prior=True)[0])
    assert got == pytest.approx(np.log(3 / 5) - np.log(1 / 3), rel=1e-5)
    mean, z = jnp.array([[1.0, 2.0, 0.0]]), jnp.zeros((1, 3))
    got = float(diayn_log_likelihood(mean, zeros, z, discrete=False)[0])
    assert got == pytest.approx(-0.5 * 5 - 1.5 * np.log(2 * np.pi), rel=1e-5)
    # sigma = (2, 1, 1/2): -0.5 sum ((z - mu) / sigma)^2 - sum log sigma - 1.5 log 2 pi
    log_std = jnp.log(jnp.array([[2.0, 1.0, 0.5]]))
    got = float(diayn_log_likelihood(mean, log_std, z, discrete=False)[0])
    assert got == pytest.approx(-0.5 * (0.25 + 4.0) - 1.5 * np.log(2 * np.pi), rel=1e-5)


def test_diayn_agent_reward_uses_discriminator_on_next_state() -> None:
    agent = _create(DIAYNAgent, DIAYNConfig, discrete=True)
    batch = _batch(discrete=True)
    logits, _ = agent.disc_state.apply_fn(agent.disc_state.params, batch["next_obs"])
    log_p = np.asarray(jax.nn.log_softmax(logits))
    expected = log_p[np.arange(64), batch["latent"].argmax(-1)]
    np.testing.assert_allclose(agent.intrinsic_reward(batch), expected, rtol=1e-5, atol=1e-5)


def test_diayn_learns_a_state_dependent_sigma() -> None:
    """Skills drawn with std 0.2 where s'_0 > 0 and 2 elsewhere, independent of s' otherwise:
    the learned sigma(s') follows the noise; the unit-variance variant has no sigma."""
    rng = np.random.default_rng(0)
    batch = _batch(256)
    scale = np.where(batch["next_obs"][:, :1] > 0, 0.2, 2.0)
    batch["latent"] = (scale * rng.normal(size=(256, D))).astype(np.float32)
    agent = _create(DIAYNAgent, DIAYNConfig)
    fixed = _create(DIAYNAgent, DIAYNConfig, learned_std=False)
    assert len(agent.disc_state.params["params"]) == 2  # mean and log-std networks
    assert len(fixed.disc_state.params["params"]) == 1
    for _ in range(300):
        agent, fixed = _represent(agent, batch)[0], _represent(fixed, batch)[0]
    _, log_std = agent.disc_state.apply_fn(agent.disc_state.params, batch["next_obs"])
    sigma = np.exp(np.asarray(log_std)).mean(-1)
    narrow, wide = sigma[scale[:, 0] < 1].mean(), sigma[scale[:, 0] > 1].mean()
    assert narrow < 0.5 < 1.2 < wide
    assert agent.intrinsic_reward(batch).mean() > fixed.intrinsic_reward(batch).mean() + 0.5


def test_diayn_log_std_floor_is_garage_min_std() -> None:
    agent = _create(DIAYNAgent, DIAYNConfig)
    params = jax.tree.map(lambda x: x, agent.disc_state.params)
    params["params"]["MLP_1"]["Dense_2"]["bias"] = jnp.full(D, -100.0)
    _, log_std = agent.disc_state.apply_fn(params, _batch()["next_obs"])
    assert float(log_std.min()) == pytest.approx(np.log(1e-6), rel=1e-6)


def test_dads_reward_by_hand() -> None:
    """The paper's form: log q - log mean_i q_i."""
    log_q = jnp.log(jnp.array([0.5]))
    log_q_alt = jnp.log(jnp.array([[0.5], [0.1], [0.3], [0.1]]))  # mean 0.25
    got = float(dads_reward(log_q, log_q_alt, bounded=False)[0])
    assert got == pytest.approx(np.log(2.0), rel=1e-5)


def test_dads_bounded_reward_by_hand() -> None:
    """The official form: log(L + 1) - log(1 + sum_i exp(clip(log q_i - log q, -50, 50)))."""
    log_q = jnp.log(jnp.array([0.5]))
    log_q_alt = jnp.log(jnp.array([[0.5], [0.1], [0.3], [0.1]]))
    # (L + 1) q / (q + sum q_i) = 5 * 0.5 / (0.5 + 1.0)
    assert float(dads_reward(log_q, log_q_alt)[0]) == pytest.approx(np.log(5 / 3), rel=1e-5)
    # the own skill no better than the others: 0; far better: at most log(L + 1)
    same = dads_reward(jnp.zeros(1), jnp.zeros((4, 1)))
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    best = float(dads_reward(jnp.zeros(1), jnp.full((4, 1), -1e4))[0])
    assert best == pytest.approx(np.log(5.0) - np.log1p(4 * np.exp(-50.0)), rel=1e-6)
    # log q_i - log q is clipped at 50: an alternative 1e4 nats better costs exactly 50
    worst = float(dads_reward(jnp.zeros(1), jnp.array([[1e4], [-1e4]]))[0])
    assert worst == pytest.approx(np.log(3.0) - 50.0, rel=1e-6)
    assert np.isfinite(worst)


def test_dads_reward_is_zero_when_dynamics_ignore_the_skill() -> None:
    agent = _create(DADSAgent, DADSConfig)
    batch = _batch()
    assert np.abs(np.asarray(agent.intrinsic_reward(batch))).max() > 1e-3
    params = jax.tree.map(lambda x: x, agent.dyn_state.params)
    first = params["params"]["Dense_0"]["kernel"]
    params["params"]["Dense_0"]["kernel"] = first.at[OBS:].set(0.0)  # rows that read z
    agent = agent.replace(dyn_state=agent.dyn_state.replace(params=params))
    np.testing.assert_allclose(agent.intrinsic_reward(batch), 0.0, atol=1e-5)


def test_batch_norm_as_torch_by_hand() -> None:
    x = jnp.array([[1.0], [3.0]])  # batch mean 2, biased variance 1, unbiased 2
    stats = init_batch_stats(1)
    out, new = batch_norm(x, stats, train=True)
    np.testing.assert_allclose(out[:, 0], np.array([-1.0, 1.0]) / np.sqrt(1 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(new["mean"], [0.01 * 2.0], rtol=1e-6)
    np.testing.assert_allclose(new["var"], [0.99 + 0.01 * 2.0], rtol=1e-6)
    out, same = batch_norm(x, new, train=False)
    np.testing.assert_allclose(out[:, 0], (np.array([1.0, 3.0]) - 0.02) / np.sqrt(1.01 + 1e-5))
    assert same is new


def test_dads_model_loss_uses_batch_statistics_and_skips_masked_steps() -> None:
    agent = _create(DADSAgent, DADSConfig)
    batch = _batch()
    batch["mask"][::2] = 0.0
    obs, delta = batch["obs"], batch["next_obs"] - batch["obs"]
    standard = lambda x: (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)  # noqa: E731
    log_q = agent._log_q(agent.dyn_state.params, standard(obs), standard(delta), batch["latent"])
    new, reward, metrics = _represent(agent, batch)
    assert float(metrics["dynamics_loss"]) == pytest.approx(-float(log_q[1::2].mean()), rel=1e-5)
    np.testing.assert_allclose(new.sd_stats["input"]["mean"], 0.01 * obs.mean(0), rtol=1e-4)
    np.testing.assert_allclose(
        new.sd_stats["target"]["var"], 0.99 + 0.01 * delta.var(0, ddof=1), rtol=1e-5
    )
    # the reward is the new model's, on the running statistics (the official's eval mode)
    np.testing.assert_allclose(reward, new.intrinsic_reward(batch), rtol=1e-5, atol=1e-5)
    unmasked = _create(DADSAgent, DADSConfig, mask_dynamics_loss=False)
    loss = _represent(unmasked, batch)[2]["dynamics_loss"]
    assert float(loss) == pytest.approx(-float(log_q.mean()), rel=1e-5)


def test_dads_without_batch_norm_keeps_its_statistics() -> None:
    agent = _create(DADSAgent, DADSConfig, sd_batch_norm=False)
    new = _represent(agent, _batch())[0]
    for part in ("input", "target"):
        np.testing.assert_array_equal(new.sd_stats[part]["mean"], agent.sd_stats[part]["mean"])


@pytest.mark.parametrize("per_transition", [True, False])
def test_dads_alternative_skills_per_transition(per_transition: bool) -> None:
    """Identical transitions get identical rewards only when the batch shares its L skills."""
    agent = _create(DADSAgent, DADSConfig, alt_skills_per_transition=per_transition)
    batch = {k: np.repeat(v[:1], 16, axis=0) for k, v in _batch().items()}
    spread = float(np.ptp(np.asarray(agent.intrinsic_reward(batch))))
    assert (spread > 1e-4) if per_transition else (spread < 1e-6)


def _power_steps(kernel: np.ndarray, u: np.ndarray, steps: int) -> tuple[np.ndarray, list]:
    """`steps` power-iteration steps on a [in, out] kernel from u [1, out]: the last u and
    the sigma estimate after each step."""
    sigmas = []
    for _ in range(steps):
        v = u @ kernel.T
        v /= np.linalg.norm(v)
        u = v @ kernel
        u /= np.linalg.norm(u)
        sigmas.append(float((v @ kernel @ u.T)[0, 0]))
    return u, sigmas


def _spectral_phi(params: dict, sigmas: list[float], x: np.ndarray) -> np.ndarray:
    """The SpectralMLP by hand, with each layer's kernel divided by the given sigma."""
    for i, sigma in enumerate(sigmas):
        layer = params[f"Dense_{i}"]
        x = x @ (np.asarray(layer["kernel"], np.float64) / sigma) + np.asarray(layer["bias"])
        x = np.maximum(x, 0.0) if i < len(sigmas) - 1 else x
    return x


@pytest.mark.parametrize("refresh, steps", [("forward", (2, 2)), ("update", (1, 0))])
def test_lsd_power_iterations_per_update(refresh: str, steps: tuple[int, int]) -> None:
    """ "forward" (official): phi's passes on s and s' for the loss each take a step on the
    old weights, and the reward's passes on s and s' each one on the new weights, so the
    reward is phi_4(s') - phi_3(s) with phi_k on the estimate after k steps; "update": one
    step, before the loss."""
    agent = _create(LSDAgent, LSDConfig, spectral_refresh=refresh)
    batch = _batch()
    new, reward, _ = _represent(agent, batch)
    trace = []  # per layer: the sigma estimate after each step
    for i in range(3):
        name, layer = f"Dense_{i}/kernel", f"Dense_{i}"
        old_kernel = np.asarray(agent.phi_state.params[layer]["kernel"], np.float64)
        new_kernel = np.asarray(new.phi_state.params[layer]["kernel"], np.float64)
        assert not np.allclose(old_kernel, new_kernel)
        u = np.asarray(agent.phi_stats[f"SpectralNorm_{i}"][f"{name}/u"], np.float64)
        u, old_sigmas = _power_steps(old_kernel, u, steps[0])
        u, new_sigmas = _power_steps(new_kernel, u, steps[1])
        trace.append(old_sigmas + new_sigmas)
        stats = new.phi_stats[f"SpectralNorm_{i}"]
        np.testing.assert_allclose(stats[f"{name}/u"], u, rtol=1e-4, atol=1e-5)
        assert float(stats[f"{name}/sigma"]) == pytest.approx(trace[-1][-1], rel=1e-4)
    if refresh == "forward":
        params = new.phi_state.params
        phi_obs = _spectral_phi(params, [t[2] for t in trace], batch["obs"])
        phi_next = _spectral_phi(params, [t[3] for t in trace], batch["next_obs"])
        expected = ((phi_next - phi_obs) * batch["latent"]).sum(-1)
        np.testing.assert_allclose(reward, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "cls, config_cls, field",
    [
        (DADSAgent, DADSConfig, "dyn_state"),
        (DIAYNAgent, DIAYNConfig, "disc_state"),
        (LSDAgent, LSDConfig, "phi_state"),
    ],
)
def test_representations_start_xavier_uniform_with_zero_biases(cls, config_cls, field) -> None:
    """The official modules' xavier-uniform weights (|w| <= sqrt(6 / (fan_in + fan_out)))
    and zero biases; init="lecun" (Flax's default) breaks the bound."""

    def beyond_bound(agent) -> bool:
        leaves = jax.tree.leaves(getattr(agent, field).params)
        assert all(np.all(np.asarray(b) == 0) for b in leaves if b.ndim == 1)
        kernels = [np.asarray(k) for k in leaves if k.ndim == 2]
        return any(np.abs(k).max() > np.sqrt(6 / sum(k.shape)) for k in kernels)

    assert not beyond_bound(_create(cls, config_cls))
    assert beyond_bound(_create(cls, config_cls, init="lecun"))


def test_info_nce_is_minimal_when_positives_align() -> None:
    eye = jnp.eye(4)
    aligned = float(info_nce(eye @ eye.T / 0.5))
    shuffled = float(info_nce(eye @ eye[jnp.array([1, 2, 3, 0])].T / 0.5))
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


def test_gaussian_log_density_by_hand() -> None:
    # log N(1; 0, 2^2) = -1/8 - log 2 - log(2 pi) / 2
    got = float(gaussian_log_density(jnp.array(0.5), jnp.log(2.0)))
    assert got == pytest.approx(-0.125 - np.log(2.0) - 0.5 * np.log(2 * np.pi), rel=1e-6)
