"""Quasimetric RL: goal relabeling, the agent's update, and learned distances against the
true shortest paths of a grid world."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

from metra.agents.qrl import QRLAgent, QRLConfig
from metra.data import generate_pointmaze, save_dataset
from metra.replay import episode_buffer, sample_goal_batch
from metra.run.logs import read_progress
from metra.train.goals import GoalRunConfig, GoalTrainer, dataset_episodes, train_qrl
from tests.grid import GridWorld

SMALL = QRLConfig(hidden=(64, 64), latent_dim=32, components=4)


def _numbered_buffer(episodes: int = 3, length: int = 5) -> object:
    """Episode e, step t has obs (e, t) and next_obs (e, t + 1)."""
    buffer = episode_buffer(episodes, length, 2, 1)
    e, t = np.meshgrid(np.arange(episodes), np.arange(length), indexing="ij")
    obs = np.stack([e, t], -1).astype(np.float32)
    buffer.add(
        {
            "obs": obs,
            "action": np.zeros((episodes, length, 1), np.float32),
            "next_obs": obs + np.array([0, 1], np.float32),
        }
    )
    return buffer


def test_goal_batch_relabels_from_the_same_episode_later_on() -> None:
    batch = sample_goal_batch(_numbered_buffer(), np.random.default_rng(0), 2000)
    obs, goal = batch["obs"], batch["actor_goal"]
    assert (goal[:, 0] == obs[:, 0]).all()  # same episode
    assert (goal[:, 1] > obs[:, 1]).all() and (goal[:, 1] <= 5).all()  # strictly later
    assert set(np.unique(goal[:, 1] - obs[:, 1])) == {1, 2, 3, 4, 5}
    # Random goals come from any episode and step.
    assert len(np.unique(batch["value_goal"], axis=0)) == 15
    assert "achieved" not in batch


def test_goal_batch_in_a_goal_space_carries_achieved_goals() -> None:
    batch = sample_goal_batch(_numbered_buffer(), np.random.default_rng(0), 50, goal_index=(1,))
    assert batch["actor_goal"].shape == batch["value_goal"].shape == (50, 1)
    np.testing.assert_array_equal(batch["achieved"], batch["obs"][:, 1:])


def test_dataset_with_unequal_episodes_is_refused() -> None:
    data = GridWorld().random_walk(2, 4)
    data["terminals"][:] = 0
    data["terminals"][[2, 7]] = 1
    with pytest.raises(ValueError, match="equal lengths"):
        dataset_episodes(data)


def test_update_with_a_goal_space_is_finite() -> None:
    """Fetch-shaped: goals of their own space, online (stochastic actor, learned entropy)."""
    cfg = dataclasses.replace(SMALL, online=True, quasimetric="mrn")
    agent = QRLAgent.create(cfg, obs_dim=5, act_dim=3, seed=0, goal_dim=2)
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.normal(size=(2, 16, 5)),
        "next_obs": rng.normal(size=(2, 16, 5)),
        "action": rng.uniform(-1, 1, (2, 16, 3)),
        "value_goal": rng.normal(size=(2, 16, 2)),
        "actor_goal": rng.normal(size=(2, 16, 2)),
        "achieved": rng.normal(size=(2, 16, 2)),
    }
    new, metrics = agent.update({k: jnp.asarray(v, jnp.float32) for k, v in batch.items()})
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert {"entropy", "alpha", "lambda", "violation", "dynamics_loss"} <= set(metrics)
    action = new.act(jnp.zeros((4, 5)), jnp.zeros((4, 2)), deterministic=True)
    assert action.shape == (4, 3) and bool((jnp.abs(action) <= 1).all())
    assert new.distance(jnp.zeros((4, 5)), jnp.ones((4, 2))).shape == (4,)


def test_grid_world_distances_are_asymmetric() -> None:
    grid = GridWorld()
    dist = grid.shortest_paths()
    index = {tuple(c): i for i, c in enumerate(grid.cells)}
    left, right = index[(4, 3)], index[(6, 3)]
    assert dist[left, right] == 2  # through the one-way door
    assert dist[right, left] == 8  # round by the bottom corridor
    assert np.isfinite(dist).all()


@pytest.mark.slow
def test_offline_qrl_distances_rank_like_shortest_paths() -> None:
    """Offline QRL on random-walk data: learned d(s, g) against breadth-first-search
    distances over all ordered cell pairs. An untrained critic scores far lower."""
    grid = GridWorld()
    buffer = dataset_episodes(grid.random_walk(200, 50))
    cfg = QRLConfig(hidden=(128, 128), latent_dim=64, components=8)
    agent = QRLAgent.create(cfg, obs_dim=2, act_dim=2, seed=0)
    true = grid.shortest_paths()
    pairs = ~np.eye(len(true), dtype=bool)
    cells = jnp.asarray(grid.cells, jnp.float32)

    def rank_correlation(agent: QRLAgent) -> float:
        learned = np.asarray(agent.distance(cells[:, None], cells[None]))
        return float(spearmanr(learned[pairs], true[pairs]).statistic)

    untrained = rank_correlation(agent)
    rng = np.random.default_rng(0)
    for _ in range(40):
        samples = [sample_goal_batch(buffer, rng, 256) for _ in range(50)]
        agent, _ = agent.update({k: np.stack([s[k] for s in samples]) for k in samples[0]})
    trained = rank_correlation(agent)
    assert trained > 0.9, (untrained, trained)
    assert untrained < 0.7
    # Where the door makes one way shorter, the learned distance is shorter that way too.
    learned = np.asarray(agent.distance(cells[:, None], cells[None]))
    one_way = true < true.T
    assert (learned < learned.T)[one_way].mean() > 0.9


# A pointmaze dataset of 4 episodes of 100 steps, and a QRL that trains on it in seconds.
TINY_OFFLINE = ["batch_size=32", "grad_steps=5", "eval_every=10", "eval_episodes=1"]
TINY_OFFLINE += ["agent.hidden=32,32", "latent_dim=16", "components=2"]


def tiny_maze_dataset(path: Path) -> Path:
    save_dataset(path, generate_pointmaze("pointmaze-medium", 4, 100, progress=False))
    return path


@pytest.mark.slow
def test_offline_run_end_to_end_and_resume(tmp_path: Path) -> None:
    data_file = tiny_maze_dataset(tmp_path / "maze.npz")
    overrides = TINY_OFFLINE
    run = train_qrl(
        "pointmaze-medium",
        data_file,
        10,
        out=tmp_path / "run",
        overrides=overrides,
        progress=False,
    )
    rows = read_progress(run)
    assert [int(r["grad_steps"]) for r in rows] == [5, 10]
    assert {"task1", "task5", "success"} <= set(rows[-1])
    assert (run / "success.png").exists()
    # A rerun with a higher total resumes from the checkpoint.
    train_qrl("pointmaze-medium", data_file, 15, out=run, progress=False)
    assert [int(r["grad_steps"]) for r in read_progress(run)] == [5, 10, 15]
    # The run (and its weights-only export) load with metra.load and evaluate with metra.evaluate.
    import metra

    shipped = metra.export(run, tmp_path / "shipped")
    assert not list((shipped / "checkpoints").glob("replay-*"))
    for folder in (run, shipped):
        agent = metra.load(folder)
        assert isinstance(agent, QRLAgent) and agent.config.critics == 1
        action = agent.act(jnp.zeros((3, 2)), jnp.ones((3, 2)), deterministic=True)
        assert action.shape == (3, 2)
    result = metra.evaluate(shipped, goals=1)
    assert {"task1", "task5", "success", "success_random_policy"} <= set(result)
    assert result["episodes_per_task"] == 1 and (shipped / "eval.json").exists()


@pytest.mark.slow
def test_online_run_collects_full_fetch_episodes(tmp_path: Path) -> None:
    config = GoalRunConfig.default("fetch_reach")
    config = dataclasses.replace(
        config,
        train=dataclasses.replace(
            config.train,
            total_steps=400,
            num_envs=2,
            min_replay_episodes=2,
            batch_size=16,
            grad_steps=2,
            eval_every=400,
            eval_episodes=2,
        ),
        agent=dataclasses.replace(config.agent, hidden=(32, 32), latent_dim=16, components=2),
    )
    trainer = GoalTrainer(config, tmp_path / "run", None)
    trainer.run(progress=False)
    assert len(trainer.buffer) == 8 and trainer.counters.env_steps == 400
    assert trainer.counters.updates == 8  # 2 per epoch from the first, with 2 episodes in
    assert 0.0 <= float(read_progress(tmp_path / "run")[-1]["success"]) <= 1.0


# ---- OGBench fidelity (docs/qrl-fidelity.md): each offline default and the flag that undoes it


def test_offline_default_is_ogbench_and_online_keeps_its_own() -> None:
    offline = GoalRunConfig.default("pointmaze-medium", "data.npz")
    assert offline.agent == QRLConfig.offline()
    cfg = offline.agent
    assert (cfg.online, cfg.critics, cfg.activation, cfg.init) == (False, 1, "gelu", "xavier")
    assert (cfg.bc_weight, cfg.offline_actor, cfg.const_std_actor) == (3e-4, "ogbench", True)
    assert offline.train.eval_episodes == 50
    online = GoalRunConfig.default("fetch_reach").agent
    assert (online.online, online.critics, online.activation, online.init) == (
        True,
        2,
        "relu",
        "lecun",
    )
    assert not online.const_std_actor  # online keeps the tanh-Gaussian with learned entropy
    # A run saved before these fields existed reads back as what it trained.
    saved = offline.to_dict()
    for key in ("offline_actor", "activation", "init"):
        del saved["agent"][key]
    saved["agent"]["critics"], saved["agent"]["bc_weight"] = 2, 0.003
    old = GoalRunConfig.from_dict(saved).agent
    assert (old.offline_actor, old.activation, old.init, old.critics) == (
        "tanh",
        "relu",
        "lecun",
        2,
    )
    with pytest.raises(ValueError, match="offline_actor"):
        QRLConfig(offline_actor="beta")
    with pytest.raises(ValueError, match="activation"):
        QRLConfig(activation="swish")
    with pytest.raises(ValueError, match="init"):
        QRLConfig(init="orthogonal")


def _first_kernel(params: dict) -> np.ndarray:
    """The first Dense kernel of critic 0's encoder."""
    return np.asarray(params["params"]["encoder"]["Dense_0"]["kernel"][0])


def test_offline_networks_are_xavier_with_a_small_constant_std_actor_head() -> None:
    cfg = QRLConfig.offline(hidden=(256, 256), latent_dim=64, components=8)
    agent = QRLAgent.create(cfg, obs_dim=2, act_dim=2, seed=0)
    assert _critic_count(agent.critic.params) == 1  # one critic
    # xavier-uniform 2 -> 256: var 2 / 258 (std 0.088); Flax's LeCun-normal: var 1 / 2.
    assert abs(_first_kernel(agent.critic.params).std() - np.sqrt(2 / 258)) < 0.01
    old = QRLAgent.create(dataclasses.replace(cfg, init="lecun", critics=2), 2, 2, seed=0)
    assert _critic_count(old.critic.params) == 2
    assert abs(_first_kernel(old.critic.params).std() - np.sqrt(1 / 2)) < 0.1
    actor = agent.actor.params["params"]
    assert set(actor) == {"MLP_0", "Dense_0"}  # trunk and mean head; no log-std head
    head = np.asarray(actor["Dense_0"]["kernel"])  # 256 -> 2, xavier-uniform x 1e-2
    bound = np.sqrt(3 * 1e-2 * 2 / (256 + 2))
    assert np.abs(head).max() <= bound and np.abs(head).max() > 0.8 * bound
    # The actor starts near zero actions and acts as the clipped mean.
    obs, goal = jnp.ones((8, 2)), -jnp.ones((8, 2))
    action = agent.act(obs, goal, deterministic=True)
    assert float(jnp.abs(action).max()) < 0.1
    mean = agent.actor.apply_fn(agent.actor.params, jnp.concatenate([obs, goal], -1))
    np.testing.assert_allclose(action, jnp.clip(mean, -1, 1))
    noisy = agent.act(obs, goal, deterministic=False, key=jax.random.PRNGKey(0))
    assert float(jnp.abs(noisy).max()) <= 1.0 and float(jnp.abs(noisy - action).mean()) > 0.3


def test_offline_ogbench_update_is_finite_and_pulls_toward_the_data() -> None:
    """With only the BC term able to move it (weight 1), the clipped-mean actor fits the data's
    actions; the critic update runs with one critic."""
    cfg = QRLConfig.offline(hidden=(64, 64), latent_dim=32, components=4, bc_weight=1.0)
    agent = QRLAgent.create(cfg, obs_dim=2, act_dim=2, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(20, 64, 2))
    batch = {
        "obs": obs,
        "next_obs": obs + 0.1,
        "action": np.full((20, 64, 2), 0.5),
        "value_goal": rng.normal(size=(20, 64, 2)),
        "actor_goal": rng.normal(size=(20, 64, 2)),
    }
    new, metrics = agent.update({k: jnp.asarray(v, jnp.float32) for k, v in batch.items()})
    assert all(np.isfinite(float(v)) for v in metrics.values())
    before = agent.act(jnp.asarray(obs[0], jnp.float32), jnp.zeros((64, 2)), deterministic=True)
    after = new.act(jnp.asarray(obs[0], jnp.float32), jnp.zeros((64, 2)), deterministic=True)
    assert float(jnp.abs(after - 0.5).mean()) < float(jnp.abs(before - 0.5).mean())


def _critic_count(params: dict) -> int:
    return int(np.asarray(params["params"]["encoder"]["Dense_0"]["kernel"]).shape[0])


def test_eval_episodes_flag_reaches_the_run(tmp_path: Path) -> None:
    from metra.cli import main

    data_file = tmp_path / "maze.npz"
    save_dataset(data_file, generate_pointmaze("pointmaze-medium", 2, 20, progress=False))
    args = ["qrl", "--env", "pointmaze-medium", "--data", str(data_file), "--steps", "2"]
    args += ["--out", str(tmp_path / "run"), "--eval-episodes", "1", "batch_size=8"]
    args += ["grad_steps=2", "eval_every=2", "agent.hidden=16", "latent_dim=8", "components=2"]
    main(args)
    config = GoalRunConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert config.train.eval_episodes == 1


def test_a_config_saved_with_the_old_replay_names_loads() -> None:
    """QRL's replay fields were renamed for their unit (episodes); the shipped agent's config
    still holds the old names."""
    saved = Path(__file__).parents[1] / "pretrained" / "qrl-pointmaze-medium" / "config.json"
    data = json.loads(saved.read_text())
    assert "min_replay" in data["train"] and "replay_size" in data["train"]
    train = GoalRunConfig.from_dict(data).train
    assert (train.min_replay_episodes, train.replay_episodes) == (
        data["train"]["min_replay"],
        data["train"]["replay_size"],
    )
