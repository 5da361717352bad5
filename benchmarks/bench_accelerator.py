"""One device benchmark: smoothing, agreement with the CPU kernel, LBI step costs, projection, train step.

  python -m benchmarks.bench_accelerator              # under 6 minutes on one GPU
  python -m benchmarks.bench_accelerator --tiny       # every section at tiny size: a dry run, seconds on CPU
  python -m benchmarks.bench_accelerator --data_dir=../shared/data --budget_s=300 --out=accel.json

On a lent GPU (the ``device`` tool's ``run``; it starts in a copy of the working tree, with no package
registry and its own JAX), the exact command, well inside its 600 s limit and leaving device time for a
rerun:

  PYTHONPATH=$PWD timeout 400 python -m benchmarks.bench_accelerator --budget_s=300 \\
    --out=$OUT/bench_accelerator.json 2>&1 | tee $OUT/log.txt

(``run(command=<that line>, timeout_s=450)``; the JSON and log come back under ``$OUT`` even if cut short.)

Sections, in this order, each with its share of ``--budget_s`` (of the time left when it starts, so time a
section leaves unused passes on to the rest); a measurement that would not fit in its section's time is
skipped with one printed line:

* ``smooth``: images/s of ``iss_jax.smooth`` (sparsity 0.6, default step cap) on 1,000 and 10,000 real
  CIFAR-10 images for every implementation the platform runs: the XLA scheduler everywhere, the Pallas
  kernel on GPU/TPU, the fused CPU kernel on CPU (Pallas runs in interpret mode there: a test path, checked
  for agreement, not timed). Compilation excluded. Ratios: each implementation against the XLA scheduler,
  10,000 images against 1,000.
* ``agreement``: stopping steps (``info.steps``) and images on the first 256 images against the CPU kernel
  (run here on a CPU host; on a GPU/TPU host on its CPU backend, when the kernel builds there), against
  the CPU kernel's steps shipped beside this file in ``bench_accelerator_reference.npz`` (computed on a
  CPU host, so the reference needs neither a C++ compiler nor CPU time on the device host; the kernel is
  built with ``-ffp-contract=off``, so its steps do not depend on the host), against the float64
  definition ``iss_jax.smooth_reference`` on a few images, and on GPU/TPU Pallas against XLA. A GPU may
  contract multiply-adds into FMAs and so move a stop by one step at an exact threshold: the counts and
  the largest step difference are reported, never required.
* ``lbi_step``: one LBI step of the scheduler (per-slot step size, frozen slots, slots last) at its widths
  for 10,000 images on this platform: the bytes one step accesses from XLA's cost analysis, per step and
  per image, against the 86,016 bytes a 32x32x3 float32 step must move (read x, b, z; write b, z); the
  bytes per step inside the compiled step loop with one step per iteration (z copied every step) and two
  (the scheduler's, no copy); the flops per step; and the time per step of a loop of steps.
  Ratios: bytes against that minimum, time per image-step against the
  widest width; the bandwidth the two imply.
* ``hlo``: the optimised-HLO check "no copy of z per step": the copies (``copy`` / ``copy-start``) of the
  z-shaped buffer ``(2, H, W, C, slots)`` inside the compiled step loop (the loop of ``lbi_step`` and the
  step loops of the whole ``smooth`` program of the ``smooth`` section), as counts.
* ``projection``: ``iss_jax.project`` alone on the supports of the smoothed images (edges between unequal
  pixels of the XLA scheduler's output); ratio: its share of the scheduler's time per image.
* ``train``: the ResNet-18 train step (``iss_jax.training.resnet18``, softmax cross-entropy, SGD with
  momentum 0.9 and weight decay 5e-4, no augmentation, as ``bench_train_step`` times it) at batch 128 and
  512, float32 and bfloat16 computation (float32 weights), device-resident (batches already on the device)
  and host-fed (a NumPy gather and a transfer per step, as a plain training loop does). Ratios: bf16
  against fp32, host-fed against device-resident, batch 512 against 128.

Runs from the repository on PYTHONPATH with the JAX already installed, on a machine with no package
registry: every section but ``train`` needs only jax and numpy; ``train`` needs ``iss_jax.training`` (flax,
optax, orbax-checkpoint, ml_collections) and is skipped with one line without it (the images then come
from the shipped sample by ``np.load``). The JSON at ``--out`` is rewritten atomically after every
measurement, so a run cut short keeps what it measured. ``--write_reference`` recomputes the shipped
CPU-kernel steps (on a CPU host) and exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import json
import os
import platform as platform_mod
import re
import sys
import time
import traceback
import zlib
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import iss_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "iss_jax", "training", "data", "cifar10_sample.npz")
REFERENCE = os.path.join(ROOT, "benchmarks", "bench_accelerator_reference.npz")
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "bench_accelerator.json")
SPARSITY = 0.6
REFERENCE_IMAGES = 256
MIN_STEP_BYTES = 86_016  # one 32x32x3 float32 LBI step: read x, b, z (12,288 values), write b, z (9,216)
# Shares of --budget_s, in the order the sections run: each section gets its share of the time left when
# it starts, relative to the shares of the sections still to run (so time one leaves passes on to the rest,
# and an overrun is taken from all of them).
SHARES = {"smooth": 0.36, "agreement": 0.12, "lbi_step": 0.10, "hlo": 0.03, "projection": 0.04, "train": 0.35}


@dataclasses.dataclass(frozen=True)
class Sizes:
  """The sizes of one run (``--tiny`` or full)."""

  n_small: int  # images of the first smoothing size
  n_large: int  # images of the second
  n_compare: int  # images of the agreement
  n_definition: int  # images run through the float64 definition
  n_pallas_cpu: int  # images of the Pallas kernel in interpret mode on CPU (agreement only)
  loop_steps: int  # LBI steps per timed loop
  model: str  # the model of the train section: "resnet18", or "resnet4" (one stage of width 8, for --tiny)
  batches: tuple[int, ...]
  train_seconds: float  # timed seconds per train-step figure (1 to 40 steps); 0: 2 steps
  runs: int  # timed runs of a smoothing call (the best is kept, while the budget allows)


FULL = Sizes(1000, 10000, REFERENCE_IMAGES, 4, 16, 512, "resnet18", (128, 512), 1.5, 2)
TINY = Sizes(8, 16, 8, 1, 8, 16, "resnet4", (8, 16), 0.0, 1)


def _jsonable(o):
  if isinstance(o, (np.integer, np.floating, np.bool_)):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)


class Report:
  """The JSON being written: one entry per section, rewritten atomically after every change."""

  def __init__(self, path: str, budget_s: float, tiny: bool, sections=tuple(SHARES)):
    self.path, self.budget_s, self.t0, self.names = path, budget_s, time.monotonic(), list(sections)
    self.data = {"benchmark": "bench_accelerator", "tiny": tiny, "budget_s": budget_s, "sparsity": SPARSITY,
                 "sections": {}}

  def elapsed(self) -> float:
    return time.monotonic() - self.t0

  def save(self) -> None:
    self.data["elapsed_s"] = round(self.elapsed(), 2)
    iss_jax.atomic_write(self.path, json.dumps(self.data, indent=1, default=_jsonable))

  def section(self, name: str) -> Section:
    """Starts section ``name``: the budget left is shared among it and the sections after it by share."""
    rest = sum(SHARES[k] for k in self.names[self.names.index(name):])
    left = max(self.budget_s - self.elapsed(), 0.0)
    print(f"\n== {name}", flush=True)
    return Section(self, name, time.monotonic() + left * SHARES[name] / rest)


class Section:
  """One section of the report: figures (speeds, ratios and shares: finite, positive unless a share is 0),
  rows (every measurement), skips, errors, and its deadline."""

  def __init__(self, report: Report, name: str, deadline: float):
    self.report, self.deadline = report, deadline
    self.t0, self.cpu0 = time.monotonic(), time.process_time()
    self.data = {"figures": {}, "rows": [], "skipped": [], "errors": [], "seconds": 0.0}
    report.data["sections"][name] = self.data
    report.save()

  def left(self) -> float:
    return self.deadline - time.monotonic()

  def fits(self, what: str, need_s: float) -> bool:
    """Whether ``what`` (about ``need_s`` seconds) fits in the section's budget; records a skip if not."""
    if self.left() >= need_s:
      return True
    self.skip(what, f"needs about {need_s:.0f} s, {max(self.left(), 0):.0f} s of the section's budget left")
    return False

  def skip(self, what: str, why: str) -> None:
    print(f"  skipped {what}: {why}", flush=True)
    self.data["skipped"].append({"what": what, "why": why})
    self.save()

  def attempt(self, what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None with the error recorded: one failure does not end the run."""
    try:
      return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - a benchmark goes on after one failed measurement
      print(f"  ERROR in {what}: {type(e).__name__}: {str(e)[:300]}", flush=True)
      self.data["errors"].append({"what": what, "error": f"{type(e).__name__}: {e}"[:2000],
                                  "trace": traceback.format_exc()[-3000:]})
      self.save()
      return None

  def row(self, **fields) -> dict:
    self.data["rows"].append(fields)
    self.save()
    return fields

  def figures(self, text: str, **values: float) -> None:
    """Headline figures, printed as one line ``text``."""
    self.data["figures"].update({k: float(v) for k, v in values.items()})
    print(f"  {text}", flush=True)
    self.save()

  def note(self, key: str, value) -> None:
    self.data[key] = value
    self.save()

  def save(self) -> None:
    self.data["seconds"] = round(time.monotonic() - self.t0, 2)
    self.data["cpu_seconds"] = round(time.process_time() - self.cpu0, 2)  # of this process, all threads
    self.report.save()

  def done(self) -> None:
    self.save()
    print(f"  ({self.data['seconds']:.1f} s, {self.data['cpu_seconds']:.1f} CPU s)", flush=True)


def _timed(fn, *args):
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0


def _compiled(fn, *args, **jit_kwargs):
  """``(jax.jit(fn).lower(*args).compile(), seconds)``."""
  t0 = time.perf_counter()
  compiled = jax.jit(fn, **jit_kwargs).lower(*args).compile()
  return compiled, time.perf_counter() - t0


def _best_of(compiled, args, section: Section, runs: int = 2):
  """Runs ``compiled(*args)`` once, then again while the budget allows: ``(output, best s, first s)``."""
  out, first = _timed(compiled, *args)
  best = first
  for _ in range(runs - 1):
    if section.left() < 1.5 * first:
      break
    out, s = _timed(compiled, *args)
    best = min(best, s)
  return out, best, first


def _rate(value: float) -> str:
  return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


# --------------------------------------------------------------------------------------------------
# Context: device, data, the implementations and the scheduler's shape.


@dataclasses.dataclass
class Context:
  sizes: Sizes
  platform: str
  x_u8: np.ndarray  # (n_large, 32, 32, 3) uint8 real images, tiled when the source holds fewer
  source: str
  implementations: tuple[str, ...]  # timed by `smooth`, in this order; "xla" (the baseline) among them
  chunk: int = 0
  widths: tuple[int, ...] = ()
  smoothed: dict = dataclasses.field(default_factory=dict)  # impl -> (steps, images) of the n_small run
  rates: dict = dataclasses.field(default_factory=dict)  # (impl, n) -> images/s
  smooth_hlo: str | None = None  # optimised HLO of the largest XLA smooth program compiled
  step_hlo: tuple[str, int] | None = None  # (HLO of the lbi_step loop at widths[0], widths[0])
  step_rsqrt: int = 0  # rsqrt ops of one compiled step (to count the steps an unrolled loop body holds)
  step_bytes: dict = dataclasses.field(default_factory=dict)  # width -> bytes accessed per step
  train_variables: dict | None = None  # the train section's initial variables (float32)

  def images(self, n: int) -> jax.Array:
    return jnp.asarray(self.x_u8[:n].astype(np.float32) / 255.0)


def load_images(n: int, data_dir: str | None) -> tuple[np.ndarray, str]:
  """Real CIFAR-10 images, uint8: the test split then the train split (official order), tiled to ``n``.

  ``cifar10_exact`` when ``data_dir`` holds ``cifar10_exact.npz``, else the sample shipped in the package;
  through ``iss_jax.training.load_dataset``, or ``np.load`` of the sample where that room cannot import.
  """
  exact = bool(data_dir) and os.path.exists(os.path.join(data_dir, "cifar10_exact.npz"))
  if data_dir and not exact:
    print(f"  {data_dir} holds no cifar10_exact.npz: the shipped sample is used")
  name = "cifar10_exact" if exact else "cifar10_sample"
  try:
    from iss_jax.training import load_dataset

    parts = [load_dataset(name, split, data_dir if exact else None)[0] for split in ("test", "train")]
  except ImportError as e:
    if exact:
      print(f"  iss_jax.training does not import ({e}): the shipped sample is used")
    name = "cifar10_sample"
    with np.load(SAMPLE) as d:
      parts = [d["x_test"], d["x_train"]]
  x = np.concatenate(parts)
  distinct = len(x)
  if n > len(x):
    x = np.concatenate([x] * (n // len(x) + 1))
  return np.ascontiguousarray(x[:n]), f"{name}: {distinct} distinct real CIFAR-10 images (test, then train)"


def scheduler_shape(n: int, platform: str) -> tuple[int, tuple[int, ...], str]:
  """``(chunk, widths, note)`` of the XLA scheduler for ``n`` CIFAR-10 images on ``platform``."""
  try:
    from iss_jax._src.smooth import _schedule_shape

    shape = _schedule_shape(n, (32, 32, 3), 4, platform)
    return shape.chunk, tuple(shape.widths), "iss_jax's scheduler shape"
  except (ImportError, AttributeError, TypeError) as e:  # the private model moved: a documented stand-in
    widths = (min(n, 32), max(min(n, 32) // 8, 1), 1) if platform == "cpu" else (min(n, 4096), 512, 256)
    return (32 if platform == "cpu" else 64), tuple(sorted(set(widths), reverse=True)), f"stand-in ({e})"


def section_environment(report: Report, ctx: Context) -> None:
  dev = jax.devices()[0]
  versions = {"python": platform_mod.python_version(), "jax": jax.__version__, "numpy": np.__version__,
              "iss_jax": iss_jax.__version__}
  for mod in ("jaxlib", "flax", "optax", "orbax.checkpoint", "ml_collections"):
    try:
      versions[mod] = __import__(mod, fromlist=["_"]).__version__
    except Exception as e:  # noqa: BLE001 - reported, not needed here
      versions[mod] = f"unavailable ({type(e).__name__})"
  env = {"device_kind": dev.device_kind, "platform": dev.platform, "device_count": jax.device_count(),
         "versions": versions, "cpu_count": os.cpu_count(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
         "data": ctx.source, "implementations": list(ctx.implementations), "scheduler_chunk": ctx.chunk,
         "scheduler_widths": list(ctx.widths)}
  report.data["device"] = f"{dev.device_kind} ({dev.platform})"
  report.data["environment"] = env
  report.save()
  print(f"device: {dev.device_kind} ({dev.platform}), {jax.device_count()} device(s); jax {jax.__version__}, "
        f"flax {versions['flax']}, optax {versions['optax']}; {os.cpu_count()} CPU cores")
  print(f"data: {ctx.source}; sparsity {SPARSITY}; implementations {', '.join(ctx.implementations)}; "
        f"XLA scheduler for {ctx.sizes.n_large} images: widths {ctx.widths}, chunk {ctx.chunk}")


# --------------------------------------------------------------------------------------------------
# Smoothing throughput.


def _smooth_fn(x, implementation):
  return iss_jax.smooth(x, SPARSITY, return_info=True, implementation=implementation)


def _measure_smooth(sec: Section, ctx: Context, impl: str, n: int) -> dict:
  x = ctx.images(n)
  compiled, compile_s = _compiled(functools.partial(_smooth_fn, implementation=impl), x)
  (out, info), best, first = _best_of(compiled, (x,), sec, runs=ctx.sizes.runs)
  steps = np.asarray(info.steps)
  rate = n / best
  ctx.rates[(impl, n)] = rate
  if n == ctx.sizes.n_small:
    ctx.smoothed[impl] = (steps, np.asarray(out))
  if impl == "xla":
    ctx.smooth_hlo = compiled.as_text()
  return sec.row(implementation=impl, n=n, images_per_s=rate, image_steps_per_s=float(steps.sum()) / best,
                 seconds=best, first_run_s=first, compile_s=compile_s, steps_mean=float(steps.mean()),
                 steps_max=int(steps.max()), capped=int(np.asarray(info.capped).sum()))


def section_smooth(report: Report, ctx: Context) -> None:
  sec = report.section("smooth")
  sizes = ctx.sizes
  if ctx.platform == "cpu":
    sec.skip("pallas", "Pallas runs in interpret mode on CPU (a test path): checked for agreement, not timed")
  first_need = 5.0 if sizes is TINY else 30.0
  for n in (sizes.n_small, sizes.n_large):
    for impl in ctx.implementations:
      small = ctx.rates.get((impl, sizes.n_small))
      if n == sizes.n_large and small is None:
        sec.skip(f"{impl} on {n} images", f"not measured on {sizes.n_small} images")
        continue
      compile_s = next((r["compile_s"] for r in sec.data["rows"] if r["implementation"] == impl), first_need)
      need = first_need if n == sizes.n_small else compile_s + 1.2 * n / small
      if not sec.fits(f"{impl} on {n} images", need):
        continue
      r = sec.attempt(f"{impl} on {n} images", _measure_smooth, sec, ctx, impl, n)
      if r is None:
        continue
      rate, values = r["images_per_s"], {f"{impl}_{n}_images_per_s": r["images_per_s"]}
      parts = [f"{impl:6s} {n:6,d} images: {_rate(rate)} images/s, {r['image_steps_per_s']:.3g} "
               f"image-steps/s (steps mean {r['steps_mean']:.0f}, max {r['steps_max']}, capped "
               f"{r['capped']}; compile {r['compile_s']:.1f} s)"]
      if n == sizes.n_large:
        values[f"{impl}_{n}_vs_{sizes.n_small}"] = rate / small
        parts.append(f"{rate / small:.2f}x its rate on {sizes.n_small:,d}")
      sec.figures("; ".join(parts), **values)
      _against_xla(sec, ctx, n)
  sec.done()


def _against_xla(sec: Section, ctx: Context, n: int) -> None:
  """The ratios to the XLA scheduler on ``n`` images not yet given (implementations measured before it)."""
  base = ctx.rates.get(("xla", n))
  for impl in ctx.implementations:
    key = f"{impl}_{n}_vs_xla"
    if base and impl != "xla" and (impl, n) in ctx.rates and key not in sec.data["figures"]:
      ratio = ctx.rates[(impl, n)] / base
      sec.figures(f"{impl:6s} {n:6,d} images: {ratio:.2f}x the XLA scheduler", **{key: ratio})


# --------------------------------------------------------------------------------------------------
# Agreement of the stopping steps.


def _images_crc(x_u8: np.ndarray) -> np.ndarray:
  return np.asarray([zlib.crc32(np.ascontiguousarray(img).tobytes()) for img in x_u8], np.uint32)


def _compare(sec: Section, impl: str, baseline: str, steps, images, ref_steps, ref_images=None) -> dict:
  m = min(len(steps), len(ref_steps))
  diff = np.abs(np.asarray(steps[:m], np.int64) - np.asarray(ref_steps[:m], np.int64))
  image_diff = None
  if images is not None and ref_images is not None:
    image_diff = float(np.max(np.abs(np.asarray(images[:m], np.float64) - np.asarray(ref_images[:m]))))
  row = sec.row(implementation=impl, baseline=baseline, images=m, same_steps=int((diff == 0).sum()),
                max_step_diff=int(diff.max()), max_abs_image_diff=image_diff)
  sec.data["figures"][f"{impl}_vs_{baseline}_same_step_share"] = row["same_steps"] / m
  image_text = "" if image_diff is None else f", largest image difference {image_diff:.2e}"
  print(f"  {impl:6s} vs {baseline:18s}: same stopping step on {row['same_steps']}/{m} images, largest step "
        f"difference {row['max_step_diff']}{image_text}", flush=True)
  return row


def _smooth_on(x_u8: np.ndarray, implementation: str, device=None):
  x = jnp.asarray(x_u8.astype(np.float32) / 255.0)
  if device is not None:
    x = jax.device_put(x, device)
  out, info = jax.jit(functools.partial(_smooth_fn, implementation=implementation))(x)
  return np.asarray(info.steps), np.asarray(out)


def _definition(x_u8: np.ndarray):
  hnorm = float(iss_jax.hessian_norm(32, 32))
  steps, images = [], []
  for img in x_u8:
    x = (img.astype(np.float32) / 255.0).astype(np.float64)  # the float32 input the others smooth
    out, k, _ = iss_jax.smooth_reference(x, SPARSITY, hnorm=hnorm,
                                         step_factor=iss_jax.DEFAULT_STEP_FACTOR,
                                         maxiter=iss_jax.DEFAULT_MAXITER)
    steps.append(k)
    images.append(out)
  return np.asarray(steps), np.asarray(images)


def load_reference(x_u8: np.ndarray) -> tuple[np.ndarray | None, str]:
  """The shipped CPU-kernel steps of the images of ``x_u8`` they were computed on (a prefix), or None."""
  if not os.path.exists(REFERENCE):
    return None, f"{os.path.basename(REFERENCE)} is missing"
  with np.load(REFERENCE) as d:
    if float(d["sparsity"]) != SPARSITY or int(d["maxiter"]) != iss_jax.DEFAULT_MAXITER or \
        float(d["step_factor"]) != float(iss_jax.DEFAULT_STEP_FACTOR):
      return None, "the shipped steps are for other parameters"
    crc, steps = d["crc32"], d["steps"]
  m = min(len(crc), len(x_u8))
  same = _images_crc(x_u8[:m]) == crc[:m]
  k = int(np.argmin(same)) if not same.all() else m
  if k == 0:
    return None, "the shipped steps are for other images"
  return steps[:k], f"{k} images matched by CRC-32"


def section_agreement(report: Report, ctx: Context) -> None:
  sec = report.section("agreement")
  sizes = ctx.sizes
  n = sizes.n_compare
  x_u8 = ctx.x_u8[:n]
  results = {}
  for impl in ctx.implementations:
    if impl in ctx.smoothed and len(ctx.smoothed[impl][0]) >= n:
      steps, images = ctx.smoothed[impl]
      results[impl] = (steps[:n], images[:n])
    elif sec.fits(f"{impl} on {n} images", 10.0 if sizes is TINY else 40.0):
      r = sec.attempt(f"{impl} on {n} images", _smooth_on, x_u8, impl)
      if r is not None:
        results[impl] = r
  if ctx.platform == "cpu":
    k = min(sizes.n_pallas_cpu, n)
    if sec.fits(f"pallas (interpret mode) on {k} images", 10.0):
      r = sec.attempt(f"pallas (interpret mode) on {k} images", _smooth_on, x_u8[:k], "pallas")
      if r is not None:
        results["pallas"] = r

  # The CPU kernel, live: the `cpu` implementation on a CPU host, the host's CPU backend elsewhere.
  kernel = results.get("cpu")
  if kernel is None and sec.fits(f"the CPU kernel (build and run) on the host's CPU on {n} images", 30.0):
    if iss_jax.cpu_kernel_available():  # builds it on first use (a C++ compiler, seconds), cached
      kernel = sec.attempt("the CPU kernel on the host's CPU", _smooth_on, x_u8, "cpu", jax.devices("cpu")[0])
    else:
      sec.skip("the live CPU kernel", "it does not build on this host (no C++ compiler?)")
  ref_steps, why = load_reference(x_u8)
  print(f"  shipped CPU-kernel steps: {why}")
  sec.note("shipped_reference", why)
  k = sizes.n_definition
  definition = None
  if sec.fits(f"the float64 definition on {k} images", 3.0 * k):
    definition = sec.attempt("the float64 definition", _definition, x_u8[:k])

  for impl, (steps, images) in results.items():
    if kernel is not None and impl != "cpu":
      _compare(sec, impl, "cpu_kernel", steps, images, *kernel)
    if ref_steps is not None:
      _compare(sec, impl, "cpu_kernel_shipped", steps, None, ref_steps)
    if definition is not None:
      _compare(sec, impl, "definition_float64", steps, images, *definition)
  if ctx.platform != "cpu" and "pallas" in results and "xla" in results:
    _compare(sec, "pallas", "xla", *results["pallas"], *results["xla"])
  sec.done()


# --------------------------------------------------------------------------------------------------
# One LBI step of the scheduler: bytes (cost analysis) and time, at the scheduler's widths.


def _scheduler_step(state, xs, params, target, maxiter):
  """One step as the scheduler runs it: slots last, per-slot step size, a slot at its target frozen."""
  frozen = (state.sparsity >= target) | (state.k >= maxiter)
  alpha = jnp.where(frozen, 0.0, params.alpha).astype(params.alpha.dtype)
  new = iss_jax.lbi_step(state, xs, params._replace(alpha=alpha))
  return new._replace(k=jnp.where(frozen, state.k, new.k))


def _step_loop(state, xs, params, target, maxiter, steps: int, unroll: int = 1):
  return lax.fori_loop(0, steps, lambda _, s: _scheduler_step(s, xs, params, target, maxiter), state,
                       unroll=unroll)


def scheduler_unroll() -> int:
  """LBI steps per iteration of the XLA scheduler's step loop (2 when iss_jax's private constant moved)."""
  try:
    from iss_jax._src.smooth import _UNROLL

    return int(_UNROLL)
  except (ImportError, AttributeError):
    return 2


def _slot_args(ctx: Context, width: int):
  """The scheduler's step arguments at ``width`` slots of real images."""
  xs = jnp.asarray(np.moveaxis(np.resize(ctx.x_u8, (width, 32, 32, 3)), 0, -1).astype(np.float32) / 255.0)
  params = iss_jax.lbi_params(32, 32)
  params = params._replace(alpha=jnp.full((width,), params.alpha, params.alpha.dtype))
  return (iss_jax.lbi_init(xs), xs, params, jnp.full((width,), SPARSITY, jnp.float32),
          jnp.int32(iss_jax.DEFAULT_MAXITER))


def _cost(compiled, key: str) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older JAX: one dict per computation
    cost = cost[0]
  return float(cost.get(key, 0.0))


def _bytes_accessed(compiled) -> float:
  return _cost(compiled, "bytes accessed")


def _measure_step(sec: Section, ctx: Context, width: int) -> dict:
  args = _slot_args(ctx, width)
  one, one_compile_s = _compiled(_scheduler_step, *args)
  step_bytes = _bytes_accessed(one)
  ctx.step_bytes[width] = step_bytes
  if not ctx.step_rsqrt:
    ctx.step_rsqrt = _count_op(one.as_text(), "rsqrt")
  k = ctx.sizes.loop_steps
  unroll = scheduler_unroll()
  loop, compile_s = _compiled(functools.partial(_step_loop, steps=k, unroll=unroll), *args)
  if ctx.step_hlo is None:
    ctx.step_hlo = (loop.as_text(), width)
  _, best, _ = _best_of(loop, args, sec)
  return sec.row(width=width, bytes_per_step=step_bytes, bytes_per_image=step_bytes / width,
                 flops_per_image=_cost(one, "flops") / width, steps=k, unroll=unroll,
                 us_per_step=1e6 * best / k, ns_per_image_step=1e9 * best / (k * width),
                 gb_per_s=step_bytes * k / best / 1e9, compile_s=one_compile_s + compile_s)


def loop_bytes_per_step(ctx: Context, width: int) -> dict:
  """Bytes per LBI step INSIDE the compiled step loop, from XLA's cost analysis, with one step per
  iteration (the scheduler before it ran two: z copied every step) and two (the scheduler's: no copy).

  The cost analysis counts a while loop's body once, whatever its trip count, plus the code around it:
  ``B(u) = outside + u s_u`` for ``u`` steps per iteration. Two and four steps per iteration cost the
  same per step (no copy), so ``s_2 = (B(4) - B(2)) / 2``, ``outside = 2 B(2) - B(4)`` and
  ``s_1 = B(1) - outside``.
  """
  args = _slot_args(ctx, width)
  b = {u: _bytes_accessed(_compiled(functools.partial(_step_loop, steps=8, unroll=u), *args)[0])
       for u in (1, 2, 4)}
  return {"width": width, "unroll1_bytes_per_image": (b[1] - 2 * b[2] + b[4]) / width,
          "unroll2_bytes_per_image": (b[4] - b[2]) / 2 / width}


def section_lbi_step(report: Report, ctx: Context) -> None:
  sec = report.section("lbi_step")
  widest = None
  for width in ctx.widths:
    if not sec.fits(f"the step at width {width}", 3.0 if ctx.sizes is TINY else 8.0):
      continue
    r = sec.attempt(f"the step at width {width}", _measure_step, sec, ctx, width)
    if r is None:
      continue
    widest = widest or r
    w = f"w{width}"
    sec.figures(f"width {width:5d}: {r['bytes_per_step'] / 1e6:.2f} MB accessed per step, "
                f"{r['bytes_per_image'] / 1e3:.1f} KB per image "
                f"({r['bytes_per_image'] / MIN_STEP_BYTES:.2f}x the {MIN_STEP_BYTES / 1e3:.1f} KB minimum)",
                **{f"{w}_bytes_per_step": r["bytes_per_step"], f"{w}_bytes_per_image": r["bytes_per_image"],
                   f"{w}_bytes_vs_minimum": r["bytes_per_image"] / MIN_STEP_BYTES})
    ratio = r["ns_per_image_step"] / widest["ns_per_image_step"]
    sec.figures(f"             {r['us_per_step']:.1f} us per step, {r['ns_per_image_step']:.1f} ns per "
                f"image-step ({ratio:.2f}x the time per image-step at width {widest['width']}), "
                f"{r['gb_per_s']:.1f} GB/s at the cost analysis' bytes",
                **{f"{w}_us_per_step": r["us_per_step"], f"{w}_ns_per_image_step": r["ns_per_image_step"],
                   f"{w}_vs_w{widest['width']}": ratio, f"{w}_gb_per_s": r["gb_per_s"]})
  if widest is not None and sec.fits("the step loop's bytes per step at 1, 2 and 4 steps per iteration",
                                     3.0 if ctx.sizes is TINY else 15.0):
    r = sec.attempt("the step loop's bytes per step", loop_bytes_per_step, ctx, widest["width"])
    if r is not None:
      sec.row(**r)
      one, two = r["unroll1_bytes_per_image"], r["unroll2_bytes_per_image"]
      sec.figures(f"in the step loop at width {r['width']}: {one / 1e3:.1f} KB per image-step with one step "
                  f"per iteration (z copied every step), {two / 1e3:.1f} KB with two (the scheduler's, no "
                  f"copy): {two / one:.2f}x; {widest['flops_per_image'] / 1e3:.1f} k flops per image-step "
                  "(cost analysis)", loop_unroll1_bytes_per_image=one, loop_unroll2_bytes_per_image=two,
                  loop_unroll2_vs_unroll1=two / one, flops_per_image_step=widest["flops_per_image"])
  sec.done()


# --------------------------------------------------------------------------------------------------
# The optimised HLO: copies of z in the step loop.

_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.+?)\s+([a-z][\w\-]*)\(")
_CALLEE = re.compile(r"\b(?:calls|body|condition|to_apply|true_computation|false_computation)=%?([\w.\-]+)")
_CALLEES = re.compile(r"\b(?:branch_computations|called_computations)=\{([^}]*)\}")
_SHAPE = re.compile(r"([a-z]\w*)\[([\d,]*)\]")


def _computations(hlo: str) -> dict[str, list[str]]:
  comps, current = {}, None
  for line in hlo.splitlines():
    if current is None:
      m = _HEADER.match(line)
      if m and not line.startswith((" ", "HloModule")):
        current = comps.setdefault(m.group(1), [])
    elif line.strip() == "}":
      current = None
    else:
      current.append(line)
  return comps


def _callees(line: str) -> list[str]:
  names = _CALLEE.findall(line)
  for group in _CALLEES.findall(line):
    names += [s.strip().lstrip("%") for s in group.split(",") if s.strip()]
  return names


def _reachable(comps: dict, name: str) -> set[str]:
  seen, todo = set(), [name]
  while todo:
    c = todo.pop()
    if c in seen or c not in comps:
      continue
    seen.add(c)
    for line in comps[c]:
      todo += _callees(line)
  return seen


def _ops(comps: dict, names) -> list[tuple[str, str]]:
  """``(opcode, result shape text)`` of every instruction of the computations ``names``."""
  out = []
  for c in names:
    for line in comps[c]:
      m = _INSTRUCTION.match(line)
      if m:
        out.append((m.group(2), m.group(1)))
  return out


def _count_op(hlo: str, opcode: str) -> int:
  comps = _computations(hlo)
  return sum(op == opcode for op, _ in _ops(comps, comps))


def step_loop_copies(hlo: str, z_dims: tuple[int, ...], step_rsqrt: int) -> list[dict]:
  """The copies in each step loop of an optimised HLO module.

  A step loop is the body of a ``while`` whose reachable computations hold an ``rsqrt`` (the group
  threshold of the LBI step) and no further ``while`` that does. For each: the copies (``copy`` /
  ``copy-start``) of a z-shaped buffer ``(2, H, W, C, S)`` (``z_dims`` is ``(2, H, W, C)``), all its
  copies by result shape, and the LBI steps the body holds (its ``rsqrt`` count over ``step_rsqrt``, those
  of one compiled step; 1 unless XLA unrolled the loop).
  """
  comps = _computations(hlo)
  bodies = {}
  for lines in comps.values():
    for line in lines:
      m = _INSTRUCTION.match(line)
      if m and m.group(2) == "while":
        body = re.search(r"\bbody=%?([\w.\-]+)", line)
        if body:
          bodies[body.group(1)] = _reachable(comps, body.group(1))
  has_step = {b: any(op == "rsqrt" for op, _ in _ops(comps, r)) for b, r in bodies.items()}
  loops = []
  for b, reach in bodies.items():
    inner = [o for o in bodies if o != b and o in reach and has_step[o]]
    if not has_step[b] or inner:
      continue
    ops = _ops(comps, reach)
    copies = Counter(shape for op, shape in ops if op in ("copy", "copy-start"))
    z = 0
    for shape, count in copies.items():
      m = _SHAPE.search(shape)
      dims = tuple(int(d) for d in m.group(2).split(",") if d) if m else ()
      if len(dims) == len(z_dims) + 1 and dims[:-1] == tuple(z_dims):
        z += count
    rsqrt = sum(op == "rsqrt" for op, _ in ops)
    loops.append({"body": b, "z_copies": z, "steps_in_body": rsqrt / step_rsqrt if step_rsqrt else None,
                  "copies_by_shape": dict(copies.most_common(8))})
  return loops


def section_hlo(report: Report, ctx: Context) -> None:
  sec = report.section("hlo")
  z_dims = (2, 32, 32, 3)
  programs = []
  if ctx.step_hlo is not None:
    programs.append((f"lbi_step loop at width {ctx.step_hlo[1]}", ctx.step_hlo[0]))
  else:
    sec.skip("the lbi_step loop", "not compiled (see the lbi_step section)")
  if ctx.smooth_hlo is not None:
    programs.append(("XLA smooth program", ctx.smooth_hlo))
  else:
    sec.skip("the XLA smooth program", "not compiled (see the smooth section)")
  for name, text in programs:
    loops = sec.attempt(f"parsing the HLO of the {name}", step_loop_copies, text, z_dims, ctx.step_rsqrt)
    if loops is None:
      continue
    sec.row(program=name, step_loops=loops, hlo_chars=len(text))
    if not loops:
      print(f"  {name}: no step loop found in the optimised HLO")
    for lp in loops:
      per_step = lp["z_copies"] / lp["steps_in_body"] if lp["steps_in_body"] else lp["z_copies"]
      others = ", ".join(f"{s} x{c}" for s, c in lp["copies_by_shape"].items()) or "none"
      print(f"  {name}, loop {lp['body']}: {lp['z_copies']} copies of z (2, 32, 32, 3, slots) per body "
            f"({per_step:g} per step); all copies there: {others}")
  sec.done()


# --------------------------------------------------------------------------------------------------
# The projection alone.


def _supports(images: np.ndarray) -> np.ndarray:
  """``(N, 2, H, W)`` bool: the edges between unequal pixels (any channel) of smoothed images."""
  n, h, w, _ = images.shape
  active = np.zeros((n, 2, h, w), bool)
  active[:, 0, :, :-1] = np.any(images[:, :, 1:] != images[:, :, :-1], axis=-1)
  active[:, 1, :-1, :] = np.any(images[:, 1:] != images[:, :-1], axis=-1)
  return active


def _measure_projection(sec: Section, ctx: Context, images: np.ndarray) -> dict:
  n = len(images)
  b, active = ctx.images(n), jnp.asarray(_supports(images))
  compiled, compile_s = _compiled(jax.vmap(iss_jax.project), b, active)
  _, best, _ = _best_of(compiled, (b, active), sec, runs=3)
  return sec.row(n=n, images_per_s=n / best, seconds=best, compile_s=compile_s,
                 active_share=float(np.asarray(active).mean()))


def section_projection(report: Report, ctx: Context) -> None:
  sec = report.section("projection")
  impl = "xla" if "xla" in ctx.smoothed else next(iter(ctx.smoothed), None)
  if impl is None:
    sec.skip("the projection", "no smoothed images (the smooth section measured none)")
    return
  images = ctx.smoothed[impl][1]
  if not sec.fits(f"the projection of {len(images)} images", 5.0):
    return
  r = sec.attempt("the projection", _measure_projection, sec, ctx, images)
  if r is None:
    return
  smooth_rate = ctx.rates[(impl, len(images))]
  share = smooth_rate / r["images_per_s"]
  sec.figures(f"project alone, {r['n']:,d} images ({100 * r['active_share']:.0f}% of edges active): "
              f"{_rate(r['images_per_s'])} images/s, {100 * share:.2f}% of the {impl} smoothing time per "
              "image",
              images_per_s=r["images_per_s"], **{f"share_of_{impl}_smooth": share})
  sec.done()


# --------------------------------------------------------------------------------------------------
# The ResNet-18 train step.


def _train_step(model, tx):
  import optax

  def loss_fn(params, batch_stats, x, y):
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                  mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates["batch_stats"]

  def step(state, x_u8, y):
    x = x_u8.astype(jnp.float32) / 255.0
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.batch_stats,
                                                                            x, y)
    return state.apply_gradients(grads=grads, batch_stats=batch_stats), loss

  return step


def _measure_train(sec: Section, ctx: Context, training, batch: int, dtype_name: str) -> dict:
  import optax

  dtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[dtype_name]
  if ctx.sizes.model == "resnet4":
    model = training.ResNet(stage_sizes=(1,), width=8, dtype=dtype)
  else:
    model = getattr(training, ctx.sizes.model)(dtype=dtype)
  if ctx.train_variables is None:  # float32 weights whatever the computation dtype: initialised once
    ctx.train_variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False))(
        jax.random.key(0))
  variables = jax.tree_util.tree_map(jnp.copy, ctx.train_variables)  # the step donates the state it is given
  tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))
  state = training.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                     batch_stats=variables["batch_stats"])
  rng = np.random.default_rng(0)
  pool = np.resize(ctx.x_u8, (max(4 * batch, 2048), 32, 32, 3))
  labels = rng.integers(0, 10, len(pool)).astype(np.int32)
  resident = [jax.device_put((pool[i * batch:(i + 1) * batch], labels[i * batch:(i + 1) * batch]))
              for i in range(4)]
  step, compile_s = _compiled(_train_step(model, tx), state, *resident[0], donate_argnums=0)
  state, loss = step(state, *resident[0])  # warm-up: the first call, then one timed step
  jax.block_until_ready(loss)
  t0 = time.perf_counter()
  state, loss = step(state, *resident[1])
  jax.block_until_ready(loss)
  warm = time.perf_counter() - t0
  steps = int(min(max(ctx.sizes.train_seconds / warm, 1), 40)) if ctx.sizes.train_seconds else 2
  rates = {}
  for fed in ("device", "host"):
    t0 = time.perf_counter()
    for i in range(steps):
      if fed == "host":  # a NumPy gather and a transfer per step, as a plain training loop does
        idx = rng.integers(0, len(pool), batch)
        xb, yb = jax.device_put(pool[idx]), jax.device_put(labels[idx])
      else:
        xb, yb = resident[i % 4]
      state, loss = step(state, xb, yb)
    jax.block_until_ready((state, loss))
    rates[fed] = batch * steps / (time.perf_counter() - t0)
  return sec.row(model=ctx.sizes.model, batch=batch, dtype=dtype_name, steps=steps,
                 device_resident_images_per_s=rates["device"], host_fed_images_per_s=rates["host"],
                 compile_s=compile_s, loss=float(loss),
                 params=int(sum(np.size(p) for p in jax.tree_util.tree_leaves(variables["params"]))))


def section_train(report: Report, ctx: Context) -> None:
  sec = report.section("train")
  try:
    import flax  # noqa: F401
    import optax  # noqa: F401

    from iss_jax import training
  except ImportError as e:
    sec.skip("the train step", f"{e} (iss_jax.training needs flax, optax, orbax-checkpoint, ml_collections)")
    return
  model_cls = getattr(training, "ResNet", None)
  fields = {f.name for f in dataclasses.fields(model_cls)} if dataclasses.is_dataclass(model_cls) else set()
  dtypes = ("fp32", "bf16") if "dtype" in fields else ("fp32",)
  if "bf16" not in dtypes:
    sec.skip("bf16", "the model has no dtype field")
  by, last = {}, None
  for batch in ctx.sizes.batches:
    for dtype_name in dtypes:
      what = f"{ctx.sizes.model} {dtype_name} batch {batch}"
      if last is None:
        need = 10.0 if ctx.sizes is TINY else (90.0 if ctx.platform == "cpu" else 40.0)
      else:  # the last compile again, and 3 passes of its steps at this batch size and its host-fed rate
        need = 1.3 * last["compile_s"] + 3 * last["steps"] * batch / last["host_fed_images_per_s"]
      if not sec.fits(what, need):
        continue
      r = sec.attempt(what, _measure_train, sec, ctx, training, batch, dtype_name)
      if r is None:
        continue
      by[(batch, dtype_name)] = last = r
      key = f"{dtype_name}_b{batch}"
      dev, host = r["device_resident_images_per_s"], r["host_fed_images_per_s"]
      text = (f"{what}: {_rate(dev)} images/s device-resident, {_rate(host)} host-fed "
              f"({host / dev:.2f}x device-resident; compile {r['compile_s']:.1f} s)")
      values = {f"{key}_images_per_s": dev, f"{key}_host_fed_images_per_s": host,
                f"{key}_host_fed_vs_device_resident": host / dev}
      base = by.get((batch, "fp32"))
      if dtype_name != "fp32" and base:
        values[f"{key}_vs_fp32"] = dev / base["device_resident_images_per_s"]
        text += f"; {values[f'{key}_vs_fp32']:.2f}x fp32"
      first = ctx.sizes.batches[0]
      small = by.get((first, dtype_name))
      if batch != first and small:
        values[f"{key}_vs_b{first}"] = dev / small["device_resident_images_per_s"]
        text += f"; {values[f'{key}_vs_b{first}']:.2f}x batch {first}"
      sec.figures(text, **values)
  sec.done()


# --------------------------------------------------------------------------------------------------


def write_reference(data_dir: str | None) -> None:
  """Recomputes the shipped CPU-kernel steps on the first 256 images (needs the CPU kernel)."""
  x_u8, source = load_images(REFERENCE_IMAGES, data_dir)
  steps, _ = _smooth_on(x_u8, "cpu", jax.devices("cpu")[0])

  buf = io.BytesIO()
  np.savez(buf, steps=steps.astype(np.int32), crc32=_images_crc(x_u8), sparsity=np.float64(SPARSITY),
           maxiter=np.int64(iss_jax.DEFAULT_MAXITER), step_factor=np.float64(iss_jax.DEFAULT_STEP_FACTOR),
           note=np.str_(f"iss_jax.smooth(implementation='cpu') stopping steps on the first "
                        f"{REFERENCE_IMAGES} images of {source}; {platform_mod.processor() or 'CPU'}"))
  iss_jax.atomic_write(REFERENCE, buf.getvalue())
  print(f"wrote {REFERENCE}: steps of {len(steps)} images (mean {steps.mean():.0f}, max {steps.max()})")


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--tiny", action="store_true", help="tiny sizes: every section in seconds on CPU")
  shares = ", ".join(f"{k} {100 * v:.0f}%%" for k, v in SHARES.items())
  parser.add_argument("--budget_s", type=float, default=300.0,
                      help=f"seconds for all sections, shared as {shares} of the time left")
  parser.add_argument("--data_dir", default=None, help="a folder holding cifar10_exact.npz (default: the "
                      "sample shipped in the package)")
  parser.add_argument("--out", default=DEFAULT_OUT, help="the JSON, rewritten after every measurement")
  parser.add_argument("--sections", default=",".join(SHARES),
                      help="the sections to run, comma-separated (default: all, in this order)")
  parser.add_argument("--write_reference", action="store_true",
                      help=f"recompute {os.path.basename(REFERENCE)} (CPU kernel steps) and exit")
  args = parser.parse_args(argv)
  if args.write_reference:
    write_reference(args.data_dir)
    return {}
  sections = [name for name in SHARES if name in args.sections.split(",")]
  unknown = set(args.sections.split(",")) - set(SHARES)
  if unknown or not sections:
    parser.error(f"--sections takes names among {', '.join(SHARES)}; got {args.sections!r}.")
  sizes = TINY if args.tiny else FULL
  report = Report(args.out, args.budget_s, args.tiny, sections)
  platform = jax.devices()[0].platform
  x_u8, source = load_images(sizes.n_large, args.data_dir)
  if platform == "cpu":  # the kernel first: the XLA scheduler is the slow one here
    implementations = ("cpu", "xla") if iss_jax.cpu_kernel_available() else ("xla",)
  else:
    implementations = ("xla", "pallas")
  ctx = Context(sizes, platform, x_u8, source, implementations)
  ctx.chunk, ctx.widths, shape_note = scheduler_shape(sizes.n_large, platform)
  report.data["scheduler_shape"] = shape_note
  section_environment(report, ctx)
  runners = {"smooth": section_smooth, "agreement": section_agreement, "lbi_step": section_lbi_step,
             "hlo": section_hlo, "projection": section_projection, "train": section_train}
  for name in sections:
    runners[name](report, ctx)
  report.save()
  skipped = sum(len(s["skipped"]) for s in report.data["sections"].values())
  errors = sum(len(s["errors"]) for s in report.data["sections"].values())
  print(f"\ndone in {report.elapsed():.0f} s (budget {args.budget_s:.0f} s); {skipped} skipped, {errors} "
        f"errors; wrote {args.out}")
  return report.data


if __name__ == "__main__":
  result = main()
  sys.exit(1 if any(s["errors"] for s in result.get("sections", {}).values()) else 0)
