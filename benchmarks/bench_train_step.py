"""Train-step throughput of the CIFAR ResNet-18 (11,173,962 params): iss_jax (JAX/Flax) vs PyTorch CPU.

Both sides run the same model (3x3 stem, no max-pool, basic blocks (2, 2, 2, 2)), the same batch of
32x32x3 images, cross-entropy and SGD with momentum 0.9 and weight decay 5e-4, in one process, one after
the other. The JAX step is the library's ``make_train_step`` (jitted once, ``donate_argnums=0``) with the
augmentation switched off (``crop_padding=0, flip=False``) so that both sides time the model step alone.
PyTorch is optional: without it only the JAX number is reported.

Usage:
  python -m benchmarks.bench_train_step [--batch_size=128] [--steps=5] [--warmup=2] [--out=results/bench]
Writes ``<out>/bench_train_step.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import iss_jax
from iss_jax.training._models import CIFAR10_MEAN, CIFAR10_STD
from iss_jax.training._train import make_train_step
from train.configs import vanilla


def bench_jax(batch_size: int, steps: int, warmup: int) -> dict:
  config = vanilla.get_config("paper")
  config.crop_padding, config.flip = 0, False
  model = iss_jax.training.resnet18()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  n_params = iss_jax.training.count_params(variables["params"])
  tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))
  state = iss_jax.training.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                    batch_stats=variables["batch_stats"])
  step = jax.jit(make_train_step(config, model, tx), donate_argnums=0)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8))
  y = jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)
  key = jax.random.key(1)
  t0 = time.perf_counter()
  state, m = step(state, x, y, key)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  for _ in range(max(warmup - 1, 0)):
    state, m = step(state, x, y, key)
  jax.block_until_ready(m)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = step(state, x, y, key)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  med = float(np.median(times))
  return {"framework": f"JAX {jax.__version__} (XLA CPU)", "params": n_params,
          "step_s_median": med, "images_per_s": batch_size / med, "first_call_s": compile_s,
          "step_s_all": times}


def bench_torch(batch_size: int, steps: int, warmup: int) -> dict | None:
  try:
    import torch
    from torch import nn
  except ImportError:
    return None

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      self.shortcut = nn.Sequential()
      if stride != 1 or cin != cout:
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
      out = torch.relu(self.bn1(self.conv1(x)))
      return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

  class ResNet18(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(64)
      layers, cin = [], 64
      for i, cout in enumerate((64, 128, 256, 512)):
        for j in range(2):
          layers.append(Block(cin, cout, 2 if i > 0 and j == 0 else 1))
          cin = cout
      self.layers = nn.Sequential(*layers)
      self.linear = nn.Linear(512, 10)

    def forward(self, x):
      out = self.layers(torch.relu(self.bn1(self.conv1(x))))
      return self.linear(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))

  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count() or 1)
  model = ResNet18()
  n_params = sum(p.numel() for p in model.parameters())
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  rng = np.random.default_rng(0)
  x_u8 = torch.from_numpy(rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8))
  y = torch.from_numpy(rng.integers(0, 10, batch_size))
  mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
  std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

  def step():
    x = (x_u8.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())

  model.train()
  for _ in range(warmup):
    step()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
  med = float(np.median(times))
  return {"framework": f"PyTorch {torch.__version__} (CPU, {torch.get_num_threads()} threads)",
          "params": n_params, "step_s_median": med, "images_per_s": batch_size / med,
          "step_s_all": times}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--out", default="results/bench")
  args = parser.parse_args()
  device = iss_jax.robustness.device_description()
  print(f"ResNet-18 (CIFAR stem) train step, batch {args.batch_size}, on {device}", flush=True)
  rows = [bench_jax(args.batch_size, args.steps, args.warmup)]
  print(f"  {rows[0]['framework']}: {rows[0]['images_per_s']:.1f} images/s", flush=True)
  torch_row = bench_torch(args.batch_size, args.steps, args.warmup)
  if torch_row is None:
    print("  PyTorch not installed: `pip install torch==2.13.0` for the comparison.")
  else:
    rows.append(torch_row)
    print(f"  {torch_row['framework']}: {torch_row['images_per_s']:.1f} images/s", flush=True)
  assert all(r["params"] == 11_173_962 for r in rows), [r["params"] for r in rows]
  result = {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "device": device,
            "load_average": os.getloadavg(), "rows": rows}
  markdown = "\n".join(
      [f"ResNet-18 (CIFAR stem, {rows[0]['params']:,} params) train step, batch {args.batch_size}, "
       f"{device}; median of {args.steps} steps.", "", "| framework | step (s) | images/s |",
       "|---|---|---|"] + [f"| {r['framework']} | {r['step_s_median']:.3f} | {r['images_per_s']:.1f} |"
                          for r in rows])
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5, 2.5))
  ax.barh([r["framework"].split(" (")[0] for r in rows], [r["images_per_s"] for r in rows])
  ax.set_xlabel("images / s (higher is better)")
  ax.set_title(f"ResNet-18 train step, batch {args.batch_size}, {os.cpu_count()} CPU cores", fontsize=9)
  fig.tight_layout()
  paths = iss_jax.robustness.write_report(args.out, "bench_train_step", markdown, result, fig)
  print(f"wrote {paths}")


if __name__ == "__main__":
  main()
