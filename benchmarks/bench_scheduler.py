"""Throughput of the XLA scheduler (``implementation="xla"``) over a grid of shapes, on real CIFAR-10 images.

  python -m benchmarks.bench_scheduler                          # 128 images, slots x chunk grid
  python -m benchmarks.bench_scheduler --n=256 --slots=16,32,64 --chunks=16,32,64

Times the refilling scheduler plus the projection (``smooth``'s XLA path, without argument checks) for
each ``slots x chunk`` pair, with stragglers compacted as :func:`iss_jax._src.smooth._schedule_shape`
does on CPU (``slots``, ``slots // 8``, 1), and once without compaction at the default. Prints, with the
device named, images/s and the time relative to the shape ``_schedule_shape`` picks on this platform
(``< 1`` is faster). Every shape must stop every image at the same step; the script checks it.
Compilation is excluded (one warm-up call per shape on the same batch).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import cifar_test_images
from iss_jax._src import lbi
from iss_jax._src import smooth as smooth_mod
from iss_jax.robustness import device_description


def _ints(text: str) -> list[int]:
  return [int(v) for v in text.split(",") if v]


def _time(x4, targets, params, maxiter, shape, repeats):
  fn = jax.jit(lambda x, t, p, m: smooth_mod._targets_xla(x, t, p, m, shape=shape))
  out = jax.block_until_ready(fn(x4, targets, params, maxiter))  # compile + warm up
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x4, targets, params, maxiter))
    best = min(best, time.perf_counter() - t0)
  return best, np.asarray(out[1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--n", type=int, default=128, help="images per batch")
  parser.add_argument("--sparsity", type=float, default=0.6)
  parser.add_argument("--slots", type=_ints, default=[8, 16, 32, 64, 128])
  parser.add_argument("--chunks", type=_ints, default=[8, 16, 32, 64, 128])
  parser.add_argument("--repeats", type=int, default=1, help="timed calls per shape (best is kept)")
  parser.add_argument("--json", default=None, help="also write the table to this JSON file")
  args = parser.parse_args(argv)

  x, source = cifar_test_images(args.n)
  x4 = jnp.asarray(x)
  n, height, width, _ = x4.shape
  targets = jnp.full((n, 1), args.sparsity, jnp.float32)
  params = lbi.make_params(height, width)
  maxiter = jnp.int32(lbi.DEFAULT_MAXITER)
  platform = jax.devices()[0].platform
  default = smooth_mod._schedule_shape(n, x4.shape[1:], x4.dtype.itemsize, platform)
  print(f"device: {device_description()}")
  print(f"data: {source}; sparsity {args.sparsity}; batch of {n}; default shape on {platform}: "
        f"chunk {default.chunk}, widths {default.widths}")

  def compacted(slots):
    first = min(slots, n)
    return tuple(sorted({first, max(first // 8, 1), 1}, reverse=True))

  shapes = [default]
  shapes += [smooth_mod.ScheduleShape(chunk=c, widths=compacted(s)) for s in args.slots for c in args.chunks]
  shapes.append(smooth_mod.ScheduleShape(chunk=default.chunk, widths=default.widths[:1]))  # no compaction
  rows, seen, ref_steps = [], set(), None
  for shape in shapes:
    if shape in seen:
      continue
    seen.add(shape)
    seconds, steps = _time(x4, targets, params, maxiter, shape, args.repeats)
    if ref_steps is None:
      ref_steps = steps
    same = bool(np.array_equal(steps, ref_steps))
    rows.append(dict(slots=shape.widths[0], chunk=shape.chunk, widths=list(shape.widths), seconds=seconds,
                     images_per_s=n / seconds, same_steps=same))
    print(f"  measured widths {shape.widths} chunk {shape.chunk}: {seconds:.2f} s", flush=True)
    if not same:
      raise SystemExit(f"shape {shape} changed the stopping steps")
  base = rows[0]["seconds"]
  print(f"\nmean steps per image {float(np.mean(ref_steps)):.0f}, max {int(np.max(ref_steps))}")
  print("| slots | chunk | widths | images/s | time / default | same steps |")
  print("|---:|---:|---|---:|---:|:---:|")
  for r in rows:
    r["ratio"] = r["seconds"] / base
    tag = " (default)" if r is rows[0] else ""
    print(f"| {r['slots']} | {r['chunk']} | {tuple(r['widths'])}{tag} | {r['images_per_s']:.1f} | "
          f"{r['ratio']:.2f} | {'yes' if r['same_steps'] else 'NO'} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(device=device_description(), source=source, sparsity=args.sparsity, n=n, rows=rows), f,
                indent=1)


if __name__ == "__main__":
  main()
