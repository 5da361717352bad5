"""Train-step throughput of the CIFAR ResNet-18 (11,173,962 params): iss_jax (JAX/Flax) vs PyTorch CPU.

Both sides run the same model (3x3 stem, no max-pool, basic blocks (2, 2, 2, 2)), the same batch of
32x32x3 images, cross-entropy and SGD with momentum 0.9 and weight decay 5e-4. The JAX step is the
library's ``make_train_step`` (jitted once, ``donate_argnums=0``) with the augmentation switched off
(``crop_padding=0, flip=False``) so that both sides time the model step alone.

Each framework runs in its own worker process, and so does each JAX variant: ``JAX fast-cpu`` (after the
opt-in ``iss_jax.training.use_fast_cpu_training()``: XLA:CPU convolutions through Eigen, not YNNPACK, and
a transpose-light kernel gradient) and the default JAX with any XLA flags given with ``--variant``. Every
worker is compiled and warmed up before any timing; then the workers take turns, ``--steps`` timed steps
each per round, for ``--rounds`` rounds. On a shared machine the load drifts, so the ratios are taken
within each round (the workers of one round ran seconds apart) and their median is reported, beside the
median images/s of every worker and the load average before and after.

PyTorch runs under ``--torch_python`` (default ``$ISS_BENCH_TORCH_PYTHON``, else this interpreter), so
it can live in a separate virtual environment; without it only the JAX figures are reported.

Usage:
  python -m benchmarks.bench_train_step [--batch_size=128] [--steps=3] [--rounds=3] [--warmup=2] \\
      [--torch_python=/path/to/venv/bin/python] [--variant="NAME=--xla_flag=value ..."] [--out=results/bench]
Writes ``<out>/bench_train_step.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TAG = "@@bench "  # prefix of the protocol lines a worker writes to stdout


# --------------------------------------------------------------------------------------------------
# Workers: build a step, say "ready", then time `run K` requests until "quit".


def _serve(step, ready: dict) -> None:
  t0 = time.perf_counter()
  step()  # first call: compiles (JAX) or allocates (PyTorch)
  for _ in range(ready.pop("warmup") - 1):
    step()
  ready["first_calls_s"] = time.perf_counter() - t0
  print(_TAG + json.dumps(ready), flush=True)
  for line in sys.stdin:
    if not line.startswith("run "):
      break
    times = []
    for _ in range(int(line.split()[1])):
      t0 = time.perf_counter()
      step()
      times.append(time.perf_counter() - t0)
    print(_TAG + json.dumps(times), flush=True)


def _jax_worker(batch_size: int, warmup: int, fast_cpu: bool) -> None:
  sys.path.insert(0, ROOT)
  import iss_jax

  if fast_cpu:
    iss_jax.training.use_fast_cpu_training()
  import jax
  import jax.numpy as jnp
  import optax

  from iss_jax.training._train import make_train_step
  from train.configs import vanilla

  config = vanilla.get_config("paper")
  config.crop_padding, config.flip = 0, False
  model = iss_jax.training.resnet18()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))
  state = iss_jax.training.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                             batch_stats=variables["batch_stats"])
  train_step = jax.jit(make_train_step(config, model, tx), donate_argnums=0)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8))
  y = jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)
  key = jax.random.key(1)
  box = [state]

  def step():
    box[0], metrics = train_step(box[0], x, y, key)
    jax.block_until_ready(metrics)

  _serve(step, {"framework": f"JAX {jax.__version__} (XLA CPU)", "warmup": warmup,
                "params": iss_jax.training.count_params(variables["params"]),
                "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "device": iss_jax.robustness.device_description()})


def _torch_worker(batch_size: int, warmup: int, mean, std) -> None:
  import torch
  from torch import nn

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
  model = ResNet18().train()
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  rng = np.random.default_rng(0)
  x_u8 = torch.from_numpy(rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8))
  y = torch.from_numpy(rng.integers(0, 10, batch_size))
  mean = torch.tensor(mean).view(1, 3, 1, 1)
  std = torch.tensor(std).view(1, 3, 1, 1)

  def step():
    x = (x_u8.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())

  _serve(step, {"framework": f"PyTorch {torch.__version__} (CPU, {torch.get_num_threads()} threads)",
                "warmup": warmup, "params": sum(p.numel() for p in model.parameters())})


# --------------------------------------------------------------------------------------------------
# The parent: start the workers one at a time, then let them take turns.


class _Worker:
  def __init__(self, name: str, argv: list[str], env: dict):
    self.name, self.times = name, []
    self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                 cwd=ROOT)
    self.info = self._reply()

  def _reply(self):
    for line in self.proc.stdout:
      if line.startswith(_TAG):
        return json.loads(line[len(_TAG):])
    raise RuntimeError(f"benchmark worker {self.name!r} ended without a result (exit {self.proc.wait()}).")

  def run(self, steps: int) -> list[float]:
    self.proc.stdin.write(f"run {steps}\n")
    self.proc.stdin.flush()
    times = self._reply()
    self.times.append(times)
    return times

  def close(self):
    if self.proc.poll() is None:
      self.proc.stdin.write("quit\n")
      self.proc.stdin.close()
      self.proc.wait()


def _has_torch(python: str) -> bool:
  return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3, help="timed steps per worker per round")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--warmup", type=int, default=2,
                      help="untimed calls per worker, the compiling one included")
  parser.add_argument("--torch_python", default=os.environ.get("ISS_BENCH_TORCH_PYTHON", sys.executable),
                      help="a Python with torch installed (default $ISS_BENCH_TORCH_PYTHON, else this one)")
  parser.add_argument("--variant", action="append", default=[], metavar="NAME=XLA_FLAGS",
                      help="another JAX worker whose XLA_FLAGS get these flags appended (repeatable)")
  parser.add_argument("--out", default="results/bench")
  parser.add_argument("--worker", choices=("jax", "jax-fast-cpu", "torch"), help=argparse.SUPPRESS)
  parser.add_argument("--norm", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker in ("jax", "jax-fast-cpu"):
    return _jax_worker(args.batch_size, args.warmup, fast_cpu=args.worker == "jax-fast-cpu")
  if args.worker == "torch":
    return _torch_worker(args.batch_size, args.warmup, *json.loads(args.norm))

  import iss_jax
  from iss_jax.training._models import CIFAR10_MEAN, CIFAR10_STD

  variants = {"JAX": ("jax", ""), "JAX fast-cpu": ("jax-fast-cpu", "")}  # name: (worker, XLA flags)
  for v in args.variant:
    name, sep, flags = v.partition("=")
    if not sep or not name or f"JAX {name}" in variants:
      parser.error(f"--variant takes NAME=XLA_FLAGS with a new NAME; got {v!r}.")
    variants[f"JAX {name}"] = ("jax", flags)
  common = ["--batch_size", str(args.batch_size), "--warmup", str(args.warmup)]
  load_before = os.getloadavg()
  workers = []
  try:
    for name, (kind, flags) in variants.items():
      env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip())
      argv = [sys.executable, os.path.abspath(__file__), f"--worker={kind}"] + common
      workers.append(_Worker(name, argv, env))
      print(f"  {name}: ready ({workers[-1].info['first_calls_s']:.1f} s to compile and warm up)", flush=True)
    if _has_torch(args.torch_python):
      norm = json.dumps([CIFAR10_MEAN, CIFAR10_STD])
      workers.append(_Worker("PyTorch", [args.torch_python, os.path.abspath(__file__), "--worker=torch",
                                         "--norm", norm] + common, dict(os.environ)))
      print("  PyTorch: ready", flush=True)
    else:
      print(f"  PyTorch not importable by {args.torch_python}: pass --torch_python=<a Python with torch>.")
    device = workers[0].info["device"]
    print(f"ResNet-18 (CIFAR stem) train step, batch {args.batch_size}, on {device}; "
          f"load average {load_before[0]:.1f}", flush=True)
    for r in range(args.rounds):
      line = [f"{w.name} {args.batch_size / np.median(w.run(args.steps)):.1f}" for w in workers]
      print(f"  round {r + 1}: " + ", ".join(line) + " images/s", flush=True)
  finally:
    for w in workers:
      w.close()
  load_after = os.getloadavg()
  assert all(w.info["params"] == 11_173_962 for w in workers), [w.info["params"] for w in workers]

  rows = []
  base = workers[-1] if workers[-1].name == "PyTorch" else workers[0]

  def ratio(w, b):  # the median over rounds of images/s over b's in the same round
    return float(np.median([np.median(tb) / np.median(tw) for tw, tb in zip(w.times, b.times, strict=True)]))

  for w in workers:
    all_times = [t for rnd in w.times for t in rnd]
    rows.append({"name": w.name, "framework": w.info["framework"], "xla_flags": w.info.get("xla_flags"),
                 "params": w.info["params"], "step_s_median": float(np.median(all_times)),
                 "images_per_s": args.batch_size / float(np.median(all_times)),
                 "ratio_vs_jax": ratio(w, workers[0]), f"ratio_vs_{base.name}": ratio(w, base),
                 "first_calls_s": w.info["first_calls_s"], "step_s_by_round": w.times})
  print(f"Median of {args.rounds} rounds x {args.steps} steps; ratio = images/s over those of JAX / "
        f"{base.name} in the same round (median of rounds); load average {load_before[0]:.1f} -> "
        f"{load_after[0]:.1f}")
  for r in rows:
    flags = f"  [{r['xla_flags']}]" if r["xla_flags"] else ""
    print(f"  {r['name']:15s} {r['images_per_s']:7.1f} images/s  {r['ratio_vs_jax']:.2f}x JAX  "
          f"{r[f'ratio_vs_{base.name}']:.2f}x {base.name}{flags}")
  result = {"batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds, "warmup": args.warmup,
            "device": device, "load_average_before": load_before, "load_average_after": load_after,
            "baseline": base.name, "rows": rows}
  header = f"| worker | framework | XLA flags | step (s) | images/s | vs JAX | vs {base.name} |"
  markdown = "\n".join(
      [f"ResNet-18 (CIFAR stem, {rows[0]['params']:,} params) train step, batch {args.batch_size}, {device}; "
       f"{args.rounds} interleaved rounds x {args.steps} steps, load average {load_before[0]:.1f} -> "
       f"{load_after[0]:.1f}.", "", header, "|---|---|---|---|---|---|---|"]
      + [f"| {r['name']} | {r['framework']} | {r['xla_flags'] or ''} | {r['step_s_median']:.3f} | "
         f"{r['images_per_s']:.1f} | {r['ratio_vs_jax']:.2f}x | {r[f'ratio_vs_{base.name}']:.2f}x |"
         for r in rows])
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(5, 0.6 + 0.5 * len(rows)))
  ax.barh([r["name"] for r in rows], [r["images_per_s"] for r in rows])
  ax.set_xlabel("images / s (higher is better)")
  ax.set_title(f"ResNet-18 train step, batch {args.batch_size}, {os.cpu_count()} CPU cores", fontsize=9)
  fig.tight_layout()
  paths = iss_jax.robustness.write_report(args.out, "bench_train_step", markdown, result, fig)
  print(f"wrote {paths}")


if __name__ == "__main__":
  main()
