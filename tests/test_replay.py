import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metra.replay import DeviceReplay, ReplayBuffer

FIELDS = {"x": ((2,), np.dtype(np.float32)), "i": ((), np.dtype(np.int32))}


# The host buffer, and the device one (rows as JAX arrays, for the MJX epoch) behind the same
# interface and file format.
@pytest.fixture(params=[ReplayBuffer, DeviceReplay])
def kind(request: pytest.FixtureRequest) -> type[ReplayBuffer]:
    return request.param


def _buffer(capacity: int, kind: type[ReplayBuffer] = ReplayBuffer) -> ReplayBuffer:
    return kind(capacity, FIELDS)


def _rows(start: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(start, start + n, dtype=np.int32)
    return {"x": np.stack([i, -i], 1).astype(np.float32), "i": i}


def test_wrap_around_overwrites_oldest(kind: type[ReplayBuffer]) -> None:
    buf = _buffer(5, kind)
    buf.add(_rows(0, 3))
    assert len(buf) == 3 and buf.ptr == 3
    buf.add(_rows(3, 4))  # 3, 4 fill the end; 5, 6 overwrite rows 0, 1
    assert len(buf) == 5 and buf.ptr == 2
    np.testing.assert_array_equal(buf.data["i"], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buf.data["x"][:, 1], -buf.data["i"])
    sample = buf.sample(np.random.default_rng(0), 50, 7)
    assert sample["x"].shape == (50, 7, 2)
    assert set(np.unique(sample["i"])) <= {2, 3, 4, 5, 6}


def test_sample_only_filled_rows() -> None:
    buf = _buffer(100)
    buf.add(_rows(10, 4))
    assert set(np.unique(buf.sample(np.random.default_rng(1), 200)["i"])) == {10, 11, 12, 13}


@pytest.mark.parametrize("reader", [ReplayBuffer, DeviceReplay])
def test_save_load_round_trip(
    kind: type[ReplayBuffer], reader: type[ReplayBuffer], tmp_path
) -> None:
    buf = _buffer(5, kind)
    buf.add(_rows(0, 3))
    buf.add(_rows(3, 4))
    buf.save(tmp_path / "r.npz")
    other = _buffer(5, reader)
    other.load(tmp_path / "r.npz")
    assert (other.ptr, other.size) == (buf.ptr, buf.size)
    for k in buf.data:
        np.testing.assert_array_equal(other.data[k], buf.data[k])


def test_device_draw_takes_only_filled_rows() -> None:
    buf = _buffer(100, DeviceReplay)
    buf.add(_rows(10, 4))
    drawn = DeviceReplay.draw(buf.data, jnp.asarray(len(buf)), jax.random.PRNGKey(0), 200)
    assert set(np.unique(np.asarray(drawn["i"]))) == {10, 11, 12, 13}
    np.testing.assert_array_equal(np.asarray(drawn["x"][:, 0]), np.asarray(drawn["i"]))


def test_bad_inputs() -> None:
    buf = _buffer(3)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="fields"):
        buf.add({"x": np.zeros((1, 2))})
    with pytest.raises(ValueError, match="cannot add"):
        buf.add(_rows(0, 4))
