"""SPLIC (Zhao et al., Alg. 1): low-rank completion from half the entries, the TV gradient, one step
against a NumPy port, images, BPDA gradient and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax
from iss_jax.baselines import _splic as splic_mod


def _low_rank(seed, m, n, r):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((m, r)) @ rng.standard_normal((r, n))).astype(np.float32)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_recovers_low_rank_matrix_from_half_its_entries(rank):
  m = _low_rank(rank, 32, 32, rank)
  observed = np.random.default_rng(10 + rank).random(m.shape) < 0.5
  out = np.asarray(iss_jax.baselines.splic_complete(m, observed, rank=rank))
  # Anchors are imposed exactly; the missing half is recovered (exact recovery has error 0).
  np.testing.assert_array_equal(out[observed], m[observed])
  rel = np.linalg.norm(out - m) / np.linalg.norm(m)
  assert rel < 1e-3, rel
  # ... and much better than the zero fill it starts from (relative error sqrt(1/2)).
  zero_fill = np.linalg.norm(np.where(observed, m, 0) - m) / np.linalg.norm(m)
  assert zero_fill > 0.5


def test_complete_batch_equals_loop():
  ms = np.stack([_low_rank(s, 16, 12, 2) for s in range(3)])
  obs = np.random.default_rng(0).random(ms.shape) < 0.6
  batch = iss_jax.baselines.splic_complete(ms, obs, rank=2, maxiter=70)
  for i in range(3):
    one = iss_jax.baselines.splic_complete(ms[i], obs[i], rank=2, maxiter=70)
    np.testing.assert_allclose(batch[i], one, rtol=1e-5, atol=1e-5)


def test_tv_gradient_is_the_gradient_of_eq6():
  x = jnp.asarray(np.random.default_rng(0).random((6, 7)), jnp.float32)

  def c(x):  # Eq. (6), written as printed (interior + last column + last row)
    inner = jnp.sum((x[:-1, :-1] - x[1:, :-1]) ** 2 + (x[:-1, :-1] - x[:-1, 1:]) ** 2) / 2
    col = jnp.sum((x[:-1, -1] - x[1:, -1]) ** 2) / 2
    row = jnp.sum((x[-1, :-1] - x[-1, 1:]) ** 2) / 2
    return inner + col + row

  np.testing.assert_allclose(splic_mod._tv_grad(x), jax.grad(c)(x), rtol=1e-5, atol=1e-6)


def _numpy_step(x, anchors, mask, delta, rank, lam, mu):
  """One step of Alg. 1 (steps 4-13) with loops over singular values and pixels, float64."""
  u, s, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
  s = np.array([s[k] if k < rank else 0.0 for k in range(len(s))])
  low = (u * s) @ vt
  shrunk = np.array([sk * (1 - mu * np.exp(-sk**2 / (2 * delta**2))) for sk in s])
  grad_c = np.zeros_like(low)
  m, n = low.shape
  for i in range(m):
    for j in range(n):
      for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        if 0 <= i + di < m and 0 <= j + dj < n:
          grad_c[i, j] += low[i, j] - low[i + di, j + dj]
  new = (u * shrunk) @ vt - mu * lam * grad_c
  return np.where(mask, anchors, new)


def test_one_step_matches_numpy_port():
  rng = np.random.default_rng(1)
  x = rng.random((8, 10)).astype(np.float32)
  anchors = rng.random((8, 10)).astype(np.float32)
  mask = rng.random((8, 10)) < 0.5
  p = splic_mod.SplicParams(rank=jnp.int32(3), lam=jnp.float32(0.02), rho=jnp.float32(0.45),
                            mu=jnp.float32(0.5), eps=jnp.float32(0), maxiter=jnp.int32(7))
  got = splic_mod._step(jnp.asarray(x), jnp.asarray(anchors), jnp.asarray(mask), jnp.float32(0.7),
                        p)
  want = _numpy_step(x, anchors, mask, 0.7, 3, 0.02, 0.5)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_images_shape_range_randomness_and_smooth_image_kept():
  rng = np.random.default_rng(0)
  x = rng.random((3, 16, 16, 3)).astype(np.float32)
  a = iss_jax.baselines.splic(x, rank=4, key=jax.random.key(0))
  b = iss_jax.baselines.splic(x, rank=4, key=jax.random.key(0))
  c = iss_jax.baselines.splic(x, rank=4, key=jax.random.key(1))
  assert a.shape == x.shape and a.dtype == x.dtype
  assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
  np.testing.assert_array_equal(a, b)  # same key, same masks
  assert float(jnp.abs(a - c).max()) > 1e-3  # another key, other masks
  # A rank-1 smooth image is (nearly) a fixed point; random noise is not.
  t = np.linspace(0.2, 0.8, 16, dtype=np.float32)
  smooth = np.repeat((np.outer(t, t[::-1]) + 0.1)[:, :, None], 3, axis=2)
  out = iss_jax.baselines.splic(smooth, rank=4, key=jax.random.key(2))
  assert float(jnp.sqrt(jnp.mean((out - smooth) ** 2))) < 0.02
  assert float(jnp.sqrt(jnp.mean((a - x) ** 2))) > 0.1


def test_bpda_gradient_is_identity():
  x = jnp.asarray(np.random.default_rng(0).random((2, 8, 8, 3)), jnp.float32)
  w = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape), jnp.float32)
  g = jax.grad(lambda z: jnp.sum(w * iss_jax.baselines.splic(z, rank=2, key=jax.random.key(0))))(x)
  np.testing.assert_allclose(g, w)


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 0}, "rank"), ({"rank": 17}, "rank"), ({"keep": 1.0}, "keep"),
    ({"mu": 0.0}, "mu"), ({"gradient": "exact"}, "gradient"),
])
def test_bad_arguments(kwargs, match):
  kw = {"rank": 4, "key": jax.random.key(0)} | kwargs
  with pytest.raises(ValueError, match=match):
    iss_jax.baselines.splic(jnp.zeros((16, 16, 3)), **kw)
