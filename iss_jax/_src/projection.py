"""Projection of ``b`` onto the TV-sparse subspace of the support of ``g`` (paper Prop. 3.1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from iss_jax._src.components import connected_components

Array = jax.Array


def component_mean(b: Array, labels: Array) -> Array:
  """Replaces every pixel of ``b`` by the mean of ``b`` over its component.

  Args:
    b: ``(H, W, C)`` float image.
    labels: ``(H, W)`` int component labels in ``[0, H W)``.

  Returns:
    ``(H, W, C)``, constant on every component and equal to the component mean of ``b`` there.
  """
  height, width, channels = b.shape
  n = height * width
  flat = labels.reshape(-1)
  sums = jnp.zeros((n, channels), b.dtype).at[flat].add(b.reshape(n, channels))
  counts = jnp.zeros((n,), b.dtype).at[flat].add(1.0)
  means = sums / jnp.maximum(counts, 1.0)[:, None]
  return means[flat].reshape(height, width, channels)


def project(b: Array, active: Array) -> Array:
  """Projects ``b`` onto ``{b' : (D b')_e = 0 for every inactive edge e}`` (Prop. 3.1).

  Pixels joined by a path of inactive edges (``g_e = 0``) form a component; the closest image in the
  subspace replaces each pixel by its component's mean of ``b``, per channel.

  Args:
    b: ``(H, W, C)`` float image estimate.
    active: ``(2, H, W)`` bool support of ``g`` (see :class:`iss_jax.LBIState`).

  Returns:
    ``(H, W, C)``, the projected image.

  Examples:
    >>> import jax.numpy as jnp
    >>> b = jnp.arange(4.0).reshape(2, 2, 1)
    >>> project(b, jnp.zeros((2, 2, 2), bool))[..., 0].tolist()  # nothing active: one component
    [[1.5, 1.5], [1.5, 1.5]]
  """
  labels, _ = connected_components(~active)
  return component_mean(b, labels)
