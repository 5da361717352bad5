"""``smooth`` and ``smooth_path``: ISS instance smoothing of images (paper Sec. 3.1)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax._src import lbi
from iss_jax._src.checks import check_fraction, check_image, is_concrete
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


def _endpoint_flags(x: Array, targets: Array) -> tuple[Array, Array]:
  """Which targets are answered without iterating: ``t >= 1`` (the input) or ``t <= 0`` / constant image
  (the per-channel mean)."""
  constant = jnp.all(x == x[:1, :1])
  to_input = targets >= 1.0
  to_mean = ((targets <= 0.0) | constant) & ~to_input
  return to_input, to_mean


def _path_one(x: Array, targets: Array, params: lbi.LBIParams, maxiter) -> tuple[Array, SmoothInfo]:
  """Image path of one ``(H, W, C)`` image at the ``(P,)`` targets, from one LBI run."""
  to_input, to_mean = _endpoint_flags(x, targets)
  loop_targets = jnp.where(to_input | to_mean, 0.0, targets)
  order = jnp.argsort(loop_targets)
  mean = jnp.broadcast_to(jnp.mean(x, axis=(0, 1), keepdims=True), x.shape)

  def visit(state, t):
    state = lbi.run(x, t, params, maxiter=maxiter, state=state)
    return state, (project(state.b, state.active), state.k, state.sparsity, state.sparsity < t)

  _, (outs, steps, reached, capped) = lax.scan(visit, lbi.init(x), loop_targets[order])
  inverse = jnp.argsort(order)
  outs, steps, reached, capped = (a[inverse] for a in (outs, steps, reached, capped))
  shape = (-1,) + (1,) * x.ndim
  outs = jnp.where(to_input.reshape(shape), x, jnp.where(to_mean.reshape(shape), mean, outs))
  skipped = to_input | to_mean
  info = SmoothInfo(
      steps=jnp.where(skipped, 0, steps),
      sparsity=jnp.where(to_input, 1.0, jnp.where(to_mean, 0.0, reached)),
      capped=capped & ~skipped,
  )
  return outs, info


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _path_bpda(x, targets, params, maxiter):
  return _path_one(x, targets, params, maxiter)


def _path_bpda_fwd(x, targets, params, maxiter):
  return _path_one(x, targets, params, maxiter), (targets, params)


def _path_bpda_bwd(maxiter, res, cotangents):
  targets, params = res
  d_out, _ = cotangents
  zeros = jax.tree_util.tree_map(jnp.zeros_like, (targets, params))
  return (jnp.sum(d_out, axis=0),) + zeros


_path_bpda.defvjp(_path_bpda_fwd, _path_bpda_bwd)


def _path_unrolled(x, targets, params, maxiter: int):
  """Differentiable path: a ``lax.scan`` of exactly ``maxiter`` steps that freezes each target's state."""
  to_input, to_mean = _endpoint_flags(lax.stop_gradient(x), targets)
  mean = jnp.broadcast_to(jnp.mean(x, axis=(0, 1), keepdims=True), x.shape)

  @jax.checkpoint
  def body(carry, _):
    state, saved_b, saved_active, saved_k, saved_s, done = carry
    hit = (state.sparsity >= targets) & ~done
    saved_b = jnp.where(hit[:, None, None, None], state.b, saved_b)
    saved_active = jnp.where(hit[:, None, None, None], state.active, saved_active)
    saved_k = jnp.where(hit, state.k, saved_k)
    saved_s = jnp.where(hit, state.sparsity, saved_s)
    done = done | hit
    return (lbi.step(state, x, params), saved_b, saved_active, saved_k, saved_s, done), None

  p = targets.shape[0]
  state = lbi.init(x)
  carry = (state, jnp.zeros((p,) + x.shape, x.dtype), jnp.zeros((p,) + state.active.shape, bool),
           jnp.zeros((p,), jnp.int32), jnp.zeros((p,), jnp.float32), to_input | to_mean)
  (state, saved_b, saved_active, saved_k, saved_s, done), _ = lax.scan(body, carry, None, maxiter)
  # Targets never reached within the scan take the final state (as the while loop does at its cap).
  final = (state.sparsity >= targets) & ~done
  capped = ~done & ~final
  keep = done[:, None, None, None]
  saved_b = jnp.where(keep, saved_b, state.b)
  saved_active = jnp.where(keep, saved_active, state.active)
  outs = jax.vmap(project)(saved_b, saved_active)
  shape = (-1,) + (1,) * x.ndim
  outs = jnp.where(to_input.reshape(shape), x, jnp.where(to_mean.reshape(shape), mean, outs))
  skipped = to_input | to_mean
  info = SmoothInfo(
      steps=jnp.where(skipped, 0, jnp.where(done, saved_k, state.k)),
      sparsity=jnp.where(to_input, 1.0,
                         jnp.where(to_mean, 0.0, jnp.where(done, saved_s, state.sparsity))),
      capped=capped & ~skipped,
  )
  return outs, info


def _smooth_batch(x4: Array, targets: Array, params: lbi.LBIParams, maxiter, gradient: str):
  """``(N, H, W, C)`` images, ``(P,)`` targets -> ``(N, P, H, W, C)`` images and ``(N, P)`` info."""
  if gradient == "bpda":
    fn = lambda img: _path_bpda(img, targets, params, maxiter)
  else:
    fn = lambda img: _path_unrolled(img, targets, params, maxiter)
  return jax.vmap(fn)(x4)


def _prepare(x, sparsities, kappa, nu, step_factor, maxiter, gradient):
  x = check_image(x, "x")
  if gradient not in ("bpda", "unrolled"):
    raise ValueError(f"gradient must be 'bpda' or 'unrolled'; got {gradient!r}.")
  if gradient == "unrolled" and not isinstance(maxiter, int):
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
  params = lbi.make_params(x4.shape[1], x4.shape[2], kappa=kappa, nu=nu, step_factor=step_factor,
                           dtype=x4.dtype)
  return x, x4, check_fraction(sparsities, "sparsity"), params


def smooth(x, sparsity=0.6, *, kappa=lbi.DEFAULT_KAPPA, nu=lbi.DEFAULT_NU,
           step_factor=lbi.DEFAULT_STEP_FACTOR, maxiter=lbi.DEFAULT_MAXITER, gradient="bpda",
           return_info=False):
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
    step_factor: ``c`` in ``alpha = c / (kappa ||H||_2)``, in ``(0, 2)``; 1 is the paper's step.
    maxiter: step cap per image. Reaching it before the target returns the projection of the last step
      and sets ``info.capped``.
    gradient: ``"bpda"`` (default): ``jax.grad`` sees the smoothing as the identity (straight-through,
      BPDA, Athalye et al. 2018), with the forward pass exact. ``"unrolled"``: the exact gradient of a
      run of at most ``maxiter`` steps (a ``lax.scan``, rematerialised), for adaptive attacks; needs a
      static int ``maxiter`` and runs all ``maxiter`` steps.
    return_info: also return a :class:`SmoothInfo`.

  Returns:
    The smoothed images, same shape and dtype as ``x``; with ``return_info``, ``(images, info)`` where the
    info fields have shape ``()`` for one image or ``(N,)`` for a batch.

  Raises:
    ValueError: bad rank or dtype, images under 2x2, NaN/Inf in ``x``, ``sparsity`` outside ``[0, 1]``,
      non-positive ``kappa``/``nu``/``step_factor``, ``step_factor >= 2``, or a bad ``gradient``. Value
      checks on traced arguments raise when the jitted call runs.

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
    Visual semantic learning via inverse scale space, Sec. 3.1, Eq. 3-6, Prop. 3.1.
  """
  if jnp.ndim(sparsity) != 0:
    raise ValueError(f"sparsity must be a scalar; got shape {jnp.shape(sparsity)}. "
                     "Use iss_jax.smooth_path for several sparsities.")
  out, info = smooth_path(x, jnp.reshape(jnp.asarray(sparsity), (1,)), kappa=kappa, nu=nu,
                          step_factor=step_factor, maxiter=maxiter, gradient=gradient,
                          return_info=True)
  out = out[0]
  info = jax.tree_util.tree_map(lambda a: a[0], info)
  return (out, info) if return_info else out


def smooth_path(x, sparsities, *, kappa=lbi.DEFAULT_KAPPA, nu=lbi.DEFAULT_NU,
                step_factor=lbi.DEFAULT_STEP_FACTOR, maxiter=lbi.DEFAULT_MAXITER, gradient="bpda",
                return_info=False):
  """The image path at several sparsities from ONE Split LBI run per image (paper Fig. 10).

  Args:
    x: as in :func:`smooth`.
    sparsities: ``(P,)`` targets in ``[0, 1]``, any order; may be traced.
    kappa, nu, step_factor, maxiter, gradient: as in :func:`smooth`.
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
  x, x4, targets, params = _prepare(x, sparsities, kappa, nu, step_factor, maxiter, gradient)
  if x4.shape[0] == 0:
    out = jnp.zeros((targets.shape[0],) + x.shape, x.dtype)
    empty = jnp.zeros((targets.shape[0], 0))
    info = SmoothInfo(empty.astype(jnp.int32), empty, empty.astype(bool))
    return (out, info) if return_info else out
  out, info = _smooth_batch(x4, targets, params, maxiter, gradient)  # (N, P, H, W, C), (N, P)
  out = jnp.moveaxis(out, 1, 0)
  info = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 1, 0), info)
  if x.ndim < 4:
    out = out[:, 0]
    info = jax.tree_util.tree_map(lambda a: a[:, 0], info)
    if x.ndim == 2:
      out = out[..., 0]
  out = out.astype(x.dtype)
  return (out, info) if return_info else out
