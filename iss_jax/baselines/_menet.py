"""ME-Net: random pixel masks and matrix estimation (Yang et al., ICML 2019), SPLIC's main competitor.

Each image keeps a random fraction ``p`` of its pixels (one mask shared by the channels, as in SPLIC);
every channel, a ``(H, W)`` matrix observed on the mask, is re-estimated by a low-rank matrix estimator:

* ``"usvt"``: universal singular value thresholding (Chatterjee 2015): the observed entries scaled to
  ``[-1, 1]``, missing ones set to 0; keep the singular values ``>= (2 + eta) sqrt(n p_hat)`` (``n`` the
  longer side, ``p_hat`` the observed fraction), divide by ``p_hat``, clip to ``[-1, 1]``, scale back.
* ``"softimpute"``: the nuclear-norm estimator by Soft-Impute (Mazumder, Hastie, Tibshirani 2010):
  ``Z <- SVT_lam(P_mask(X) + P_~mask(Z))`` from ``Z = 0`` for a fixed number of sweeps.

The mask is random, so ME-Net is a random defense: adaptive attacks use BPDA (the identity backward, as
for SPLIC) with EOT over masks. A model is trained on the estimated images (``config.preprocess =
"menet@P"``), as the paper does.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from iss_jax._src.bpda import straight_through
from iss_jax._src.checks import check_image

Array = jax.Array

METHODS = ("usvt", "softimpute")


def usvt(x: Array, mask: Array, *, eta: float = 0.01) -> Array:
  """USVT estimate of one ``(m, n)`` matrix with values in ``[0, 1]``, observed where ``mask``.

  Args:
    x: ``(m, n)`` float in ``[0, 1]`` (entries off the mask are ignored).
    mask: ``(m, n)`` bool, True where observed.
    eta: the threshold is ``(2 + eta) sqrt(max(m, n) p_hat)`` (Chatterjee 2015, Sec. 1.2).

  Returns:
    ``(m, n)`` estimate in ``[0, 1]``.
  """
  y = jnp.where(mask, 2.0 * x - 1.0, 0.0)
  p_hat = jnp.maximum(jnp.mean(mask.astype(x.dtype)), 1.0 / mask.size)
  u, s, vt = jnp.linalg.svd(y, full_matrices=False)
  s = jnp.where(s >= (2.0 + eta) * jnp.sqrt(max(x.shape) * p_hat), s, 0.0)
  w = jnp.clip((u * s[None, :]) @ vt / p_hat, -1.0, 1.0)
  return (w + 1.0) / 2.0


def soft_impute(x: Array, mask: Array, *, lam: float = 1.0, sweeps: int = 30) -> Array:
  """Soft-Impute (nuclear-norm regularised completion) of one ``(m, n)`` matrix observed on ``mask``.

  Args:
    x: ``(m, n)`` float (entries off the mask are ignored).
    mask: ``(m, n)`` bool, True where observed.
    lam: singular-value soft threshold (the nuclear-norm weight).
    sweeps: fixed number of iterations from ``Z = 0``.

  Returns:
    ``(m, n)`` estimate, clipped to ``[0, 1]``.
  """
  observed = jnp.where(mask, x, 0.0)

  def sweep(_, z):
    u, s, vt = jnp.linalg.svd(jnp.where(mask, observed, z), full_matrices=False)
    return (u * jnp.maximum(s - lam, 0.0)[None, :]) @ vt

  z = jax.lax.fori_loop(0, sweeps, sweep, jnp.zeros_like(x))
  return jnp.clip(z, 0.0, 1.0)


def _menet_one(x: Array, key: Array, p: Array, method: str, lam: float, sweeps: int) -> Array:
  h, w, _ = x.shape
  mask = jax.random.uniform(key, (h, w)) < p
  if method == "usvt":
    estimate = lambda c: usvt(c, mask)
  else:
    estimate = lambda c: soft_impute(c, mask, lam=lam, sweeps=sweeps)
  return jax.vmap(estimate, in_axes=2, out_axes=2)(x)


def _menet_images(x4, keys, p, lam, *, method, sweeps):
  return jax.vmap(_menet_one, in_axes=(0, 0, None, None, None, None))(x4, keys, p, method, lam, sweeps)


@functools.partial(jax.jit, static_argnames=("method", "sweeps", "gradient"))
def _menet_batch(x4, keys, p, method, lam, sweeps, gradient):
  images = functools.partial(_menet_images, method=method, sweeps=sweeps)
  return straight_through(images, x4, keys, p, lam) if gradient == "bpda" else images(x4, keys, p, lam)


def menet(x, *, p: float = 0.5, key, method: str = "usvt", lam: float = 1.0, sweeps: int = 30,
          gradient: str = "bpda") -> Array:
  """ME-Net preprocessing: keep a random fraction ``p`` of the pixels, re-estimate each channel.

  Args:
    x: ``(H, W, C)`` or ``(N, H, W, C)`` float in ``[0, 1]``.
    p: observation probability of a pixel (ME-Net trains and tests with ``p`` around 0.3-0.8; one mask
      per image, shared by the channels).
    key: PRNG key; each image draws its own mask.
    method: ``"usvt"`` or ``"softimpute"`` (module docstring).
    lam: Soft-Impute's threshold.
    sweeps: Soft-Impute's iterations.
    gradient: ``"bpda"`` (default; ``jax.grad`` sees the identity, combine with EOT over ``key``) or
      ``"exact"`` (differentiate the SVDs; for tests).

  Returns:
    The estimated images, same shape and dtype as ``x``, values in ``[0, 1]``.

  Raises:
    ValueError: a bad image, ``p`` outside ``(0, 1]``, an unknown ``method`` or ``gradient``.

  Examples:
    >>> import jax, iss_jax
    >>> x = jax.random.uniform(jax.random.key(0), (4, 12, 12, 3))
    >>> y = iss_jax.baselines.menet(x, p=0.7, key=jax.random.key(1), method="softimpute")
    >>> bool((y >= 0).all() & (y <= 1).all())
    True

  References:
    Y. Yang, G. Zhang, D. Katabi, Z. Xu, "ME-Net: Towards effective adversarial robustness with matrix
    estimation", ICML 2019. S. Chatterjee, "Matrix estimation by universal singular value thresholding",
    Ann. Statist. 2015. R. Mazumder, T. Hastie, R. Tibshirani, "Spectral regularization algorithms for
    learning large incomplete matrices", JMLR 2010.
  """
  x = check_image(x, "x", ranks=(3, 4))
  if not 0.0 < float(p) <= 1.0:
    raise ValueError(f"ME-Net observation probability p must lie in (0, 1]; got {p!r}.")
  if method not in METHODS:
    raise ValueError(f"ME-Net method must be one of {METHODS}; got {method!r}.")
  if gradient not in ("bpda", "exact"):
    raise ValueError(f"gradient must be 'bpda' or 'exact'; got {gradient!r}.")
  if not isinstance(sweeps, int) or sweeps < 1:
    raise ValueError(f"sweeps must be an int >= 1; got {sweeps!r}.")
  x4 = x[None] if x.ndim == 3 else x
  keys = jax.random.split(key, x4.shape[0])
  out = _menet_batch(x4, keys, jnp.asarray(p, x.dtype), method, jnp.asarray(lam, x.dtype), sweeps,
                     gradient)
  return out.reshape(x.shape)
