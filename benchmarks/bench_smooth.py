"""Throughput of iss_jax.smooth on real CIFAR-10 test images against the NumPy/SciPy implementation.

  python -m benchmarks.bench_smooth                 # 1,024 images at sparsity 0.6
  python -m benchmarks.bench_smooth --n=256 --numpy_images=4

Prints, with the device named: the NumPy/SciPy loop (tests/reference.py, the test oracle) in s/image on a
few images, the first-call compile time, images/s of the batched JAX scheduler, the ratio of the two, the
share of the projection in the smoothing time, the step distribution and the peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import iss_jax
from benchmarks.common import ROOT, cifar_test_images, peak_rss_gib

sys.path.insert(0, os.path.join(ROOT, "tests"))
import reference  # noqa: E402


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--n", type=int, default=1024, help="images smoothed by JAX")
  parser.add_argument("--sparsity", type=float, default=0.6)
  parser.add_argument("--numpy_images", type=int, default=8, help="images timed for the NumPy loop")
  parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
  args = parser.parse_args(argv)

  x, source = cifar_test_images(args.n)
  print(f"device: {iss_jax.device_description()}")
  print(f"data: {source}; sparsity {args.sparsity}; JAX batch of {len(x)} images")
  rss0 = peak_rss_gib()

  # NumPy/SciPy baseline: same algorithm, same stopping rule, explicit sparse D, scipy components.
  hnorm = reference.hessian_norm(32, 32)
  sf = iss_jax.DEFAULT_STEP_FACTOR
  t0 = time.perf_counter()
  np_steps = []
  for img in x[:args.numpy_images]:
    _, k, _ = reference.lbi_smooth(img.astype(np.float64), args.sparsity, hnorm=hnorm,
                                   step_factor=sf)
    np_steps.append(k)
  numpy_s = (time.perf_counter() - t0) / args.numpy_images
  # The same loop at the paper's step (c = 1), which gives the same projected images (PSNR 80 dB
  # between the two, benchmarks/bench_step_factor.py) in about 1.9x the steps.
  t0 = time.perf_counter()
  for img in x[:args.numpy_images]:
    reference.lbi_smooth(img.astype(np.float64), args.sparsity, hnorm=hnorm, step_factor=1.0)
  numpy_paper_s = (time.perf_counter() - t0) / args.numpy_images

  smooth = jax.jit(lambda v, s: iss_jax.smooth(v, s, return_info=True))
  t0 = time.perf_counter()
  jax.block_until_ready(smooth(jnp.asarray(x[:64]), args.sparsity))
  compile_s = time.perf_counter() - t0
  xj = jnp.asarray(x)
  jax.block_until_ready(smooth(xj[:8], args.sparsity))  # warm (any shape-specific compile)
  t0 = time.perf_counter()
  out, info = jax.block_until_ready(smooth(xj, args.sparsity))
  first_full_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  out, info = jax.block_until_ready(smooth(xj, args.sparsity))
  jax_s = time.perf_counter() - t0
  rate = len(x) / jax_s
  steps = np.asarray(info.steps)
  # JAX (float32) and NumPy (float64) stop at (nearly) the same steps on the shared images.
  step_diff = int(np.max(np.abs(steps[:args.numpy_images] - np.asarray(np_steps))))

  # Projection alone, on supports from real runs (vmapped connected components + component means).
  params = iss_jax.lbi_params(32, 32)
  k = min(len(x), 64)
  states = jax.jit(jax.vmap(lambda v: iss_jax.lbi_run(v, args.sparsity, params, maxiter=2000)))(xj[:k])
  reps = len(x) // k
  b = jnp.tile(states.b, (reps, 1, 1, 1))
  active = jnp.tile(jax.vmap(iss_jax.lbi_support)(states.z), (reps, 1, 1, 1))
  project = jax.jit(jax.vmap(iss_jax.project))
  jax.block_until_ready(project(b, active))
  t0 = time.perf_counter()
  jax.block_until_ready(project(b, active))
  proj_s = (time.perf_counter() - t0) * len(x) / (reps * k)

  figures = {
      "device": iss_jax.device_description(),
      "numpy_s_per_image": numpy_s,
      "jax_images_per_s": rate,
      "speedup_vs_numpy": numpy_s * rate,
      "numpy_paper_step_s_per_image": numpy_paper_s,
      "speedup_vs_numpy_paper_step": numpy_paper_s * rate,
      "compile_plus_first_64_s": compile_s,
      "first_call_full_batch_s": first_full_s,
      "projection_share": proj_s / jax_s,
      "peak_rss_gib": peak_rss_gib(),
      "peak_rss_increase_gib": peak_rss_gib() - rss0,
      "steps_median": float(np.median(steps)),
      "steps_p90": float(np.percentile(steps, 90)),
      "steps_max": int(steps.max()),
      "capped": int(np.asarray(info.capped).sum()),
      "max_step_difference_vs_numpy": step_diff,
      "step_factor": sf,
      "maxiter": iss_jax.DEFAULT_MAXITER,
  }
  print(f"NumPy/SciPy loop:  {numpy_s:.3f} s/image ({args.numpy_images} images)")
  print(f"iss_jax.smooth:    {rate:.1f} images/s ({len(x)} images in {jax_s:.2f} s)")
  print(f"ratio:             {figures['speedup_vs_numpy']:.0f}x the NumPy/SciPy loop (same step factor {sf})")
  print(f"NumPy/SciPy loop at the paper's step c = 1: {numpy_paper_s:.3f} s/image -> ratio "
        f"{figures['speedup_vs_numpy_paper_step']:.0f}x")
  print(f"first call (compile + 64 images): {compile_s:.2f} s")
  print(f"projection:        {100 * figures['projection_share']:.2f}% of the smoothing time")
  print(f"peak memory:       {figures['peak_rss_gib']:.2f} GiB process RSS "
        f"(+{figures['peak_rss_increase_gib']:.2f} GiB during the run)")
  print(f"steps:             median {figures['steps_median']:.0f}, p90 {figures['steps_p90']:.0f}, "
        f"max {figures['steps_max']}, capped {figures['capped']} (step_factor {sf}, maxiter "
        f"{iss_jax.DEFAULT_MAXITER})")
  print(f"stopping step vs NumPy (float64) on the {args.numpy_images} shared images: max difference "
        f"{step_diff}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(figures, f, indent=2)
  return figures


if __name__ == "__main__":
  main()
