"""Quasimetric RL: goal relabeling, the agent's update, and learned distances against the
true shortest paths of a grid world."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import spearmanr

from metra.agents.qrl import QRLAgent, QRLConfig
from metra.data import generate_pointmaze, save_dataset
from metra.envs.grid import GridWorld
from metra.replay import episode_buffer, sample_goal_batch
from metra.train.goals import GoalRunConfig, GoalTrainer, dataset_episodes, train_qrl
from metra.train.logging import read_progress

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


def test_offline_run_end_to_end_and_resume(tmp_path: Path) -> None:
    data_file = tmp_path / "maze.npz"
    save_dataset(data_file, generate_pointmaze("pointmaze-medium", 4, 100, progress=False))
    overrides = ["batch_size=32", "grad_steps=5", "eval_every=10", "eval_episodes=1"]
    overrides += ["agent.hidden=32,32", "latent_dim=16", "components=2"]
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


def test_online_run_collects_full_fetch_episodes(tmp_path: Path) -> None:
    config = GoalRunConfig.default("fetch_reach")
    config = dataclasses.replace(
        config,
        train=dataclasses.replace(
            config.train,
            steps=400,
            num_envs=2,
            min_replay=2,
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
