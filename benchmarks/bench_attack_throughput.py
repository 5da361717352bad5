"""Throughput of our APGD-CE and Square against torchattacks' on the same model, in one run.

  pip install torch torchattacks          # PyPI wheels, in a separate virtual environment (not the project's)
  python -m benchmarks.bench_attack_throughput --n=200 --eps=2/255 --steps=100 --queries=1000

The model is the small MLP of ``benchmarks.bench_attacks`` (trained in JAX, weights copied into PyTorch, so
both compute the same logits). Printed per attack: images per second of ours (compiled; the first call,
with compilation, beside it), of torchattacks', their ratio, robust accuracy of each, and for Square the
forward passes ours made (it queries only the images still robust). Not part of the test suite.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import iss_jax
from benchmarks.bench_attacks import setup, torch_mlp

R = iss_jax.robustness


def main(argv=None):
  args, eps, p, f, x, y = setup(argv, __doc__)
  right = lambda z: np.asarray(jnp.argmax(f(z), -1) == y)
  try:
    import torch
    import torchattacks
  except ImportError as e:
    torch = None
    print(f"torch / torchattacks not importable ({e}); only our numbers follow")
  print(f"device: {R.device_description()}" + (f"; torch {torch.__version__} on CPU, "
                                               f"{torch.get_num_threads()} threads" if torch else ""))
  print(f"model: MLP 3072-64-10; n = {args.n} CIFAR-10 sample test images; eps = {args.eps}; APGD-CE "
        f"{args.steps} steps; Square {args.queries} queries")
  ours = {"apgd-ce": lambda x, y, k: (R.apgd(f, x, y, eps=eps, key=k, steps=args.steps), None),
          "square": lambda x, y, k: R.square(f, x, y, eps=eps, key=k, queries=args.queries, return_info=True)}
  if torch is not None:
    torch.manual_seed(0)
    model = torch_mlp(p)
    x_t = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    y_t = torch.from_numpy(np.asarray(y).astype(np.int64))
    theirs = {"apgd-ce": torchattacks.APGD(model, norm="Linf", eps=eps, steps=args.steps, loss="ce", seed=0),
              "square": torchattacks.Square(model, norm="Linf", eps=eps, n_queries=args.queries, seed=0)}
  print("\n| attack | ours images/s (1st call) | torchattacks images/s | ours / theirs | robust acc ours "
        "| robust acc theirs | our forward passes |")
  print("|---|---|---|---|---|---|---|")
  for name, attack in ours.items():
    fn = jax.jit(attack)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x, y, jax.random.key(0)))
    t1 = time.perf_counter()
    x_adv, info = jax.block_until_ready(fn(x, y, jax.random.key(1)))
    t2 = time.perf_counter()
    rate = args.n / (t2 - t1)
    cells = [name, f"{rate:.0f} ({args.n / (t1 - t0):.0f})"]
    if torch is not None:
      t3 = time.perf_counter()
      adv_t = theirs[name](x_t, y_t)
      t4 = time.perf_counter()
      theirs_rate = args.n / (t4 - t3)
      acc_t = right(jnp.asarray(adv_t.detach().numpy().transpose(0, 2, 3, 1))).mean()
      cells += [f"{theirs_rate:.0f}", f"{rate / theirs_rate:.2f}", f"{right(x_adv).mean():.1%}",
                f"{acc_t:.1%}"]
    else:
      cells += ["-", "-", f"{right(x_adv).mean():.1%}", "-"]
    cells.append("-" if info is None else f"{int(info.forward_passes)} (all images each query: "
                 f"{args.n * (int(info.iterations) + 1)})")
    print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  main()
