"""How the step factor c (alpha = c / (kappa ||H||_2)) trades steps for agreement with the paper's c = 1.

  python -m benchmarks.bench_step_factor --n=128

For each c: steps to the target sparsity (median, mean, p90), capped images, wall time, and how close the
projected images are to those of c = 1 (mean |difference| in pixel units of 1/255 and PSNR between them).
Used to choose iss_jax's default step factor.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import iss_jax
from benchmarks.common import cifar_test_images


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--n", type=int, default=128)
  parser.add_argument("--sparsity", type=float, default=0.6)
  parser.add_argument("--factors", default="1.0,1.5,1.9")
  parser.add_argument("--maxiter", type=int, default=60_000, help="cap at c = 1 (scaled by 1/c)")
  args = parser.parse_args(argv)
  x, source = cifar_test_images(args.n)
  xj = jnp.asarray(x)
  print(f"device: {iss_jax.robustness.device_description()}\n"
        f"data: {source}, n={len(x)}, sparsity {args.sparsity}")
  results = {}
  for c in [float(v) for v in args.factors.split(",")]:
    maxiter = int(args.maxiter / c)
    f = jax.jit(lambda v, s, c=c, m=maxiter: iss_jax.smooth(v, s, step_factor=c, maxiter=m,
                                                             return_info=True))
    t0 = time.perf_counter()
    out, info = jax.block_until_ready(f(xj, args.sparsity))
    results[c] = (np.asarray(out), np.asarray(info.steps), np.asarray(info.capped),
                  time.perf_counter() - t0)
  ref = results[min(results)][0]
  print("| c | median steps | mean steps | p90 steps | capped | wall s (incl. compile) | "
        "mean abs diff vs c=1 (/255) | PSNR vs c=1 (dB) |")
  print("|---|---|---|---|---|---|---|---|")
  for c, (out, steps, capped, wall) in results.items():
    diff = np.abs(out - ref)
    mse = np.mean((out - ref) ** 2)
    psnr = float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
    print(f"| {c} | {np.median(steps):.0f} | {steps.mean():.0f} | {np.percentile(steps, 90):.0f} | "
          f"{capped.sum()} | {wall:.1f} | {255 * diff.mean():.3f} | {psnr:.1f} |")


if __name__ == "__main__":
  main()
