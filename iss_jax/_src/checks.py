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


_SHAPES = {2: "(H, W)", 3: "(H, W, C)", 4: "(N, H, W, C)"}


def _check_image_shape(x, name: str, ranks, min_size: int) -> None:
  """The one rank / dtype / size check of every image argument (JAX, NumPy or a tracer)."""
  if x.ndim not in ranks:
    raise ValueError(f"{name} must have shape {' or '.join(_SHAPES[r] for r in ranks)}; "
                     f"got shape {tuple(x.shape)}.")
  spatial = x.shape[:2] if x.ndim == 2 else x.shape[-3:-1]
  if min(spatial, default=min_size) < min_size:
    raise ValueError(f"{name} must be at least {min_size}x{min_size} pixels; got spatial shape "
                     f"{tuple(spatial)} from shape {tuple(x.shape)}.")


# Channel counts above this are probably a mistake (a channels-first batch, or grey images read as one).
MAX_CHANNELS = 4
# How far outside ``value_range`` a value may lie before it is an error (float rounding of x / 255).
RANGE_TOLERANCE = 1e-4


def _check_layout(x, name: str) -> None:
  """Rejects a channels-first batch and warns about more than ``MAX_CHANNELS`` channels."""
  if x.ndim < 3 or x.shape[-1] <= MAX_CHANNELS:
    return
  if x.shape[-3] in (1, 3, 4):
    order = "(N, C, H, W)" if x.ndim == 4 else "(C, H, W)"
    raise ValueError(f"{name} has shape {tuple(x.shape)}, which looks channels-first {order}; images are "
                     f"channels-last {_SHAPES[x.ndim]}: use jnp.moveaxis({name}, {x.ndim - 3}, -1).")
  import warnings

  warnings.warn(f"{name} has shape {tuple(x.shape)}: its last axis is read as {x.shape[-1]} channels "
                f"{_SHAPES[x.ndim]}. If these are grey images (N, H, W), pass {name}[..., None].",
                UserWarning, stacklevel=4)


def check_image(x, name: str = "x", *, ranks=(2, 3, 4), min_size: int = 2, finite: bool = True,
                value_range: tuple[float, float] | None = None) -> Array:
  """Checks an image argument and returns it as a JAX float array.

  Args:
    x: image, ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)`` float in ``[0, 1]`` by convention.
    name: argument name used in error messages.
    ranks: accepted ranks.
    min_size: smallest accepted height and width.
    finite: also reject NaN/Inf values (eagerly, or when the jitted call runs).
    value_range: ``(lo, hi)``: also reject values outside it by more than rounding (a forgotten
      ``/ 255``); None: any values.

  Raises:
    ValueError: wrong rank, too small, non-float dtype, a channels-first layout (rank 3 or 4, more than
      4 channels, and 1, 3 or 4 on the axis before the spatial ones), values outside ``value_range``, or
      NaN/Inf values. More than 4 channels otherwise only warns.
  """
  if not hasattr(x, "dtype"):
    x = np.asarray(x)
  _check_image_shape(x, name, ranks, min_size)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{name} must be a float array with values in [0, 1]; got dtype {x.dtype}. "
                     f"Convert with {name}.astype(jnp.float32) / 255 for uint8 images.")
  _check_layout(x, name)
  x = jnp.asarray(x)
  if finite:
    error_if(jnp.any(~jnp.isfinite(x)), f"{name} contains NaN or Inf values.")
  if value_range is not None and x.size:
    lo, hi = value_range
    tol = RANGE_TOLERANCE * (hi - lo)
    hint = ("; divide 0..255 images by 255" if hi <= 1 else "") + (
        ", or pass value_range=None for data that is not an image in [0, 1]" if (lo, hi) == (0, 1) else "")
    if is_concrete(x):
      top, bottom = float(jnp.max(x)), float(jnp.min(x))
      error_if(top > hi + tol or bottom < lo - tol, f"{name} has values in [{bottom:.4g}, {top:.4g}], "
               f"outside the expected [{lo:g}, {hi:g}]{hint}.")
    else:
      error_if((jnp.max(x) > hi + tol) | (jnp.min(x) < lo - tol),
               f"{name} has values outside the expected [{lo:g}, {hi:g}]{hint}.")
  return x


def as_float_images(x, name: str = "x") -> np.ndarray:
  """Host-side ``(N, H, W, C)`` images, uint8 in ``[0, 255]`` or float in ``[0, 1]``, as float32 ``[0, 1]``.

  The evaluations and the data pipeline take either form; this is where the two meet.

  Raises:
    ValueError: not a ``(N, H, W, C)`` batch, or neither uint8 nor float.

  Examples:
    >>> import numpy as np, iss_jax
    >>> iss_jax.as_float_images(np.full((1, 2, 2, 3), 255, np.uint8)).max()
    np.float32(1.0)
  """
  x = np.asarray(x)
  _check_image_shape(x, name, (4,), 0)
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"{name} must be uint8 or float in [0, 1]; got dtype {x.dtype}.")
  return x.astype(np.float32)


def check_labels(y, n: int, name: str = "y"):
  """Checks ``(n,)`` integer class labels; NumPy / list input comes back as int32 NumPy, JAX as is.

  Raises:
    ValueError: wrong shape or a non-integer dtype.
  """
  if not hasattr(y, "dtype"):
    y = np.asarray(y)
  if tuple(y.shape) != (n,) or not jnp.issubdtype(y.dtype, jnp.integer):
    raise ValueError(f"{name} must be ({n},) integer labels; got shape {tuple(y.shape)}, dtype {y.dtype}.")
  return y.astype(np.int32) if isinstance(y, np.ndarray) else y


def check_fraction(value, name: str) -> Array:
  """Checks a scalar or 1-D array of fractions in ``[0, 1]`` (NaN rejected)."""
  value = jnp.asarray(value)
  if not jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(value.dtype, jnp.integer):
    raise ValueError(f"{name} must be a number in [0, 1]; got dtype {value.dtype}.")
  error_if(jnp.any(~((value >= 0) & (value <= 1))),
           f"{name} must lie in [0, 1] (and not be NaN).")
  return value.astype(jnp.float32)
