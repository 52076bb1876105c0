"""Quasimetric heads: the axioms on random inputs (property-based), IQE by hand, shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from metra.quasimetric import QuasimetricHead, euclidean, iqe, iqe_components, mrn

N = 8  # latent size: 2 IQE components of 4, or MRN halves of 4
HEADS = {
    "iqe_max": jax.jit(lambda x, y: iqe(x, y, 2, 1.0)),
    "iqe_mean": jax.jit(lambda x, y: iqe(x, y, 2, 0.0)),
    "iqe_mix": jax.jit(lambda x, y: iqe(x, y, 2, 0.3)),
    "mrn": jax.jit(mrn),
    "euclidean": jax.jit(euclidean),
}
points = arrays(np.float32, (3, N), elements=st.floats(-10, 10, width=32))


@pytest.mark.parametrize("name", list(HEADS))
@settings(max_examples=200, deadline=None)
@given(p=points)
def test_quasimetric_axioms(name: str, p: np.ndarray) -> None:
    d = HEADS[name]
    x, y, z = p
    assert float(d(x, x)) == 0.0
    assert float(d(x, y)) >= 0.0
    assert float(d(x, z)) <= float(d(x, y)) + float(d(y, z)) + 1e-4 * (1 + float(d(x, z)))


def test_iqe_by_hand() -> None:
    x = jnp.array([1.0, 2.0, 6.0])
    y = jnp.array([3.0, 5.0, 7.0])
    # [1, 3] u [2, 5] u [6, 7] = [1, 5] u [6, 7]: length 5; the other way every interval is empty.
    assert float(iqe_components(x, y, 1)[0]) == pytest.approx(5.0)
    assert float(iqe_components(y, x, 1)[0]) == 0.0
    # Nested and disjoint intervals, and one component per pair of entries.
    x2, y2 = jnp.array([0.0, 1.0, 0.0, 5.0]), jnp.array([4.0, 2.0, 1.0, 6.0])
    np.testing.assert_allclose(iqe_components(x2, y2, 2), [4.0, 2.0])
    assert float(iqe(x2, y2, 2, 0.25)) == pytest.approx(0.25 * 4 + 0.75 * 3)
    assert iqe(x, y, 1, 0.5) != iqe(y, x, 1, 0.5)  # asymmetric


def test_mrn_and_euclidean_by_hand() -> None:
    x, y = jnp.array([0.0, 0.0, 3.0, 1.0]), jnp.array([3.0, 4.0, 1.0, 2.0])
    assert float(mrn(x, y)) == pytest.approx(5.0 + 2.0)
    assert float(mrn(y, x)) == pytest.approx(5.0 + 1.0)
    assert float(euclidean(x[:2], y[:2])) == pytest.approx(5.0)
    g = jax.grad(lambda a: euclidean(a, a))(x)
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("kind", ["iqe", "mrn", "euclidean"])
def test_heads_broadcast_to_all_pairs(kind: str) -> None:
    head = QuasimetricHead(kind, components=2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, N)), rng.normal(size=(7, N))
    params = head.init(jax.random.PRNGKey(0), x, y[:5])
    pairs = head.apply(params, x[:, None], y[None])
    assert pairs.shape == (5, 7)
    np.testing.assert_allclose(pairs[2, 3], head.apply(params, x[2], y[3]), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown quasimetric"):
        QuasimetricHead("cosine").init(jax.random.PRNGKey(0), x, y[:5])
