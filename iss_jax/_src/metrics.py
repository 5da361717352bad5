"""Image quality metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def psnr(a, b, *, max_val: float = 1.0) -> Array:
  """Per-image PSNR in dB, ``10 log10(max_val^2 / MSE)`` (paper Eq. 8).

  Args:
    a: ``(N, H, W, C)`` images (or one ``(H, W, C)`` image).
    b: reference images of the same shape.
    max_val: peak value (1 for images in ``[0, 1]``).

  Returns:
    ``(N,)`` float32 (``()`` for one image); identical images give a large finite value (MSE floored at
    1e-20).

  Raises:
    ValueError: if the shapes differ or the rank is not 3 or 4.

  Examples:
    >>> import jax.numpy as jnp, iss_jax
    >>> float(iss_jax.psnr(jnp.zeros((1, 2, 2, 1)), jnp.full((1, 2, 2, 1), 0.1))[0])
    20.0...
  """
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.shape != b.shape or a.ndim not in (3, 4):
    raise ValueError(f"a and b must be (N, H, W, C) or (H, W, C) of the same shape; got {a.shape} and "
                     f"{b.shape}.")
  mse = jnp.mean((a - b) ** 2, axis=(-3, -2, -1))
  return 10.0 * jnp.log10(max_val**2 / jnp.maximum(mse, 1e-20))
