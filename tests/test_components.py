"""Connected components against scipy.sparse.csgraph, and the projection against the NumPy oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax
from iss_jax._src import definition as reference


def canonical(labels):
  """Relabels so that each component is named by its smallest flat index."""
  labels = np.asarray(labels).ravel()
  first = {}
  for i, lab in enumerate(labels):
    first.setdefault(lab, i)
  return np.asarray([first[lab] for lab in labels])


def joined_to_edges(joined):
  """(2, H, W) padded layout -> reference edge order (horizontal row-major, then vertical)."""
  return np.concatenate([joined[0, :, :-1].ravel(), joined[1, :-1, :].ravel()])


@pytest.mark.parametrize("shape", [(2, 2), (5, 7), (32, 32), (1 + 16, 3)])
@pytest.mark.parametrize("density", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_matches_scipy(shape, density):
  rng = np.random.default_rng(hash((shape, density)) % 2**32)
  joined = rng.random((2,) + shape) < density
  labels, rounds = iss_jax.connected_components(jnp.asarray(joined))
  ref = reference.components(*shape, joined_to_edges(joined))
  np.testing.assert_array_equal(np.asarray(labels).ravel(), canonical(ref))
  assert int(rounds) >= 1


def test_serpentine_needs_few_rounds():
  # One path snaking through a 32x32 grid: label propagation would need 1,023 rounds.
  h = w = 32
  joined = np.zeros((2, h, w), bool)
  joined[0, :, :-1] = True
  for i in range(h - 1):
    joined[1, i, w - 1 if i % 2 == 0 else 0] = True
  labels, rounds = iss_jax.connected_components(jnp.asarray(joined))
  assert np.all(np.asarray(labels) == 0)
  assert int(rounds) <= 6


def test_vmap_matches_loop_and_jit():
  rng = np.random.default_rng(0)
  joined = jnp.asarray(rng.random((4, 2, 9, 11)) < 0.55)
  batched, _ = jax.vmap(iss_jax.connected_components)(joined)
  jitted, _ = jax.jit(iss_jax.connected_components)(joined[2])
  for i in range(4):
    np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(
        iss_jax.connected_components(joined[i])[0]))
  np.testing.assert_array_equal(np.asarray(jitted), np.asarray(batched[2]))


def test_projection_matches_reference():
  rng = np.random.default_rng(1)
  b = rng.random((6, 8, 3))
  active = rng.random((2, 6, 8)) < 0.4
  out = iss_jax.project(jnp.asarray(b, jnp.float32), jnp.asarray(active))
  ref = reference.project(b.reshape(-1, 3), joined_to_edges(~active), 6, 8).reshape(6, 8, 3)
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-6)
  # Idempotent: projecting a projection changes nothing.
  np.testing.assert_allclose(np.asarray(iss_jax.project(out, jnp.asarray(active))), np.asarray(out),
                             atol=1e-6)


def test_bad_input():
  with pytest.raises(ValueError, match="joined"):
    iss_jax.connected_components(jnp.zeros((3, 4, 4), bool))
  with pytest.raises(ValueError, match="joined"):
    iss_jax.connected_components(jnp.zeros((2, 4, 4), jnp.int32))
