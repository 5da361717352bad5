"""Argument checks: eager when values are concrete, a runtime error inside ``jit`` when they are traced."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def is_concrete(x) -> bool:
  """True when ``x`` holds values now (not a tracer inside ``jit``/``vmap``/``grad``)."""
  return not isinstance(x, jax.core.Tracer)


def _raise_if(bad, message: str):
  if bool(bad):
    raise ValueError(message)


def error_if(bad, message: str) -> None:
  """Raises ``ValueError(message)`` if ``bad``: now when it is concrete, at run time when traced.

  Under ``jax.jit`` the error surfaces as a ``JaxRuntimeError`` whose text contains ``message``.
  """
  if is_concrete(bad):
    _raise_if(np.asarray(bad), message)
  else:
    jax.debug.callback(_raise_if, bad, message=message)


def check_image(x, name: str = "x", *, ranks=(2, 3, 4), min_size: int = 2) -> Array:
  """Checks an image argument and returns it as a JAX float array.

  Args:
    x: image, ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)`` float in ``[0, 1]`` by convention.
    name: argument name used in error messages.
    ranks: accepted ranks.
    min_size: smallest accepted height and width.

  Raises:
    ValueError: wrong rank, too small, non-float dtype, or NaN/Inf values.
  """
  if not hasattr(x, "dtype"):
    x = np.asarray(x)
  if x.ndim not in ranks:
    shapes = {2: "(H, W)", 3: "(H, W, C)", 4: "(N, H, W, C)"}
    raise ValueError(f"{name} must have shape {' or '.join(shapes[r] for r in ranks)}; "
                     f"got shape {tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{name} must be a float array with values in [0, 1]; got dtype {x.dtype}. "
                     f"Convert with {name}.astype(jnp.float32) / 255 for uint8 images.")
  spatial = x.shape[:2] if x.ndim == 2 else x.shape[-3:-1]
  if min(spatial) < min_size:
    raise ValueError(f"{name} must be at least {min_size}x{min_size} pixels; got spatial shape "
                     f"{tuple(spatial)} from shape {tuple(x.shape)}.")
  x = jnp.asarray(x)
  error_if(jnp.any(~jnp.isfinite(x)), f"{name} contains NaN or Inf values.")
  return x


def check_fraction(value, name: str) -> Array:
  """Checks a scalar or 1-D array of fractions in ``[0, 1]`` (NaN rejected)."""
  value = jnp.asarray(value)
  if not jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(value.dtype, jnp.integer):
    raise ValueError(f"{name} must be a number in [0, 1]; got dtype {value.dtype}.")
  error_if(jnp.any(~((value >= 0) & (value <= 1))),
           f"{name} must lie in [0, 1] (and not be NaN).")
  return value.astype(jnp.float32)
