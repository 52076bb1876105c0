import numpy as np
import pytest

from metra.envs import ENV_NAMES, env_spec, make_env


@pytest.mark.parametrize(
    ("name", "obs_dim", "coords"),
    [("point", 2, ("x", "y")), ("ant", 29, ("x", "y")), ("half_cheetah", 18, ("x",))],
)
def test_shapes_and_coordinates(name: str, obs_dim: int, coords: tuple[str, ...]) -> None:
    env = make_env(name, seed=0, num_envs=3)
    spec = env.spec
    assert spec == env_spec(name)
    assert spec.obs_dim == obs_dim and spec.coord_names == coords
    obs, c = env.reset()
    assert obs.shape == (3, obs_dim) and obs.dtype == np.float32
    assert c.shape == (3, len(coords))
    rng = np.random.default_rng(0)
    for _ in range(spec.episode_len):
        res = env.step(rng.uniform(-1, 1, (3, spec.act_dim)))
        assert not res.terminated.any()  # never terminates inside an episode
    assert res.obs.shape == (3, obs_dim)
    # The coverage coordinates are the observation's position entries.
    np.testing.assert_array_equal(res.coords, res.obs[:, list(spec.coord_index)])
    assert np.abs(res.coords).max() > 0.05  # the body moved
    env.close()


def test_locomotion_episode_length_and_positions() -> None:
    assert env_spec("ant").episode_len == 200 == env_spec("half_cheetah").episode_len
    env = make_env("ant", seed=1)
    obs, _ = env.reset()
    data = env._envs[0].data  # x-y in the observation are the torso's qpos
    np.testing.assert_allclose(obs[0, :15], data.qpos, atol=1e-6)
    np.testing.assert_allclose(obs[0, 15:], data.qvel, atol=1e-6)


def test_reset_is_seeded() -> None:
    a, b = make_env("ant", num_envs=2), make_env("ant", num_envs=2)
    np.testing.assert_array_equal(a.reset(7)[0], b.reset(7)[0])
    assert not np.array_equal(a.reset(7)[0], a.reset(8)[0])


def test_unknown_env_lists_known_names() -> None:
    with pytest.raises(ValueError, match="known envs: " + ", ".join(ENV_NAMES)):
        make_env("antt")


def test_set_coords_builds_goal_states() -> None:
    env = make_env("half_cheetah")
    obs, _ = env.reset()
    goal = env.set_coords(obs, np.array([[12.5]]))
    assert goal[0, 0] == 12.5
    np.testing.assert_array_equal(goal[0, 1:], obs[0, 1:])


def test_point_walls() -> None:
    env = make_env("point")
    env.reset()
    for _ in range(100):
        res = env.step(np.ones((1, 2)))
    np.testing.assert_allclose(res.coords, [[10.0, 10.0]])
