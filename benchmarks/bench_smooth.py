"""Throughput of iss_jax.smooth on real CIFAR-10 test images against the NumPy/SciPy implementation.

  python -m benchmarks.bench_smooth                 # 1,024 images at sparsity 0.6
  python -m benchmarks.bench_smooth --n=256 --numpy_images=4

Prints, with the device named: the NumPy/SciPy loop (``iss_jax.smooth_reference``, the
readable definition the fast paths are tested against) in s/image on a
few images, the first-call compile time (and, on CPU, the one-off build of the fused kernel), images/s of
``iss_jax.smooth`` as users call it (the fused C++ kernel on CPU), the ratio of the two, the pure-XLA
scheduler (the GPU/TPU path, ``implementation="xla"``) on part of the batch for comparison, the share of
the projection in the smoothing time, the step distribution and the peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import iss_jax
from benchmarks.common import cifar_test_images, peak_rss_gib
from iss_jax.robustness import device_description


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--n", type=int, default=1024, help="images smoothed by JAX")
  parser.add_argument("--sparsity", type=float, default=0.6)
  parser.add_argument("--numpy_images", type=int, default=8, help="images timed for the NumPy loop")
  parser.add_argument("--xla_images", type=int, default=256,
                      help="images timed for the pure-XLA scheduler (0: skip)")
  parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
  args = parser.parse_args(argv)

  x, source = cifar_test_images(args.n)
  print(f"device: {device_description()}")
  print(f"data: {source}; sparsity {args.sparsity}; JAX batch of {len(x)} images")
  rss0 = peak_rss_gib()

  # NumPy/SciPy baseline: same algorithm, same stopping rule, explicit sparse D, scipy components.
  hnorm = float(iss_jax.hessian_norm(32, 32))
  sf = iss_jax.DEFAULT_STEP_FACTOR
  t0 = time.perf_counter()
  np_steps = []
  for img in x[:args.numpy_images]:
    _, k, _ = iss_jax.smooth_reference(img.astype(np.float64), args.sparsity, hnorm=hnorm,
                                   step_factor=sf)
    np_steps.append(k)
  numpy_s = (time.perf_counter() - t0) / args.numpy_images
  # The same loop at the paper's step (c = 1), which gives the same projected images (PSNR 80 dB
  # between the two, benchmarks/bench_step_factor.py) in about 1.9x the steps.
  t0 = time.perf_counter()
  for img in x[:args.numpy_images]:
    iss_jax.smooth_reference(img.astype(np.float64), args.sparsity, hnorm=hnorm, step_factor=1.0)
  numpy_paper_s = (time.perf_counter() - t0) / args.numpy_images

  # One-off build of the CPU kernel, into an empty cache (users pay it once per machine).
  build_s = None
  if os.environ.get("ISS_JAX_CPU_KERNEL", "1") != "0" and jax.default_backend() == "cpu":
    previous = os.environ.get("ISS_JAX_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
      os.environ["ISS_JAX_CACHE_DIR"] = tmp
      t0 = time.perf_counter()
      try:
        iss_jax.build_cpu_kernel()
        build_s = time.perf_counter() - t0
      except iss_jax.KernelUnavailableError as e:
        print(f"CPU kernel unavailable: {e}")
      finally:
        if previous is None:
          del os.environ["ISS_JAX_CACHE_DIR"]
        else:
          os.environ["ISS_JAX_CACHE_DIR"] = previous
  kernel = iss_jax.cpu_kernel_available() and jax.default_backend() == "cpu"
  implementation = "fused CPU kernel" if kernel else "XLA scheduler"

  def timed(fn, *args):
    t0 = time.perf_counter()
    result = jax.block_until_ready(fn(*args))
    return result, time.perf_counter() - t0

  smooth = jax.jit(lambda v, s: iss_jax.smooth(v, s, return_info=True))
  _, compile_s = timed(smooth, jnp.asarray(x[:64]), args.sparsity)
  xj = jnp.asarray(x)
  jax.block_until_ready(smooth(xj[:8], args.sparsity))  # warm (any shape-specific compile)
  _, first_full_s = timed(smooth, xj, args.sparsity)
  (out, info), jax_s = timed(smooth, xj, args.sparsity)
  rate = len(x) / jax_s
  steps = np.asarray(info.steps)
  # JAX (float32) and NumPy (float64) stop at (nearly) the same steps on the shared images.
  step_diff = int(np.max(np.abs(steps[:args.numpy_images] - np.asarray(np_steps))))

  # The pure-XLA scheduler (what runs on GPU/TPU) on the first images, for comparison on this device.
  xla_rate = None
  if args.xla_images and kernel:
    k = min(args.xla_images, len(x))
    xla = jax.jit(lambda v, s: iss_jax.smooth(v, s, implementation="xla"))
    timed(xla, xj[:k], args.sparsity)  # compile for this shape, both
    timed(smooth, xj[:k], args.sparsity)
    _, xla_s = timed(xla, xj[:k], args.sparsity)
    _, same_s = timed(smooth, xj[:k], args.sparsity)
    xla_rate, same_rate = k / xla_s, k / same_s

  # Projection share: smoothing to the same target P times projects P times at the same step, so the
  # extra time over one target is (P - 1) projections, whichever implementation runs.
  reps = 64
  k = min(len(x), 256)
  path = jax.jit(lambda v, s: iss_jax.smooth_path(v, s))
  one, many = jnp.full((1,), args.sparsity), jnp.full((reps + 1,), args.sparsity)
  one_s = min(timed(path, xj[:k], one)[1] for _ in range(3))
  many_s = min(timed(path, xj[:k], many)[1] for _ in range(3))
  proj_share = max(many_s - one_s, 0.0) / reps / one_s

  figures = {
      "device": device_description(),
      "implementation": implementation,
      "kernel_build_s": build_s,
      "numpy_s_per_image": numpy_s,
      "jax_images_per_s": rate,
      "speedup_vs_numpy": numpy_s * rate,
      "numpy_paper_step_s_per_image": numpy_paper_s,
      "speedup_vs_numpy_paper_step": numpy_paper_s * rate,
      "compile_plus_first_64_s": compile_s,
      "first_call_full_batch_s": first_full_s,
      "projection_share": proj_share,
      "xla_images_per_s": xla_rate,
      "kernel_speedup_vs_xla": None if xla_rate is None else same_rate / xla_rate,
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
  print(f"iss_jax.smooth:    {rate:.1f} images/s ({len(x)} images in {jax_s:.2f} s; {implementation})")
  print(f"ratio:             {figures['speedup_vs_numpy']:.0f}x the NumPy/SciPy loop (same step factor {sf})")
  print(f"NumPy/SciPy loop at the paper's step c = 1: {numpy_paper_s:.3f} s/image -> ratio "
        f"{figures['speedup_vs_numpy_paper_step']:.0f}x")
  print(f"first call (compile + 64 images): {compile_s:.2f} s")
  if build_s is not None:
    print(f"CPU kernel build (once per machine, cached): {build_s:.2f} s")
  if xla_rate is not None:
    print(f"XLA scheduler (implementation='xla', the GPU/TPU path) on {min(args.xla_images, len(x))} images: "
          f"{xla_rate:.1f} images/s; the kernel on the same images is "
          f"{figures['kernel_speedup_vs_xla']:.1f}x faster")
  print(f"projection:        {100 * figures['projection_share']:.3f}% of the smoothing time "
        f"({reps} extra projections per image timed)")
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
