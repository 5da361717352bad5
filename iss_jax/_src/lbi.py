"""Split Linearized Bregman Iteration (Split LBI) on the 4-neighbour TV graph of an image.

The solver follows the jaxopt pattern: a state ``NamedTuple``, ``init``, ``step`` and ``run``. Everything
here is written for ONE image ``(H, W, C)``; ``jax.vmap`` batches it, and the functions also accept
trailing batch axes ``(H, W, C, *B)``, the batch-last layout the scheduler in ``iss_jax._src.smooth``
uses (no transposes, every operation over contiguous images).

Edges are stored as a ``(2, H, W, C)`` array: ``[0]`` holds the horizontal edge from pixel ``(i, j)`` to
``(i, j + 1)``, ``[1]`` the vertical edge from ``(i, j)`` to ``(i + 1, j)``. The last column of ``[0]``
and the last row of ``[1]`` are padding: ``D b`` is zero there, so ``z`` and ``g`` stay exactly zero and
the padded slots never count as active edges. This keeps every array the same shape as the image, so the
step is a handful of fused element-wise operations with shifts (pad/slice), no scatter and no matrices.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from iss_jax._src.definition import stop_reached

Array = jax.Array

DEFAULT_KAPPA = 10.0
DEFAULT_NU = 1.0
# alpha = c / (kappa ||H||_2). The paper uses c = 1; c = 1.9 (still < 2, the stability bound) reaches the
# same projected images in about half the steps (benchmarks/bench_step_factor.py measures both).
DEFAULT_STEP_FACTOR = 1.9
# Step cap of a 32x32 colour image (default_maxiter scales it for larger and one-channel images). Images
# with large flat areas (edges with D x = 0 activate late, if ever) can need far more steps than typical
# ones and are reported as capped (info.capped) with the projection of their last step.
DEFAULT_MAXITER = 20_000


def default_maxiter(height: int, width: int, channels: int) -> int:
  """The default step cap of an ``H x W x C`` image: :data:`DEFAULT_MAXITER` (20,000) for a 32x32 colour
  image, times the fourth root of the pixel count above 32x32, times 2 for one channel, rounded up to a
  thousand: 33,000 at 84x84 and 53,000 at 224x224 in colour; 40,000, 65,000 and 106,000 in grey.

  Why. An edge activates after about ``1 / (alpha ||D x_e||)`` steps. A larger picture of the same scene
  has smaller differences between neighbours, so the steps grow with the size, slowly; one channel has a
  smaller group norm than three, so grey needs about twice the steps of colour. A capped image costs
  ``maxiter`` steps, so the cap also bounds the worst case. ``benchmarks/bench_large_images.py`` measures
  the steps of real photographs at each size against this rule.

  Args:
    height: image height ``H`` (static int).
    width: image width ``W`` (static int).
    channels: channels ``C`` (static int).

  Returns:
    The cap, an int.

  Examples:
    >>> from iss_jax._src import lbi
    >>> lbi.default_maxiter(32, 32, 3), lbi.default_maxiter(84, 84, 3), lbi.default_maxiter(224, 224, 1)
    (20000, 33000, 106000)
  """
  scale = max(1.0, (height * width / 1024) ** 0.25) * (2 if channels == 1 else 1)
  return int(math.ceil(DEFAULT_MAXITER * scale / 1000) * 1000)


class LBIState(NamedTuple):
  """State of Split LBI for one image (``vmap`` adds a batch axis).

  ``g = kappa * prox(z)`` and the support of ``g`` are functions of ``z`` (:func:`gamma`, :func:`support`),
  so they are recomputed rather than stored: the step is memory-bound and this saves a third of its traffic.

  Attributes:
    b: ``(H, W, C)`` float, the image estimate ``beta_k``.
    z: ``(2, H, W, C)`` float, the Bregman dual variable of every edge (horizontal, vertical).
    sparsity: ``()`` float32, fraction of the ``H (W - 1) + (H - 1) W`` edges whose group ``g`` is non-zero.
    k: ``()`` int32, number of steps taken.
  """

  b: Array
  z: Array
  sparsity: Array
  k: Array


class LBIParams(NamedTuple):
  """Traced scalar hyper-parameters (changing them never recompiles).

  Attributes:
    kappa: damping factor ``kappa`` (paper: 10).
    nu: splitting weight ``nu`` (paper: 1).
    alpha: step size ``alpha = step_factor / (kappa * ||H||_2)``.
  """

  kappa: Array
  nu: Array
  alpha: Array


def num_edges(height: int, width: int) -> int:
  """Number of 4-neighbour edges ``m = H (W - 1) + (H - 1) W`` of an ``H x W`` grid."""
  return height * (width - 1) + (height - 1) * width


def hessian_norm(height: int, width: int, nu=DEFAULT_NU, dtype=jnp.float32) -> Array:
  """Spectral norm of the Hessian of ``L(b, g) = 1/2 ||b - x||^2 + 1/(2 nu) ||D b - g||^2``.

  The Hessian is ``[[I + D^T D / nu, -D^T / nu], [-D / nu, I / nu]]``. On each eigenvector of the grid
  Laplacian ``D^T D`` (eigenvalue ``lam``) it acts as the 2x2 block ``[[1 + lam/nu, -sqrt(lam)/nu],
  [-sqrt(lam)/nu, 1/nu]]`` with trace ``T = 1 + (1 + lam)/nu`` and determinant ``1/nu``; the largest
  eigenvalue is ``(T + sqrt(T^2 - 4/nu)) / 2`` at the largest Laplacian eigenvalue
  ``lam = 4 sin^2(pi (H-1) / (2H)) + 4 sin^2(pi (W-1) / (2W))`` (Neumann grid). Edges outside the range of
  ``D`` contribute ``1/nu``, which is never larger.

  Args:
    height: image height ``H`` (static int).
    width: image width ``W`` (static int).
    nu: splitting weight, may be traced.

  Returns:
    ``()`` float, ``||H||_2`` (about 9.88 for a 32x32 image with ``nu = 1``).
  """
  lam = 4.0 * math.sin(math.pi * (height - 1) / (2 * height)) ** 2
  lam += 4.0 * math.sin(math.pi * (width - 1) / (2 * width)) ** 2
  nu = jnp.asarray(nu, dtype)
  trace = 1.0 + (1.0 + lam) / nu
  return 0.5 * (trace + jnp.sqrt(trace * trace - 4.0 / nu))


def make_params(height: int, width: int, *, kappa=DEFAULT_KAPPA, nu=DEFAULT_NU,
                step_factor=DEFAULT_STEP_FACTOR, dtype=jnp.float32) -> LBIParams:
  """Builds :class:`LBIParams`: ``alpha = step_factor / (kappa ||H||_2)`` (paper: ``step_factor = 1``)."""
  kappa = jnp.asarray(kappa, dtype)
  nu = jnp.asarray(nu, dtype)
  alpha = jnp.asarray(step_factor, dtype) / (kappa * hessian_norm(height, width, nu, dtype))
  return LBIParams(kappa=kappa, nu=nu, alpha=alpha)


def _pad(a: Array, axis: int, before: int, after: int) -> Array:
  widths = [(0, 0)] * a.ndim
  widths[axis] = (before, after)
  return jnp.pad(a, widths)


def _trailing(v: Array, ndim: int) -> Array:
  """A scalar or a ``(*B,)`` per-image parameter, shaped to broadcast against ``(..., *B)`` of ``ndim``."""
  v = jnp.asarray(v)
  return v.reshape((1,) * (ndim - v.ndim) + v.shape)


def tv_grad(b: Array) -> Array:
  """``D b`` as a ``(2, H, W, C, *B)`` edge array (zero on the padding slots) for ``b`` ``(H, W, C, *B)``."""
  dh = _pad(b[:, 1:] - b[:, :-1], 1, 0, 1)
  dv = _pad(b[1:] - b[:-1], 0, 0, 1)
  return jnp.stack([dh, dv])


def tv_grad_transpose(r: Array) -> Array:
  """``D^T r`` for an edge array ``r`` of shape ``(2, H, W, C, *B)`` whose padding slots are zero."""
  rh, rv = r[0], r[1]
  return _pad(rh[:, :-1], 1, 1, 0) - rh + _pad(rv[:-1], 0, 1, 0) - rv


def _group_sq(z: Array) -> Array:
  """``||z_e||^2`` over the channel axis 3 of ``(2, H, W, C, *B)``, as an unrolled sum (it fuses)."""
  sq = z[:, :, :, 0] * z[:, :, :, 0]
  for c in range(1, z.shape[3]):
    sq = sq + z[:, :, :, c] * z[:, :, :, c]
  return sq


def support(z: Array) -> Array:
  """Active edges ``||z_e||_2 > 1`` (``g_e != 0``): ``(2, H, W, *B)`` bool for ``z`` ``(2, H, W, C, *B)``."""
  return _group_sq(z) > 1.0


def gamma(z: Array, kappa) -> Array:
  """``g = kappa * prox(z)``: group soft threshold of each edge across the channel axis (Eq. 5-6).

  ``prox(z)_e = (1 - 1 / ||z_e||_2)_+ z_e``; for one channel this is ``sign(z) max(|z| - 1, 0)``.
  """
  sq = _group_sq(z)
  active = sq > 1.0
  scale = jnp.where(active, 1.0 - lax.rsqrt(jnp.where(active, sq, 1.0)), 0.0)
  return _trailing(kappa, z.ndim) * jnp.expand_dims(scale, 3) * z


def edge_sparsity(active: Array) -> Array:
  """Fraction of the real (non-padding) edges that are active; ``active`` is ``(2, H, W, *B)``.

  ``count / m`` correctly rounded to float32 (as the CPU kernel and the definition compute it), read
  from a table: XLA compiles a division by the constant ``m`` into a multiplication by ``1 / m``, which
  is off by one ulp for some counts (22 / 110 gave 0.19999999) and so missed targets such as 0.2 that
  ``count`` meets exactly.
  """
  _, height, width = active.shape[:3]
  m = num_edges(height, width)
  count = jnp.sum(active, axis=(0, 1, 2), dtype=jnp.int32)
  table = jnp.asarray(np.arange(m + 1, dtype=np.float32) / np.float32(max(m, 1)))
  return table[count]


def init(x: Array) -> LBIState:
  """Initial state ``b_0 = z_0 = 0`` (so ``g_0 = 0``) for an image ``x`` of shape ``(H, W, C, *B)``."""
  return LBIState(
      b=jnp.zeros_like(x),
      z=jnp.zeros((2,) + x.shape, x.dtype),
      sparsity=jnp.zeros(x.shape[3:], jnp.float32),
      k=jnp.zeros(x.shape[3:], jnp.int32),
  )


def step(state: LBIState, x: Array, params: LBIParams) -> LBIState:
  """One Split LBI step (Eq. 3): ``b -= kappa alpha grad_b L``, ``z -= alpha grad_g L``, ``g = kappa prox z``.

  With ``r = (D b - g) / nu``: ``grad_b L = b - x + D^T r`` and ``grad_g L = -r``.

  The image is ``(H, W, C)``; trailing batch axes ``(H, W, C, *B)`` are allowed too (with ``params``
  fields scalar or ``(*B,)``). Batch-last is the layout the batched scheduler uses: every operation then
  runs over contiguous images, with no transposes, which ``vmap`` over a leading axis would insert.

  Args:
    state: current :class:`LBIState`.
    x: ``(H, W, C)`` (or ``(H, W, C, *B)``) float, the image being smoothed.
    params: :class:`LBIParams`. ``alpha = 0`` leaves ``b`` and ``z`` exactly unchanged (the batched
      scheduler freezes finished images this way).

  Returns:
    The next :class:`LBIState`.

  Note:
    ``z`` is updated first and ``b`` uses ``alpha D^T r = D^T (z_{k+1} - z_k)``, equal in exact
    arithmetic; it lets XLA compile each update as a single fused loop (faster on CPU). The
    rounding of the difference adds a relative error of about ``eps |z| / |alpha r|`` to ``r`` in ``b``'s
    update, far below the pixel quantum (1e-5 against 4e-3 in float32; 1e-13 in float64).
  """
  kappa = _trailing(params.kappa, x.ndim)
  nu = _trailing(params.nu, x.ndim + 1)
  alpha_e = _trailing(params.alpha, x.ndim + 1)
  r = (tv_grad(state.b) - gamma(state.z, params.kappa)) / nu
  z = state.z + alpha_e * r
  b = state.b - kappa * (_trailing(params.alpha, x.ndim) * (state.b - x) + tv_grad_transpose(z - state.z))
  return LBIState(b=b, z=z, sparsity=edge_sparsity(support(z)), k=state.k + 1)


def run(x: Array, target, params: LBIParams, *, maxiter=DEFAULT_MAXITER,
        state: LBIState | None = None) -> LBIState:
  """Iterates until the edge sparsity first reaches ``target`` (or ``state.k`` reaches ``maxiter``).

  Args:
    x: ``(H, W, C)`` float image.
    target: ``()`` float sparsity in ``[0, 1]``, may be traced.
    params: :class:`LBIParams`.
    maxiter: total step cap (counted from ``k = 0``, so a resumed state keeps its count); may be traced.
    state: state to resume from; ``init(x)`` when omitted.

  Returns:
    The state at the first step ``k`` with ``sparsity_k >= target``, or at ``k = maxiter``.

  Examples:
    >>> import jax, iss_jax
    >>> x = jax.random.uniform(jax.random.key(0), (8, 8, 3))
    >>> params = iss_jax.lbi_params(8, 8)
    >>> state = iss_jax.lbi_run(x, 0.5, params)
    >>> bool(state.sparsity >= 0.5)
    True
  """
  if state is None:
    state = init(x)
  cond = lambda s: ~stop_reached(s.sparsity, target, s.k, maxiter)
  return lax.while_loop(cond, lambda s: step(s, x, params), state)
