"""Smooth-kernel penalty (Wang et al., Sec. 3) against its formula evaluated with NumPy loops."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax
from iss_jax.baselines._regularizers import conv_kernels, kernel_smoothness


def _r_numpy(w2d, diagonal):
  """R(w) for one 2-D kernel: each unordered neighbour pair once, float64."""
  kh, kw = w2d.shape
  steps = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if diagonal else [])
  total = 0.0
  for i, j in itertools.product(range(kh), range(kw)):
    for di, dj in steps:
      h, k = i + di, j + dj
      if 0 <= h < kh and 0 <= k < kw:
        total += (float(w2d[i, j]) - float(w2d[h, k])) ** 2
  return np.exp(total - np.sum(w2d.astype(np.float64) ** 2))


@pytest.mark.parametrize("shape", [(3, 3, 2, 4), (5, 5, 1, 1), (2, 3, 3, 2)])
@pytest.mark.parametrize("diagonal", [False, True])
def test_kernel_smoothness_matches_formula(shape, diagonal):
  w = 0.3 * np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  got = kernel_smoothness(w, diagonal=diagonal)
  want = np.array([[_r_numpy(w[:, :, a, b], diagonal) for b in range(shape[3])]
                   for a in range(shape[2])])
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_penalty_sums_conv_kernels_and_skips_others():
  rng = np.random.default_rng(1)
  k1 = 0.2 * rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
  k2 = 0.2 * rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
  params = {
      "stem_conv": {"kernel": k1, "bias": np.zeros(4, np.float32)},
      "block": {"conv": {"kernel": k2}, "shortcut": {"kernel": np.ones((1, 1, 4, 4), np.float32)}},
      "head": {"kernel": np.ones((4, 10), np.float32)},  # dense: skipped
  }
  want = sum(_r_numpy(k[:, :, a, b], False) for k in (k1, k2)
             for a in range(k.shape[2]) for b in range(k.shape[3]))
  assert [p for p, _ in conv_kernels(params)] == ["['block']['conv']['kernel']",
                                                  "['stem_conv']['kernel']"]
  np.testing.assert_allclose(iss_jax.baselines.smooth_kernel_penalty(params), want, rtol=1e-5)
  np.testing.assert_allclose(iss_jax.baselines.smooth_kernel_penalty(params, reduction="mean"),
                             want / (12 + 16), rtol=1e-5)
  assert float(iss_jax.baselines.smooth_kernel_penalty({"dense": {"kernel": jnp.ones((3, 2))}})) == 0.0
  with pytest.raises(ValueError, match="reduction"):
    iss_jax.baselines.smooth_kernel_penalty(params, reduction="max")


def test_gradient_descent_smooths_kernels_and_keeps_scale():
  w = jnp.asarray(0.3 * np.random.default_rng(2).standard_normal((3, 3, 2, 2)), jnp.float32)
  rough = lambda w: float(jnp.sum((w[1:] - w[:-1]) ** 2) + jnp.sum((w[:, 1:] - w[:, :-1]) ** 2))
  grad = jax.grad(lambda w: iss_jax.baselines.smooth_kernel_penalty({"c": {"kernel": w}}))
  v = w
  for _ in range(200):
    v = v - 0.01 * grad(v)
  assert rough(v) < 0.5 * rough(w)
  # Unlike an L2 penalty, it does not shrink the kernel towards 0.
  assert float(jnp.sum(v**2)) > 0.5 * float(jnp.sum(w**2))
