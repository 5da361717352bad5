"""A linear two-class model on 4x4x3 images, whose optimal L-inf attacks are known in closed form."""

import jax.numpy as jnp
import numpy as np

EPS = 8 / 255
D = 4 * 4 * 3


def linear_model(seed=0):
  """``(w, f)``: ``f(x) = flatten(x) @ w`` with ``w`` of shape ``(48, 2)``."""
  w = jnp.asarray(np.random.default_rng(seed).standard_normal((D, 2)), jnp.float32)
  return w, (lambda x, w=w: x.reshape(x.shape[0], -1) @ w)


def toy_data(n=6):
  """``n`` images in ``[0.25, 0.75]`` (away from the box) and binary labels."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(0.25 + 0.5 * rng.random((n, 4, 4, 3)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 2, n), jnp.int32)
  return x, y
