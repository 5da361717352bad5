"""``smooth`` and ``smooth_path``: ISS instance smoothing of images (paper Sec. 3.1)."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax._src import cpu_kernel, lbi, pallas_kernel
from iss_jax._src.bpda import straight_through
from iss_jax._src.checks import check_fraction, check_image, is_concrete
from iss_jax._src.definition import stop_reached
from iss_jax._src.projection import project

Array = jax.Array


class SmoothInfo(NamedTuple):
  """Per-image diagnostics of :func:`smooth` (shapes gain the batch / path axes of the call).

  Attributes:
    steps: int32, LBI steps taken when the image was stopped.
    sparsity: float, edge sparsity reached at that step (``>= target`` unless capped).
    capped: bool, True when ``maxiter`` was hit before the target sparsity.
  """

  steps: Array
  sparsity: Array
  capped: Array

  @property
  def capped_share(self) -> Array:
    """Share of the images that hit ``maxiter`` before the target: float, ``()`` for one image or a batch,
    ``(P,)`` for a path (one share per target)."""
    return jnp.mean(jnp.asarray(self.capped, jnp.float32), axis=-1) if jnp.ndim(self.capped) else \
        jnp.asarray(self.capped, jnp.float32)


# Shape of the XLA scheduler (:func:`_schedule_shape` documents the model). On CPU a batch is smoothed by
# ``_SLOTS`` slots at a time, refilled every ``_CHUNK`` steps; these two are read at trace time (tests
# narrow them to exercise refilling). On GPU/TPU the slot count follows a memory budget instead.
_SLOTS = 32
_CHUNK = 32  # steps between refills; a slot that reaches a target waits frozen for at most this many
# LBI steps per iteration of the step loop. The b update reads z_k and z_{k+1} (D^T (z_{k+1} - z_k)), so
# with one step per iteration XLA writes z_{k+1} into a new buffer and copies it into the loop-carried one
# (a copy of z per step: 49 KB per 32x32x3 float32 image, 15% of the step's traffic on CPU). With two, the
# second step's z goes into the first's input buffer, dead by then: no copy (``tests/test_scheduler.py``
# checks the optimised HLO). Unrolling never changes results: the same operations in the same order.
_UNROLL = 2
_ACCEL_MAX_SLOTS = 4096  # images in flight on one GPU/TPU at most
_ACCEL_SLOT_BUDGET = 2 * 2**30  # bytes of slot state (per device) the scheduler may hold on GPU/TPU
_ACCEL_CHUNK = 64  # steps between refills on GPU/TPU (each refill check is a device-to-host sync)
_ACCEL_MIN_WIDTH = 256  # narrowest compaction width on GPU/TPU: below it a step costs the same
# Bytes of one slot per pixel-channel and itemsize: b, x, z (2 planes) held across steps, plus the step's
# temporaries (D b and g, r, the new z, the new b) that XLA may materialise: about 10 image-sized arrays.
_SLOT_ARRAYS = 10


class ScheduleShape(NamedTuple):
  """Static shape of the XLA scheduler for one batch on one device.

  Attributes:
    chunk: steps run between two refills.
    widths: slot widths, decreasing: ``widths[0]`` images are in flight while the queue lasts; then the
      stragglers are compacted into each following width in turn.
  """

  chunk: int
  widths: tuple[int, ...]


def _schedule_shape(n: int, image_shape: tuple[int, ...], itemsize: int, platform: str) -> ScheduleShape:
  """The scheduler's shape for ``n`` images of ``image_shape`` ``(H, W, C)`` on ``platform``.

  The model. A step costs ``fixed + per_slot * slots``: on CPU the fixed part (loop and fusion overhead)
  is small and the per-slot part dominates from a few slots on, so a few dozen slots suffice and narrow
  compaction (down to one slot) pays for the stragglers. On an accelerator the fixed part (kernel
  launches, a device-to-host sync per refill check) dominates until thousands of images are in flight,
  so the slot count is bounded by memory instead: ``slots = min(n, 4096, 2 GiB / (10 H W C itemsize))``
  (4096 slots for CIFAR-10 in float32, 356 for 224x224x3), refills every 64 steps (the check's sync is
  amortised; a slot waits frozen 32 steps on average, against thousands of steps per image), and the
  stragglers are compacted only down to 256 slots (narrower costs the same per step there).

  The shape never changes results: each image stops at its own step whatever the shape (tested).
  ``benchmarks/bench_scheduler.py`` times a grid of shapes on the device at hand.

  Args:
    n: number of images (static; per device under a mesh).
    image_shape: ``(H, W, C)``.
    itemsize: bytes per value (4 for float32).
    platform: ``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``...: the platform the computation is lowered for.

  Returns:
    A :class:`ScheduleShape`.
  """
  if platform == "cpu":
    first = max(min(n, _SLOTS), 1)
    chunk, narrowest = _CHUNK, 1
  else:
    per_slot = _SLOT_ARRAYS * itemsize * max(1, math.prod(image_shape))
    first = max(min(n, _ACCEL_MAX_SLOTS, _ACCEL_SLOT_BUDGET // per_slot), 1)
    chunk, narrowest = _ACCEL_CHUNK, min(_ACCEL_MIN_WIDTH, first)
  widths = {first, max(first // 8, narrowest), narrowest}
  return ScheduleShape(chunk=chunk, widths=tuple(sorted(widths, reverse=True)))


def _endpoint_flags(x: Array, targets: Array) -> tuple[Array, Array]:
  """``(to_input, to_mean)`` of shape ``(P,)``: targets answered without iterating, ``t >= 1`` (the input)
  and ``t <= 0`` or a constant image (the per-channel mean, which is the image itself when constant)."""
  constant = jnp.all(x == x[:1, :1])
  to_input = targets >= 1.0
  to_mean = ((targets <= 0.0) | constant) & ~to_input
  return to_input, to_mean


def _with_endpoints(x, outs, steps, reached, capped, to_input, to_mean):
  """One image ``(H, W, C)`` and its ``(P, ...)`` per-target results, with the targets answered without
  iterating substituted: the input for ``to_input``, the per-channel mean for ``to_mean``."""
  skipped = to_input | to_mean
  mean = jnp.broadcast_to(jnp.mean(x, axis=(0, 1), keepdims=True), x.shape)
  shape = (-1, 1, 1, 1)
  outs = jnp.where(to_input.reshape(shape), x, jnp.where(to_mean.reshape(shape), mean, outs))
  info = SmoothInfo(
      steps=jnp.where(skipped, 0, steps),
      sparsity=jnp.where(to_input, 1.0, jnp.where(to_mean, 0.0, reached)),
      capped=capped & ~skipped,
  )
  return outs, info


def _to_slots(a: Array) -> Array:
  return jnp.moveaxis(a, 0, -1)


def _from_slots(a: Array) -> Array:
  return jnp.moveaxis(a, -1, 0)


def _schedule(x4: Array, loop_targets: Array, params: lbi.LBIParams, maxiter, shape: ScheduleShape):
  """Runs Split LBI on every image until each of its targets, with slot refilling.

  Args:
    x4: ``(N, H, W, C)`` images.
    loop_targets: ``(N, P)`` targets per image, visited in increasing column order; a target of -1 is
      reached at once.
    params: :class:`lbi.LBIParams`.
    maxiter: step cap.
    shape: :class:`ScheduleShape` (static): chunk length and slot widths.

  Returns:
    ``(b, active, steps, sparsity)`` at the step each target was reached: ``(N, P, H, W, C)``,
    ``(N, P, 2, H, W)`` bool, ``(N, P)`` int32 and ``(N, P)`` float32.
  """
  n, height, width, channels = x4.shape
  p = loop_targets.shape[1]
  # Slots are the LAST axis of every array (lbi accepts trailing batch axes). alpha is per slot: 0
  # freezes a slot that reached its target exactly, without a select.
  where = lambda mask, a, b: jnp.where(lbi._trailing(mask, a.ndim), a, b)
  padded_targets = jnp.concatenate([loop_targets, jnp.full((n, 1), -jnp.inf, loop_targets.dtype)], 1)
  padded_targets = jnp.concatenate([padded_targets, jnp.full((1, p + 1), -jnp.inf)], 0)

  def slot_target(img, j):  # img == n marks an empty slot: always "reached", never written
    return padded_targets[img, j]

  def reached(state, img, j):
    return stop_reached(state.sparsity, slot_target(img, j), state.k, maxiter)

  def flush(carry):
    """Writes out every live slot that reached its current target, advances it, refills finished slots."""
    state, xs, img, j, nxt, outs = carry
    live = img < n
    hit = live & reached(state, img, j)
    rows = jnp.where(hit, img, n)  # out of range -> dropped
    out_b, out_active, out_k, out_s = outs
    out_b = out_b.at[rows, j].set(_from_slots(state.b), mode="drop")
    out_active = out_active.at[rows, j].set(_from_slots(lbi.support(state.z)), mode="drop")
    out_k = out_k.at[rows, j].set(state.k, mode="drop")
    out_s = out_s.at[rows, j].set(state.sparsity, mode="drop")
    j = jnp.where(hit, j + 1, j)
    free = ~live | (hit & (j == p))
    rank = jnp.cumsum(free) - 1
    new_img = nxt + rank
    load = free & (new_img < n)
    img = jnp.where(free, jnp.where(load, new_img, n), img)
    j = jnp.where(free, 0, j)
    nxt = jnp.minimum(nxt + jnp.sum(free), n)
    fresh = _to_slots(x4[jnp.minimum(new_img, n - 1)])
    xs = where(load, fresh, xs)
    state = jax.tree_util.tree_map(lambda a, b: where(free, a, b), lbi.init(xs), state)
    return state, xs, img, j, nxt, (out_b, out_active, out_k, out_s)

  def pending(carry):
    state, _, img, j, _, _ = carry
    return jnp.any((img < n) & reached(state, img, j))

  def advance(carry):
    state, xs, img, j, nxt, outs = carry

    def one(_, s):
      frozen = reached(s, img, j)
      alpha = jnp.where(frozen, 0.0, params.alpha).astype(params.alpha.dtype)
      new = lbi.step(s, xs, params._replace(alpha=alpha))
      return new._replace(k=jnp.where(frozen, s.k, new.k))

    state = lax.fori_loop(0, shape.chunk, one, state, unroll=_UNROLL)
    return lax.while_loop(pending, flush, (state, xs, img, j, nxt, outs))

  widths = shape.widths
  outs = (jnp.zeros((n, p, height, width, channels), x4.dtype),
          jnp.zeros((n, p, 2, height, width), bool),
          jnp.zeros((n, p), jnp.int32), jnp.zeros((n, p), jnp.float32))
  s0 = widths[0]
  xs = jnp.zeros((height, width, channels, s0), x4.dtype)
  carry = (lbi.init(xs), xs, jnp.full((s0,), n, jnp.int32), jnp.zeros((s0,), jnp.int32),
           jnp.int32(0), outs)
  carry = lax.while_loop(pending, flush, flush(carry))
  for w_next in widths[1:] + (0,):
    busy = lambda c, w_next=w_next: (c[4] < n) | (jnp.sum(c[2] < n) > w_next)
    carry = lax.while_loop(busy, advance, carry)
    if w_next:  # compact the live slots (at most w_next of them) into the next, narrower width
      state, xs, img, j, nxt, outs = carry
      keep = jnp.argsort(img >= n, stable=True)[:w_next]
      def take(a, keep=keep):
        return jnp.take(a, keep, axis=-1)

      carry = (jax.tree_util.tree_map(take, state), take(xs), img[keep], j[keep], nxt, outs)
  return carry[5]


def _targets_xla(x4, loop_targets, params, maxiter, shape: ScheduleShape | None = None):
  """The XLA implementation: the refilling scheduler, then the projection in JAX. ``shape`` ``None``: the
  :func:`_schedule_shape` of the platform the computation is lowered for."""
  if shape is None:
    def on(platform):
      return lambda *args: _targets_xla(*args, shape=_schedule_shape(
          x4.shape[0], x4.shape[1:], x4.dtype.itemsize, platform))

    return lax.platform_dependent(x4, loop_targets, params, maxiter, cpu=on("cpu"), default=on("gpu"))
  b, active, steps, reached = _schedule(x4, loop_targets, params, maxiter, shape)
  return jax.vmap(jax.vmap(project))(b, active), steps, reached


def _targets_cpu(x4, loop_targets, params, maxiter):
  """The fused CPU kernel (:mod:`iss_jax._src.cpu_kernel`); same stopping steps as :func:`_targets_xla`."""
  return cpu_kernel.smooth_targets(x4, loop_targets, params.kappa, params.nu, params.alpha, maxiter)


def _targets_pallas(x4, loop_targets, params, maxiter):
  """The Pallas kernel (:mod:`iss_jax._src.pallas_kernel`), one program per image, then the projection in
  JAX. Compiled for GPU/TPU; in Pallas interpret mode on CPU (for tests: slow)."""
  def on(platform, interpret):
    def run(x4, loop_targets, params, maxiter):
      b, active, steps, reached = pallas_kernel.smooth_targets(
          x4, loop_targets, params.kappa, params.nu, params.alpha, maxiter, platform=platform,
          interpret=interpret)
      return jax.vmap(jax.vmap(project))(b, active), steps, reached

    return run

  return lax.platform_dependent(x4, loop_targets, params, maxiter, cpu=on("cpu", True),
                                cuda=on("cuda", False), rocm=on("rocm", False), tpu=on("tpu", False))


# Values of ``implementation``: None picks the CPU kernel where the computation runs on CPU and the kernel
# builds, and the XLA scheduler everywhere else (GPU, TPU). "pallas" is opt-in only: it was never measured
# on a GPU/TPU, so it is not known to be faster anywhere.
IMPLEMENTATIONS = (None, "xla", "cpu", "pallas")


def _resolve_implementation(implementation, x, gradient: str) -> str:
  """The static choice that keys the compiled function: ``"xla"``, ``"cpu"``, ``"pallas"`` or ``"auto"``
  (the kernel where the computation runs on CPU, XLA elsewhere). Resolved before tracing, so turning the
  kernel off (``ISS_JAX_CPU_KERNEL=0``) takes effect at the next call. ``gradient="unrolled"`` runs its own
  ``lax.scan`` and never the kernel, so it neither builds nor needs it."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be None, 'xla', 'cpu' or 'pallas'; got {implementation!r}.")
  if gradient == "unrolled":
    return "xla"
  dtype = x.dtype
  native = jnp.dtype(dtype) in (jnp.float32, jnp.float64)
  if implementation == "cpu":
    cpu_kernel.require()
    if not native:
      raise ValueError(f"implementation='cpu' needs float32 or float64 images; got {dtype}.")
    return "cpu"
  if implementation == "pallas":
    if not native:
      raise ValueError(f"implementation='pallas' needs float32 or float64 images; got {dtype}.")
    return "pallas"
  if implementation is None and native and _runs_on_cpu(x) and cpu_kernel.available(warn=True):
    return "auto"
  return "xla"


def _runs_on_cpu(x) -> bool:
  """Whether ``x`` lives on CPU (for a tracer: whether CPU is the default backend). Only decides whether
  the kernel is built; ``"auto"`` still picks by the platform the computation is lowered for."""
  try:
    return all(d.platform == "cpu" for d in x.devices())
  except (AttributeError, TypeError, jax.errors.ConcretizationTypeError):
    return jax.default_backend() == "cpu"


def _run_targets(x4, loop_targets, params, maxiter, implementation: str):
  """``(N, P, H, W, C)`` projected images, ``(N, P)`` steps and sparsity, by the resolved implementation."""
  if implementation == "cpu":
    return _targets_cpu(x4, loop_targets, params, maxiter)
  if implementation == "pallas":
    return _targets_pallas(x4, loop_targets, params, maxiter)
  if implementation == "auto":
    return lax.platform_dependent(x4, loop_targets, params, maxiter, cpu=_targets_cpu,
                                  default=_targets_xla)
  return _targets_xla(x4, loop_targets, params, maxiter)


def _path_batch(x4: Array, targets: Array, params: lbi.LBIParams, maxiter, implementation: str):
  """``(N, H, W, C)`` images, ``(P,)`` targets -> ``(N, P, H, W, C)`` images and ``(N, P)`` info."""
  to_input, to_mean = jax.vmap(_endpoint_flags, in_axes=(0, None))(x4, targets)  # (N, P)
  order = jnp.argsort(targets)
  inverse = jnp.argsort(order)
  loop_targets = jnp.where(to_input | to_mean, -1.0, targets[None])[:, order]
  outs, steps, reached = _run_targets(x4, loop_targets, params, maxiter, implementation)
  outs, steps, reached = outs[:, inverse], steps[:, inverse], reached[:, inverse]
  return jax.vmap(_with_endpoints)(x4, outs, steps, reached, reached < targets[None], to_input, to_mean)


def _path_bpda(x4, targets, params, maxiter, implementation):
  """The exact path, with the straight-through (BPDA) gradient: each target's output passes the cotangent
  to ``x`` unchanged, so ``x``'s gradient is their sum."""
  shape = (x4.shape[0], targets.shape[0]) + x4.shape[1:]
  return straight_through(functools.partial(_path_batch, implementation=implementation), x4, targets,
                          params, maxiter, surrogate=lambda x: jnp.broadcast_to(x[:, None], shape),
                          has_aux=True)


def _path_unrolled(x, targets, params, maxiter: int):
  """Differentiable path of one image: a ``lax.scan`` of exactly ``maxiter`` steps that records each
  target's state when first reached (rematerialised, so memory stays ``O(maxiter)`` small states)."""
  to_input, to_mean = _endpoint_flags(lax.stop_gradient(x), targets)
  skipped = to_input | to_mean

  @jax.checkpoint
  def body(carry, _):
    state, saved_b, saved_z, saved_k, saved_s, done = carry
    hit = stop_reached(state.sparsity, targets, state.k, maxiter) & ~done
    saved_b = jnp.where(hit[:, None, None, None], state.b, saved_b)
    saved_z = jnp.where(hit[:, None, None, None, None], state.z, saved_z)
    saved_k = jnp.where(hit, state.k, saved_k)
    saved_s = jnp.where(hit, state.sparsity, saved_s)
    return (lbi.step(state, x, params), saved_b, saved_z, saved_k, saved_s, done | hit), None

  p = targets.shape[0]
  state = lbi.init(x)
  carry = (state, jnp.zeros((p,) + x.shape, x.dtype), jnp.zeros((p,) + state.z.shape, x.dtype),
           jnp.zeros((p,), jnp.int32), jnp.zeros((p,), jnp.float32), skipped)
  (state, saved_b, saved_z, saved_k, saved_s, done), _ = lax.scan(body, carry, None, maxiter)
  # Targets not reached within the scan take the final state (as the while loop does at its cap).
  done_now = (state.sparsity >= targets) & ~done
  recorded = done | done_now
  keep = done[:, None, None, None]
  saved_b = jnp.where(keep, saved_b, state.b)
  saved_z = jnp.where(keep[..., None], saved_z, state.z)
  outs = jax.vmap(project)(saved_b, jax.vmap(lbi.support)(saved_z))
  return _with_endpoints(x, outs, jnp.where(done, saved_k, state.k),
                         jnp.where(done, saved_s, state.sparsity), ~recorded, to_input, to_mean)


def _path_any(x4, targets, params, maxiter, gradient: str, unroll: int, implementation):
  if gradient == "bpda":
    return _path_bpda(x4, targets, params, maxiter, implementation)
  return jax.vmap(lambda img: _path_unrolled(img, targets, params, unroll))(x4)


@functools.partial(jax.jit, static_argnames=("gradient", "unroll", "mesh", "implementation"))
def _smooth_core(x4, targets, params, maxiter, *, gradient: str, unroll: int, mesh=None,
                 implementation: str = "xla"):
  if mesh is None:
    return _path_any(x4, targets, params, maxiter, gradient, unroll, implementation)
  # Each device runs its own scheduler over its share of the batch (no cross-device traffic in the
  # loop). The batch is padded with constant images, which are answered without iterating.
  axes = mesh.axis_names
  n = x4.shape[0]
  pad = (-n) % mesh.size
  x4 = jnp.concatenate([x4, jnp.zeros((pad,) + x4.shape[1:], x4.dtype)]) if pad else x4
  spec = jax.sharding.PartitionSpec(axes)
  out_spec = jax.sharding.PartitionSpec(axes)
  fn = jax.shard_map(lambda xs: _path_any(xs, targets, params, maxiter, gradient, unroll,
                                        implementation), mesh=mesh,
                     in_specs=spec, out_specs=(out_spec, SmoothInfo(out_spec, out_spec, out_spec)),
                     check_vma=False)
  sharding = jax.sharding.NamedSharding(mesh, spec)
  explicit = all(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types)
  x4 = jax.sharding.reshard(x4, sharding) if explicit else lax.with_sharding_constraint(x4, sharding)
  out, info = fn(x4)
  if not pad:
    return out, info
  if explicit:  # an uneven slice of an explicitly sharded axis needs it gathered first
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    out, info = jax.sharding.reshard((out, info), replicated)
  return out[:n], jax.tree_util.tree_map(lambda a: a[:n], info)


def _prepare(x, sparsities, kappa, nu, step_factor, maxiter, gradient, implementation, value_range):
  x = check_image(x, "x", value_range=value_range)
  if gradient not in ("bpda", "unrolled"):
    raise ValueError(f"gradient must be 'bpda' or 'unrolled'; got {gradient!r}.")
  if gradient == "unrolled" and not (maxiter is None or isinstance(maxiter, int)):
    raise ValueError("gradient='unrolled' needs a static Python int maxiter (the scan length); "
                     f"got {type(maxiter).__name__}.")
  if isinstance(maxiter, int) and maxiter < 0:
    raise ValueError(f"maxiter must be >= 0; got {maxiter}.")
  for name, value in (("kappa", kappa), ("nu", nu), ("step_factor", step_factor)):
    if is_concrete(value) and not float(value) > 0:
      raise ValueError(f"{name} must be > 0; got {value}.")
  if is_concrete(step_factor) and not float(step_factor) < 2:
    raise ValueError(f"step_factor must be < 2 for the LBI step to be stable; got {step_factor}.")
  x4 = {2: x[None, :, :, None], 3: x[None], 4: x}[x.ndim]
  if maxiter is None:
    maxiter = lbi.default_maxiter(*x4.shape[1:])
  params = lbi.make_params(x4.shape[1], x4.shape[2], kappa=kappa, nu=nu, step_factor=step_factor,
                           dtype=x4.dtype)
  implementation = _resolve_implementation(implementation, x4, gradient)
  return x, x4, check_fraction(sparsities, "sparsity"), params, implementation, maxiter


def smooth(x, sparsity=0.6, *, kappa=lbi.DEFAULT_KAPPA, nu=lbi.DEFAULT_NU,
           step_factor=lbi.DEFAULT_STEP_FACTOR, maxiter=None, gradient="bpda",
           return_info=False, mesh=None, implementation=None, value_range=(0.0, 1.0)):
  """Smooths images by Split LBI stopped at a target edge sparsity, then projected (Prop. 3.1).

  Each image runs Split LBI (Eq. 3) from ``b = z = g = 0`` until the fraction of its 4-neighbour edges with
  a non-zero group ``g`` first reaches ``sparsity``; then ``b`` is projected: pixels joined through edges
  with ``g = 0`` form components and each is replaced by its component's mean of ``b``. Small sparsity keeps
  only large-scale structure. In a batch every image stops at its own step.

  Args:
    x: ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)`` float, values in ``[0, 1]`` by convention; at least
      2x2 pixels. Colour images use the group soft threshold across channels (Eq. 5-6).
    sparsity: target edge sparsity in ``[0, 1]``, scalar; may be traced (a sweep does not recompile).
    kappa: damping factor (paper: 10).
    nu: splitting weight (paper: 1).
    step_factor: ``c`` in ``alpha = c / (kappa ||H||_2)``, in ``(0, 2)``. 1 is the paper's step; the
      default 1.9 reaches the same projected images in about half the steps
      (``benchmarks/bench_step_factor.py`` compares them).
    maxiter: step cap per image; may be traced. Reaching it before the target returns the projection of
      the last step and sets ``info.capped`` (``info.capped_share``: the share of the batch). ``None``
      (default): a cap that follows the image: 20,000 (``iss_jax.DEFAULT_MAXITER``) for a 32x32 colour
      image, growing with the fourth root of the pixel count above (33,000 at 84x84, 53,000 at
      224x224), twice that for one channel (``benchmarks/bench_large_images.py`` measures the steps
      real images need).
    gradient: ``"bpda"`` (default): ``jax.grad`` sees the smoothing as the identity (straight-through,
      BPDA, Athalye et al. 2018), with the forward pass exact. ``"unrolled"``: the exact gradient of a
      run of at most ``maxiter`` steps (a ``lax.scan``, rematerialised), for adaptive attacks; needs a
      static int ``maxiter`` and runs all ``maxiter`` steps.
    return_info: also return a :class:`SmoothInfo`.
    mesh: optional ``jax.sharding.Mesh``: the batch is split over all its devices (``shard_map``), each
      running its own scheduler (or kernel); results are sharded the same way. ``None``: one device.
    implementation: ``None`` (default): where the call runs on CPU, the fused C++ kernel (compiled on
      first use and cached, see :func:`iss_jax.build_cpu_kernel`; ``benchmarks/bench_smooth.py`` times it);
      on GPU/TPU, or without a C++ compiler (one warning), the XLA implementation. ``"xla"``: the
      pure-JAX refilling scheduler on every platform. ``"cpu"``: the kernel, raising
      :class:`iss_jax.KernelUnavailableError` if it cannot be built. ``"pallas"`` (opt-in, never chosen
      by ``None``): a Pallas kernel with one program per image holding its state on chip, for GPU/TPU;
      on CPU it runs in Pallas interpret mode (slow, for tests); it was tested only there and never
      timed on a GPU/TPU. All perform the same operations in the same order and stop real images at the
      same step; values agree to float32 rounding. The XLA scheduler's shape (images in flight, steps
      between refills) follows the platform and batch: 32 slots on CPU, up to 4096 on GPU/TPU within a
      memory budget; it never changes results. With ``gradient="unrolled"`` the bounded ``lax.scan``
      runs whatever this says.
    value_range: the range ``x`` must lie in, ``(0, 1)`` by default: the stopping sparsity and the
      threshold of Split LBI are tied to the pixel scale, so a forgotten ``/ 255`` would smooth
      differently (in a handful of steps) rather than fail. Values outside it by more than rounding raise
      (at run time under ``jit``); ``None`` accepts any values (e.g. noisy images left unclipped).

  Returns:
    The smoothed images, same shape and dtype as ``x``; with ``return_info``, ``(images, info)`` where the
    info fields have shape ``()`` for one image or ``(N,)`` for a batch.

  Raises:
    ValueError: bad rank or dtype, images under 2x2, a channels-first layout (e.g. ``(N, 3, 32, 32)``;
      more than 4 channels otherwise warns), values outside ``value_range``, NaN/Inf in ``x``,
      ``sparsity`` outside ``[0, 1]``,
      non-positive ``kappa``/``nu``/``step_factor``, ``step_factor >= 2``, or a bad ``gradient`` or
      ``implementation``. Value checks on traced arguments raise when the jitted call runs.
    iss_jax.KernelUnavailableError: ``implementation="cpu"`` and the kernel cannot be built (the message
      says why).

  Note:
    Endpoints. ``sparsity = 0`` returns the per-channel mean of ``x`` (one component; the limit of the
    path before any edge activates). ``sparsity = 1`` returns ``x`` itself: edges where ``D x = 0`` never
    activate, so the iteration alone would reach it only in the limit. A constant image is returned
    unchanged (no edge ever activates) without iterating.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> x = jax.random.uniform(jax.random.key(0), (8, 8, 3))
    >>> y, info = iss_jax.smooth(x, 0.5, return_info=True)
    >>> y.shape, bool(info.sparsity >= 0.5)
    ((8, 8, 3), True)

  References:
    Visual semantic learning via inverse scale space, Sec. 3.1, Eq. 3-6, Prop. 3.1. The readable
    definition every implementation is tested against: :func:`iss_jax.smooth_reference`.
  """
  if jnp.ndim(sparsity) != 0:
    raise ValueError(f"sparsity must be a scalar; got shape {jnp.shape(sparsity)}. "
                     "Use iss_jax.smooth_path for several sparsities.")
  out, info = smooth_path(x, jnp.reshape(jnp.asarray(sparsity), (1,)), kappa=kappa, nu=nu,
                          step_factor=step_factor, maxiter=maxiter, gradient=gradient,
                          return_info=True, mesh=mesh, implementation=implementation,
                          value_range=value_range)
  out = out[0]
  info = jax.tree_util.tree_map(lambda a: a[0], info)
  return (out, info) if return_info else out


def smooth_path(x, sparsities, *, kappa=lbi.DEFAULT_KAPPA, nu=lbi.DEFAULT_NU,
                step_factor=lbi.DEFAULT_STEP_FACTOR, maxiter=None, gradient="bpda",
                return_info=False, mesh=None, implementation=None, value_range=(0.0, 1.0)):
  """The image path at several sparsities from ONE Split LBI run per image (paper Fig. 10).

  Args:
    x: as in :func:`smooth`.
    sparsities: ``(P,)`` targets in ``[0, 1]``, any order; may be traced.
    kappa, nu, step_factor, maxiter, gradient, mesh, implementation, value_range: as in :func:`smooth`.
    return_info: also return a :class:`SmoothInfo` with fields of shape ``(P,)`` or ``(P, N)``.

  Returns:
    ``(P, *x.shape)``: ``out[j]`` equals ``smooth(x, sparsities[j])``.

  Examples:
    >>> import jax, iss_jax
    >>> x = jax.random.uniform(jax.random.key(0), (8, 8))
    >>> iss_jax.smooth_path(x, [0.2, 0.6, 1.0]).shape
    (3, 8, 8)
  """
  sparsities = jnp.asarray(sparsities)
  if sparsities.ndim != 1 or sparsities.shape[0] == 0:
    raise ValueError(f"sparsities must be a non-empty 1-D array; got shape {sparsities.shape}.")
  x, x4, targets, params, implementation, maxiter = _prepare(
      x, sparsities, kappa, nu, step_factor, maxiter, gradient, implementation, value_range)
  if x4.shape[0] == 0:
    out = jnp.zeros((targets.shape[0],) + x.shape, x.dtype)
    empty = jnp.zeros((targets.shape[0], 0))
    info = SmoothInfo(empty.astype(jnp.int32), empty, empty.astype(bool))
    return (out, info) if return_info else out
  unroll = maxiter if gradient == "unrolled" else 0
  out, info = _smooth_core(x4, targets, params, jnp.asarray(maxiter, jnp.int32), gradient=gradient,
                           unroll=unroll, mesh=mesh, implementation=implementation)
  out = jnp.moveaxis(out, 1, 0)
  info = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 1, 0), info)
  if x.ndim < 4:
    out = out[:, 0]
    info = jax.tree_util.tree_map(lambda a: a[:, 0], info)
    if x.ndim == 2:
      out = out[..., 0]
  out = out.astype(x.dtype)
  return (out, info) if return_info else out
