"""Cross-check of our Carlini-Wagner L2 (``iss_jax.robustness.cw_l2``) against torchattacks' ``CW``.

  pip install torch torchattacks          # PyPI wheels (a separate virtual environment is fine)
  python -m benchmarks.bench_cw_l2 --n=100 --c=1 --kappa=0 --steps=100 --lr=0.01

torchattacks' ``CW`` runs Adam on ``||x' - x||^2 + c f(x')`` at ONE constant ``c`` (no bisection), so the
comparison runs ours with ``binary_steps=1`` and ``c_init=c``: the same objective, optimiser and budget.
Model: the small MLP of ``benchmarks.bench_attacks`` (trained in JAX, weights copied into PyTorch). Printed:
success rate, median L2 of the successful examples, per-example agreement (both fooled / one only) and the
median relative L2 difference on the examples both fooled, plus wall times, then our full attack (bisection
over ``c`` with the reference code's settings) for scale.

Known differences of torchattacks 3.5.1 (not defects of either): it tests success without the ``kappa``
margin, takes the largest *other* logit as ``max((1 - onehot) * Z)`` (0 at the label: differs when every
other logit is negative), maps pixels through ``atanh(clamp(2x - 1))`` without the reference code's shrink
(pixels at exactly 0 or 1 stay fixed), and stops early when the batch cost rose over a tenth of the steps.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import iss_jax
from benchmarks.bench_attacks import torch_mlp, train_mlp

R = iss_jax.robustness


def _summary(success: np.ndarray, l2: np.ndarray) -> str:
  med = float(np.median(l2[success])) if success.any() else float("nan")
  return f"success {success.mean():.1%}, median L2 {med:.4f}"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--n", type=int, default=100)
  parser.add_argument("--c", type=float, default=1.0)
  parser.add_argument("--kappa", type=float, default=0.0)
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--lr", type=float, default=0.01)
  args = parser.parse_args(argv)
  p, f = train_mlp()
  xt, yt = iss_jax.training.load_dataset("cifar10_sample", "test")
  x = jnp.asarray(xt, jnp.float32) / 255.0
  right = np.asarray(jnp.argmax(f(x), -1) == jnp.asarray(yt))
  x, y = x[right][: args.n], jnp.asarray(yt)[right][: args.n]  # a misclassified image needs no perturbation
  print(f"device: {R.device_description()}; torch on CPU")
  print(f"model: MLP 3072-64-10 trained in JAX; n = {len(x)} correctly classified CIFAR-10 sample test "
        f"images; c = {args.c}, kappa = {args.kappa}, {args.steps} Adam steps, lr {args.lr}")
  ours = jax.jit(lambda x, y: R.cw_l2(f, x, y, kappa=args.kappa, c_init=args.c, binary_steps=1,
                                      steps=args.steps, lr=args.lr))
  t0 = time.perf_counter()
  res = jax.block_until_ready(ours(x, y))
  t1 = time.perf_counter()
  jax.block_until_ready(ours(x, y))
  t2 = time.perf_counter()
  ok_ours, l2_ours = np.asarray(res.success), np.asarray(res.l2)
  print(f"ours (1 c):          {_summary(ok_ours, l2_ours)}; {t1 - t0:.1f} s first call, {t2 - t1:.1f} s "
        "compiled")
  try:
    import torch
    import torchattacks
  except ImportError as e:
    print(f"torch / torchattacks not importable ({e}); only our numbers follow")
  else:
    model = torch_mlp(p)
    x_t = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    y_t = torch.from_numpy(np.asarray(y).astype(np.int64))
    t3 = time.perf_counter()
    adv = torchattacks.CW(model, c=args.c, kappa=args.kappa, steps=args.steps, lr=args.lr)(x_t, y_t)
    t4 = time.perf_counter()
    x_adv_t = adv.detach().numpy().transpose(0, 2, 3, 1)
    l2_t = np.sqrt(((x_adv_t - np.asarray(x)) ** 2).sum((1, 2, 3)))
    ok_t = np.asarray(jnp.argmax(f(jnp.asarray(x_adv_t)), -1) != y) & (l2_t > 0)
    both = ok_ours & ok_t
    rel = np.abs(l2_ours[both] - l2_t[both]) / np.maximum(l2_t[both], 1e-12)
    print(f"torchattacks CW:     {_summary(ok_t, l2_t)}; {t4 - t3:.1f} s")
    print(f"per example: both fooled {int(both.sum())}, only ours {int((ok_ours & ~ok_t).sum())}, only "
          f"theirs {int((~ok_ours & ok_t).sum())}; on both: median |L2 ours - L2 theirs| / L2 theirs = "
          f"{float(np.median(rel)) if both.any() else float('nan'):.2%} (max "
          f"{float(np.max(rel)) if both.any() else float('nan'):.2%}), ours smaller on "
          f"{int((l2_ours[both] < l2_t[both]).sum())} of {int(both.sum())}")
  full = jax.jit(lambda x, y: R.cw_l2(f, x, y, kappa=args.kappa, steps=args.steps, lr=args.lr))
  t5 = time.perf_counter()
  res = jax.block_until_ready(full(x, y))
  print(f"ours (9 bisection steps from c = 1e-3): {_summary(np.asarray(res.success), np.asarray(res.l2))}; "
        f"{time.perf_counter() - t5:.1f} s")


if __name__ == "__main__":
  main()
