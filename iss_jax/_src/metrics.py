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
    max_val: peak value: a scalar (1 for images in ``[0, 1]``, the field's convention) or ``(N,)``, one
      per image. The main paper's App. K uses the peak of the original image, ``MAX = max X`` (Eq. 8b):
      pass ``max_val=x.max(axis=(1, 2, 3))`` for originals ``x``; it gives about 0.5 dB less than 1 on
      CIFAR-10.

  Returns:
    ``(N,)`` float32 (``()`` for one image); identical images give a large finite value (MSE floored at
    1e-20).

  Raises:
    ValueError: if the shapes differ or the rank is not 3 or 4.

  Examples:
    >>> import jax.numpy as jnp, iss_jax
    >>> float(iss_jax.psnr(jnp.zeros((1, 2, 2, 1)), jnp.full((1, 2, 2, 1), 0.1))[0])
    20.0...
    >>> x = jnp.full((2, 2, 2, 1), 0.5)                    # a peak of 0.5: 6.02 dB below the peak 1
    >>> [round(float(v), 2) for v in iss_jax.psnr(x + 0.05, x, max_val=x.max(axis=(1, 2, 3)))]
    [20.0, 20.0]
  """
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.shape != b.shape or a.ndim not in (3, 4):
    raise ValueError(f"a and b must be (N, H, W, C) or (H, W, C) of the same shape; got {a.shape} and "
                     f"{b.shape}.")
  mse = jnp.mean((a - b) ** 2, axis=(-3, -2, -1))
  max_val = jnp.asarray(max_val, jnp.float32)
  if max_val.shape not in ((), mse.shape):
    raise ValueError(f"max_val must be a scalar or one peak per image, shape {mse.shape}; got shape "
                     f"{max_val.shape}.")
  return 10.0 * jnp.log10(max_val**2 / jnp.maximum(mse, 1e-20))
