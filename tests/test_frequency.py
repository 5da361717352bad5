"""Tests for the Fourier low/high split's mask against Wang et al.'s reference helper.

Reference: github.com/HaohanWang/HFC, ``utility/frequencyHelper.py`` (``distance``, ``mask_radial``,
``generateDataWithDifferentFrequencies_3Channel``), Python 2 code.
"""

import numpy as np
import pytest

import iss_jax


def _mask_radial_reference(n, r, *, python2=True):
  """Literal NumPy port of the reference ``mask_radial(np.zeros([n, n]), r)``: 1 where
  ``sqrt((i - n/2)**2 + (j - n/2)**2) < r``, else 0. ``n/2`` is Python 2's integer division unless
  ``python2=False`` (the Python 3 reading, which differs at odd ``n`` only)."""
  centre = n // 2 if python2 else n / 2
  mask = np.zeros((n, n))
  for i in range(n):
    for j in range(n):
      dis = np.sqrt((i - centre) ** 2 + (j - centre) ** 2)
      mask[i, j] = 1.0 if dis < r else 0
  return mask


def _split_reference(images, r):
  """Port of the reference ``generateDataWithDifferentFrequencies_3Channel``: per channel, the shifted FFT
  times the mask (low) or one minus it (high), shifted back, inverse FFT, real part."""
  mask = _mask_radial_reference(images.shape[1], r)
  low, high = np.zeros(images.shape), np.zeros(images.shape)
  for i in range(images.shape[0]):
    for c in range(images.shape[3]):
      fd = np.fft.fftshift(np.fft.fft2(images[i, :, :, c]))
      low[i, :, :, c] = np.real(np.fft.ifft2(np.fft.ifftshift(fd * mask)))
      high[i, :, :, c] = np.real(np.fft.ifft2(np.fft.ifftshift(fd * (1 - mask))))
  return low, high


RADII = (0, 0.5, 1, np.sqrt(2), 2.5, 4, 5, 8, 12, 16, 100)


@pytest.mark.parametrize("n", [8, 16, 28, 32])
@pytest.mark.parametrize("radius", RADII)
def test_radial_mask_is_the_reference_mask(n, radius):
  mask = iss_jax.robustness.radial_mask(n, n, radius)
  assert mask.dtype == bool and mask.shape == (n, n)
  np.testing.assert_array_equal(mask, _mask_radial_reference(n, radius) == 1)
  np.testing.assert_array_equal(mask, _mask_radial_reference(n, radius, python2=False) == 1)  # even n


@pytest.mark.parametrize("n", [7, 15, 33])
@pytest.mark.parametrize("radius", [1, 2.5, 4, 6])
def test_radial_mask_at_odd_sizes_is_the_python2_reference(n, radius):
  np.testing.assert_array_equal(iss_jax.robustness.radial_mask(n, n, radius),
                                _mask_radial_reference(n, radius) == 1)


def test_radial_mask_excludes_the_radius():
  m = iss_jax.robustness.radial_mask(32, 32, 4)
  assert m[16, 16] and m[16 + 3, 16] and m[16, 16 - 3] and m[16 + 2, 16 + 2]
  assert not m[16 + 4, 16] and not m[16, 16 + 4] and not m[16 - 4, 16] and not m[16, 16 - 4]
  yy, xx = np.meshgrid(np.arange(32) - 16, np.arange(32) - 16, indexing="ij")
  assert ((yy**2 + xx**2) <= 16).sum() - m.sum() == 4  # the 4 frequencies `<=` would add at r = 4
  assert m.sum() == 45
  assert not iss_jax.robustness.radial_mask(32, 32, 0).any()  # r = 0 keeps nothing, not even the DC
  assert iss_jax.robustness.radial_mask(32, 32, 0.5).sum() == 1  # only the zero frequency
  rect = iss_jax.robustness.radial_mask(6, 10, 2)  # each axis centred at its own n // 2
  assert rect[3, 5] and rect[3, 6] and not rect[3, 7] and not rect[5, 5]


@pytest.mark.parametrize("radius", [0, 4, 8, 12])
def test_frequency_split_matches_the_reference_helper(radius):
  x = np.random.default_rng(0).random((2, 32, 32, 3))
  low_ref, high_ref = _split_reference(x, radius)
  low, high = iss_jax.robustness.frequency_split(x.astype(np.float32), radius)
  np.testing.assert_allclose(np.asarray(low), low_ref, atol=2e-5)
  np.testing.assert_allclose(np.asarray(high), high_ref, atol=2e-5)


@pytest.mark.parametrize("radius", [0, 0.5, 4, 4.5, 16, 100])
def test_low_plus_high_is_the_image(radius):
  x = np.random.default_rng(1).random((3, 16, 12, 3)).astype(np.float32)
  low, high = iss_jax.robustness.frequency_split(x, radius)
  np.testing.assert_allclose(np.asarray(low + high), x, atol=1e-5)


def test_frequency_on_the_radius_is_high():
  """A cosine of frequency 3 along x lies on the circle of radius 3: high at r = 3, low just above."""
  cos = np.cos(2 * np.pi * 3 * np.arange(8) / 8)[None, None, :, None] * np.ones((1, 8, 1, 1))
  cos = cos.astype(np.float32)
  low, high = iss_jax.robustness.frequency_split(cos, 3.0)
  np.testing.assert_allclose(np.asarray(high), cos, atol=1e-5)
  np.testing.assert_allclose(np.asarray(low), 0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(iss_jax.robustness.frequency_split(cos, 3.01)[0]), cos, atol=1e-5)
  x = np.random.default_rng(2).random((2, 8, 8, 3)).astype(np.float32)
  low_dc, _ = iss_jax.robustness.frequency_split(x, 0.5)  # only the zero frequency: the channel means
  np.testing.assert_allclose(np.asarray(low_dc), np.broadcast_to(x.mean((1, 2), keepdims=True), x.shape),
                             atol=1e-5)
