"""Split LBI as a Pallas kernel: one program per image, its whole state kept on chip.

``implementation="pallas"`` of :func:`iss_jax.smooth`. The grid runs one program per image; the program
keeps ``b`` and ``z`` (two edge planes, horizontal and vertical, per channel) as values (registers on GPU,
VMEM on TPU), reads ``x`` from its block, and runs Split LBI to each of the image's targets in turn, with
the operation order of :func:`iss_jax._src.lbi.step` (``z`` first, then ``b`` with
``D^T (z_{k+1} - z_k)``), like the CPU kernel. At the first step where a target is reached it writes ``b``,
the active-edge mask, the step and the active-edge count. The projection onto connected components is NOT
in the kernel: it runs afterwards in JAX (:func:`iss_jax._src.projection.project`), as for the XLA
scheduler.

Layout inside a program: every value is a 2-D ``(Hp, Wp)`` plane, one per channel (the channel sum of the
group threshold is unrolled, as in ``lbi``), so no value has a channel axis. The image is padded to
``(Hp, Wp) >= (H, W)`` (:func:`padded_size`) with masked edges: an edge with a padded end point never has
a non-zero difference, so its ``z`` stays exactly 0, it never activates, and the real pixels see exactly
the operations of the unpadded step.

Shifts (no matrix products). ``"offset"`` (GPU, and the default of the interpret-mode test path): each
step stores the ``b`` planes, then the ``alpha r`` planes, into the interior of a per-program buffer with
a one-pixel halo (``(Hp + 2, Wp + 2)``, an extra output of the call used as scratch, so it lives in the
program's L1/L2 working set) and reads them back at offsets ``(0, +1)``, ``(+1, 0)``, ``(0, -1)``,
``(-1, 0)``: a load of the same ``(Hp, Wp)`` block shape from a shifted base, which Triton has (it has no
value slice or roll). On GPU a block barrier separates each store from the shifted loads (two per
step). The left/upper halo is zeroed once (``D^T`` reads it); the right/lower halo lands on masked edges
only. ``"roll"`` (``jnp.roll``) and ``"tpu"`` (``pltpu.roll``, a lane/sublane rotation in VMEM) rotate
the values instead; what wraps around lands on masked edges, so all forms give the same bits (tested).

Stopping test in integers. The kernel counts the active edges (an int32 sum of ``||z_e||^2 > 1``) and
compares the count with an integer threshold per target, computed outside the kernel from the correctly
rounded table of ``count / m`` (:func:`_fractions`, the table the CPU kernel and ``lbi.edge_sparsity``
use): the threshold is the first count whose table entry reaches the target, so ``count >= threshold`` is
exactly ``table[count] >= target`` (the table increases), with no division or float compare in the kernel.
The sparsity returned is that table entry.

Scheduling: one program per image, no persistent queue. The CPU kernel runs persistent workers that pull
images from a queue, so that a thread whose image stopped early takes the next one. On GPU the grid is
that queue already: the block scheduler launches the grid's programs in order and starts the next pending
one on an SM as soon as a running one retires, so an image that stops after 200 steps frees its SM for the
next image, and no SM waits for a slow image of another. A persistent program (one per SM, a loop over
``atomic_add`` on an image counter) would save only the launch of each block (about a microsecond) against
an image's hundreds to 20,000 steps, and would add an atomic per image and a grid sized to the SM count.
At 16 warps a program fills an SM's register file (see :data:`_NUM_WARPS`), so one image runs per SM
either way. On TPU the grid is a loop on each TensorCore (megacore splits the parallel axis in two
halves); there, several images per program on the lanes is what fills the core, and a program runs until
its slowest image stops (see below). Not timed on either (no device lent).

Status. Run only in Pallas interpret mode on CPU (no GPU or TPU was lent): there it stops every tested
real image at the readable definition's step with outputs equal to 1e-9 in float64, and at the XLA
scheduler's and the CPU kernel's step in float32, for every padding and shift form
(``tests/test_pallas_kernel.py``). It LOWERS for GPU (Triton) and TPU (Mosaic) without a device (tested),
but was never compiled by the GPU/TPU backend nor timed, which is why ``implementation=None`` never picks
it. On GPU the planes are padded to powers of two (at least 16) and a program holds ``(3 C) Hp Wp``
values (b, two z planes per channel) plus temporaries; it runs with 16 warps (:data:`_NUM_WARPS`). FMA: Triton
may contract ``a * b + c`` into one fused multiply-add, which rounds once instead of twice; an edge whose
norm sits within rounding of the threshold can then activate a step apart, moving a stop by one step at
an exact tie. The CPU interpret-mode tests cannot see this (no contraction there; equality is required);
``benchmarks/bench_accelerator.py`` reports the GPU's step differences against the CPU kernel (count and
largest difference) rather than requiring zero. TPU: the lane axis is padded to 128, so one 32x32 image
would fill a quarter of its tiles; a program there runs several images side by side on the lanes
(:func:`images_per_program`: four 32-wide images per 128-lane tile, eight 16-wide), the edge masks per
segment, so a roll that crosses from one image into the next lands on masked edges only. Each image keeps
its own step count, target index and active-edge count (an integer sum over its segment); an iteration
records the images that reached a target and steps the others with the recording and finished images'
segments held, so every image runs exactly the one-image program's sequence (tested bit for bit in
interpret mode, with stops from 0 to ~2,500 steps in one program). The cost: a program steps until its
slowest image stops, and counts per segment (``2 G`` reductions a step instead of 2). Not compiled by
Mosaic nor timed (no TPU); it lowers. The grid is marked parallel (megacore).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from iss_jax._src.lbi import num_edges

Array = jax.Array

SHIFT_FORMS = ("offset", "roll", "tpu")
# Warps per program on GPU. Compiled for sm_90 by pip Triton 3.9 from this kernel's Triton IR for a
# 32x32x3 image (``benchmarks/bench_pallas_sass.py``): 16 warps use 128 registers per thread and spill
# nothing; 8 warps use 255 and spill nothing; 4 warps spill (an 824-byte stack, 102 local loads and 102
# local stores). Either way one program fills an SM's register file. Not timed.
_NUM_WARPS = 16


def padded_size(height: int, width: int, platform: str) -> tuple[int, int]:
  """``(Hp, Wp)`` the kernel pads an ``H x W`` image to: powers of two, at least 16, on GPU (``"cuda"``,
  ``"rocm"``: the Triton lowering's shape rule), ``(8, 128)`` multiples on TPU (its tile), unchanged
  elsewhere."""
  if platform in ("cuda", "rocm"):
    return max(16, 1 << (height - 1).bit_length()), max(16, 1 << (width - 1).bit_length())
  if platform == "tpu":
    return -(-height // 8) * 8, -(-width // 128) * 128
  return height, width


def shift_form(platform: str) -> str:
  """How the kernel shifts planes on ``platform``: ``"tpu"`` on TPU, ``"offset"`` elsewhere (the GPU's
  form, which the interpret-mode tests run on CPU too). See the module docstring."""
  return "tpu" if platform == "tpu" else "offset"


def _roll(a: Array, offset: int, axis: int, how: str) -> Array:
  """The ``(Hp, Wp)`` plane ``a`` rotated so that position ``i`` holds ``a[i + offset]`` along ``axis``."""
  if how == "tpu":
    from jax.experimental.pallas import tpu as pltpu

    return pltpu.roll(a, (-offset) % a.shape[axis], axis)
  return jnp.roll(a, -offset, axis)


def _barrier(sync: bool) -> None:
  """A block-wide barrier on GPU (Triton), between a program's stores and its shifted loads of them."""
  if sync:
    from jax._src.pallas.triton import primitives as triton_primitives  # not re-exported by pallas.triton

    triton_primitives.debug_barrier()


def _kernel(x_ref, thr_ref, prm_ref, maxiter_ref, *refs, height, width, seg_width, images, how, sync):
  """Program ``i = program_id(0)`` runs the ``images`` images ``i * images + g`` side by side on the lane
  axis, image ``g`` in lanes ``[g * seg_width, g * seg_width + width)``: ``x_ref`` ``(1, C, Hp, Wp)``;
  ``thr_ref`` the whole ``(N, P)`` int32 thresholds (a target is reached when the active-edge count is at
  least its threshold), ``prm_ref`` ``(3,)`` (kappa, nu, alpha), ``maxiter_ref`` ``(1,)`` (all three in
  scalar memory on TPU); writes ``b_ref`` ``(1, P, C, Hp, Wp)``, ``act_ref`` ``(1, P, 2, Hp, Wp)`` int32
  and ``k_ref`` / ``n_ref`` ``(1, images, Pp)`` int32 (steps and active-edge counts; ``Pp >= P`` a power
  of two, the tail left 0). The ``"offset"`` form also gets its scratch: ``bs_ref`` ``(1, C, Hp + 2,
  Wp + 2)`` and ``rs_ref`` ``(1, 2 C, Hp + 2, Wp + 2)``, written interior first.

  Each image keeps its own step, count and target index: an iteration records the images that reached
  their target (their segment of the outputs) and steps the others, the recording and finished images'
  segments held as they are, so every image sees exactly the sequence of the one-image program."""
  b_ref, act_ref, k_ref, n_ref, *scratch = refs
  channels, hp, wp = x_ref.shape[1:]
  p = thr_ref.shape[1]
  pp = k_ref.shape[2]
  program = pl.program_id(0)
  dtype = x_ref.dtype
  kappa, nu, alpha = prm_ref[0], prm_ref[1], prm_ref[2]
  maxiter = maxiter_ref[0]
  row = lax.broadcasted_iota(jnp.int32, (hp, wp), 0)
  col = lax.broadcasted_iota(jnp.int32, (hp, wp), 1)
  if images == 1:
    seg, lane = jnp.zeros_like(col), col
  else:  # seg_width is a power of two: shifts and masks (an integer division needs the TPU's chip info)
    seg = lax.shift_right_logical(col, jnp.int32(seg_width.bit_length() - 1))  # the image of each lane
    lane = col & (seg_width - 1)  # the column inside its image
  inside = seg < images  # lanes beyond the last image: padding
  hmask = inside & (row < height) & (lane < width - 1)  # real horizontal edges (i, j) -> (i, j + 1)
  vmask = inside & (row < height - 1) & (lane < width)  # real vertical edges (i, j) -> (i + 1, j)
  segments = [seg == g for g in range(images)]
  zero = jnp.zeros((hp, wp), dtype)

  if how == "offset":
    bs_ref, rs_ref = scratch

    def put(ref, c, v):  # the interior of plane c
      ref[0, c, pl.ds(1, hp), pl.ds(1, wp)] = v

    def at(ref, c, di, dj):  # plane c read at offset (di, dj): position (i, j) holds v[i + di, j + dj]
      return ref[0, c, pl.ds(1 + di, hp), pl.ds(1 + dj, wp)]

    # Zero every plane, halo included (rows 0 and Hp + 1, columns 0 and Wp + 1), by four (Hp, Wp) blocks.
    for ref, planes in ((bs_ref, channels), (rs_ref, 2 * channels)):
      for c in range(planes):
        for di, dj in ((0, 0), (0, 2), (2, 0), (2, 2)):
          ref[0, c, pl.ds(di, hp), pl.ds(dj, wp)] = zero
    _barrier(sync)  # the zeros overlap the interior: all of them land before the first step's stores

  def group_sq(zs):  # ||z_e||^2 over channels, the unrolled sum of lbi._group_sq
    sq = zs[0] * zs[0]
    for z in zs[1:]:
      sq = sq + z * z
    return sq

  def gamma(zs):  # lbi.gamma: (kappa * scale) * z
    sq = group_sq(zs)
    active = sq > 1.0
    scale = jnp.where(active, 1.0 - lax.rsqrt(jnp.where(active, sq, 1.0)), 0.0)
    return [(kappa * scale) * z for z in zs]

  def counts(zh, zv):  # active edges per image, integer sums (lbi.support, summed over its segment)
    on = ((group_sq(zh) > 1.0).astype(jnp.int32), (group_sq(zv) > 1.0).astype(jnp.int32))
    if images == 1:
      return [jnp.sum(on[0], dtype=jnp.int32) + jnp.sum(on[1], dtype=jnp.int32)]
    return [jnp.sum(jnp.where(m, on[0], 0), dtype=jnp.int32)
            + jnp.sum(jnp.where(m, on[1], 0), dtype=jnp.int32) for m in segments]

  def z_update(c, b_c, right, down, zh, zv, gh, gv):
    dh = jnp.where(hmask, right - b_c, zero)  # b[i, j + 1] - b[i, j]
    dv = jnp.where(vmask, down - b_c, zero)  # b[i + 1, j] - b[i, j]
    zh_c = zh[c] + alpha * ((dh - gh[c]) / nu)
    zv_c = zv[c] + alpha * ((dv - gv[c]) / nu)
    return zh_c, zv_c, zh_c - zh[c], zv_c - zv[c]  # alpha r; zero on every masked edge

  def b_update(c, b_c, rh, rv, left, up):
    dt = left - rh + up - rv  # D^T (z_{k+1} - z_k)
    return b_c - kappa * (alpha * (b_c - x_ref[0, c]) + dt)

  def step(b, zh, zv):  # lbi.step, plane by plane
    gh, gv = gamma(zh), gamma(zv)
    new_zh, new_zv, rhs, rvs = [], [], [], []
    if how == "offset":
      for c in range(channels):
        put(bs_ref, c, b[c])
      _barrier(sync)
    for c in range(channels):
      if how == "offset":
        right, down = at(bs_ref, c, 0, 1), at(bs_ref, c, 1, 0)
      else:
        right, down = _roll(b[c], 1, 1, how), _roll(b[c], 1, 0, how)
      zh_c, zv_c, rh, rv = z_update(c, b[c], right, down, zh, zv, gh, gv)
      new_zh.append(zh_c)
      new_zv.append(zv_c)
      rhs.append(rh)
      rvs.append(rv)
      if how == "offset":
        put(rs_ref, 2 * c, rh)
        put(rs_ref, 2 * c + 1, rv)
    if how == "offset":
      _barrier(sync)
    new_b = []
    for c in range(channels):
      if how == "offset":
        left, up = at(rs_ref, 2 * c, 0, -1), at(rs_ref, 2 * c + 1, -1, 0)
      else:
        left, up = _roll(rhs[c], -1, 1, how), _roll(rvs[c], -1, 0, how)
      new_b.append(b_update(c, b[c], rhs[c], rvs[c], left, up))
    return new_b, new_zh, new_zv

  def record(g, j, b, zh, zv):
    """Image ``g``'s segment of output slot ``j`` (the other segments of the slot as they are)."""
    put_seg = (lambda ref_val, v: v) if images == 1 else (lambda ref_val, v: jnp.where(segments[g], v,
                                                                                        ref_val))
    for c in range(channels):
      b_ref[0, j, c] = put_seg(b_ref[0, j, c], b[c])
    act_ref[0, j, 0] = put_seg(act_ref[0, j, 0], (group_sq(zh) > 1.0).astype(jnp.int32))
    act_ref[0, j, 1] = put_seg(act_ref[0, j, 1], (group_sq(zv) > 1.0).astype(jnp.int32))

  slot = lax.broadcasted_iota(jnp.int32, (1, images, pp), 2)
  which = lax.broadcasted_iota(jnp.int32, (1, images, pp), 1)

  def body(carry):
    b, zh, zv, k, n, j, ks, ns = carry
    hits, holds = [], []
    for g in range(images):
      live = j[g] < p
      # definition.stop_reached in integers: table[n] >= target  <=>  n >= threshold (the table increases).
      hit = live & ((n[g] >= thr_ref[program * images + g, jnp.minimum(j[g], p - 1)]) | (k[g] >= maxiter))
      hits.append(hit)
      holds.append(hit | ~live)

      pl.when(hit)(functools.partial(record, g, j[g], b, zh, zv))
      mark = (which == g) & (slot == j[g]) & hit
      ks = jnp.where(mark, k[g], ks)
      ns = jnp.where(mark, n[g], ns)

    def advance(_):
      nb, nzh, nzv = step(b, zh, zv)
      if images > 1:  # the held images' segments stay as they are
        held = functools.reduce(jnp.logical_or, [segments[g] & holds[g] for g in range(images)])
        keep = lambda new, old: [jnp.where(held, o, v) for v, o in zip(new, old, strict=True)]
        nb, nzh, nzv = keep(nb, b), keep(nzh, zh), keep(nzv, zv)
      return nb, nzh, nzv, counts(nzh, nzv)

    nb, nzh, nzv, nn = lax.cond(functools.reduce(jnp.logical_and, holds),
                                lambda _: (b, zh, zv, list(n)), advance, None)
    k = [jnp.where(holds[g], k[g], k[g] + 1) for g in range(images)]
    n = [jnp.where(holds[g], n[g], nn[g]) for g in range(images)]
    j = [j[g] + hits[g].astype(jnp.int32) for g in range(images)]
    return nb, nzh, nzv, k, n, j, ks, ns

  planes = [zero] * channels
  scalars = [jnp.int32(0)] * images
  carry = (planes, planes, planes, scalars, scalars, scalars,
           jnp.zeros((1, images, pp), jnp.int32), jnp.zeros((1, images, pp), jnp.int32))
  carry = lax.while_loop(lambda c: functools.reduce(jnp.logical_or, [jg < p for jg in c[5]]), body, carry)
  k_ref[...] = carry[6]
  n_ref[...] = carry[7]


def _fractions(height: int, width: int) -> np.ndarray:
  """``count / m`` in float32, correctly rounded, for every count ``0..m`` of active edges.

  The table is the definition's ``active.mean()`` rounded once to float32 (``lbi.edge_sparsity`` and the
  CPU kernel use the same values). The kernel never divides: compilers rewrite a division by the constant
  ``m`` as a product with its rounded reciprocal (XLA on CPU does: ``22 / 110`` becomes ``0.19999999``)
  and GPUs divide approximately by default, and either moves the stop when ``target * m`` is a whole
  number.
  """
  m = num_edges(height, width)
  return (np.arange(m + 1, dtype=np.float64) / max(m, 1)).astype(np.float32)


def thresholds(loop_targets: Array, height: int, width: int) -> Array:
  """``(N, P)`` int32: for each target the smallest active-edge count whose sparsity (the table entry of
  :func:`_fractions`) reaches it; ``m + 1`` (never) for a target above 1, 0 (at once) for one <= 0.

  ``count >= threshold`` holds exactly when ``table[count] >= target``, the comparison of
  :func:`iss_jax._src.definition.stop_reached`, in the targets' precision (float32 entries are exact in
  float64).
  """
  dtype = jnp.promote_types(loop_targets.dtype, jnp.float32)
  table = jnp.asarray(_fractions(height, width)).astype(dtype)
  return jnp.searchsorted(table, loop_targets.astype(dtype), side="left").astype(jnp.int32)


def images_per_program(height: int, width: int, platform: str) -> tuple[int, int]:
  """``(G, Ws)``: the images a program runs side by side on the lane axis and the lanes each takes.

  On TPU a plane's lane axis is padded to 128, so one 32-wide image would leave three quarters of every
  vector register and VMEM tile idle: images up to 64 wide are packed ``128 // Ws`` to a program, each in
  ``Ws`` lanes (the smallest power of two >= the width: 4 CIFAR-10 images per 128-lane tile). Elsewhere
  one image per program."""
  if platform == "tpu" and width <= 64:
    seg = 1 << max(width - 1, 1).bit_length()
    return 128 // seg, seg
  return 1, width


@functools.partial(jax.jit, static_argnames=("platform", "interpret", "how", "pack"))
def smooth_targets(x4: Array, loop_targets: Array, kappa, nu, alpha, maxiter, *, platform: str = "cpu",
                   interpret: bool = True, how: str | None = None, pack: bool | None = None):
  """Runs Split LBI on every image to each of its targets, one Pallas program per image (per ``G`` images
  side by side on TPU, :func:`images_per_program`).

  Args:
    x4: ``(N, H, W, C)`` float images.
    loop_targets: ``(N, P)`` targets per image, visited in column order; one that is already reached
      (e.g. -1) is recorded at once, at the current step.
    kappa, nu, alpha: scalar :class:`iss_jax._src.lbi.LBIParams` fields (traced).
    maxiter: ``()`` int step cap (traced).
    platform: the platform lowered for (static): decides the padding (:func:`padded_size`), the shift
      form (:func:`shift_form`), the packing, the barriers and the compiler parameters.
    interpret: run the kernel in Pallas interpret mode (CPU, tests).
    how: the shift form (``"offset"``, ``"roll"``, ``"tpu"``), overriding :func:`shift_form` (tests run
      each form in interpret mode).
    pack: several images per program as :func:`images_per_program` gives them for ``platform``
      (default: on TPU only); False: one per program.

  Returns:
    ``(b, active, steps, sparsity)`` at the step each target was reached: ``(N, P, H, W, C)``,
    ``(N, P, 2, H, W)`` bool (``lbi.support``), ``(N, P)`` int32 and ``(N, P)`` float32, as the XLA
    scheduler returns them; the projection is left to the caller.
  """
  n, height, width, channels = x4.shape
  p = loop_targets.shape[1]
  dtype = x4.dtype
  how = how or shift_form(platform)
  if how not in SHIFT_FORMS:
    raise ValueError(f"how must be one of {SHIFT_FORMS}; got {how!r}.")
  group, seg_width = images_per_program(height, width, "tpu" if pack else platform) if pack is not False \
      else (1, width)
  hp, wp = padded_size(height, group * seg_width, platform)
  pp = 1 << (p - 1).bit_length()
  programs = -(-n // group)
  thr = thresholds(loop_targets, height, width)
  if programs * group > n:  # padding images, at once recorded (threshold 0) and dropped
    x4 = jnp.concatenate([x4, jnp.zeros((programs * group - n, *x4.shape[1:]), dtype)])
    thr = jnp.concatenate([thr, jnp.zeros((programs * group - n, p), jnp.int32)])
  # (N, H, W, C) -> (programs, C, H, G * Ws): image g of a program in lanes [g Ws, g Ws + W).
  xp = jnp.pad(x4, ((0, 0), (0, 0), (0, seg_width - width), (0, 0)))
  xp = xp.reshape(programs, group, height, seg_width, channels).transpose(0, 4, 2, 1, 3)
  xp = xp.reshape(programs, channels, height, group * seg_width)
  xp = jnp.pad(xp, ((0, 0), (0, 0), (0, hp - height), (0, wp - group * seg_width)))
  prm = jnp.stack([jnp.asarray(v, dtype) for v in (kappa, nu, alpha)])
  gpu = platform in ("cuda", "rocm") and not interpret
  kernel = functools.partial(_kernel, height=height, width=width, seg_width=seg_width, images=group, how=how,
                             sync=gpu)
  if platform == "tpu":
    from jax.experimental.pallas import tpu as pltpu

    scalars = pl.BlockSpec(memory_space=pltpu.SMEM)  # whole array, read as scalars
    compiler_params = pltpu.CompilerParams(dimension_semantics=("parallel",))
  else:
    scalars = pl.BlockSpec()  # whole array
    compiler_params = None
    if gpu:
      from jax.experimental.pallas import triton as pltriton

      compiler_params = pltriton.CompilerParams(num_warps=_NUM_WARPS)
  out_shape = [jax.ShapeDtypeStruct((programs, p, channels, hp, wp), dtype),
               jax.ShapeDtypeStruct((programs, p, 2, hp, wp), jnp.int32),
               jax.ShapeDtypeStruct((programs, group, pp), jnp.int32),
               jax.ShapeDtypeStruct((programs, group, pp), jnp.int32)]
  out_specs = [pl.BlockSpec((1, p, channels, hp, wp), lambda i: (i, 0, 0, 0, 0)),
               pl.BlockSpec((1, p, 2, hp, wp), lambda i: (i, 0, 0, 0, 0)),
               pl.BlockSpec((1, group, pp), lambda i: (i, 0, 0)),
               pl.BlockSpec((1, group, pp), lambda i: (i, 0, 0))]
  if how == "offset":  # per-program scratch with a halo (the Triton lowering has no scratch memory)
    for planes in (channels, 2 * channels):
      out_shape.append(jax.ShapeDtypeStruct((programs, planes, hp + 2, wp + 2), dtype))
      out_specs.append(pl.BlockSpec((1, planes, hp + 2, wp + 2), lambda i: (i, 0, 0, 0)))
  b, act, steps, counts, *_ = pl.pallas_call(
      kernel,
      out_shape=tuple(out_shape),
      grid=(programs,),
      in_specs=[pl.BlockSpec((1, channels, hp, wp), lambda i: (i, 0, 0, 0))] + [scalars] * 3,
      out_specs=tuple(out_specs),
      compiler_params=compiler_params,
      interpret=interpret,
      name="iss_split_lbi",
  )(xp, thr, prm, jnp.reshape(jnp.asarray(maxiter, jnp.int32), (1,)))

  def unpack(a):  # (programs, P, planes, Hp, Wp) -> (N, P, planes, H, W)
    a = a[..., :height, :group * seg_width]
    a = a.reshape(*a.shape[:-1], group, seg_width)[..., :width]  # (programs, P, planes, H, G, W)
    a = jnp.moveaxis(a, 4, 1)  # (programs, G, P, planes, H, W)
    return a.reshape(programs * group, *a.shape[2:])[:n]

  b = jnp.moveaxis(unpack(b), 2, -1)
  active = unpack(act) > 0
  steps = steps.reshape(programs * group, pp)[:n, :p]
  counts = counts.reshape(programs * group, pp)[:n, :p]
  reached = jnp.asarray(_fractions(height, width))[counts]
  return b, active, steps, reached
