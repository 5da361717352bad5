"""Split LBI as a Pallas kernel: one program per image, its whole state kept in the program's block.

``implementation="pallas"`` of :func:`iss_jax.smooth`. The grid runs one program per image; the program
loads the image, keeps ``b`` and ``z`` (two edge planes, horizontal and vertical, per channel) as values of
its block (VMEM on TPU, registers/shared memory on GPU) and runs Split LBI to each of the image's targets
in turn, with the stopping rule :func:`iss_jax._src.definition.stop_reached` and the operation order of
:func:`iss_jax._src.lbi.step` (``z`` first, then ``b`` with ``D^T (z_{k+1} - z_k)``), like the CPU kernel.
At the first step where a target is reached it writes ``b``, the active-edge mask, the step and the
sparsity. The projection onto connected components is NOT in the kernel: it runs afterwards in JAX
(:func:`iss_jax._src.projection.project`), as for the XLA scheduler.

Layout inside a program: every value is a 2-D ``(Hp, Wp)`` plane, one per channel (the channel sum of the
group threshold is unrolled, as in ``lbi``), so no value has a channel axis: the shapes a GPU lowering
asks for (powers of two) and a TPU's 2-D tiles (W on the lanes) depend on H and W only. The image is
padded to ``(Hp, Wp) >= (H, W)`` (:func:`padded_size`) with masked edges: an edge with a padded end point
never has a non-zero difference, so its ``z`` stays exactly 0, it never activates, and the real pixels see
exactly the operations of the unpadded step. Shifts (:func:`_shift`) are rolls on CPU/TPU and products
with 0/1 shift matrices on GPU (Triton has no slice or roll; the product is exact), plus those masks.
The sparsity is looked up in a table of ``count / m`` (:func:`_fractions`), never divided in the kernel.
Targets, parameters and the table are read as scalars (scalar memory on TPU).

Status. Run only in Pallas interpret mode on CPU (no GPU or TPU was lent): there it stops every tested
real image at the readable definition's step with outputs equal to 1e-9 in float64, and at the XLA
scheduler's step in float32, for every padding and shift form (``tests/test_pallas_kernel.py``). It also
LOWERS for GPU (Triton) and TPU (Mosaic) without a device (tested), but it was never compiled by the GPU/
TPU backend nor timed, which is why ``implementation=None`` never picks it. Known limits: on GPU the
planes are padded to powers of two (at least 16) and a program holds ``(4 C) Hp Wp`` values (x, b, two z
planes per channel) plus temporaries in registers, which spill for 32x32x3 images at the default number
of warps (untuned); the matmul shifts cost ``O(Hp Wp (Hp + Wp))`` per plane and step. On TPU the lane
axis is padded to 128 (a 32x32 image fills a quarter of its tiles; packing several images per program
along the lanes would not waste it) and the grid is marked parallel (megacore).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from iss_jax._src.definition import stop_reached
from iss_jax._src.lbi import num_edges

Array = jax.Array


def padded_size(height: int, width: int, platform: str) -> tuple[int, int]:
  """``(Hp, Wp)`` the kernel pads an ``H x W`` image to: powers of two, at least 16, on GPU (``"cuda"``,
  ``"rocm"``: the Triton lowering's shape rule and its smallest ``dot``), ``(8, 128)`` multiples on TPU
  (its tile), unchanged elsewhere."""
  if platform in ("cuda", "rocm"):
    return max(16, 1 << (height - 1).bit_length()), max(16, 1 << (width - 1).bit_length())
  if platform == "tpu":
    return -(-height // 8) * 8, -(-width // 128) * 128
  return height, width


def _shift(a: Array, offset: int, axis: int, how: str) -> Array:
  """The ``(Hp, Wp)`` plane ``a`` moved so that position ``i`` holds ``a[i + offset]`` along ``axis``.

  What comes in at the border (wrapped around or zero) always lands on a masked edge, so the three forms
  give the same results: ``"roll"`` (``jnp.roll``), ``"tpu"`` (``pltpu.roll``, a lane/sublane rotation),
  ``"matmul"`` (a product with a 0/1 shift matrix at full float precision, exact: one ``a * 1`` and
  zeros per output; the Triton lowering has no slice or roll).
  """
  size = a.shape[axis]
  if how == "roll":
    return jnp.roll(a, -offset, axis)
  if how == "tpu":
    from jax.experimental.pallas import tpu as pltpu

    return pltpu.roll(a, (-offset) % size, axis)
  src = lax.broadcasted_iota(jnp.int32, (size, size), 0)
  dst = lax.broadcasted_iota(jnp.int32, (size, size), 1)
  if axis == 1:  # out[i, j] = sum_k a[i, k] [k == j + offset]
    return jnp.dot(a, (src == dst + offset).astype(a.dtype), precision=lax.Precision.HIGHEST)
  return jnp.dot((dst == src + offset).astype(a.dtype), a, precision=lax.Precision.HIGHEST)


def shift_form(platform: str) -> str:
  """How the kernel shifts planes on ``platform``: see :func:`_shift`."""
  return {"tpu": "tpu", "cuda": "matmul", "rocm": "matmul"}.get(platform, "roll")


def _kernel(x_ref, t_ref, prm_ref, maxiter_ref, frac_ref, b_ref, act_ref, k_ref, s_ref, *, height, width,
            how):
  """Image ``i = program_id(0)``: ``x_ref`` ``(1, C, Hp, Wp)``; ``t_ref`` the whole ``(N, P)`` targets,
  ``prm_ref`` ``(3,)`` (kappa, nu, alpha), ``maxiter_ref`` ``(1,)``, ``frac_ref`` ``(m + 1,)`` float32
  (the sparsity of each active-edge count; all four in scalar memory on TPU); writes
  ``b_ref`` ``(1, P, C, Hp, Wp)``, ``act_ref`` ``(1, P, 2, Hp, Wp)`` int32 and ``k_ref`` / ``s_ref``
  ``(1, 1, Pp)`` (``Pp >= P`` a power of two; the tail is left 0)."""
  channels, hp, wp = x_ref.shape[1:]
  p = t_ref.shape[1]
  pp = k_ref.shape[2]
  image = pl.program_id(0)
  dtype = x_ref.dtype
  kappa, nu, alpha = prm_ref[0], prm_ref[1], prm_ref[2]
  maxiter = maxiter_ref[0]
  xs = [x_ref[0, c] for c in range(channels)]
  row = lax.broadcasted_iota(jnp.int32, (hp, wp), 0)
  col = lax.broadcasted_iota(jnp.int32, (hp, wp), 1)
  hmask = (row < height) & (col < width - 1)  # real horizontal edges (i, j) -> (i, j + 1)
  vmask = (row < height - 1) & (col < width)  # real vertical edges (i, j) -> (i + 1, j)
  zero = jnp.zeros((hp, wp), dtype)

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

  def sparsity(zh, zv):  # lbi.edge_sparsity(lbi.support(z)), count / m looked up (see _fractions)
    count = jnp.sum((group_sq(zh) > 1.0).astype(jnp.int32)) + jnp.sum((group_sq(zv) > 1.0).astype(jnp.int32))
    return frac_ref[count]

  def step(b, zh, zv):  # lbi.step, plane by plane
    gh, gv = gamma(zh), gamma(zv)
    new_b, new_zh, new_zv = [], [], []
    for c in range(channels):
      dh = jnp.where(hmask, _shift(b[c], 1, 1, how) - b[c], zero)  # b[i, j + 1] - b[i, j]
      dv = jnp.where(vmask, _shift(b[c], 1, 0, how) - b[c], zero)  # b[i + 1, j] - b[i, j]
      zh_c = zh[c] + alpha * ((dh - gh[c]) / nu)
      zv_c = zv[c] + alpha * ((dv - gv[c]) / nu)
      rh, rv = zh_c - zh[c], zv_c - zv[c]  # alpha r; zero on every masked edge
      dt = _shift(rh, -1, 1, how) - rh + _shift(rv, -1, 0, how) - rv  # D^T (z_{k+1} - z_k)
      new_b.append(b[c] - kappa * (alpha * (b[c] - xs[c]) + dt))
      new_zh.append(zh_c)
      new_zv.append(zv_c)
    return new_b, new_zh, new_zv

  def body(carry):
    b, zh, zv, k, s, j, ks, ss = carry
    hit = stop_reached(s, t_ref[image, j], k, maxiter)

    def record(_):
      for c in range(channels):
        b_ref[0, j, c] = b[c]
      act_ref[0, j, 0] = (group_sq(zh) > 1.0).astype(jnp.int32)
      act_ref[0, j, 1] = (group_sq(zv) > 1.0).astype(jnp.int32)
      slot = lax.broadcasted_iota(jnp.int32, (1, 1, pp), 2) == j
      return b, zh, zv, k, s, j + 1, jnp.where(slot, k, ks), jnp.where(slot, s, ss)

    def advance(_):
      nb, nzh, nzv = step(b, zh, zv)
      return nb, nzh, nzv, k + 1, sparsity(nzh, nzv), j, ks, ss

    return lax.cond(hit, record, advance, None)

  planes = [zero] * channels
  carry = (planes, planes, planes, jnp.int32(0), jnp.float32(0.0), jnp.int32(0),
           jnp.zeros((1, 1, pp), jnp.int32), jnp.zeros((1, 1, pp), jnp.float32))
  carry = lax.while_loop(lambda c: c[5] < p, body, carry)
  k_ref[...] = carry[6]
  s_ref[...] = carry[7]


def _fractions(height: int, width: int) -> np.ndarray:
  """``count / m`` in float32, correctly rounded, for every count ``0..m`` of active edges.

  The kernel looks the sparsity up instead of dividing: compilers rewrite a division by the constant
  ``m`` as a product with its rounded reciprocal (XLA on CPU does: ``22 / 110`` becomes ``0.19999999``)
  and GPUs divide approximately by default, and either moves the stop when ``target * m`` is a whole
  number. The table is the definition's ``active.mean()`` rounded once to float32.
  """
  m = num_edges(height, width)
  return (np.arange(m + 1, dtype=np.float64) / m).astype(np.float32)


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
      form (:func:`shift_form`) and the compiler parameters.
    interpret: run the kernel in Pallas interpret mode (CPU, tests).
    how: the shift form, overriding :func:`shift_form` (tests run each form in interpret mode).

  Returns:
    ``(b, active, steps, sparsity)`` at the step each target was reached: ``(N, P, H, W, C)``,
    ``(N, P, 2, H, W)`` bool (``lbi.support``), ``(N, P)`` int32 and ``(N, P)`` float32, as the XLA
    scheduler returns them; the projection is left to the caller.
  """
  n, height, width, channels = x4.shape
  p = loop_targets.shape[1]
  dtype = x4.dtype
  hp, wp = padded_size(height, width, platform)
  pp = 1 << (p - 1).bit_length()
  xp = jnp.moveaxis(x4, 3, 1)
  xp = jnp.pad(xp, ((0, 0), (0, 0), (0, hp - height), (0, wp - width)))
  prm = jnp.stack([jnp.asarray(v, dtype) for v in (kappa, nu, alpha)])
  kernel = functools.partial(_kernel, height=height, width=width, how=how or shift_form(platform))
  if platform == "tpu":
    from jax.experimental.pallas import tpu as pltpu

    scalars = pl.BlockSpec(memory_space=pltpu.SMEM)  # whole array, read as scalars
    compiler_params = pltpu.CompilerParams(dimension_semantics=("parallel",))
  else:
    scalars = pl.BlockSpec()  # whole array
    compiler_params = None
    if platform in ("cuda", "rocm") and not interpret:
      from jax.experimental.pallas import triton as pltriton

      compiler_params = pltriton.CompilerParams()
  b, act, steps, reached = pl.pallas_call(
      kernel,
      out_shape=(jax.ShapeDtypeStruct((n, p, channels, hp, wp), dtype),
                 jax.ShapeDtypeStruct((n, p, 2, hp, wp), jnp.int32),
                 jax.ShapeDtypeStruct((n, 1, pp), jnp.int32),
                 jax.ShapeDtypeStruct((n, 1, pp), jnp.float32)),
      grid=(n,),
      in_specs=[pl.BlockSpec((1, channels, hp, wp), lambda i: (i, 0, 0, 0))] + [scalars] * 4,
      out_specs=(pl.BlockSpec((1, p, channels, hp, wp), lambda i: (i, 0, 0, 0, 0)),
                 pl.BlockSpec((1, p, 2, hp, wp), lambda i: (i, 0, 0, 0, 0)),
                 pl.BlockSpec((1, 1, pp), lambda i: (i, 0, 0)),
                 pl.BlockSpec((1, 1, pp), lambda i: (i, 0, 0))),
      compiler_params=compiler_params,
      interpret=interpret,
      name="iss_split_lbi",
  )(xp, loop_targets, prm, jnp.reshape(jnp.asarray(maxiter, jnp.int32), (1,)),
    jnp.asarray(_fractions(height, width)))
  b = jnp.moveaxis(b[..., :height, :width], 2, -1)
  active = act[..., :height, :width] > 0
  return b, active, steps[:, 0, :p], reached[:, 0, :p]
