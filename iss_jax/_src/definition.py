"""A slow, straightforward NumPy/SciPy port of the paper's algorithm: the test oracle and benchmark baseline.

Written from the paper's equations with an explicit sparse difference matrix ``D`` (rows: horizontal edges
in row-major order, then vertical edges), scipy's connected components, and a numerically computed
Hessian norm. It shares no code with ``iss_jax``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla


def edge_list(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """``(tails, heads)`` pixel indices of the edges: horizontal in row-major order, then vertical."""
  idx = np.arange(height * width).reshape(height, width)
  tails = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
  heads = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
  return tails, heads


def tv_matrix(height: int, width: int) -> sp.csr_matrix:
  """The ``m x p`` 4-neighbour difference matrix: row ``e`` has ``-1`` at its tail and ``+1`` at its head."""
  tails, heads = edge_list(height, width)
  m = tails.size
  rows = np.concatenate([np.arange(m), np.arange(m)])
  cols = np.concatenate([tails, heads])
  vals = np.concatenate([-np.ones(m), np.ones(m)])
  return sp.csr_matrix((vals, (rows, cols)), shape=(m, height * width))


def hessian_norm(height: int, width: int, nu: float = 1.0) -> float:
  """``||H||_2`` of ``[[I + D^T D / nu, -D^T / nu], [-D / nu, I / nu]]`` by sparse eigensolver."""
  d = tv_matrix(height, width)
  m, p = d.shape
  hess = sp.bmat([[sp.eye(p) + d.T @ d / nu, -d.T / nu], [-d / nu, sp.eye(m) / nu]]).tocsr()
  if hess.shape[0] < 50:
    return float(np.linalg.eigvalsh(hess.toarray())[-1])
  return float(spla.eigsh(hess, k=1, which="LA", return_eigenvectors=False, tol=1e-12)[0])


def components(height: int, width: int, joined_edges: np.ndarray) -> np.ndarray:
  """Component labels (scipy) of the pixel graph over the edges (rows of ``D``) where ``joined_edges``."""
  tails, heads = edge_list(height, width)
  p = height * width
  graph = sp.coo_matrix((np.ones(int(joined_edges.sum())), (tails[joined_edges], heads[joined_edges])),
                        shape=(p, p))
  _, labels = csgraph.connected_components(graph, directed=False)
  return labels


def project(b: np.ndarray, joined_edges: np.ndarray, height: int, width: int) -> np.ndarray:
  """Prop. 3.1: each pixel replaced by the mean of ``b`` (``(p, C)``) over its component."""
  labels = components(height, width, joined_edges)
  out = np.empty_like(b)
  for lab in np.unique(labels):
    members = labels == lab
    out[members] = b[members].mean(axis=0)
  return out


def lbi_smooth(x: np.ndarray, sparsity: float, *, kappa: float = 10.0, nu: float = 1.0,
               step_factor: float = 1.0, maxiter: int = 100_000, hnorm: float | None = None):
  """Split LBI (Eq. 3, group prox Eq. 5-6) stopped at the first step with edge sparsity >= target, projected.

  Args:
    x: ``(H, W, C)`` float64 image.
    sparsity: target fraction of edges with ``g != 0``.

  Returns:
    ``(image (H, W, C), steps, sparsity_reached)``.
  """
  height, width, channels = x.shape
  d = tv_matrix(height, width)
  m, p = d.shape
  if hnorm is None:
    hnorm = hessian_norm(height, width, nu)
  alpha = step_factor / (kappa * hnorm)
  xf = x.reshape(p, channels).astype(np.float64)
  b = np.zeros((p, channels))
  z = np.zeros((m, channels))
  g = np.zeros((m, channels))
  k = 0
  while True:
    active = np.linalg.norm(g, axis=1) > 0
    reached = active.mean()
    if reached >= sparsity or k >= maxiter:
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
