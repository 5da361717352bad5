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
largest difference) rather than requiring zero. TPU: the lane axis is padded to 128, so a 32x32 image
fills a quarter of its tiles; the TPU-friendly layout is several images per program side by side on the
lanes (four 32-wide images per 128-lane tile, the masks per 32-lane segment, rolls that never cross a
segment's used edges), not done here; the grid is marked parallel (megacore).
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


def _kernel(x_ref, thr_ref, prm_ref, maxiter_ref, *refs, height, width, how, sync):
  """Image ``i = program_id(0)``: ``x_ref`` ``(1, C, Hp, Wp)``; ``thr_ref`` the whole ``(N, P)`` int32
  thresholds (a target is reached when the active-edge count is at least its threshold), ``prm_ref``
  ``(3,)`` (kappa, nu, alpha), ``maxiter_ref`` ``(1,)`` (all three in scalar memory on TPU); writes
  ``b_ref`` ``(1, P, C, Hp, Wp)``, ``act_ref`` ``(1, P, 2, Hp, Wp)`` int32 and ``k_ref`` / ``n_ref``
  ``(1, 1, Pp)`` int32 (steps and active-edge counts; ``Pp >= P`` a power of two, the tail left 0). The
  ``"offset"`` form also gets its scratch: ``bs_ref`` ``(1, C, Hp + 2, Wp + 2)`` and ``rs_ref``
  ``(1, 2 C, Hp + 2, Wp + 2)``, written interior first."""
  b_ref, act_ref, k_ref, n_ref, *scratch = refs
  channels, hp, wp = x_ref.shape[1:]
  p = thr_ref.shape[1]
  pp = k_ref.shape[2]
  image = pl.program_id(0)
  dtype = x_ref.dtype
  kappa, nu, alpha = prm_ref[0], prm_ref[1], prm_ref[2]
  maxiter = maxiter_ref[0]
  row = lax.broadcasted_iota(jnp.int32, (hp, wp), 0)
  col = lax.broadcasted_iota(jnp.int32, (hp, wp), 1)
  hmask = (row < height) & (col < width - 1)  # real horizontal edges (i, j) -> (i, j + 1)
  vmask = (row < height - 1) & (col < width)  # real vertical edges (i, j) -> (i + 1, j)
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

  def count(zh, zv):  # active edges, an integer sum (lbi.support, summed)
    return (jnp.sum((group_sq(zh) > 1.0).astype(jnp.int32), dtype=jnp.int32)
            + jnp.sum((group_sq(zv) > 1.0).astype(jnp.int32), dtype=jnp.int32))

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

  def body(carry):
    b, zh, zv, k, n, j, ks, ns = carry
    # definition.stop_reached in integers: table[n] >= target  <=>  n >= threshold (the table increases).
    hit = (n >= thr_ref[image, j]) | (k >= maxiter)

    def record(_):
      for c in range(channels):
        b_ref[0, j, c] = b[c]
      act_ref[0, j, 0] = (group_sq(zh) > 1.0).astype(jnp.int32)
      act_ref[0, j, 1] = (group_sq(zv) > 1.0).astype(jnp.int32)
      slot = lax.broadcasted_iota(jnp.int32, (1, 1, pp), 2) == j
      return b, zh, zv, k, n, j + 1, jnp.where(slot, k, ks), jnp.where(slot, n, ns)

    def advance(_):
      nb, nzh, nzv = step(b, zh, zv)
      return nb, nzh, nzv, k + 1, count(nzh, nzv), j, ks, ns

    return lax.cond(hit, record, advance, None)

  planes = [zero] * channels
  carry = (planes, planes, planes, jnp.int32(0), jnp.int32(0), jnp.int32(0),
           jnp.zeros((1, 1, pp), jnp.int32), jnp.zeros((1, 1, pp), jnp.int32))
  carry = lax.while_loop(lambda c: c[5] < p, body, carry)
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


@functools.partial(jax.jit, static_argnames=("platform", "interpret", "how"))
def smooth_targets(x4: Array, loop_targets: Array, kappa, nu, alpha, maxiter, *, platform: str = "cpu",
                   interpret: bool = True, how: str | None = None):
  """Runs Split LBI on every image to each of its targets, one Pallas program per image.

  Args:
    x4: ``(N, H, W, C)`` float images.
    loop_targets: ``(N, P)`` targets per image, visited in column order; one that is already reached
      (e.g. -1) is recorded at once, at the current step.
    kappa, nu, alpha: scalar :class:`iss_jax._src.lbi.LBIParams` fields (traced).
    maxiter: ``()`` int step cap (traced).
    platform: the platform lowered for (static): decides the padding (:func:`padded_size`), the shift
      form (:func:`shift_form`), the barriers and the compiler parameters.
    interpret: run the kernel in Pallas interpret mode (CPU, tests).
    how: the shift form (``"offset"``, ``"roll"``, ``"tpu"``), overriding :func:`shift_form` (tests run
      each form in interpret mode).

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
  hp, wp = padded_size(height, width, platform)
  pp = 1 << (p - 1).bit_length()
  xp = jnp.moveaxis(x4, 3, 1)
  xp = jnp.pad(xp, ((0, 0), (0, 0), (0, hp - height), (0, wp - width)))
  prm = jnp.stack([jnp.asarray(v, dtype) for v in (kappa, nu, alpha)])
  gpu = platform in ("cuda", "rocm") and not interpret
  kernel = functools.partial(_kernel, height=height, width=width, how=how, sync=gpu)
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
  out_shape = [jax.ShapeDtypeStruct((n, p, channels, hp, wp), dtype),
               jax.ShapeDtypeStruct((n, p, 2, hp, wp), jnp.int32),
               jax.ShapeDtypeStruct((n, 1, pp), jnp.int32),
               jax.ShapeDtypeStruct((n, 1, pp), jnp.int32)]
  out_specs = [pl.BlockSpec((1, p, channels, hp, wp), lambda i: (i, 0, 0, 0, 0)),
               pl.BlockSpec((1, p, 2, hp, wp), lambda i: (i, 0, 0, 0, 0)),
               pl.BlockSpec((1, 1, pp), lambda i: (i, 0, 0)),
               pl.BlockSpec((1, 1, pp), lambda i: (i, 0, 0))]
  if how == "offset":  # per-program scratch with a halo (the Triton lowering has no scratch memory)
    for planes in (channels, 2 * channels):
      out_shape.append(jax.ShapeDtypeStruct((n, planes, hp + 2, wp + 2), dtype))
      out_specs.append(pl.BlockSpec((1, planes, hp + 2, wp + 2), lambda i: (i, 0, 0, 0)))
  b, act, steps, counts, *_ = pl.pallas_call(
      kernel,
      out_shape=tuple(out_shape),
      grid=(n,),
      in_specs=[pl.BlockSpec((1, channels, hp, wp), lambda i: (i, 0, 0, 0))] + [scalars] * 3,
      out_specs=tuple(out_specs),
      compiler_params=compiler_params,
      interpret=interpret,
      name="iss_split_lbi",
  )(xp, thresholds(loop_targets, height, width), prm, jnp.reshape(jnp.asarray(maxiter, jnp.int32), (1,)))
  b = jnp.moveaxis(b[..., :height, :width], 2, -1)
  active = act[..., :height, :width] > 0
  reached = jnp.asarray(_fractions(height, width))[counts[:, 0, :p]]
  return b, active, steps[:, 0, :p], reached
