"""The definition of ISS instance smoothing, written to be read: paper Eq. 3, Eq. 5-6 and Prop. 3.1.

This is what ``iss_jax.smooth`` computes, as the paper writes it: an image ``x`` with ``p`` pixels and
``C`` channels, the ``m x p`` difference matrix ``D`` of its 4-neighbour graph, and Split LBI on

    L(b, g) = 1/2 ||b - x||^2 + 1/(2 nu) ||D b - g||^2

from ``b = z = g = 0``:

    b <- b - kappa alpha grad_b L = b - kappa alpha (b - x + D^T (D b - g) / nu)
    z <- z - alpha grad_g L       = z + alpha (D b - g) / nu
    g <- kappa prox(z),  prox(z)_e = max(0, 1 - 1 / ||z_e||) z_e   (group soft threshold over channels)

with ``alpha = step_factor / (kappa ||H||_2)``. It stops at the first step whose share of edges with
``g_e != 0`` reaches the target sparsity (:func:`stop_reached`), and projects ``b`` onto the images that
are constant across every edge with ``g_e = 0``: each connected component of those edges takes the mean
of ``b`` over it (Prop. 3.1).

The fast paths (the XLA scheduler, the unrolled ``lax.scan`` and the C++ CPU kernel) are tested against
this function: same stopping step, the same image to rounding. It is slow (a sparse matrix product per
step) and needs scipy; it is also the baseline the benchmarks time.
"""

from __future__ import annotations

import numpy as np


def stop_reached(sparsity, target, k, maxiter):
  """The stopping rule shared by every implementation: the target sparsity is reached, or the step cap.

  Works on Python / NumPy / JAX values alike (element-wise for arrays).
  """
  return (sparsity >= target) | (k >= maxiter)


def edge_list(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """``(tails, heads)`` pixel indices of the edges: horizontal in row-major order, then vertical."""
  idx = np.arange(height * width).reshape(height, width)
  tails = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
  heads = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
  return tails, heads


def tv_matrix(height: int, width: int):
  """The ``m x p`` 4-neighbour difference matrix ``D``: row ``e`` is -1 at its tail, +1 at its head."""
  import scipy.sparse as sp

  tails, heads = edge_list(height, width)
  m = tails.size
  rows = np.concatenate([np.arange(m), np.arange(m)])
  cols = np.concatenate([tails, heads])
  vals = np.concatenate([-np.ones(m), np.ones(m)])
  return sp.csr_matrix((vals, (rows, cols)), shape=(m, height * width))


def hessian_norm(height: int, width: int, nu: float = 1.0) -> float:
  """``||H||_2`` of ``[[I + D^T D / nu, -D^T / nu], [-D / nu, I / nu]]``, by an eigensolver."""
  import scipy.sparse as sp
  import scipy.sparse.linalg as spla

  d = tv_matrix(height, width)
  m, p = d.shape
  hess = sp.bmat([[sp.eye(p) + d.T @ d / nu, -d.T / nu], [-d / nu, sp.eye(m) / nu]]).tocsr()
  if hess.shape[0] < 50:
    return float(np.linalg.eigvalsh(hess.toarray())[-1])
  return float(spla.eigsh(hess, k=1, which="LA", return_eigenvectors=False, tol=1e-12)[0])


def components(height: int, width: int, joined_edges: np.ndarray) -> np.ndarray:
  """Component labels of the pixel graph over the edges (rows of ``D``) where ``joined_edges``."""
  import scipy.sparse as sp
  import scipy.sparse.csgraph as csgraph

  tails, heads = edge_list(height, width)
  p = height * width
  graph = sp.coo_matrix((np.ones(int(joined_edges.sum())), (tails[joined_edges], heads[joined_edges])),
                        shape=(p, p))
  _, labels = csgraph.connected_components(graph, directed=False)
  return labels


def project(b: np.ndarray, joined_edges: np.ndarray, height: int, width: int) -> np.ndarray:
  """Prop. 3.1: each pixel of ``b`` (``(p, C)``) replaced by the mean of ``b`` over its component."""
  labels = components(height, width, joined_edges)
  out = np.empty_like(b)
  for lab in np.unique(labels):
    members = labels == lab
    out[members] = b[members].mean(axis=0)
  return out


def smooth_reference(x, sparsity: float, *, kappa: float = 10.0, nu: float = 1.0,
                     step_factor: float = 1.0, maxiter: int = 100_000, hnorm: float | None = None):
  """ISS smoothing of one image by the paper's equations, in float64 NumPy (slow; the definition).

  Args:
    x: ``(H, W, C)`` image in ``[0, 1]``.
    sparsity: target fraction of edges with ``g_e != 0``.
    kappa, nu, step_factor: as in :func:`iss_jax.smooth` (whose default ``step_factor`` is 1.9; the
      paper's, and this function's, is 1).
    maxiter: step cap.
    hnorm: ``||H||_2`` when known (computed by an eigensolver otherwise).

  Returns:
    ``(image (H, W, C) float64, steps, sparsity_reached)``.

  Examples:
    >>> import numpy as np, iss_jax
    >>> x = np.random.default_rng(0).uniform(size=(6, 6, 3))
    >>> y, steps, reached = iss_jax.smooth_reference(x, 0.5)
    >>> y.shape, bool(reached >= 0.5)
    ((6, 6, 3), True)
  """
  x = np.asarray(x, np.float64)
  height, width, channels = x.shape
  d = tv_matrix(height, width)
  m, p = d.shape
  if hnorm is None:
    hnorm = hessian_norm(height, width, nu)
  alpha = step_factor / (kappa * hnorm)
  xf = x.reshape(p, channels)
  b = np.zeros((p, channels))
  z = np.zeros((m, channels))
  g = np.zeros((m, channels))
  k = 0
  while True:
    active = np.linalg.norm(g, axis=1) > 0
    reached = active.mean()
    if stop_reached(reached, sparsity, k, maxiter):
      break
    resid = d @ b - g
    grad_b = (b - xf) + d.T @ resid / nu
    grad_g = -resid / nu
    b = b - kappa * alpha * grad_b
    z = z - alpha * grad_g
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    g = kappa * np.maximum(0.0, 1.0 - 1.0 / np.maximum(norms, 1e-300)) * z
    k += 1
  out = project(b, ~active, height, width)
  return out.reshape(height, width, channels), k, reached
