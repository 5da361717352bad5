"""Exact t-SNE (van der Maaten & Hinton 2008) and the silhouette score.

Affinities and silhouettes in float64 NumPy; the gradient descent in one jitted float32 JAX loop.

Exact (O(N^2) memory and time per iteration): meant for the few hundred to few thousand feature vectors of
a t-SNE figure (SPLIC Fig. 10), not for large data sets.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class TSNEResult(NamedTuple):
  """The output of :func:`tsne`.

  Attributes:
    embedding: ``(N, dim)`` float64 embedding.
    kl: ``(iterations,)`` float64 ``KL(P || Q)`` after each iteration (with the exaggerated ``P`` during
      early exaggeration, the true one after).
    beta: ``(N,)`` float64 precisions ``1 / (2 sigma_i^2)`` of the calibrated Gaussian kernels.
  """

  embedding: np.ndarray
  kl: np.ndarray
  beta: np.ndarray


def _features(x, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f"{name} must be (N, D) feature vectors with N >= 2; got shape {x.shape}.")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} contains NaN or Inf values.")
  return x


def squared_distances(x) -> np.ndarray:
  """``(N, N)`` squared Euclidean distances of the rows of ``x`` (float64, exact zeros on the diagonal)."""
  x = np.asarray(x, np.float64)
  sq = np.sum(x * x, axis=1)
  d = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
  np.fill_diagonal(d, 0.0)
  return d


def conditional_affinities(x, perplexity: float = 30.0, *, tol: float = 1e-10,
                           max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
  """Rows ``p_{j|i}`` of t-SNE's input affinities, each calibrated to the given perplexity.

  ``p_{j|i} = exp(-beta_i ||x_i - x_j||^2) / sum_{k != i} exp(-beta_i ||x_i - x_k||^2)``, ``p_{i|i} = 0``,
  with ``beta_i`` found by bisection so that the Shannon entropy of row ``i`` is ``log(perplexity)``
  (nats), i.e. ``2**H_bits == perplexity``.

  Args:
    x: ``(N, D)`` feature vectors.
    perplexity: the effective number of neighbours, ``1 <= perplexity < N``.
    tol: bisection stops when every row's entropy is within ``tol`` of the target.
    max_iter: bisection steps at most.

  Returns:
    ``(P_cond (N, N) float64 rows summing to 1, beta (N,) float64)``.

  Raises:
    ValueError: bad ``x`` or a perplexity outside ``[1, N)``.
  """
  x = _features(x, "x")
  n = x.shape[0]
  if not 1 <= perplexity < n:
    raise ValueError(f"perplexity must be in [1, N) = [1, {n}); got {perplexity}.")
  d = squared_distances(x)
  d = d + np.diag(np.full(n, np.inf))
  d = d - np.min(d, axis=1, keepdims=True)  # shift each row: exp() never underflows everywhere
  target = np.log(perplexity)
  beta = np.ones(n)
  lo = np.zeros(n)
  hi = np.full(n, np.inf)

  def rows(beta):
    w = np.exp(-beta[:, None] * d)
    s = np.sum(w, axis=1)
    p = w / s[:, None]
    entropy = np.log(s) + beta * np.sum(p * np.where(np.isinf(d), 0.0, d), axis=1)
    return p, entropy

  for _ in range(max_iter):
    p, h = rows(beta)
    diff = h - target
    if np.all(np.abs(diff) < tol):
      break
    up = diff > 0  # entropy too high: the kernel is too wide, increase beta
    lo = np.where(up, beta, lo)
    hi = np.where(up, hi, beta)
    beta = np.where(np.isinf(hi), beta * 2.0, (lo + hi) / 2.0)
  p, _ = rows(beta)
  return p, beta


def tsne(x, *, dim: int = 2, perplexity: float = 30.0, iterations: int = 1000,
         learning_rate: float | None = None, early_exaggeration: float = 12.0,
         exaggeration_iterations: int = 250, seed: int = 0) -> TSNEResult:
  """Exact t-SNE embedding of feature vectors.

  Symmetrised affinities ``P = (P_cond + P_cond^T) / (2N)`` (:func:`conditional_affinities`), Student-t
  similarities ``q_ij ∝ (1 + ||y_i - y_j||^2)^-1`` in the embedding, and gradient descent on ``KL(P||Q)``
  with the original paper's schedule: momentum 0.5 then 0.8, early exaggeration of ``P`` for the first
  iterations, per-coordinate adaptive gains (Jacobs 1988), initialisation ``N(0, 1e-4)``.

  Args:
    x: ``(N, D)`` feature vectors (N >= 2).
    dim: embedding dimension.
    perplexity: effective number of neighbours, ``1 <= perplexity < N``.
    iterations: gradient steps.
    learning_rate: step size; default ``max(N / early_exaggeration / 4, 50)`` (Belkina et al. 2019, as
      scikit-learn's "auto").
    early_exaggeration: factor on ``P`` during the first ``exaggeration_iterations`` steps.
    exaggeration_iterations: length of the early-exaggeration phase (momentum 0.5 during it).
    seed: seed of the initialisation.

  Returns:
    A :class:`TSNEResult`.

  Raises:
    ValueError: bad ``x``, ``perplexity``, ``dim`` or ``iterations``.

  Examples:
    >>> import numpy as np, iss_jax
    >>> x = np.random.default_rng(0).normal(size=(60, 5))
    >>> res = iss_jax.analysis.tsne(x, perplexity=10, iterations=300)
    >>> res.embedding.shape
    (60, 2)

  References:
    L. van der Maaten and G. Hinton, Visualizing data using t-SNE, JMLR 2008.
  """
  x = _features(x, "x")
  if dim < 1:
    raise ValueError(f"dim must be >= 1; got {dim}.")
  if iterations < 1:
    raise ValueError(f"iterations must be >= 1; got {iterations}.")
  n = x.shape[0]
  p_cond, beta = conditional_affinities(x, perplexity)
  p = (p_cond + p_cond.T) / (2.0 * n)
  np.fill_diagonal(p, 0.0)
  lr = max(n / early_exaggeration / 4.0, 50.0) if learning_rate is None else float(learning_rate)
  y0 = np.random.default_rng(seed).normal(0.0, 1e-2, size=(n, dim))
  y, kls = _descend(jnp.asarray(p, jnp.float32), jnp.asarray(y0, jnp.float32), lr,
                    float(early_exaggeration), int(iterations), int(exaggeration_iterations))
  y, kls = np.asarray(y, np.float64), np.asarray(kls, np.float64)
  return TSNEResult(y, kls, beta)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _descend(p, y, lr, exaggeration, iterations: int, exaggeration_iterations: int):
  """The gradient descent of :func:`tsne` (float32, one fused XLA loop): ``(embedding, KL per step)``."""
  n = p.shape[0]
  off = 1.0 - jnp.eye(n, dtype=p.dtype)
  tiny = jnp.finfo(p.dtype).tiny

  def step(carry, it):
    y, update, gains = carry
    exaggerate = it < exaggeration_iterations
    pe = p * jnp.where(exaggerate, exaggeration, 1.0)
    sq = jnp.sum(y * y, axis=1)
    num = off / (1.0 + jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * y @ y.T, 0.0))
    q = num / jnp.sum(num)
    w = (pe - q) * num
    grad = 4.0 * (jnp.sum(w, axis=1)[:, None] * y - w @ y)
    kl = jnp.sum(pe * (jnp.log(jnp.maximum(pe, tiny)) - jnp.log(jnp.maximum(q, tiny))))
    momentum = jnp.where(exaggerate, 0.5, 0.8)
    gains = jnp.maximum(jnp.where(jnp.sign(grad) == jnp.sign(update), gains * 0.8, gains + 0.2), 0.01)
    update = momentum * update - lr * gains * grad
    y = y + update
    return (y - jnp.mean(y, axis=0, keepdims=True), update, gains), kl

  (y, _, _), kls = jax.lax.scan(step, (y, jnp.zeros_like(y), jnp.ones_like(y)), jnp.arange(iterations))
  return y, kls


def silhouette_samples(x, labels) -> np.ndarray:
  """Silhouette ``s_i = (b_i - a_i) / max(a_i, b_i)`` of each point (Euclidean distances).

  ``a_i`` is the mean distance from point ``i`` to the other points of its own cluster, ``b_i`` the
  smallest mean distance to the points of another cluster; ``s_i = 0`` for a point alone in its cluster
  (Rousseeuw's convention, as scikit-learn).

  Args:
    x: ``(N, D)`` points.
    labels: ``(N,)`` integer cluster labels, at least two distinct values.

  Returns:
    ``(N,)`` float64 values in ``[-1, 1]``.

  Raises:
    ValueError: bad ``x``, labels of the wrong length or fewer than two clusters.
  """
  x = _features(x, "x")
  labels = np.asarray(labels).reshape(-1)
  if labels.shape[0] != x.shape[0]:
    raise ValueError(f"labels must hold one label per point ({x.shape[0]}); got {labels.shape[0]}.")
  classes, idx = np.unique(labels, return_inverse=True)
  if len(classes) < 2:
    raise ValueError(f"labels must name at least two clusters; got {len(classes)}.")
  d = np.sqrt(squared_distances(x))
  onehot = np.eye(len(classes))[idx]
  sums = d @ onehot  # (N, K): summed distance to each cluster
  counts = onehot.sum(axis=0)
  own = counts[idx] - 1
  a = np.take_along_axis(sums, idx[:, None], 1)[:, 0] / np.maximum(own, 1)
  mean_other = sums / counts[None, :]
  mean_other[np.arange(len(idx)), idx] = np.inf
  b = np.min(mean_other, axis=1)
  s = (b - a) / np.maximum(np.maximum(a, b), 1e-300)
  return np.where(own > 0, s, 0.0)


def silhouette_score(x, labels) -> float:
  """Mean of :func:`silhouette_samples`: near 1 for compact, well-separated clusters, near 0 for
  overlapping ones, negative when points sit closer to another cluster than to their own.

  References:
    P. J. Rousseeuw, Silhouettes: a graphical aid to the interpretation and validation of cluster
    analysis, J. Comput. Appl. Math. 1987.
  """
  return float(np.mean(silhouette_samples(x, labels)))
