"""Tests for the CIFAR-10-C-style corruption generator and the official-file reader."""

import os

import numpy as np
import pytest
from sample_data import SAMPLE_PATH

import iss_jax
from iss_jax.robustness import _corruptions as C

RNG = np.random.default_rng(0)
SAMPLE = str(SAMPLE_PATH)
X8 = RNG.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)


def _smooth_images(n=6):
  """Smooth colour images (corruptions that blur leave them close to themselves)."""
  yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
  base = np.stack([yy, xx, 0.5 * (yy + xx)], -1)
  return np.clip(0.1 + 0.8 * base[None] * np.linspace(0.5, 1, n)[:, None, None, None], 0, 1)


@pytest.mark.parametrize("name", C.AVAILABLE_CORRUPTIONS)
def test_shapes_dtypes_range_and_determinism(name):
  out = iss_jax.robustness.corrupt(X8, name, 3, seed=1)
  assert out.shape == X8.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out, iss_jax.robustness.corrupt(X8, name, 3, seed=1))
  xf = X8[:2] / 255.0
  outf = iss_jax.robustness.corrupt(xf, name, 3, seed=1)
  assert outf.dtype == np.float32 and outf.min() >= 0 and outf.max() <= 1
  assert iss_jax.robustness.corrupt(X8[0], name, 1).shape == X8[0].shape


def test_brightness_on_grey_is_clipped_shift():
  """On grey pixels HSV value = the grey level, so brightness adds c to every channel (clipped)."""
  g = np.linspace(0, 1, 11)
  x = np.broadcast_to(g[:, None, None, None], (11, 4, 4, 3)).copy()
  for s, c in enumerate((0.05, 0.1, 0.15, 0.2, 0.3), start=1):
    np.testing.assert_allclose(iss_jax.robustness.corrupt(x, "brightness", s), np.minimum(x + c, 1),
                               atol=1e-6)


def test_brightness_keeps_hue_and_saturation():
  import matplotlib.colors as mcolors

  x = np.array([[[[0.2, 0.4, 0.6], [0.5, 0.1, 0.3]]]])  # (1, 1, 2, 3)
  out = iss_jax.robustness.corrupt(x, "brightness", 2)
  h0, h1 = mcolors.rgb_to_hsv(x), mcolors.rgb_to_hsv(out.astype(np.float64))
  np.testing.assert_allclose(h1[..., :2], h0[..., :2], atol=1e-5)
  np.testing.assert_allclose(h1[..., 2], h0[..., 2] + 0.1, atol=1e-5)


def test_contrast_formula():
  x = _smooth_images(2)
  m = x.mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(iss_jax.robustness.corrupt(x, "contrast", 5), (x - m) * 0.15 + m, atol=1e-6)


@pytest.mark.parametrize("severity,std", list(enumerate((0.04, 0.06, 0.08, 0.09, 0.10), start=1)))
def test_gaussian_noise_statistics(severity, std):
  x = np.full((64, 32, 32, 3), 0.5)  # far from the clip
  d = iss_jax.robustness.corrupt(x, "gaussian_noise", severity).astype(np.float64) - 0.5
  assert abs(d.mean()) < 4 * std / np.sqrt(d.size)
  assert abs(d.std() - std) < 0.02 * std


def test_shot_noise_statistics():
  x = np.full((64, 32, 32, 3), 0.4)
  for s, c in enumerate((500, 250, 100, 75, 50), start=1):
    out = iss_jax.robustness.corrupt(x, "shot_noise", s).astype(np.float64)
    np.testing.assert_allclose(np.unique(np.round(out * c, 3)) % 1, 0, atol=2e-3)  # multiples of 1/c
    assert abs(out.mean() - 0.4) < 4 * np.sqrt(0.4 / c / out.size)
    assert abs(out.var() - 0.4 / c) < 0.05 * 0.4 / c  # Poisson: var = mean / c


def test_impulse_noise_fraction_and_values():
  x = np.full((64, 32, 32, 3), 0.5)
  for s, c in enumerate((0.01, 0.02, 0.03, 0.05, 0.07), start=1):
    out = iss_jax.robustness.corrupt(x, "impulse_noise", s)
    changed = out != np.float32(0.5)
    assert set(np.unique(out[changed])) <= {0.0, 1.0}
    assert abs(changed.mean() - c) < 5 * np.sqrt(c / out.size)
    assert abs((out[changed] == 1).mean() - 0.5) < 0.05


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur",
                                  "motion_blur", "brightness", "contrast", "defocus_blur"])
def test_severity_ordering(name):
  """Mean absolute change grows with severity for the monotone types."""
  x = np.load(SAMPLE)["x_test"][:16]
  diffs = [np.abs(iss_jax.robustness.corrupt(x, name, s).astype(float) - x).mean() for s in (1, 3, 5)]
  assert diffs[0] < diffs[1] < diffs[2]


def test_motion_blur_kernel_is_imagemagick_like():
  w, dy, dx = C.motion_blur_kernel(6, 1.0, 0.0)
  assert w.shape == (13,) and abs(w.sum() - 1) < 1e-12 and np.all(np.diff(w) < 0)
  np.testing.assert_array_equal(dy, 0)  # angle 0: along +x
  np.testing.assert_array_equal(dx, np.arange(13))
  _, dy, dx = C.motion_blur_kernel(6, 1.0, 90.0)
  np.testing.assert_array_equal(dx, 0)
  np.testing.assert_array_equal(dy, np.arange(13))


def test_blurs_leave_constant_images_unchanged():
  x = np.full((2, 32, 32, 3), 0.3)
  for name in ("motion_blur", "defocus_blur", "gaussian_blur", "zoom_blur", "elastic_transform"):
    np.testing.assert_allclose(iss_jax.robustness.corrupt(x, name, 5), x, atol=1 / 255 + 1e-6, err_msg=name)


def test_glass_blur_copies_neighbours():
  """With sigma ~0 (severity 1), every pixel equals some pixel of the blurred image within 1 step."""
  x = X8[:1]
  out = iss_jax.robustness.corrupt(x, "glass_blur", 1)
  assert np.abs(out.astype(int) - x).mean() > 1  # pixels moved
  assert out.shape == x.shape


def test_elastic_severity_one_is_pure_affine():
  """Severity 1 has no displacement field (alpha = 0): a translation-free affine of a linear ramp stays
  affine, so second differences vanish away from the border."""
  yy, xx = np.meshgrid(np.arange(32.0), np.arange(32.0), indexing="ij")
  ramp = (0.2 + 0.01 * yy + 0.012 * xx)[None, :, :, None].repeat(3, -1)
  out = iss_jax.robustness.corrupt(ramp, "elastic_transform", 1).astype(np.float64)[0, 8:24, 8:24, 0]
  assert np.abs(np.diff(out, 2, axis=0)).max() < 1e-5
  assert np.abs(np.diff(out, 2, axis=1)).max() < 1e-5


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="name"):
    iss_jax.robustness.corrupt(X8, "nope", 1)
  with pytest.raises(ValueError, match="severity"):
    iss_jax.robustness.corrupt(X8, "gaussian_noise", 6)
  with pytest.raises(ValueError, match="x must be"):
    iss_jax.robustness.corrupt(X8[0, 0], "gaussian_noise", 1)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    iss_jax.robustness.corrupt(X8 / 100.0, "gaussian_noise", 1)


def test_load_cifar10c_rows_and_indices(tmp_path):
  x = np.arange(50000, dtype=np.uint8)[:, None, None, None].repeat(2, 1)  # tiny stand-in images
  y = (np.arange(50000) % 10).astype(np.uint8)
  np.save(os.path.join(tmp_path, "gaussian_noise.npy"), x)
  np.save(os.path.join(tmp_path, "labels.npy"), y)
  xs, ys = iss_jax.robustness.load_cifar10c(str(tmp_path), "gaussian_noise", 3, indices=[0, 5, 9999])
  np.testing.assert_array_equal(xs[:, 0, 0, 0], np.uint8(np.array([20000, 20005, 29999]) % 256))
  np.testing.assert_array_equal(ys, [0, 5, 9])
  with pytest.raises(ValueError, match="not found"):
    iss_jax.robustness.load_cifar10c(str(tmp_path), "shot_noise", 1)
