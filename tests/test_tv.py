"""TV denoising against a slow NumPy port of Chambolle (2004), the ROF objective, the held-out
weight choice, and the Gaussian low-pass against scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from sample_data import SAMPLE_PATH

import iss_jax
from iss_jax.baselines._tv import tv_objective


def _chambolle_numpy(g, lam, iters, tau=0.125, vectorial=False):
  """Chambolle's projection, per pixel loops, float64; g is (H, W, C)."""
  g = g.astype(np.float64)
  h, w, c = g.shape
  p = np.zeros((2, h, w, c))

  def div(p):
    d = np.zeros((h, w, c))
    for i in range(h):
      for j in range(w):
        py = (p[0, i, j] if i < h - 1 else 0) - (p[0, i - 1, j] if i > 0 else 0)
        px = (p[1, i, j] if j < w - 1 else 0) - (p[1, i, j - 1] if j > 0 else 0)
        d[i, j] = py + px
    return d

  def grad(u):
    gr = np.zeros((2, h, w, c))
    for i in range(h):
      for j in range(w):
        if i < h - 1:
          gr[0, i, j] = u[i + 1, j] - u[i, j]
        if j < w - 1:
          gr[1, i, j] = u[i, j + 1] - u[i, j]
    return gr

  for _ in range(iters):
    v = grad(div(p) - g / lam)
    if vectorial:
      norm = np.sqrt(np.sum(v**2, axis=(0, 3), keepdims=True))
    else:
      norm = np.sqrt(np.sum(v**2, axis=0, keepdims=True))
    p = (p + tau * v) / (1 + tau * norm)
  return g - lam * div(p)


@pytest.mark.parametrize("vectorial", [False, True])
def test_matches_numpy_chambolle(vectorial):
  g = np.random.default_rng(0).random((7, 9, 2)).astype(np.float32)
  got = iss_jax.baselines.tv_denoise(g, 0.15, iters=15, vectorial=vectorial)
  want = _chambolle_numpy(g, 0.15, 15, vectorial=vectorial)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("vectorial", [False, True])
def test_decreases_the_rof_objective(vectorial):
  x = jnp.asarray(np.random.default_rng(1).random((2, 16, 16, 3)), jnp.float32)
  objs = [tv_objective(iss_jax.baselines.tv_denoise(x, 0.1, iters=k, vectorial=vectorial), x, 0.1,
                       vectorial=vectorial) for k in (0, 10, 100, 300)]
  for before, after in zip(objs, objs[1:], strict=False):
    assert bool(jnp.all(after <= before * (1 + 1e-5))), (before, after)
  assert bool(jnp.all(objs[-1] < 0.8 * objs[0]))
  # The minimiser: small perturbations of the output do not lower the objective.
  u = iss_jax.baselines.tv_denoise(x, 0.1, iters=2000, vectorial=vectorial)
  base = tv_objective(u, x, 0.1, vectorial=vectorial)
  for s in range(3):
    d = 1e-2 * jax.random.normal(jax.random.key(s), x.shape)
    assert bool(jnp.all(tv_objective(u + d, x, 0.1, vectorial=vectorial) >= base - 1e-3))


def test_invariants_shapes_and_gradient():
  x = jnp.asarray(np.random.default_rng(2).random((2, 8, 8, 3)), jnp.float32)
  np.testing.assert_array_equal(iss_jax.baselines.tv_denoise(x, 0.0), x)  # weight 0: identity
  const = jnp.full((8, 8, 3), 0.3)
  np.testing.assert_allclose(iss_jax.baselines.tv_denoise(const, 0.2), const, atol=1e-6)  # fixed point
  assert iss_jax.baselines.tv_denoise(x[0, :, :, 0], 0.1).shape == (8, 8)
  batch = iss_jax.baselines.tv_denoise(x, 0.1)
  np.testing.assert_allclose(batch[1], iss_jax.baselines.tv_denoise(x[1], 0.1), atol=1e-6)  # vmap == loop
  # Vectorial TV of one channel is the per-channel TV.
  np.testing.assert_allclose(iss_jax.baselines.tv_denoise(x[..., :1], 0.1, vectorial=True),
                             iss_jax.baselines.tv_denoise(x[..., :1], 0.1), atol=1e-6)
  # Exact gradients are finite, also where the image is flat (|grad| = 0).
  g = jax.grad(lambda z: jnp.sum(iss_jax.baselines.tv_denoise(z, 0.1, iters=20) ** 2))(const)
  assert bool(jnp.all(jnp.isfinite(g)))
  with pytest.raises(ValueError, match="tau"):
    iss_jax.baselines.tv_denoise(x, 0.1, tau=0.5)


def test_select_tv_weight_on_held_out_noisy_images():
  x = np.load(SAMPLE_PATH)["x_test"][:16].astype(np.float32) / 255
  res = iss_jax.baselines.select_tv_weight(x, [0.0, 0.02, 0.05, 0.1, 0.5], noise_std=0.1,
                                           key=jax.random.key(0), iters=50)
  assert res["psnr"][0] == pytest.approx(res["psnr_noisy"], abs=1e-4)  # weight 0 = no denoising
  assert res["weight"] == res["weights"][int(np.argmax(res["psnr"]))]
  assert res["weight"] > 0 and max(res["psnr"]) > res["psnr_noisy"] + 1.0
  # Too much smoothing is worse than the chosen weight.
  assert res["psnr"][-1] < max(res["psnr"])


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 7.0])
def test_gaussian_lowpass_matches_scipy(sigma):
  x = np.random.default_rng(3).random((2, 9, 11, 3)).astype(np.float32)
  got = iss_jax.baselines.gaussian_lowpass(x, sigma)
  want = np.stack([scipy.ndimage.gaussian_filter(xi, (sigma, sigma, 0), mode="reflect")
                   for xi in x])
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_gaussian_lowpass_traced_sigma_and_errors():
  x = jnp.asarray(np.random.default_rng(4).random((8, 8, 3)), jnp.float32)
  f = jax.jit(lambda s: iss_jax.baselines.gaussian_lowpass(x, s, radius=4))
  np.testing.assert_allclose(f(1.0), iss_jax.baselines.gaussian_lowpass(x, 1.0), atol=1e-6)
  np.testing.assert_array_equal(iss_jax.baselines.gaussian_lowpass(x, 0.0), x)
  with pytest.raises(ValueError, match="sigma"):
    iss_jax.baselines.gaussian_lowpass(x, -1.0)
  with pytest.raises(ValueError, match="radius"):
    jax.jit(lambda s: iss_jax.baselines.gaussian_lowpass(x, s))(1.0)
