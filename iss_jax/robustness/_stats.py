"""Sampling noise of an accuracy measured on ``n`` images: the Wilson score interval."""

from __future__ import annotations

import numpy as np


def wilson_interval(accuracy: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
  """The Wilson score interval of an accuracy measured on ``n`` images (95% for the default ``z``).

  Examples:
    >>> from iss_jax.robustness import wilson_interval
    >>> [round(v, 3) for v in wilson_interval(0.5, 100)]
    [0.404, 0.596]
    >>> wilson_interval(0.0, 24)[0], wilson_interval(1.0, 24)[1]   # exact at the ends, no rounding residue
    (0.0, 1.0)
  """
  if n <= 0:
    return 0.0, 1.0
  p = min(max(float(accuracy), 0.0), 1.0)
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  # At p = 0 (p = 1) the lower (upper) bound is exactly 0 (1); centre - half would leave a rounding residue.
  low = 0.0 if p == 0.0 else max(centre - half, 0.0)
  high = 1.0 if p == 1.0 else min(centre + half, 1.0)
  return float(low), float(high)
