"""Smoothing large images: the CPU kernel and the XLA path at 84x84 (grey, colour) and 224x224 (colour).

  python -m benchmarks.bench_large_images                          # about 5 min on the 2-core CPU here
  python -m benchmarks.bench_large_images --n=2 --n224=1 --xla_n=1 --numpy_steps=20 --table6_steps=300

Real photographs: Kodak24 (colour) and Set12 (greyscale) from ``../shared/data``, each resized whole to
the size (Lanczos), as miniImageNet (84x84) and ImageNet (224x224) images are; without them, the CIFAR-10
sample shipped with the package upsampled (a printed note says so: smoother images, more steps).

Prints, with the device named and its load average (the machine may be shared):

* per case, images/s to the target sparsity of ``iss_jax.smooth`` (the fused C++ kernel on CPU) and of
  ``implementation="xla"`` (the GPU/TPU path) on the same images, in wall time and in CPU seconds per
  image (what a run costs when other work shares the cores; the ratios use both), the LBI steps (median,
  p90, max), the share of images capped at the default cap and the share the 32x32 cap (20,000) would
  have capped, the state per image in flight and the output per image (bytes, from the code), and the
  ratio to the NumPy/SciPy loop of ``iss_jax.smooth_reference`` timed in the same run (its CPU time per
  step on one image, times the steps of the batch: the full loop takes minutes per image at 224x224);
* the main paper's Table 6 (15,000 iterations on one 84x84 greyscale image: 4.87 s on a V100 + Xeon Gold
  6240) beside ours: one image alone, per image in a batch, and the NumPy loop;
* how the steps to the target grow with the image size (32, 84, 224) on the same photographs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import iss_jax
from benchmarks.common import ROOT, peak_rss_gib
from iss_jax.robustness import device_description

DATA = os.path.join(ROOT, "..", "shared", "data")
# Main paper, Table 6: 15,000 iterations on one 84x84 greyscale image (miniImageNet), graph projection.
PAPER_TABLE6_S = 4.87
PAPER_TABLE6_DEVICE = "NVIDIA Tesla V100 + Intel Xeon Gold 6240"
SMALL_CAP = iss_jax.DEFAULT_MAXITER  # the cap of 32x32 images, formerly every image's


def real_images(size: int, grey: bool, n: int) -> tuple[np.ndarray, str]:
  """``n`` real images ``(n, size, size, C)`` float32 in [0, 1] and a description of where they come from.

  Set12 (grey) or Kodak24 (colour) resized whole to ``size``; without them, the shipped CIFAR-10 test
  sample resized (upsampled) to ``size``.
  """
  from PIL import Image

  files = sorted(glob.glob(os.path.join(DATA, "Set12" if grey else "Kodak24", "*.png")))
  if files:
    pictures = [Image.open(f) for f in files]
    source = f"{'Set12' if grey else 'Kodak24'} resized to {size}x{size}"
  else:
    x, _ = iss_jax.training.load_dataset("cifar10_sample", "test")
    pictures = [Image.fromarray(a) for a in x[:n]]
    source = f"NOTE: ../shared/data missing; shipped CIFAR-10 sample upsampled to {size}x{size}"
  pictures = (pictures * (n // len(pictures) + 1))[:n]
  mode = "L" if grey else "RGB"
  out = [np.asarray(p.convert(mode).resize((size, size), Image.LANCZOS), np.float32) / 255.0
         for p in pictures]
  out = np.stack(out)
  return (out[..., None] if grey else out), source


def _compiled(fn, *args):
  return jax.jit(fn).lower(*args).compile()


def _timed(fn, *args):
  """``(result, wall seconds, CPU seconds of this process, all threads)``. CPU time is what a run costs
  when other work shares the cores (wall time then grows with the load, CPU time hardly)."""
  t0, c0 = time.perf_counter(), time.process_time()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0, time.process_time() - c0


def state_bytes(shape: tuple[int, int, int], itemsize: int = 4) -> dict:
  """Bytes per image from the code: the kernel's workspace per image in flight (x, b, z, the step's
  dz as 2 planes each, 3 per-pixel buffers), the XLA scheduler's slot (10 image-sized arrays, its memory
  model) and the output of one target (the image; the XLA path also holds the support, 2 bools a pixel)."""
  h, w, c = shape
  return {"kernel_in_flight": (6 * h * w * c + 3 * h * w) * itemsize,
          "xla_slot": 10 * h * w * c * itemsize,
          "output_per_target": h * w * c * itemsize}


def numpy_cpu_s_per_step(img: np.ndarray, steps: int, step_factor: float) -> float:
  """CPU seconds per step of the NumPy/SciPy loop (``iss_jax.smooth_reference``, one thread) on one image:
  a run of ``steps`` steps toward an unreachable target less a run of ``steps // 10`` (which removes the
  set-up and the projection at the end), per step."""
  h, w = img.shape[:2]
  hnorm = float(iss_jax.hessian_norm(h, w))
  short = max(steps // 10, 1)
  times = []
  for k in (1, short, steps):  # the first run pays the one-off costs (imports, caches)
    c0 = time.process_time()
    iss_jax.smooth_reference(img.astype(np.float64), 0.999, hnorm=hnorm, step_factor=step_factor, maxiter=k)
    times.append(time.process_time() - c0)
  return max(times[2] - times[1], 1e-9) / max(steps - short, 1)


def run_case(name, x, sparsity, xla_n, numpy_steps) -> dict:
  """Kernel and XLA images/s, steps, capped shares, bytes and the NumPy ratio for one batch ``x``."""
  xj = jnp.asarray(x)
  s = jnp.float32(sparsity)
  kernel = _compiled(lambda v, t: iss_jax.smooth(v, t, return_info=True), xj, s)
  (_, info), kernel_s, kernel_cpu = _timed(kernel, xj, s)
  steps = np.asarray(info.steps)
  row = {"case": name, "images": len(x), "shape": list(x.shape[1:]), "kernel_images_per_s": len(x) / kernel_s,
         "kernel_s": kernel_s, "kernel_cpu_s_per_image": kernel_cpu / len(x),
         "kernel_cpu_us_per_step": 1e6 * kernel_cpu / steps.sum(), "steps_median": float(np.median(steps)),
         "steps_p90": float(np.percentile(steps, 90)), "steps_max": int(steps.max()),
         "default_maxiter": _cap(*x.shape[1:]), "capped_share": float(info.capped_share),
         "capped_share_at_20000": float(np.mean(steps > SMALL_CAP)), **state_bytes(x.shape[1:])}
  xla_rate = None
  if xla_n:
    xs = xj[:xla_n]
    xla = _compiled(lambda v, t: iss_jax.smooth(v, t, implementation="xla", return_info=True), xs, s)
    (_, xinfo), xla_s, xla_cpu = _timed(xla, xs, s)
    xla_rate = xla_n / xla_s
    row["xla_same_steps"] = bool(np.array_equal(np.asarray(xinfo.steps), steps[:xla_n]))
    # the kernel on exactly those images, for the ratios (wall time and CPU time)
    _, sub_s, sub_cpu = _timed(_compiled(lambda v, t: iss_jax.smooth(v, t), xs, s), xs, s)
    row["kernel_vs_xla"] = xla_s / sub_s
    row["kernel_vs_xla_cpu"] = xla_cpu / sub_cpu
    row["xla_cpu_s_per_image"] = xla_cpu / xla_n
  row["xla_images"] = xla_n
  row["xla_images_per_s"] = xla_rate
  sps = numpy_cpu_s_per_step(x[0], numpy_steps, iss_jax.DEFAULT_STEP_FACTOR)
  row["numpy_cpu_s_per_step"] = sps
  row["numpy_cpu_s_per_image_est"] = sps * float(steps.mean())
  row["kernel_vs_numpy_cpu"] = sps * float(steps.sum()) / kernel_cpu  # same work, CPU time each
  return row


def table6(x84_grey: np.ndarray, steps: int) -> dict:
  """``steps`` iterations on one 84x84 greyscale image (the paper's Table 6), alone and in a batch."""
  fn = lambda v, m: iss_jax.smooth(v, 0.999, maxiter=m, return_info=True)
  fn_xla = lambda v, m: iss_jax.smooth(v, 0.999, maxiter=m, implementation="xla", return_info=True)
  one, batch = jnp.asarray(x84_grey[:1]), jnp.asarray(x84_grey)
  m = jnp.int32(steps)
  out = {"steps": steps}
  for key, f, xs in (("kernel_one_image", fn, one), ("xla_one_image", fn_xla, one),
                     ("kernel_batch", fn, batch)):
    (_, info), t, cpu = _timed(_compiled(f, xs, m), xs, m)
    assert int(np.min(np.asarray(info.steps))) == steps, "an image reached 0.999 before the step count"
    out[key + "_s"], out[key + "_cpu_s"] = t / xs.shape[0], cpu / xs.shape[0]
  out["batch_images"] = int(batch.shape[0])
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--n", type=int, default=8, help="images per 84x84 case and per 32x32 growth row")
  parser.add_argument("--n224", type=int, default=4, help="images in the 224x224 cases")
  parser.add_argument("--xla_n", type=int, default=2, help="images timed with implementation='xla' per case")
  parser.add_argument("--sparsity", type=float, default=0.6)
  parser.add_argument("--numpy_steps", type=int, default=200, help="steps timed for the NumPy loop")
  parser.add_argument("--table6_steps", type=int, default=15_000, help="iterations of the Table 6 row")
  parser.add_argument("--sizes", default="32,84,224",
                      help="sizes of the growth table (84 always runs); without 224, no 224x224 case")
  parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
  args = parser.parse_args(argv)
  sizes = sorted({int(v) for v in args.sizes.split(",")} | {84})

  load0 = os.getloadavg()[0]
  print(f"device: {device_description()}; load average {load0:.1f} at start")
  rss0 = peak_rss_gib()
  iss_jax.smooth(jnp.ones((1, 4, 4, 1)) * jnp.arange(4.0)[None, None, :, None] / 4, 0.5)  # kernel built
  kernel = iss_jax.cpu_kernel_available() and jax.default_backend() == "cpu"
  print(f"iss_jax.smooth runs the {'fused CPU kernel' if kernel else 'XLA scheduler'}; sparsity "
        f"{args.sparsity}; default step caps (colour / grey): " + ", ".join(
            f"{s}x{s} {_cap(s, s, 3)} / {_cap(s, s, 1)}" for s in sizes))

  cases = [("84x84 grey", 84, True, args.n), ("84x84 colour", 84, False, args.n),
           ("224x224 colour", 224, False, args.n224)][:3 if 224 in sizes else 2]
  rows, sources, batches = [], {}, {}
  for name, size, grey, n in cases:
    x, sources[name] = real_images(size, grey, n)
    batches[name] = x
    rows.append(run_case(name, x, args.sparsity, min(args.xla_n, n), args.numpy_steps))
    print(f"  {name}: done ({sources[name]})", flush=True)

  # Growth of the steps with the size, on the same photographs (and real CIFAR-10 at 32x32).
  growth = {}
  f = jax.jit(lambda v, t: iss_jax.smooth(v, t, return_info=True))
  for grey in (False, True):
    for size in sizes:
      name = f"{size}x{size} {'grey' if grey else 'colour'}"
      x = batches.get(name)
      if x is None:
        x, sources[name] = real_images(size, grey, args.n224 if size == 224 else args.n)
      steps = np.asarray(f(jnp.asarray(x), args.sparsity)[1].steps)
      growth[name] = {"images": len(x), "median": float(np.median(steps)), "max": int(steps.max())}
  if 32 in sizes:  # real CIFAR-10 at its native size, beside the resized photographs
    cifar, _ = iss_jax.training.load_dataset("cifar10_sample", "test")
    steps = np.asarray(f(jnp.asarray(cifar[:4 * args.n], jnp.float32) / 255.0, args.sparsity)[1].steps)
    growth["32x32 colour, CIFAR-10"] = {"images": 4 * args.n, "median": float(np.median(steps)),
                                        "max": int(steps.max())}

  t6 = table6(batches["84x84 grey"], args.table6_steps)
  t6["numpy_cpu_s"] = rows[0]["numpy_cpu_s_per_step"] * args.table6_steps
  load1 = os.getloadavg()[0]

  print("\n| case | images | kernel img/s (wall) | kernel CPU s/img | XLA img/s (wall) | XLA CPU s/img | "
        "kernel/XLA wall, CPU | kernel/NumPy (CPU) | steps median | p90 | max | default cap | capped at it | "
        "capped at 20,000 | state/image in flight (kernel, XLA slot) | output/image |")
  print("|" + "---|" * 16)
  for r in rows:
    xla = ("- | -" if r["xla_images_per_s"] is None else
           f"{r['xla_images_per_s']:.3f} ({r['xla_images']} img) | {r['xla_cpu_s_per_image']:.1f}")
    ratio = ("-" if r.get("kernel_vs_xla") is None else
             f"{r['kernel_vs_xla']:.1f}x, {r['kernel_vs_xla_cpu']:.1f}x")
    print(f"| {r['case']} | {r['images']} | {r['kernel_images_per_s']:.3f} | "
          f"{r['kernel_cpu_s_per_image']:.1f} | {xla} | {ratio} | {r['kernel_vs_numpy_cpu']:.0f}x | "
          f"{r['steps_median']:.0f} | {r['steps_p90']:.0f} | {r['steps_max']} | {r['default_maxiter']:,} | "
          f"{100 * r['capped_share']:.0f}% | {100 * r['capped_share_at_20000']:.0f}% | "
          f"{_kib(r['kernel_in_flight'])}, {_kib(r['xla_slot'])} | {_kib(r['output_per_target'])} |")
  print("\nNumPy/SciPy loop (iss_jax.smooth_reference, float64, one thread): " + ", ".join(
      f"{r['case']} {1e3 * r['numpy_cpu_s_per_step']:.2f} ms/step" for r in rows)
        + f" (CPU time of {args.numpy_steps} steps on one image; times the batch's steps for the ratio); "
        "the kernel: " + ", ".join(f"{r['kernel_cpu_us_per_step']:.0f} us" for r in rows) + " CPU per step")
  print(f"\nTable 6 ({args.table6_steps:,} iterations, one 84x84 greyscale image), wall s (CPU s):")
  print(f"  paper (graph projection), {PAPER_TABLE6_DEVICE}: {PAPER_TABLE6_S:.2f} s")
  print(f"  ours, CPU kernel, one image alone:            {t6['kernel_one_image_s']:.2f} s "
        f"({t6['kernel_one_image_cpu_s']:.2f})")
  print(f"  ours, CPU kernel, per image in a batch of {t6['batch_images']}:   {t6['kernel_batch_s']:.2f} s "
        f"({t6['kernel_batch_cpu_s']:.2f})")
  print(f"  ours, XLA path (implementation='xla'), alone: {t6['xla_one_image_s']:.2f} s "
        f"({t6['xla_one_image_cpu_s']:.2f})")
  print(f"  NumPy/SciPy loop:                             ({t6['numpy_cpu_s']:.1f}) from its CPU s/step")
  print(f"\nSteps to sparsity {args.sparsity:g} by size (same photographs resized):")
  print("| images | " + " | ".join(f"{s}x{s} median / max" for s in sizes) + " |")
  print("|---|" + "---|" * len(sizes))
  for kind in ("colour", "grey"):
    cells = [f"{growth[f'{s}x{s} {kind}']['median']:.0f} / {growth[f'{s}x{s} {kind}']['max']}"
             for s in sizes]
    label = "CIFAR-10 sample upsampled" if sources[f"84x84 {kind}"].startswith("NOTE") else (
        "Kodak24" if kind == "colour" else "Set12")
    print(f"| {label} ({kind}) | " + " | ".join(cells) + " |")
  if 32 in sizes:
    c = growth["32x32 colour, CIFAR-10"]
    print(f"| CIFAR-10 test ({c['images']}, native 32x32) | {c['median']:.0f} / {c['max']} |"
          + " - |" * (len(sizes) - 1))
  print(f"\npeak memory: {peak_rss_gib():.2f} GiB process RSS (+{peak_rss_gib() - rss0:.2f} GiB during "
        f"the run); load average {load1:.1f} at the end (2 cores: above 2, other work shared them)")
  for name, src in sources.items():
    if src.startswith("NOTE"):
      print(f"{name}: {src}")
  figures = {"device": device_description(), "load_average": [load0, load1], "sparsity": args.sparsity,
             "cases": rows, "table6": {**t6, "paper_s": PAPER_TABLE6_S, "paper_device": PAPER_TABLE6_DEVICE},
             "growth": growth, "sources": sources}
  if args.json:
    with open(args.json, "w") as fh:
      json.dump(figures, fh, indent=2)
  return figures


def _cap(height: int, width: int, channels: int) -> int:
  """The default step cap of ``iss_jax.smooth`` (``maxiter=None``) for an ``H x W x C`` image."""
  return iss_jax.default_maxiter(height, width, channels)


def _kib(b: int) -> str:
  return f"{b / 2**10:.0f} KiB" if b < 2**20 else f"{b / 2**20:.1f} MiB"


if __name__ == "__main__":
  main()
