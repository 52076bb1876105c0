"""PEARL's MuJoCo meta-RL families: reward formulas on hand-made states, task sets, envs."""

from __future__ import annotations

import numpy as np
import pytest

from metra.envs import mujoco_tasks
from metra.envs.base import StepResult
from metra.envs.meta import make_meta_tasks
from metra.envs.mujoco_tasks import MujocoMetaBatch

# name: (obs_dim, act_dim, n_train, n_test, train tasks == test tasks)
FAMILIES = {
    "cheetah_vel": (20, 6, 100, 30, False),
    "cheetah_dir": (20, 6, 2, 2, True),
    "ant_dir": (27, 8, 2, 2, True),
    "ant_goal": (107, 8, 150, 30, False),
    "humanoid_dir": (348, 17, 100, 30, False),
    "walker_rand_params": (17, 6, 40, 10, False),
}


def fields(step: StepResult) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A meta-RL step as (obs, reward, terminated, success)."""
    return step.obs, step.reward, step.terminated, step.info["success"]


def _key(task: dict) -> tuple:
    """A hashable copy of a task, to compare task sets."""
    return tuple((k, tuple(np.ravel(v).round(12))) for k, v in sorted(task.items()))


def _one_env(name: str, task: dict) -> tuple[MujocoMetaBatch, object]:
    batch = make_meta_tasks(name, 0).make_envs([task])
    batch.reset(seed=0)
    return batch, batch._envs[0]


def _action(act_dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, act_dim)


def _contact_cost(env) -> float:
    return 0.5e-3 * float(np.sum(np.clip(env.data.cfrc_ext, -1, 1) ** 2))


def test_registry_reaches_every_family_and_rejects_bad_names() -> None:
    assert set(FAMILIES) == set(mujoco_tasks.MUJOCO_META_NAMES)
    with pytest.raises(ValueError, match="unknown meta-RL task 'cheetah_fly'"):
        make_meta_tasks("cheetah_fly")
    with pytest.raises(ValueError, match="unknown MuJoCo meta-RL family 'ml1_reach'"):
        mujoco_tasks.make("ml1_reach", 0)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_facts_tasks_and_shapes(name: str) -> None:
    obs_dim, act_dim, n_train, n_test, shared = FAMILIES[name]
    fam = make_meta_tasks(name, seed=3)
    assert (fam.name, fam.obs_dim, fam.act_dim) == (name, obs_dim, act_dim)
    assert fam.episode_len == 200 and not fam.has_success
    assert (len(fam.train_tasks), len(fam.test_tasks)) == (n_train, n_test)
    train = {_key(t) for t in fam.train_tasks}
    test = {_key(t) for t in fam.test_tasks}
    assert len(train) == n_train and len(test) == n_test  # no duplicates
    if shared:  # PEARL's two-task families train and test on the same pair
        assert train == test
    else:
        assert not train & test
    # A seed fixes the tasks; another seed draws others (except the fixed pairs).
    again = make_meta_tasks(name, seed=3)
    assert [_key(t) for t in again.train_tasks + again.test_tasks] == [
        _key(t) for t in fam.train_tasks + fam.test_tasks
    ]
    other = {_key(t) for t in make_meta_tasks(name, seed=4).train_tasks}
    assert (other == train) if shared else not (other & train)

    batch = fam.make_envs(fam.train_tasks[:2])
    assert batch.num_envs == 2
    obs, coords = batch.reset(seed=0)
    assert coords.shape == (len(obs), 0)
    assert obs.shape == (2, obs_dim) and obs.dtype == np.float32
    obs2, rew, term, succ = fields(batch.step(np.zeros((2, act_dim))))
    assert obs2.shape == (2, obs_dim) and obs2.dtype == np.float32
    assert rew.shape == (2,) and rew.dtype == np.float32 and np.isfinite(rew).all()
    assert term.shape == (2,) and term.dtype == bool
    assert succ.dtype == np.float32 and not succ.any()
    np.testing.assert_array_equal(batch.reset(seed=0)[0], obs)  # seeded resets
    batch.close()


def test_task_distributions() -> None:
    fam = make_meta_tasks("cheetah_vel", 0)
    vel = np.array([t["velocity"] for t in fam.train_tasks + fam.test_tasks])
    assert vel.min() >= 0.0 and vel.max() <= 3.0 and vel.max() - vel.min() > 2.5
    fam = make_meta_tasks("humanoid_dir", 0)
    ang = np.array([t["angle"] for t in fam.train_tasks])
    assert ang.min() >= 0.0 and ang.max() <= 2 * np.pi and ang.max() - ang.min() > 5.0
    fam = make_meta_tasks("ant_goal", 0)
    goals = np.array([t["goal"] for t in fam.train_tasks + fam.test_tasks])
    radius = np.linalg.norm(goals, axis=1)
    assert radius.max() <= 3.0 and radius.max() > 2.8
    assert 0.4 < np.mean(radius < 3 / np.sqrt(2)) < 0.6  # uniform on the disk: half within r/√2
    assert [t["direction"] for t in make_meta_tasks("cheetah_dir", 0).train_tasks] == [-1, 1]
    assert [t["angle"] for t in make_meta_tasks("ant_dir", 0).train_tasks] == [0.0, np.pi]


# --- rewards recomputed by hand from the states before and after one step ---------------


@pytest.mark.parametrize("velocity", [0.5, 2.5])
def test_cheetah_vel_reward(velocity: float) -> None:
    batch, env = _one_env("cheetah_vel", {"velocity": velocity})
    qvel = env.init_qvel.copy()
    qvel[0] = 1.7
    env.set_state(env.init_qpos, qvel)
    a = _action(6)
    x0 = env.data.qpos[0]
    obs, rew, term, _ = fields(batch.step(a[None]))
    vel = (env.data.qpos[0] - x0) / 0.05  # dt = 5 x 0.01
    expected = -abs(vel - velocity) - 0.05 * np.sum(a**2)
    np.testing.assert_allclose(rew[0], expected, rtol=1e-5)
    assert not term[0]
    # PEARL's obs: qpos[1:], qvel, then the torso's position (x included).
    data = env.data
    want = np.concatenate([data.qpos[1:], data.qvel, data.body("torso").xpos])
    np.testing.assert_allclose(obs[0], want, rtol=1e-6, atol=1e-6)


def test_cheetah_dir_reward() -> None:
    for direction in (-1.0, 1.0):
        batch, env = _one_env("cheetah_dir", {"direction": direction})
        qvel = env.init_qvel.copy()
        qvel[0] = 2.0
        env.set_state(env.init_qpos, qvel)
        a = _action(6, 1)
        x0 = env.data.qpos[0]
        _, rew, term, _ = fields(batch.step(a[None]))
        dx = env.data.qpos[0] - x0
        assert dx > 0.05
        expected = direction * dx / 0.05 - 0.05 * np.sum(a**2)
        np.testing.assert_allclose(rew[0], expected, rtol=1e-5)
        assert not term[0]


def test_ant_dir_reward_and_termination() -> None:
    batch, env = _one_env("ant_dir", {"angle": np.pi})
    qvel = env.init_qvel.copy()
    qvel[:2] = [-1.0, 0.5]
    env.set_state(env.init_qpos, qvel)
    contacts = 0
    for step in range(20):  # the ant hops: the floor pushes on some steps only
        a = _action(8, step)
        xy0 = env.data.qpos[:2].copy()
        _, rew, term, _ = fields(batch.step(a[None]))
        vel = (env.data.qpos[:2] - xy0) / 0.05
        contact = _contact_cost(env)
        contacts += contact > 0
        expected = vel @ np.array([-1.0, 0.0]) - 0.5 * np.sum(a**2) - contact + 1.0
        np.testing.assert_allclose(rew[0], expected, rtol=1e-5, atol=1e-6)
        assert not term[0]
    assert contacts > 0
    # Torso above 1.0 is unhealthy (PEARL's ant: 0.2 <= z <= 1.0).
    qpos = env.init_qpos.copy()
    qpos[2] = 1.5
    env.set_state(qpos, env.init_qvel)
    assert fields(batch.step(a[None]))[2][0]


def test_ant_goal_reward_never_terminates() -> None:
    goal = np.array([1.0, -2.0])
    batch, env = _one_env("ant_goal", {"goal": goal})
    qpos = env.init_qpos.copy()
    qpos[2] = 1.5  # would end an ant_dir episode
    qvel = env.init_qvel.copy()
    qvel[:2] = [0.8, -0.3]
    env.set_state(qpos, qvel)
    contacts = 0
    for step in range(20):
        a = _action(8, step)
        obs, rew, term, _ = fields(batch.step(a[None]))
        dist = np.abs(env.data.qpos[0] - 1.0) + np.abs(env.data.qpos[1] + 2.0)
        contact = _contact_cost(env)
        contacts += contact > 0
        np.testing.assert_allclose(rew[0], -dist - 0.1 * np.sum(a**2) - contact, rtol=1e-5)
        assert not term[0]
    assert contacts > 0
    np.testing.assert_allclose(obs[0, :15], env.data.qpos, atol=1e-6)  # x-y observed
    np.testing.assert_allclose(
        obs[0, 29:], np.clip(env.data.cfrc_ext[1:], -1, 1).ravel(), atol=1e-6
    )


def test_humanoid_dir_reward_action_scale_and_termination() -> None:
    batch, env = _one_env("humanoid_dir", {"angle": np.pi / 2})
    qvel = env.init_qvel.copy()
    qvel[:2] = [0.3, 1.0]
    env.set_state(env.init_qpos, qvel)
    a = _action(17) * 1.5  # beyond [-1, 1]: clipped
    com0 = env.data.subtree_com[0, :2].copy()  # MuJoCo's own whole-body mass center
    _, rew, term, _ = fields(batch.step(a[None]))
    ctrl = 0.4 * np.clip(a, -1, 1)  # Humanoid's ctrlrange is [-0.4, 0.4]
    np.testing.assert_allclose(env.data.ctrl, ctrl)
    lin = 0.25 * (env.data.subtree_com[0, 1] - com0[1]) / 0.003  # / physics timestep
    impact = min(0.5e-6 * np.sum(env.data.cfrc_ext**2), 10.0)
    expected = lin - 0.1 * np.sum(ctrl**2) - impact + 5.0
    np.testing.assert_allclose(rew[0], expected, rtol=1e-5)
    assert lin > 1.0 and not term[0]
    qpos = env.init_qpos.copy()
    qpos[2] = 0.8  # torso below 1.0
    env.set_state(qpos, env.init_qvel)
    assert fields(batch.step(a[None]))[2][0]


def test_walker_reward_and_termination() -> None:
    fam = make_meta_tasks("walker_rand_params", 0)
    batch = fam.make_envs(fam.train_tasks[:1])
    batch.reset(seed=0)
    env = batch._envs[0]
    qvel = env.init_qvel.copy()
    qvel[0] = 1.0
    env.set_state(env.init_qpos, qvel)
    a = _action(6, 3)
    x0 = env.data.qpos[0]
    _, rew, term, _ = fields(batch.step(a[None]))
    expected = (env.data.qpos[0] - x0) / 0.01 + 1.0 - 1e-3 * np.sum(a**2)  # dt = 5 x 0.002
    np.testing.assert_allclose(rew[0], expected, rtol=1e-5)
    assert not term[0]
    qpos = env.init_qpos.copy()
    qpos[2] = 1.2  # torso angle beyond 1 rad
    env.set_state(qpos, env.init_qvel)
    assert fields(batch.step(a[None]))[2][0]


# --- batches ----------------------------------------------------------------------------


def test_terminated_env_stays_frozen_until_reset() -> None:
    fam = make_meta_tasks("ant_dir", 0)
    batch = fam.make_envs(fam.train_tasks)
    batch.reset(seed=0)
    env0 = batch._envs[0]
    qpos = env0.init_qpos.copy()
    qpos[2] = 1.5
    env0.set_state(qpos, env0.init_qvel)
    zero = np.zeros((2, 8))
    obs, _, term, _ = fields(batch.step(zero))
    assert term[0] and not term[1]
    qpos_frozen = env0.data.qpos.copy()
    for _ in range(3):
        obs2, rew, term2, _ = fields(batch.step(zero + 0.5))
        np.testing.assert_array_equal(obs2[0], obs[0])
        assert rew[0] == 0.0 and term2[0]
        assert not np.array_equal(obs2[1], obs[1])  # the other env runs on
        obs = obs2
    np.testing.assert_array_equal(env0.data.qpos, qpos_frozen)  # not simulated
    batch.reset(seed=1)
    _, rew, term, _ = fields(batch.step(zero))
    assert not term.any() and rew[0] != 0.0
    with pytest.raises(AssertionError):
        batch.step(np.zeros((3, 8)))


def test_walker_tasks_change_the_model() -> None:
    fam = make_meta_tasks("walker_rand_params", 0)
    t0, t1 = fam.train_tasks[:2]
    for task in (t0, t1):
        assert set(task) == {"body_mass", "body_inertia", "dof_damping", "geom_friction"}
        for name, base in (("body_mass", 1.5), ("dof_damping", 1.3), ("geom_friction", 1.5)):
            assert np.all(task[name] >= base**-3) and np.all(task[name] <= base**3)
    batch = fam.make_envs([t0, t1])
    model0, model1 = batch._envs[0].model, batch._envs[1].model
    originals = {k: v.copy() for k, v in batch._originals[0].items()}
    for name in t0:
        np.testing.assert_allclose(getattr(model0, name), originals[name] * t0[name])
        np.testing.assert_allclose(getattr(model1, name), originals[name] * t1[name])
        assert not np.allclose(getattr(model0, name), originals[name])
    # Tasks scale the saved originals, so they do not compound.
    batch.set_tasks([t1, t0])
    batch.set_tasks([t0, t1])
    for name in t0:
        np.testing.assert_allclose(getattr(model0, name), originals[name] * t0[name])

    # Same start and actions: the same trajectory under one task, different ones under two.
    def rollout() -> np.ndarray:
        batch.reset(seed=0)
        for env in batch._envs:
            env.set_state(env.init_qpos, env.init_qvel)
        for _ in range(5):
            obs = batch.step(np.full((2, 6), 0.5)).obs
        return obs

    obs = rollout()
    assert not np.allclose(obs[0], obs[1], atol=1e-3)
    batch.set_tasks([t0, t0])
    obs = rollout()
    np.testing.assert_allclose(obs[0], obs[1])
    batch.close()
