"""Choosing the sparsity: the one whose smoothed noisy images are closest to the clean ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from iss_jax._src.metrics import psnr
from iss_jax._src.smooth import smooth_path

DEFAULT_CANDIDATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class SparsitySelection(NamedTuple):
  """What :func:`select_sparsity` measured.

  Attributes:
    sparsity: the candidate of the highest mean PSNR (float).
    candidates: ``(P,)`` the candidates, in the order given.
    psnr: ``(P,)`` mean PSNR in dB of the smoothed noisy images against the clean ones, per candidate.
    psnr_noisy: mean PSNR in dB of the noisy images themselves.
  """

  sparsity: float
  candidates: np.ndarray
  psnr: np.ndarray
  psnr_noisy: float


def select_sparsity(noisy, clean, candidates: Sequence[float] = DEFAULT_CANDIDATES, *, max_val=1.0,
                    **smooth_kwargs) -> SparsitySelection:
  """The sparsity of least reconstruction error on paired noisy / clean images.

  The later paper fixes the sparsity per dataset (0.6 on CIFAR, 0.3 on ImageNet) or, when noisy data with
  its clean originals is at hand, takes the one of least reconstruction error; this is that rule, with the
  error measured as mean PSNR. All candidates come from one Split LBI run per image
  (:func:`iss_jax.smooth_path`).

  Args:
    noisy: ``(N, H, W, C)`` float noisy images (values may leave ``[0, 1]``: they are smoothed as they are).
    clean: ``(N, H, W, C)`` float originals of the same shape.
    candidates: sparsities in ``[0, 1]`` to try (non-empty).
    max_val: the PSNR peak, as in :func:`iss_jax.psnr`.
    **smooth_kwargs: passed to :func:`iss_jax.smooth_path` (``maxiter``, ``step_factor``, ...).

  Returns:
    A :class:`SparsitySelection`; ties go to the first candidate.

  Raises:
    ValueError: shapes that differ, or bad candidates.

  Examples:
    >>> import numpy as np, iss_jax
    >>> rng = np.random.default_rng(0)
    >>> clean = np.repeat(np.repeat(rng.random((2, 4, 4, 1)), 4, 1), 4, 2).astype(np.float32)  # blocks
    >>> noisy = clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)
    >>> sel = iss_jax.select_sparsity(noisy, clean, [0.1, 0.3, 0.9])
    >>> sel.sparsity, bool(sel.psnr.max() > sel.psnr_noisy)
    (0.3, True)
  """
  noisy, clean = np.asarray(noisy, np.float32), np.asarray(clean, np.float32)
  if noisy.shape != clean.shape or noisy.ndim != 4:
    raise ValueError(f"noisy and clean must be (N, H, W, C) batches of the same shape; got {noisy.shape} and "
                     f"{clean.shape}.")
  candidates = np.asarray(candidates, np.float64)
  if candidates.ndim != 1 or candidates.size == 0:
    raise ValueError(f"candidates must be a non-empty list of sparsities; got {candidates.tolist()!r}.")
  smooth_kwargs.setdefault("value_range", None)  # noise leaves [0, 1]: not a forgotten / 255
  path = np.asarray(smooth_path(noisy, candidates.astype(np.float32), **smooth_kwargs))
  scores = np.array([float(np.mean(psnr(p, clean, max_val=max_val))) for p in path])
  return SparsitySelection(sparsity=float(candidates[int(np.argmax(scores))]), candidates=candidates,
                           psnr=scores, psnr_noisy=float(np.mean(psnr(noisy, clean, max_val=max_val))))
