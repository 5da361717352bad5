"""Square Attack (L-infinity), score-based: it only ever calls the model's logits, never its gradient.

Constants from the reference code (fra31/auto-attack, ``autoattack/square.py``, the version AutoAttack
runs): margin loss ``z_y - max_{i != y} z_i`` (minimised; an example is done once it is ``<= 0``);
initialisation with vertical stripes, ``x + eps * s`` with one random sign ``s`` per (column, channel);
each query changes one square of side ``s = max(round(sqrt(p * H * W)), 1)`` (at most ``min(H, W)``) at a
random position to ``x_best + 2 * eps * sign`` per channel, projected back to the ball and ``[0, 1]``
(so each pixel of the square goes to ``x +- eps``); the new point is kept when its margin is lower;
``p`` follows ``p_selection``: ``p_init = 0.8`` halved at iterations 10, 50, 200, 500, 1000, 2000, 4000,
6000, 8000 (of 10,000; rescaled to the query budget when ``rescale_schedule``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax._src.checks import check_labels
from iss_jax.robustness._attacks import _check_batch, _check_eps, _check_positive_int, _project, _radius

Array = jax.Array
P_BOUNDS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
SQUARE_QUERIES = 1000  # Square's default query budget per image, the one default of every evaluation


def square_p_schedule(i, queries: int, *, p_init: float = 0.8, rescale_schedule: bool = True):
  """The fraction ``p`` of pixels a square covers at iteration ``i`` (reference ``p_selection``).

  ``p = p_init / 2**m`` where ``m`` counts the bounds 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 lying
  strictly below ``it``; ``it = int(i / queries * 10000)`` when ``rescale_schedule`` else ``i``. ``i`` may
  be traced.
  """
  i = jnp.asarray(i)
  it = jnp.floor(i * 10000.0 / queries).astype(jnp.int32) if rescale_schedule else i.astype(jnp.int32)
  m = sum((it > bound).astype(jnp.int32) for bound in P_BOUNDS)
  return p_init / (2.0 ** m)


def margin(logits: Array, y: Array) -> Array:
  """``z_y - max_{i != y} z_i`` per example (negative: misclassified)."""
  z = logits.astype(jnp.float32)
  z_y = jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
  other = jnp.max(jnp.where(jax.nn.one_hot(y, z.shape[-1], dtype=bool), -jnp.inf, z), axis=-1)
  return z_y - other


def random_square(logits_fn: Callable[[Array, Array], Array], x, y, *, eps, key,
                  queries: int = SQUARE_QUERIES, p_init: float = 0.8, rescale_schedule: bool = True) -> Array:
  """:func:`square` for a random model ``logits_fn(x, key)``: each query sees one fresh draw.

  Args:
    logits_fn: ``logits_fn(x, key) -> (N, K)`` logits; never differentiated.
    x, y, eps, key, queries, p_init, rescale_schedule: as in :func:`square`.

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``.
  """
  x = _check_batch(x)
  y = jnp.asarray(check_labels(y, x.shape[0]))
  _check_eps(eps, x.shape[-1])
  _check_positive_int(queries, "queries")
  eps = _radius(eps, x)
  n, h, w, c = x.shape
  b = lambda v: v.reshape(n, 1, 1, 1)
  query = lambda z, k: margin(lax.stop_gradient(logits_fn(lax.stop_gradient(z), k)), y)
  k_init, key = jax.random.split(key)
  stripes = jnp.where(jax.random.bernoulli(k_init, 0.5, (n, 1, w, c)), 1.0, -1.0).astype(x.dtype)
  x_best = _project(x + eps * stripes, x, eps)
  m_best = query(x_best, jax.random.fold_in(key, 0))
  rows = jnp.arange(h).reshape(1, h, 1, 1)
  cols = jnp.arange(w).reshape(1, 1, w, 1)

  def body(state):
    i, x_best, m_best = state
    k = jax.random.fold_in(key, i + 1)
    k_h, k_w, k_s, k_q = jax.random.split(k, 4)
    p = square_p_schedule(i, queries, p_init=p_init, rescale_schedule=rescale_schedule)
    s = jnp.clip(jnp.round(jnp.sqrt(p * h * w)), 1, min(h, w)).astype(jnp.int32)
    vh = jax.random.randint(k_h, (n, 1, 1, 1), 0, h - s + 1)
    vw = jax.random.randint(k_w, (n, 1, 1, 1), 0, w - s + 1)
    mask = (rows >= vh) & (rows < vh + s) & (cols >= vw) & (cols < vw + s)
    signs = jnp.where(jax.random.bernoulli(k_s, 0.5, (n, 1, 1, c)), 1.0, -1.0).astype(x.dtype)
    x_new = _project(x_best + mask * (2.0 * eps) * signs, x, eps)
    m_new = query(x_new, k_q)
    active = m_best > 0.0  # examples already fooled are frozen (the reference stops querying them)
    take = active & (m_new < m_best)
    return i + 1, jnp.where(b(take), x_new, x_best), jnp.where(take, m_new, m_best)

  def cond(state):
    i, _, m_best = state
    return (i < queries) & jnp.any(m_best > 0.0)

  _, x_best, _ = lax.while_loop(cond, body, (jnp.int32(0), x_best, m_best))
  return _project(x_best, x, eps)


def square(apply_fn: Callable[[Array], Array], x, y, *, eps, key, queries: int = SQUARE_QUERIES,
           p_init: float = 0.8, rescale_schedule: bool = True) -> Array:
  """Square Attack (Andriushchenko et al. 2020), L-infinity: random search that needs no gradient.

  Starts from vertical stripes ``x +- eps`` and then, ``queries`` times, proposes to set one random square
  (per example its own position; per channel one sign) to ``x +- eps``, keeping the proposal when the
  margin ``z_y - max_{i != y} z_i`` decreases. The square's area shrinks on the schedule
  :func:`square_p_schedule`. Examples stop changing once misclassified; the loop stops when all are (a
  ``lax.while_loop``). Only the model's outputs are used (inputs and outputs are wrapped in
  ``stop_gradient``), so it is the check against a defense whose gradients are obfuscated.

  Args:
    apply_fn: ``apply_fn(x) -> (N, K)`` logits (need not be differentiable).
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    eps: L-infinity radius in ``[0, 1]`` pixel units, a scalar or ``(C,)`` per channel (stripes and
      squares go to ``x +- eps_c`` in channel ``c``); may be traced.
    key: PRNG key.
    queries: number of iterations (one forward pass of the batch each), static. AutoAttack uses 5000.
    p_init: initial fraction of pixels per square (0.8).
    rescale_schedule: stretch the 10,000-iteration ``p`` schedule to ``queries`` (the reference's
      ``resc_schedule``; AutoAttack's standard run uses 5000 queries without it).

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``.

  Raises:
    ValueError: bad shapes, ``eps`` outside ``[0, 1]``, bad ``queries``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> apply_fn = lambda x: jnp.round(x.reshape(x.shape[0], -1) @ w)   # no useful gradient
    >>> x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    >>> x_adv = iss_jax.robustness.square(apply_fn, x, jnp.array([0, 1]), eps=8 / 255, queries=50,
    ...                                   key=jax.random.key(2))
    >>> bool(jnp.abs(x_adv - x).max() <= 8 / 255 + 1e-6)
    True

  Note:
    Square positions are drawn uniformly from all ``(H - s + 1)**2`` placements (the reference's
    ``random_int(0, h - s)`` never places a square on the last row/column offset). Against a random
    defense (:func:`random_square`) each query sees one draw of the defense.

  References:
    M. Andriushchenko, F. Croce, N. Flammarion, M. Hein, Square Attack: a query-efficient black-box
    adversarial attack via random search, ECCV 2020; reference code fra31/auto-attack
    ``autoattack/square.py``.
  """
  return random_square(lambda z, _: apply_fn(z), x, y, eps=eps, key=key, queries=queries, p_init=p_init,
                       rescale_schedule=rescale_schedule)
