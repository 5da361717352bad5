"""Cross-check of our APGD-CE, APGD-DLR, APGD-T and Square against torchattacks (an independent PyTorch port).

  pip install torch torchattacks          # PyPI wheels (a separate virtual environment is fine)
  python -m benchmarks.bench_attacks --n=200 --eps=2/255 --steps=100 --queries=1000

Trains a small MLP (3072 -> 64 -> 10, ReLU, 300 full-batch momentum steps) in JAX on the 1,000 shipped
CIFAR-10 training images, copies its weights into an identical PyTorch module (NCHW input permuted to NHWC,
so both compute the same logits), and attacks the same test images at the same eps and budget with both
implementations: robust accuracy of each, per-example agreement (both fool / both fail), and wall time
(JAX: including compilation, and a second, compiled call). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

import iss_jax

R = iss_jax.robustness


def train_mlp(steps: int = 300, hidden: int = 64, lr: float = 0.02):
  x, y = iss_jax.training.load_dataset("cifar10_sample", "train")
  x, y = jnp.asarray(x, jnp.float32) / 255.0, jnp.asarray(y)
  k1, k2 = jax.random.split(jax.random.key(1))
  p = {"w1": jax.random.normal(k1, (3072, hidden)) / np.sqrt(3072), "b1": jnp.zeros(hidden),
       "w2": jax.random.normal(k2, (hidden, 10)) / np.sqrt(hidden), "b2": jnp.zeros(10)}
  apply = lambda p, z: (jax.nn.relu((z.reshape(z.shape[0], -1) - 0.5) @ p["w1"] + p["b1"][None]) @ p["w2"]
                        + p["b2"][None])
  loss = lambda p: jnp.mean(R.cross_entropy(apply(p, x), y))

  def step(state, _):
    p, m = state
    m = jax.tree_util.tree_map(lambda a, b: 0.9 * a + b, m, jax.grad(loss)(p))
    return (jax.tree_util.tree_map(lambda a, b: a - lr * b, p, m), m), None

  (p, _), _ = jax.lax.scan(step, (p, jax.tree_util.tree_map(jnp.zeros_like, p)), None, steps)
  return p, (lambda z: apply(p, z))


def torch_mlp(p):
  import torch

  class MLP(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.fc1 = torch.nn.Linear(*p["w1"].shape)
      self.fc2 = torch.nn.Linear(*p["w2"].shape)
      with torch.no_grad():
        for layer, w, b in ((self.fc1, p["w1"], p["b1"]), (self.fc2, p["w2"], p["b2"])):
          layer.weight.copy_(torch.from_numpy(np.asarray(w).T.copy()))
          layer.bias.copy_(torch.from_numpy(np.asarray(b).copy()))

    def forward(self, x):  # NCHW [0, 1] -> NHWC flattened, as the JAX model
      z = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1) - 0.5
      return self.fc2(torch.relu(self.fc1(z)))

  return MLP().eval()


def setup(argv, doc: str, **extra: str):
  """The shared start of the torch cross-check benchmarks: their flags (``--n --eps --steps --queries`` and
  ``extra`` string flags with their defaults), the MLP trained in JAX and the first n shipped test images.

  Returns:
    ``(args, eps, params, f, x, y)``: the parsed flags, eps as a float, the MLP's parameters and logits
    function, the images ``(n, 32, 32, 3)`` in [0, 1] and their labels.
  """
  parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--n", type=int, default=200)
  parser.add_argument("--eps", default="2/255")
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--queries", type=int, default=1000)
  for name, default in extra.items():
    parser.add_argument(f"--{name}", default=default)
  args = parser.parse_args(argv)
  p, f = train_mlp()
  xt, yt = iss_jax.training.load_dataset("cifar10_sample", "test")
  x = jnp.asarray(xt[: args.n], jnp.float32) / 255.0
  return args, float(Fraction(args.eps)), p, f, x, jnp.asarray(yt[: args.n])


def main(argv=None):
  args, eps, p, f, x, y = setup(argv, __doc__, attacks="apgd-ce,apgd-dlr,apgd-t,square")
  print(f"device: {R.device_description()}; torch on CPU")
  print(f"model: MLP 3072-64-10 trained in JAX; n = {args.n} CIFAR-10 sample test images; eps = {args.eps}; "
        f"APGD {args.steps} steps, 1 restart (APGD-T: 9 targets); Square {args.queries} queries "
        "(p schedule rescaled)")
  right = lambda z: np.asarray(jnp.argmax(f(z), -1) == y)
  print(f"clean accuracy (JAX): {right(x).mean():.1%}")
  ours = {
      "apgd-ce": lambda x, y, k: R.apgd(f, x, y, eps=eps, key=k, steps=args.steps, loss="ce"),
      "apgd-dlr": lambda x, y, k: R.apgd(f, x, y, eps=eps, key=k, steps=args.steps, loss="dlr"),
      "apgd-t": lambda x, y, k: R.apgd(f, x, y, eps=eps, key=k, steps=args.steps, loss="dlr-targeted"),
      "square": lambda x, y, k: R.square(f, x, y, eps=eps, key=k, queries=args.queries),
  }
  try:
    import torch
    import torchattacks
  except ImportError as e:
    torch = None
    print(f"torch / torchattacks not importable ({e}); only our numbers follow")
  if torch is not None:
    torch.manual_seed(0)
    model = torch_mlp(p)
    xt_t = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    yt_t = torch.from_numpy(np.asarray(y).astype(np.int64))
    with torch.no_grad():
      diff = np.abs(model(xt_t).numpy() - np.asarray(f(x))).max()
    print(f"max |logits torch - logits jax| on the clean images: {diff:.2e}")
    theirs = {
        "apgd-ce": lambda: torchattacks.APGD(model, norm="Linf", eps=eps, steps=args.steps, loss="ce",
                                             seed=0),
        "apgd-dlr": lambda: torchattacks.APGD(model, norm="Linf", eps=eps, steps=args.steps, loss="dlr",
                                              seed=0),
        "apgd-t": lambda: torchattacks.APGDT(model, norm="Linf", eps=eps, steps=args.steps, n_classes=10,
                                             seed=0),
        "square": lambda: torchattacks.Square(model, norm="Linf", eps=eps, n_queries=args.queries, seed=0),
    }
  print("\n| attack | ours (JAX) robust acc | torchattacks robust acc | both fooled | only ours "
        "| only theirs | ours: 1st call / compiled (s) | torchattacks (s) |")
  print("|---|---|---|---|---|---|---|---|")
  for name in args.attacks.split(","):
    fn = jax.jit(ours[name])
    t0 = time.perf_counter()
    x_adv = fn(x, y, jax.random.key(0)).block_until_ready()
    t1 = time.perf_counter()
    fn(x, y, jax.random.key(1)).block_until_ready()
    t2 = time.perf_counter()
    assert float(jnp.abs(x_adv - x).max()) <= eps + 1e-6
    ok_ours = right(x_adv)
    cells = [name, f"{ok_ours.mean():.1%}"]
    if torch is not None:
      t3 = time.perf_counter()
      adv_t = theirs[name]()(xt_t, yt_t)
      t4 = time.perf_counter()
      x_adv_t = jnp.asarray(adv_t.detach().numpy().transpose(0, 2, 3, 1))
      assert float(jnp.abs(x_adv_t - x).max()) <= eps + 1e-5
      ok_t = right(x_adv_t)
      cells += [f"{ok_t.mean():.1%}", str(int(np.sum(~ok_ours & ~ok_t))), str(int(np.sum(~ok_ours & ok_t))),
                str(int(np.sum(ok_ours & ~ok_t)))]
    else:
      cells += ["-", "-", "-", "-"]
    cells += [f"{t1 - t0:.1f} / {t2 - t1:.1f}", f"{t4 - t3:.1f}" if torch is not None else "-"]
    print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  main()
