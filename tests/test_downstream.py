"""Downstream tasks fire their rewards exactly at their conditions; the hierarchy steps the
low-level env K times per skill and sums the rewards."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from metra.api import resolve_config, train
from metra.envs.base import EnvSpec, StepResult
from metra.envs.downstream import make_task
from metra.eval.plots import FLOOR
from metra.run.folder import CONFIG_FILE
from metra.train.downstream import (
    DownstreamConfig,
    SkillHierarchy,
    run_downstream,
    skill_from_action,
)
from tests.conftest import TINY


def test_ant_multi_goals_reward_and_goal_schedule() -> None:
    task = make_task("ant_multi_goals", num_envs=1)
    task.reset(0)
    start = np.zeros((1, 2))
    task.goal = np.array([[5.0, 0.0]])
    assert task._task_reward(np.array([[1.99, 0.0]]))[0] == 0.0  # 3.01 away
    goal_before = task.goal.copy()
    assert task._task_reward(np.array([[2.01, 0.0]]))[0] == 2.5  # 2.99 away
    assert task.goal_index[0] == 1 and not np.array_equal(task.goal, goal_before)
    assert np.abs(task.goal - np.array([[2.01, 0.0]])).max() <= 7.5  # around the body
    # A goal not reached in 50 steps is replaced without reward.
    goal = task.goal.copy()
    far = goal + 100.0
    rewards = [task._task_reward(far)[0] for _ in range(50)]
    assert sum(rewards) == 0.0 and task.goal_index[0] == 2
    assert not np.array_equal(task.goal, goal)
    # Reaching the goal pays each time until the fourth goal is done, then never again.
    for expected in (2.5, 2.5, 0.0, 0.0):
        assert task._task_reward(task.goal.copy())[0] == expected
    np.testing.assert_allclose(task._task_obs(start), task.goal - start)
    task.close()


def test_half_cheetah_goal_pays_once_within_tolerance() -> None:
    task = make_task("half_cheetah_goal", num_envs=2)
    task.reset(0)
    task.goal = np.array([10.0, -10.0])
    coords = np.array([[6.9], [-7.01]])  # 3.1 and 2.99 away
    np.testing.assert_array_equal(task._task_reward(coords), [0.0, 10.0])
    np.testing.assert_array_equal(task._task_reward(coords), [0.0, 0.0])  # only once
    np.testing.assert_array_equal(task._task_reward(np.array([[7.0], [-10.0]])), [10.0, 0.0])
    task.close()


def test_half_cheetah_hurdle_counts_each_hurdle_once() -> None:
    task = make_task("half_cheetah_hurdle", num_envs=1)
    task.reset(0)
    assert task.base._envs[0].model.geom("hurdle0") is not None  # hurdles in the simulator
    xs = [2.9, 3.1, 2.5, 3.2, 9.5, 8.0, 12.5]
    got = [task._task_reward(np.array([[x]]))[0] for x in xs]
    assert got == [0, 1, 0, 0, 2, 0, 1]  # hurdles at 3, 6, 9, 12, ...
    np.testing.assert_allclose(task._task_obs(np.array([[12.5]])), [[2.5]])  # next at 15
    task.close()


class _CountingTask:
    """A stand-in task: obs = [step count], reward = the step count."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs, self.t = num_envs, 0
        self.info = SimpleNamespace(base=SimpleNamespace(obs_dim=1))
        self.spec = EnvSpec("count", 1, 2, 100, ("x",), (0,), 0.0)

    def reset(self, seed=None):
        self.t = 0
        return np.zeros((self.num_envs, 1), np.float32), np.zeros((self.num_envs, 1))

    def step(self, actions):
        self.t += 1
        obs = np.full((self.num_envs, 1), self.t, np.float32)
        rew = np.full(self.num_envs, self.t, np.float32)
        return StepResult(obs, rew, np.zeros(self.num_envs, bool), obs.copy())


def test_hierarchy_runs_k_low_level_steps_and_sums_rewards() -> None:
    seen = []
    config = SimpleNamespace(latent_dim=2, discrete=False, continuous_prior="sphere")

    def act(obs, z, deterministic):
        seen.append((obs.copy(), z.copy()))
        return np.zeros((len(obs), 2))

    env = SkillHierarchy(_CountingTask(3), SimpleNamespace(config=config, act=act), 25)
    assert env.spec.episode_len == 4 and env.spec.act_dim == 2
    env.reset(0)
    result = env.step(np.array([[3.0, 4.0]] * 3))
    assert len(seen) == 25
    np.testing.assert_allclose(result.reward, sum(range(1, 26)))
    np.testing.assert_allclose(seen[0][1], [[0.6, 0.8]] * 3, rtol=1e-6)  # the unit skill
    assert [o[0, 0] for o, _ in seen] == list(range(25))  # low-level obs advance
    result = env.step(np.zeros((3, 2)))
    np.testing.assert_allclose(result.reward, sum(range(26, 51)))
    with pytest.raises(ValueError, match="divide"):
        SkillHierarchy(_CountingTask(1), SimpleNamespace(config=config, act=act), 30)


def test_skill_from_action_follows_the_prior() -> None:
    a = np.array([[0.2, -0.6, 0.1]])

    def cfg(discrete=False, prior="sphere"):
        return SimpleNamespace(discrete=discrete, continuous_prior=prior)

    np.testing.assert_array_equal(skill_from_action(a, cfg(discrete=True)), [[1, 0, 0]])
    np.testing.assert_allclose(np.linalg.norm(skill_from_action(a, cfg()), axis=-1), 1.0)
    np.testing.assert_allclose(skill_from_action(a, cfg(prior="uniform")), (a + 1) / 2)
    np.testing.assert_allclose(skill_from_action(a, cfg(prior="gaussian")), 2 * a)


def test_downstream_rejects_skills_of_another_env(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / CONFIG_FILE).write_text(json.dumps(resolve_config("point").to_dict()))
    with pytest.raises(ValueError, match="needs skills trained on ant"):
        run_downstream(run, "ant_multi_goals")
    with pytest.raises(ValueError, match="unknown task"):
        run_downstream(run, "maze")
    with pytest.raises(ValueError, match="skill_steps=0"):
        DownstreamConfig.default("ant_multi_goals", True, skill_steps=0)


@pytest.mark.slow
def test_downstream_end_to_end_on_tiny_ant_skills(tmp_path) -> None:
    skills = train("ant", steps=1600, out=tmp_path / "ant", overrides=TINY[1:], progress=False)
    small = dict(min_replay=32, batch_size=16, grad_steps=2, eval_every=1600, eval_episodes=4)
    out = tmp_path / "ds"
    csv_path, png = run_downstream(
        skills, "ant_multi_goals", steps=3200, out=out, progress=False, **small
    )
    lines = csv_path.read_text().splitlines()
    assert (
        lines[0]
        == "algo,env_steps,"
        + ",".join(f"eval_return_{s}" for s in ("mean", "std", "min", "max"))
        + ",seeds"
    )
    assert {line.split(",")[0] for line in lines[1:]} == {
        "hierarchical",
        "flat SAC",
        FLOOR,
    }
    assert png.stat().st_size > 1000
    high = json.loads((out / "hierarchical" / "config.json").read_text())
    assert high["hierarchical"] and high["total_steps"] == 3200
    # 3200 low-level steps = 16 episodes of 8 skill choices; updates started after 32.
    rows = (out / "hierarchical" / "progress.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == "3200" and "critic_loss" in rows[0]
