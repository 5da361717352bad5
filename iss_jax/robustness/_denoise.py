"""Denoising PSNR (paper App. K): noisy, ISS-smoothed and TV-denoised images against the clean ones."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax._src.checks import as_float_images
from iss_jax._src.metrics import psnr
from iss_jax.robustness._defenses import smoothing_defense
from iss_jax.robustness._runner import Runner


def evaluate_denoise(x, *, sigma: float = 0.1, sparsity: float = 0.6, tv_denoise=None,
                     tv_weights: Sequence[float] = (0.02, 0.05, 0.08, 0.12, 0.2),
                     tune_examples: int = 64, x_tune=None, seed: int = 0, smooth_kwargs=None,
                     batch_size: int = 100, progress: bool = True, runner: Runner | None = None) -> dict:
  """PSNR of noisy, ISS-smoothed and (optionally) TV-denoised images (paper App. K, Fig. 15).

  Noise: ``clip(x + sigma * N(0, 1), 0, 1)``. The TV weight is the one of ``tv_weights`` with the best
  mean PSNR on ``tune_examples`` images of ``x_tune`` (held out; else the first images of ``x``) with
  their own noise draw.

  Args:
    x: ``(N, H, W, C)`` clean images, uint8 or float in ``[0, 1]``.
    sigma: noise standard deviation.
    sparsity: ISS smoothing sparsity.
    tv_denoise: ``tv_denoise(x, weight) -> x`` (e.g. ``iss_jax.baselines.tv_denoise``) or None to skip.
    tv_weights: candidate TV weights.
    tune_examples: images used to tune the TV weight.
    x_tune: held-out clean images for the TV weight (e.g. training images); None: the first of ``x``.
    seed: noise seed.
    smooth_kwargs: extra keyword arguments for ``iss_jax.smooth``.
    batch_size: images per jitted batch.
    progress: show a tqdm bar.
    runner: a :class:`~iss_jax.robustness.Runner` whose batches to use (its classifier is not called);
      None: a new one of ``batch_size``.

  Returns:
    ``{"psnr": {"noisy": [...], "smoothed": [...], "tv": [...]?}, "mean": {...}, "std": {...},
    "tv_weight": w or None, ...}``.
  """
  xf = as_float_images(x)
  noise = np.asarray(jax.random.normal(jax.random.key(seed), xf.shape, jnp.float32))
  noisy = np.clip(xf + sigma * noise, 0.0, 1.0)
  run = Runner(lambda z: z, batch_size=batch_size, seed=seed, progress=progress) if runner is None else runner
  smoothing = smoothing_defense(sparsity, **dict(smooth_kwargs or {}))
  smoothed = run.map(jax.jit(smoothing.transform), noisy, desc="smooth")
  out = {"noisy": np.asarray(psnr(xf, noisy)), "smoothed": np.asarray(psnr(xf, smoothed))}
  tv_weight = None
  tuning = {}
  if tv_denoise is not None:
    if x_tune is None:
      x_tune, tune_note = xf[:tune_examples], f"first {tune_examples} evaluation images (not held out)"
    else:
      x_tune, tune_note = as_float_images(x_tune, "x_tune")[:tune_examples], "held-out images"
    n_tune = np.asarray(jax.random.normal(jax.random.key(seed + 1), x_tune.shape, jnp.float32))
    noisy_tune = jnp.asarray(np.clip(x_tune + sigma * n_tune, 0.0, 1.0))
    for w in tv_weights:
      tuning[str(w)] = float(np.mean(psnr(x_tune, tv_denoise(noisy_tune, w))))
    tv_weight = float(max(tv_weights, key=lambda w: tuning[str(w)]))
    tv = run.map(jax.jit(lambda xb, k: tv_denoise(xb, tv_weight)), noisy)
    out["tv"] = np.asarray(psnr(xf, tv))
  return {"psnr": {k: v.tolist() for k, v in out.items()},
          "mean": {k: float(np.mean(v)) for k, v in out.items()},
          "std": {k: float(np.std(v)) for k, v in out.items()},
          "tv_weight": tv_weight, "tv_tuning": tuning,
          "tv_tuning_images": tune_note if tv_denoise is not None else None,
          "sigma": sigma, "sparsity": sparsity,
          "num_examples": int(len(xf)),
          "noise": f"clip(x + {sigma} * N(0, 1), 0, 1), seed {seed}"}
