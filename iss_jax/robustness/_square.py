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
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax._src.checks import check_labels
from iss_jax.robustness._attacks import _check_batch, _check_eps, _check_positive_int, _project, _radius, eot

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


class SquareInfo(NamedTuple):
  """What one Square run cost (``return_info=True``).

  Attributes:
    forward_passes: () int32, images the model was run on in all (the start and every query; a query of
      the compacted form costs its bucket's size, a few padding images included).
    iterations: () int32, queries made before every image was fooled or the budget ran out.
    queries: (N,) int32, the model evaluations of each image while it was still robust, the start
      included (AutoAttack's per-image query count).
  """

  forward_passes: Array
  iterations: Array
  queries: Array


def _buckets(n: int, multiple: int = 1) -> tuple[int, ...]:
  """The batch sizes a compacted Square query (and a compact :meth:`Runner.map`) runs on: ``n`` and
  ``ceil(n / 2**j)``, ``j <= _HALVINGS``, each rounded up to a multiple of ``multiple``, largest first."""
  ceil = lambda a, b: -(-a // b)
  return tuple(sorted({ceil(ceil(n, 2**j), multiple) * multiple for j in range(_HALVINGS + 1)},
                      reverse=True))


_HALVINGS = 4  # buckets n, n/2, ..., n/16: each compiles the model once; a query costs < 2x its robust images


def _square_loop(query, x, y, *, eps, key, queries: int, p_init: float, rescale_schedule: bool,
                 compact: bool):
  """Square's random search; ``query(z, y_z, key) -> (M,)`` margins of any sub-batch ``z`` of ``x``.

  The random draws of every iteration are made for the whole batch, so each image's proposals do not
  depend on which others are still robust. ``compact``: query only the robust images, gathered into the
  smallest of :func:`_buckets` that holds them (a ``lax.switch``: one compilation per bucket, none per
  count); otherwise query the whole batch (a random model: every image sees the same draw as today).
  Returns ``(x_best, SquareInfo)``.
  """
  n, h, w, c = x.shape
  b = lambda v: v.reshape((v.shape[0], 1, 1, 1))
  k_init, key = jax.random.split(key)
  stripes = jnp.where(jax.random.bernoulli(k_init, 0.5, (n, 1, w, c)), 1.0, -1.0).astype(x.dtype)
  x_best = _project(x + eps * stripes, x, eps)
  m_best = query(x_best, y, jax.random.fold_in(key, 0))
  rows = jnp.arange(h).reshape(1, h, 1, 1)
  cols = jnp.arange(w).reshape(1, 1, w, 1)
  buckets = _buckets(n) if compact else (n,)

  def propose(i, sel, x_best, k):
    """Proposals for the images ``sel`` (indices into the batch; None: all): ``(x_new, m_new)``."""
    g = (lambda a: a) if sel is None else (lambda a: a[sel])
    k_h, k_w, k_s, k_q = jax.random.split(k, 4)
    p = square_p_schedule(i, queries, p_init=p_init, rescale_schedule=rescale_schedule)
    side = jnp.clip(jnp.round(jnp.sqrt(p * h * w)), 1, min(h, w)).astype(jnp.int32)
    vh = g(jax.random.randint(k_h, (n, 1, 1, 1), 0, h - side + 1))
    vw = g(jax.random.randint(k_w, (n, 1, 1, 1), 0, w - side + 1))
    signs = g(jnp.where(jax.random.bernoulli(k_s, 0.5, (n, 1, 1, c)), 1.0, -1.0).astype(x.dtype))
    mask = (rows >= vh) & (rows < vh + side) & (cols >= vw) & (cols < vw + side)
    x_new = _project(g(x_best) + mask * (2.0 * eps) * signs, g(x), eps)
    return x_new, query(x_new, g(y), k_q)

  def body(state):
    i, x_best, m_best, forward, counts = state
    active = m_best > 0.0  # examples already fooled are frozen (the reference stops querying them)
    k = jax.random.fold_in(key, i + 1)
    if not compact:
      x_new, m_new = propose(i, None, x_best, k)
      take = active & (m_new < m_best)
      x_best, m_best, cost = jnp.where(b(take), x_new, x_best), jnp.where(take, m_new, m_best), n
    else:
      # The robust images first (a permutation of the batch, so a bucket's indices are distinct and its
      # padding, fooled images, writes back their own unchanged values).
      order = jnp.argsort(~active, stable=True)
      num = jnp.sum(active)

      def branch(size):
        def run(x_best, m_best):
          sel = order[:size]
          x_new, m_new = propose(i, sel, x_best, k)
          take = active[sel] & (m_new < m_best[sel])
          x_sel = jnp.where(b(take), x_new, x_best[sel])
          return x_best.at[sel].set(x_sel), m_best.at[sel].set(jnp.where(take, m_new, m_best[sel]))
        return run

      which = sum((num <= size).astype(jnp.int32) for size in buckets[1:])  # the smallest bucket that fits
      x_best, m_best = lax.switch(which, [branch(size) for size in buckets], x_best, m_best)
      cost = jnp.asarray(buckets, jnp.int32)[which]
    return i + 1, x_best, m_best, forward + cost, counts + active.astype(jnp.int32)

  def cond(state):
    i, _, m_best, _, _ = state
    return (i < queries) & jnp.any(m_best > 0.0)

  init = (jnp.int32(0), x_best, m_best, jnp.int32(n), jnp.ones((n,), jnp.int32))
  i, x_best, _, forward, counts = lax.while_loop(cond, body, init)
  return _project(x_best, x, eps), SquareInfo(forward, i, counts)


def _square_args(x, y, eps, queries: int):
  x = _check_batch(x)
  y = jnp.asarray(check_labels(y, x.shape[0]))
  _check_eps(eps, x.shape[-1])
  _check_positive_int(queries, "queries")
  return x, y, _radius(eps, x)


def random_square(logits_fn: Callable[[Array, Array], Array], x, y, *, eps, key,
                  queries: int = SQUARE_QUERIES, p_init: float = 0.8, rescale_schedule: bool = True,
                  return_info: bool = False):
  """:func:`square` for a random model ``logits_fn(x, key)``: each query sees one fresh draw.

  Every query runs the whole batch (a random model's draw may be shared across the batch, e.g. PNI's
  weight noise, so each image keeps the draws it would get alone in the batch); images already fooled
  are not changed. :func:`eot_square` averages each query over several draws instead.

  Args:
    logits_fn: ``logits_fn(x, key) -> (N, K)`` logits; never differentiated.
    x, y, eps, key, queries, p_init, rescale_schedule, return_info: as in :func:`square`.

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]`` (and a
    :class:`SquareInfo` with ``return_info``).
  """
  return eot_square(logits_fn, x, y, eps=eps, key=key, queries=queries, samples=1, p_init=p_init,
                    rescale_schedule=rescale_schedule, return_info=return_info)


def eot_square(logits_fn: Callable[[Array, Array], Array], x, y, *, eps, key, samples: int,
               queries: int = SQUARE_QUERIES, p_init: float = 0.8, rescale_schedule: bool = True,
               return_info: bool = False):
  """EOT-Square against a random model: a proposal is kept only if the margin averaged over ``samples``
  fresh draws of ``logits_fn(x, key)`` is lower than the current point's (averaged when it was kept).

  One draw per query (``samples=1``) is :func:`random_square`, which a random defense fools into keeping
  proposals that were lucky draws; the average is what an attacker of the expected classifier
  minimises, as EOT does for the gradient attacks. An image is done once its averaged margin is
  ``<= 0``. Every query runs the whole batch ``samples`` times (the forward passes count each).

  Args:
    logits_fn: ``logits_fn(x, key) -> (N, K)`` logits; never differentiated.
    x, y, eps, key, queries, p_init, rescale_schedule, return_info: as in :func:`square`.
    samples: draws averaged per query, a static int ``>= 1``.

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]`` (and a
    :class:`SquareInfo` with ``return_info``).

  References:
    Andriushchenko et al., ECCV 2020 (Square); Athalye et al., ICML 2018 (EOT); Croce et al., "Evaluating
    the adversarial robustness of adaptive test-time defenses", ICML 2022 (EOT for randomised defenses).
  """
  x, y, eps = _square_args(x, y, eps, queries)
  _check_positive_int(samples, "samples")
  margin_of = lambda z, k: margin(lax.stop_gradient(logits_fn(lax.stop_gradient(z), k)), y)
  query = margin_of if samples == 1 else eot(margin_of, samples)
  # Never compacted: every query is of the whole batch (labels y), so the query ignores its labels argument.
  x_adv, info = _square_loop(lambda z, _, k: query(z, k), x, y, eps=eps, key=key, queries=queries,
                             p_init=p_init, rescale_schedule=rescale_schedule, compact=False)
  info = info._replace(forward_passes=info.forward_passes * samples)
  return (x_adv, info) if return_info else x_adv


def square(apply_fn: Callable[[Array], Array], x, y, *, eps, key, queries: int = SQUARE_QUERIES,
           p_init: float = 0.8, rescale_schedule: bool = True, return_info: bool = False):
  """Square Attack (Andriushchenko et al. 2020), L-infinity: random search that needs no gradient.

  Starts from vertical stripes ``x +- eps`` and then, ``queries`` times, proposes to set one random square
  (per example its own position; per channel one sign) to ``x +- eps``, keeping the proposal when the
  margin ``z_y - max_{i != y} z_i`` decreases. The square's area shrinks on the schedule
  :func:`square_p_schedule`. Only the images still robust are queried, as in the reference code: each
  query gathers them into the smallest of a few fixed batch sizes (``N``, ``N/2``, ..., ``N/16``, so
  nothing recompiles as their number falls), and the loop stops when all are misclassified (a
  ``lax.while_loop``). Each image's proposals are drawn as if the whole batch were queried, so the
  result per image is that of querying every image. Only the model's outputs are used (inputs and
  outputs are wrapped in ``stop_gradient``), so it is the check against a defense whose gradients are
  obfuscated.

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
    return_info: also return a :class:`SquareInfo` (forward passes, iterations, queries per image).

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``; with ``return_info``,
    ``(x_adv, SquareInfo)``.

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
  x, y, eps = _square_args(x, y, eps, queries)
  query = lambda z, yz, _: margin(lax.stop_gradient(apply_fn(lax.stop_gradient(z))), yz)
  x_adv, info = _square_loop(query, x, y, eps=eps, key=key, queries=queries, p_init=p_init,
                             rescale_schedule=rescale_schedule, compact=True)
  return (x_adv, info) if return_info else x_adv
