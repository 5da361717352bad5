"""PSNR with the paper's per-image peak, and the sparsity of least reconstruction error."""

import jax.numpy as jnp
import numpy as np
import pytest
from sample_data import SAMPLE_PATH

import iss_jax


def test_psnr_with_a_per_image_peak_is_the_closed_form():
  rng = np.random.default_rng(0)
  x = rng.uniform(0.1, 0.7, size=(3, 4, 4, 3)).astype(np.float32)
  noisy = x + rng.normal(0, 0.05, size=x.shape).astype(np.float32)
  peak = x.max(axis=(1, 2, 3))
  mse = ((noisy.astype(np.float64) - x) ** 2).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(iss_jax.psnr(noisy, x, max_val=peak), 10 * np.log10(peak**2 / mse), rtol=1e-5)
  # The paper's peak is below 1, so its PSNR is lower than with MAX = 1 by 20 log10(1 / max X).
  gap = np.asarray(iss_jax.psnr(noisy, x)) - np.asarray(iss_jax.psnr(noisy, x, max_val=peak))
  np.testing.assert_allclose(gap, -20 * np.log10(peak), rtol=1e-4)
  with pytest.raises(ValueError, match="max_val"):
    iss_jax.psnr(noisy, x, max_val=jnp.ones(2))


def test_select_sparsity_picks_the_best_of_separate_smoothing_runs():
  x = np.load(SAMPLE_PATH)["x_test"][:6].astype(np.float32) / 255
  noisy = x + np.random.default_rng(1).normal(0, 0.1, size=x.shape).astype(np.float32)
  candidates = [0.2, 0.4, 0.6, 0.8]
  sel = iss_jax.select_sparsity(noisy, x, candidates)
  # The reference: each candidate smoothed in a run of its own, scored by the same mean PSNR.
  scores = [float(np.mean(iss_jax.psnr(iss_jax.smooth(noisy, s, value_range=None), x))) for s in candidates]
  np.testing.assert_allclose(sel.psnr, scores, atol=1e-3)
  assert sel.sparsity == candidates[int(np.argmax(scores))]
  assert sel.psnr.max() > sel.psnr_noisy  # smoothing at the chosen sparsity denoises
  with pytest.raises(ValueError, match="same shape"):
    iss_jax.select_sparsity(noisy, x[:3])
