"""PEARL's data collection and per-family configs (oyster): collect until N transitions, which
z each collection phase acts with, tasks drawn with replacement, the family defaults, and
configs saved before these rules loading as what they trained."""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metra.agents.pearl import PearlAgent, PearlConfig
from metra.envs.base import StepResult, no_coords
from metra.envs.meta import Task, meta_step
from metra.presets import apply_overrides
from metra.train.meta import (
    MetaRunConfig,
    MetaTrainConfig,
    MetaTrainer,
    distinct_rounds,
)

meta = importlib.import_module("metra.train.meta")  # `metra.train` is also a function
EPISODE_LEN = 10


class ShortLivedBatch:
    """Env i terminates after `lives[i]` steps (as an Ant that falls); reward 1 per step."""

    def __init__(self, lives: np.ndarray) -> None:
        self.lives, self.num_envs, self.t = lives, len(lives), 0

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.t = 0
        return self._obs(), no_coords(self.num_envs)

    def _obs(self) -> np.ndarray:
        return np.stack([np.full(self.num_envs, self.t), self.lives], 1).astype(np.float32)

    def step(self, actions: np.ndarray) -> StepResult:
        alive = self.t < self.lives
        self.t += 1
        return meta_step(self._obs(), alive, self.t >= self.lives, np.zeros(self.num_envs))

    def close(self) -> None:
        pass


class ShortLivedTasks:
    """Two tasks: episodes of task 0 end after 3 steps, task 1's run the full 10."""

    name, obs_dim, act_dim, episode_len, has_success = "short_lived", 2, 2, EPISODE_LEN, False

    def __init__(self, lives: Sequence[int] = (3, 1000)) -> None:
        self.train_tasks: list[Task] = [{"life": life} for life in lives]
        self.test_tasks = self.train_tasks

    def make_envs(self, tasks: Sequence[Task]) -> ShortLivedBatch:
        return ShortLivedBatch(np.array([t["life"] for t in tasks]))


def _trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lives: Sequence[int] = (3, 1000), **train: Any
) -> MetaTrainer:
    monkeypatch.setattr(meta, "make_meta_tasks", lambda name, seed: ShortLivedTasks(lives))
    fields = dict(grad_steps=1, chunk=1, meta_batch=2, batch_size=4, context_size=4)
    config = MetaRunConfig(
        MetaTrainConfig(task="point_goal", **{**fields, **train}),
        PearlConfig(hidden=(8,), encoder_hidden=(8,)),
    )
    return MetaTrainer(config, tmp_path / "run")


def _episodes(trainer: MetaTrainer, task: int) -> np.ndarray:
    buf = trainer.replay.tasks[task]
    return buf.data["length"][: buf.size]


def test_collection_runs_whole_episodes_until_n_transitions(tmp_path, monkeypatch) -> None:
    trainer = _trainer(tmp_path, monkeypatch)
    trainer._collect(np.array([0, 1]), 25, math.inf, True, seed=0)
    # Task 0's episodes end after 3 steps: 9 of them reach 27 >= 25 transitions; task 1's
    # last the full 10 steps: 3 reach 30. A last episode is never cut short.
    np.testing.assert_array_equal(_episodes(trainer, 0), [3] * 9)
    np.testing.assert_array_equal(_episodes(trainer, 1), [10] * 3)
    assert trainer.counters.env_steps == 27 + 30
    assert trainer.replay.context_size(0) == 27


def test_collection_by_trajectory_count_is_one_flag_away(tmp_path, monkeypatch) -> None:
    trainer = _trainer(tmp_path, monkeypatch, collect_until="trajectories")
    trainer._collect(np.array([0, 1]), 25, math.inf, True, seed=0)
    # ceil(25 / 10) = 3 episodes each, however short: task 0 gets 9 transitions.
    np.testing.assert_array_equal(_episodes(trainer, 0), [3] * 3)
    np.testing.assert_array_equal(_episodes(trainer, 1), [10] * 3)


@pytest.mark.parametrize("first_prior", [True, False])
def test_which_z_each_collection_phase_acts_with(tmp_path, monkeypatch, first_prior) -> None:
    """PEARL's collect_data: the initial and the prior-z collections never infer a posterior;
    the posterior-z collection starts from the prior (clear_z) and infers the posterior from a
    fresh context sample after each trajectory, for the next one."""
    trainer = _trainer(
        tmp_path,
        monkeypatch,
        lives=(1000, 1000),
        num_initial_steps=20,
        num_tasks_sample=1,
        num_steps_prior=20,
        num_extra_rl_steps_posterior=30,
        extra_rl_first_prior=first_prior,
    )
    events: list[str] = []
    rollout, infer = meta.rollout, PearlAgent.infer

    def logged_rollout(*args: Any) -> Any:
        events.append("R")
        return rollout(*args)

    def logged_infer(self: PearlAgent, context: Any, mask: Any = None) -> Any:
        events.append("I")
        return infer(self, context, mask)

    monkeypatch.setattr(meta, "rollout", logged_rollout)
    monkeypatch.setattr(PearlAgent, "infer", logged_infer)
    trainer.train_epoch()
    # Initial (2 trajectories per task, both tasks in one batch), prior (2), posterior (3).
    initial_and_prior = "RR" + "RR"
    extra = "RIRIR" if first_prior else "IRIRIR"
    assert "".join(events) == initial_and_prior + extra


def test_distinct_rounds_keep_each_tasks_draws_in_order() -> None:
    rounds = distinct_rounds(np.array([0, 1, 1, 0, 1, 2]))
    assert [r.tolist() for r in rounds] == [[0, 1, 2], [1, 0], [1]]


@pytest.mark.parametrize("with_replacement", [True, False])
def test_tasks_are_drawn_with_replacement(tmp_path, monkeypatch, with_replacement) -> None:
    """5 draws from 2 tasks collect 5 times (PEARL), not once per task; a task drawn again
    keeps only its latest prior-z collection as context."""
    trainer = _trainer(
        tmp_path,
        monkeypatch,
        lives=(1000, 1000),  # no early ends: exact counts
        num_initial_steps=10,
        num_steps_prior=10,
        num_extra_rl_steps_posterior=10,
        tasks_with_replacement=with_replacement,
    )
    trainer.train_epoch()
    draws = 5 if with_replacement else 2
    assert trainer.counters.env_steps == 2 * 10 + draws * (10 + 10)
    assert [trainer.replay.context_size(t) for t in (0, 1)] == [10, 10]


def test_family_defaults_are_oysters_configs() -> None:
    vel = MetaRunConfig.default("cheetah_vel", "pearl").train
    assert (vel.context_size, vel.meta_batch, vel.grad_steps, vel.num_tasks_sample) == (
        100,
        16,
        2000,
        5,
    )
    assert (vel.num_steps_prior, vel.num_extra_rl_steps_posterior, vel.explore_trajectories) == (
        400,
        600,
        2,
    )
    # PEARL's 0.4 updates per env step: 2000 per 5 tasks x (400 + 600) steps.
    steps = vel.num_tasks_sample * (vel.num_steps_prior + vel.num_extra_rl_steps_posterior)
    assert vel.grad_steps / steps == pytest.approx(0.4)
    ant = MetaRunConfig.default("ant_dir", "cocoa").train
    assert (ant.context_size, ant.meta_batch, ant.grad_steps, ant.eval_rollouts) == (
        256,
        4,
        4000,
        8,
    )
    assert (ant.num_tasks_sample, ant.num_steps_prior, ant.num_extra_rl_steps_posterior) == (
        5,
        400,
        600,
    )
    assert ant.tasks_with_replacement and ant.collect_until == "transitions"
    cheetah_dir = MetaRunConfig.default("cheetah_dir", "pearl").train
    assert (cheetah_dir.context_size, cheetah_dir.meta_batch, cheetah_dir.grad_steps) == (
        256,
        4,
        2000,
    )
    assert cheetah_dir.num_steps_prior == cheetah_dir.num_extra_rl_steps_posterior == 1000
    assert MetaRunConfig.default("ant_goal", "pearl").agent.kl_weight == 1.0
    walker = MetaRunConfig.default("walker_rand_params", "cocoa")
    assert walker.agent.next_obs_in_context and walker.train.context_size == 100
    assert MetaRunConfig.default("humanoid_dir", "pearl").train.context_size == 256
    for name in ("point_goal", "ml1_reach"):  # no PEARL config: default.py's 64
        assert MetaRunConfig.default(name, "pearl").train.context_size == 64
    old = apply_overrides(MetaRunConfig.default("cheetah_vel", "pearl"), ["context_size=64"])
    assert old.train.context_size == 64


def test_configs_saved_before_the_pearl_rules_load_as_trained() -> None:
    config = MetaRunConfig.default("ant_dir", "pearl")
    saved = config.to_dict()
    assert MetaRunConfig.from_dict(saved) == config
    for name in ("collect_until", "extra_rl_first_prior", "tasks_with_replacement"):
        del saved["train"][name]
    old = MetaRunConfig.from_dict(saved).train
    assert old == dataclasses.replace(
        config.train,
        collect_until="trajectories",
        extra_rl_first_prior=False,
        tasks_with_replacement=False,
    )
    with pytest.raises(ValueError, match="collect_until must be one of"):
        MetaTrainConfig(collect_until="episodes")
