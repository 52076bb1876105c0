"""The details that the official METRA code fixes and ours follows (docs/metra-fidelity.md):
normalizer rule, initializations, the policy's initial action distribution, the tanh log-det,
done at the time limit and the evaluation skills."""

from __future__ import annotations

from contextlib import closing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.agents.metra import MetraAgent, MetraConfig
from metra.api import resolve_config
from metra.envs import make_env
from metra.eval.skills import evaluation_latents
from metra.networks import tanh_log_det
from metra.presets import TrainConfig
from metra.rollout import Trajectories
from metra.train.online import SkillTrainer, random_rollout_statistics
from tests.conftest import TINY

# The official presets (seohongpark/METRA iod/utils.py, "10000 length-50 random rollouts"):
# HalfCheetah x, and Ant x, y, z.
OFFICIAL_HALF_CHEETAH = {"mean": {0: -0.0786}, "std": {0: 0.4039, 1: 0.0761, 2: 0.2382}}
OFFICIAL_ANT = {"mean": {2: 0.7022}, "std": {0: 0.6247, 1: 0.6196, 2: 0.1718}}


@pytest.mark.parametrize(
    ("env", "official", "episodes"),
    [("half_cheetah", OFFICIAL_HALF_CHEETAH, 2000), ("ant", OFFICIAL_ANT, 2000)],
)
@pytest.mark.slow
def test_normalizer_rule_gives_the_official_statistics(env, official, episodes) -> None:
    with closing(make_env(env, 0, 100)) as batch:
        mean, std = random_rollout_statistics(batch, episodes, 50, seed=0)
    for dim, value in official["std"].items():
        assert std[dim] == pytest.approx(value, rel=0.06), (dim, std[dim])
    for dim, value in official["mean"].items():
        assert mean[dim] == pytest.approx(value, abs=0.03), (dim, mean[dim])


def test_the_old_rule_spreads_positions_wider() -> None:
    """200-step random episodes (the warm-up rule) give the x std the issue measured."""
    with closing(make_env("half_cheetah", 0, 100)) as batch:
        _, std = random_rollout_statistics(batch, 200, 200, seed=0)
    assert std[0] > 2 * OFFICIAL_HALF_CHEETAH["std"][0]


def _kernels(params: dict) -> list[np.ndarray]:
    return [np.asarray(v["kernel"]) for v in params.values() if "kernel" in v]


def _fan_avg_std(kernel: np.ndarray) -> float:
    return float(np.sqrt(2.0 / (kernel.shape[-2] + kernel.shape[-1])))


def test_official_init_scales() -> None:
    agent = MetraAgent.create(MetraConfig(hidden=(256, 256)), 29, 8, seed=0)
    phi = _kernels(agent.phi_state.params["params"])
    for k in phi:  # xavier-uniform: std sqrt(2 / (fan_in + fan_out)), bounded by sqrt(3) std
        assert k.std() == pytest.approx(_fan_avg_std(k), rel=0.05)
        assert np.abs(k).max() <= np.sqrt(3) * _fan_avg_std(k) + 1e-6
    actor = agent.sac.actor.params["params"]
    for k in _kernels(actor["MLP_0"]):
        assert k.std() == pytest.approx(_fan_avg_std(k), rel=0.05)
    heads = [actor["Dense_0"], actor["Dense_1"]]  # mean and log-std heads
    for head in heads:
        k = np.asarray(head["kernel"])
        assert k.std() == pytest.approx(0.1 * _fan_avg_std(k), rel=0.1)
        np.testing.assert_array_equal(head["bias"], 0.0)  # log-std bias 0: initial std 1
    critic = agent.sac.critic.params["params"]["VmapMLP_0"]
    for layer in critic.values():  # xavier-normal, one slice per twin
        k = np.asarray(layer["kernel"])[0]
        assert k.std() == pytest.approx(_fan_avg_std(k), rel=0.05)
        assert np.abs(k).max() > 2.5 * _fan_avg_std(k)  # untruncated normal tails
        np.testing.assert_array_equal(layer["bias"], 0.0)
    lecun = MetraAgent.create(MetraConfig(hidden=(256, 256), init="lecun"), 29, 8, seed=0)
    first = _kernels(lecun.phi_state.params["params"])[0]
    assert first.std() == pytest.approx(1 / np.sqrt(29), rel=0.1)  # ~4x the official


def test_initial_policy_is_state_independent_with_unit_std() -> None:
    agent = MetraAgent.create(MetraConfig(hidden=(256, 256)), 29, 8, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(512, 29)).astype(np.float32) * 3
    z = np.asarray(agent.sample_latents(jax.random.PRNGKey(0), 512))
    mean, log_std = agent.sac.actor.apply_fn(agent.sac.actor.params, agent._policy_input(obs, z))
    assert float(jnp.abs(mean).max()) < 0.25 and float(mean.std()) < 0.1
    assert float(jnp.abs(log_std).mean()) < 0.1  # std ~1 on average
    assert float(jnp.abs(log_std).max()) < 0.4  # and within [0.67, 1.5] for every state
    actions = np.asarray(agent.act(obs, z, key=jax.random.PRNGKey(1)))
    assert abs(actions.mean()) < 0.05
    assert actions.std() == pytest.approx(0.63, abs=0.03)  # tanh of N(0, 1)


def test_policy_log_std_clamp() -> None:
    assert MetraConfig().log_std_min == pytest.approx(np.log(1e-6))


def test_official_tanh_log_det() -> None:
    u = jnp.array([-1.5, 0.0, 0.7, 25.0])
    a = jnp.tanh(u)
    official, exact = tanh_log_det(u, a, "official"), tanh_log_det(u, a, "exact")
    np.testing.assert_allclose(official[:3], exact[:3], atol=1e-5)
    assert float(official[3]) == pytest.approx(np.log(1e-6), rel=1e-4)  # saturated: bounded
    assert float(exact[3]) < -45
    # The clip passes its gradient: d/du log(1 - tanh(u)^2 + 1e-6) is finite and nonzero.
    grad = jax.grad(lambda x: tanh_log_det(x, jnp.tanh(x), "official").sum())(u[:3])
    assert np.all(np.isfinite(grad)) and float(grad[0]) > 0 > float(grad[2])


def test_done_at_the_time_limit_is_the_default() -> None:
    assert TrainConfig().bootstrap_time_limit is False
    steps, n = 3, 2
    traj = Trajectories(
        obs=np.zeros((steps + 1, n, 1)),
        actions=np.zeros((steps, n, 1)),
        latents=np.zeros((steps, n, 1)),
        coords=np.zeros((steps + 1, n, 1)),
        rewards=np.zeros((steps, n)),
        terminated=np.zeros((steps, n), bool),
    )
    mask = traj.transitions(bootstrap_time_limit=False)["mask"].reshape(steps, n)
    np.testing.assert_array_equal(mask, [[1, 1], [1, 1], [0, 0]])
    assert traj.transitions(bootstrap_time_limit=True)["mask"].min() == 1


def test_evaluation_skills() -> None:
    discrete = MetraAgent.create(MetraConfig(latent_dim=16, discrete=True, hidden=(8,)), 4, 2, 0)
    latents = evaluation_latents(discrete, 48, jax.random.PRNGKey(0))
    assert latents.shape == (48, 16)
    np.testing.assert_array_equal(latents.sum(0), 3.0)  # 3 trajectories per skill
    cont = MetraAgent.create(MetraConfig(hidden=(8,)), 4, 2, 0)
    a = evaluation_latents(cont, 48, jax.random.fold_in(jax.random.PRNGKey(0), 0))
    b = evaluation_latents(cont, 48, jax.random.fold_in(jax.random.PRNGKey(0), 50_000))
    again = evaluation_latents(cont, 48, jax.random.fold_in(jax.random.PRNGKey(0), 0))
    assert not np.allclose(a, b)  # a fresh draw at each evaluation step
    np.testing.assert_array_equal(a, again)  # and the same draw for the same step


@pytest.mark.parametrize(("warmup", "std"), [("policy", 0.63), ("uniform", 1 / np.sqrt(3))])
def test_warmup_actions(warmup: str, std: float, tmp_path) -> None:
    """The official warm-up samples the initial policy (tanh of ~N(0, 1)), not uniform noise."""
    config = resolve_config("point", overrides=[*TINY, f"warmup_actions={warmup}"])
    trainer = SkillTrainer(config, tmp_path / "run", resume=False, progress=False)
    trainer.train_epoch()
    actions = trainer.replay.sample(np.random.default_rng(0), 1, 800)["action"]
    assert actions.std() == pytest.approx(std, abs=0.025)
