"""Shared helpers of the benchmarks: real CIFAR-10 test images and peak memory."""

from __future__ import annotations

import os
import resource

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data", "cifar10_exact.npz")
SAMPLE = os.path.join(ROOT, "iss_jax", "training", "data", "cifar10_sample.npz")


def cifar_test_images(n: int | None = None) -> tuple[np.ndarray, str]:
  """Real CIFAR-10 test images as float32 in [0, 1], official order: ../shared/data if present, else
  the sample shipped in iss_jax/training/data/. Returns ``(images, source description)``."""
  path = SHARED if os.path.exists(SHARED) else SAMPLE
  x = np.load(path)["x_test"]
  if n is not None:
    if n > len(x):
      x = np.concatenate([x] * (n // len(x) + 1))
    x = x[:n]
  return x.astype(np.float32) / 255.0, f"{os.path.basename(path)} ({len(x)} real CIFAR-10 test images)"


def peak_rss_gib() -> float:
  """Peak resident memory of this process so far, GiB (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
