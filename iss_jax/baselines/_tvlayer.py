"""The TV layer (Yeh et al., "Total Variation Optimization Layers for Computer Vision", CVPR 2022).

A differentiable layer that solves the ROF / TV-proximal problem ``argmin_u ||u - x||^2 / (2 w) + TV(u)``
per image and channel with a weight ``w`` learned with the network, in two modes:

* ``"smooth"``: ``u`` (the TV-smoothed input);
* ``"sharp"``: ``2 x - u`` (the input plus its TV detail, an edge-enhancing layer).

Forward: :func:`iss_jax.baselines.tv_denoise` (Chambolle's dual projection, a fixed number of
iterations), so at a fixed weight the layer IS ``tv_denoise``. Backward: by unrolling, i.e. reverse-mode
differentiation through the fixed-length iteration (exact for the computed forward, w.r.t. the input and
the weight); an adaptive attack gets the same exact gradient. Yeh et al. differentiate the prox by its
optimality condition; with a fixed iteration count the unrolled gradient is the gradient of what is
actually computed, at ``iters`` times the memory of one iteration.

The weight is learned as ``w = softplus(theta)`` (positive); :func:`tv_layer_weight` maps ``theta`` to it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from iss_jax.baselines._tv import DEFAULT_TAU, _tv_batch

Array = jax.Array

MODES = ("smooth", "sharp")
DEFAULT_LAYER_ITERS = 30


def tv_layer_weight(theta) -> Array:
  """The TV weight ``softplus(theta) > 0`` of a TV layer parameter ``theta``."""
  return jax.nn.softplus(theta)


def tv_layer_theta(weight: float) -> float:
  """The parameter ``theta`` with ``softplus(theta) = weight`` (``weight > 0``): a layer's initial value."""
  w = float(weight)
  if not w > 0:
    raise ValueError(f"TV layer weight must be a number > 0; got {weight!r}.")
  return math.log(math.expm1(w))


def tv_layer(x, weight, *, mode: str = "smooth", iters: int = DEFAULT_LAYER_ITERS,
             tau: float = DEFAULT_TAU) -> Array:
  """The TV layer's forward pass: ``tv_denoise(x, weight)`` or ``2 x - tv_denoise(x, weight)``.

  Differentiable in ``x`` and ``weight`` by unrolling the ``iters`` iterations (module docstring).

  Args:
    x: ``(N, H, W, C)`` float, any values (images in ``[0, 1]`` at the input, feature maps after a
      convolution); each channel is one TV problem.
    weight: the TV weight, a scalar ``>= 0`` (traced; learned as ``softplus(theta)``).
    mode: ``"smooth"`` or ``"sharp"``.
    iters: Chambolle iterations (static).
    tau: Chambolle's dual step.

  Returns:
    ``(N, H, W, C)``, same dtype as ``x``.

  Raises:
    ValueError: ``x`` not 4-D float, an unknown ``mode``, ``iters < 1``.

  Examples:
    >>> import jax, iss_jax
    >>> x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    >>> y = iss_jax.baselines.tv_layer(x, 0.1, mode="sharp")
    >>> bool(jax.numpy.allclose(y, 2 * x - iss_jax.baselines.tv_denoise(x, 0.1, iters=30), atol=1e-6))
    True

  References:
    R. A. Yeh, Y.-T. Hu, Z. Ren, A. G. Schwing, "Total Variation Optimization Layers for Computer
    Vision", CVPR 2022. A. Chambolle, "An algorithm for total variation minimization and applications",
    2004.
  """
  x = jnp.asarray(x)
  if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be a float batch (N, H, W, C); got {x.dtype} {x.shape}.")
  if mode not in MODES:
    raise ValueError(f"TV layer mode must be one of {MODES}; got {mode!r}.")
  if not isinstance(iters, int) or iters < 1:
    raise ValueError(f"iters must be an int >= 1; got {iters!r}.")
  smoothed = _tv_batch(x, jnp.asarray(weight, x.dtype), iters, float(tau), False)
  return smoothed if mode == "smooth" else 2.0 * x - smoothed
