"""Gaussian low-pass filtering: the simplest test-time preprocessing baseline (differentiable,
linear)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from iss_jax._src.checks import check_image, is_concrete

Array = jax.Array


def _kernel(sigma, radius: int, dtype) -> Array:
  t = jnp.arange(-radius, radius + 1, dtype=dtype)
  k = jnp.exp(-0.5 * (t / jnp.maximum(sigma, 1e-12)) ** 2)
  return k / jnp.sum(k)


def _reflect_pad(x4: Array, radius: int, axis: int) -> Array:
  """``scipy.ndimage`` 'reflect' padding (``d c b a | a b c d | d c b a``), repeated for large
  radii."""
  n = x4.shape[axis]
  idx = jnp.arange(-radius, n + radius)
  period = 2 * n
  idx = jnp.mod(idx, period)
  idx = jnp.where(idx >= n, period - 1 - idx, idx)
  return jnp.take(x4, idx, axis=axis)


def gaussian_lowpass(x, sigma, *, truncate: float = 4.0, radius: int | None = None) -> Array:
  """Blurs images with a separable Gaussian of standard deviation ``sigma`` pixels, per channel.

  Matches ``scipy.ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="reflect", truncate=truncate)``
  per image. Linear and exactly differentiable, so attacks see its true gradient.

  Args:
    x: ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)`` float, values in ``[0, 1]`` by convention.
    sigma: standard deviation in pixels, scalar ``>= 0``; 0 returns ``x``. May be traced if
      ``radius`` is given.
    truncate: the kernel extends ``truncate`` standard deviations (as in scipy).
    radius: kernel half-width in pixels (static); default ``int(truncate * sigma + 0.5)``, which
      needs a concrete ``sigma``.

  Returns:
    The filtered images, same shape and dtype as ``x``.

  Raises:
    ValueError: bad image, a negative or non-scalar ``sigma``, or a traced ``sigma`` without
      ``radius``.

  Examples:
    >>> import jax, iss_jax
    >>> x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    >>> iss_jax.baselines.gaussian_lowpass(x, 1.0).shape
    (2, 8, 8, 3)
  """
  x = check_image(x, "x")
  if jnp.ndim(sigma) != 0:
    raise ValueError(f"sigma must be a scalar; got shape {jnp.shape(sigma)}.")
  if radius is None:
    if not is_concrete(sigma):
      raise ValueError("sigma is traced: pass a static radius= (kernel half-width in pixels).")
    if float(sigma) < 0 or math.isnan(float(sigma)):
      raise ValueError(f"sigma must be >= 0; got {float(sigma)}.")
    radius = int(truncate * float(sigma) + 0.5)
  if not isinstance(radius, int) or radius < 0:
    raise ValueError(f"radius must be a non-negative int; got {radius!r}.")
  if radius == 0:
    return x
  x4 = {2: lambda a: a[None, :, :, None], 3: lambda a: a[None], 4: lambda a: a}[x.ndim](x)
  k = _kernel(jnp.asarray(sigma, x.dtype), radius, x.dtype)
  h, w = x4.shape[1:3]
  xp = _reflect_pad(x4, radius, 1)
  x4 = sum(k[i] * xp[:, i:i + h] for i in range(2 * radius + 1))
  xp = _reflect_pad(x4, radius, 2)
  x4 = sum(k[i] * xp[:, :, i:i + w] for i in range(2 * radius + 1))
  return x4.reshape(x.shape).astype(x.dtype)
