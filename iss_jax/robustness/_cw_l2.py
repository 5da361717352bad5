"""The Carlini-Wagner L2 attack: the smallest L2 perturbation that fools a classifier with a margin.

Carlini & Wagner (2017) minimise ``||x' - x||_2^2 + c * f(x')`` over ``x' = (tanh(w) + 1) / 2`` (the box
``[0, 1]`` by construction) with Adam, where ``f(x') = max(Z_y - max_{i != y} Z_i + kappa, 0)`` on the
logits ``Z``, and search ``c`` per example by bisection: a ``c`` that found an adversarial example is an
upper bound, one that did not a lower bound (times 10 until an upper bound is known). Every iterate that
fools the classifier with margin ``kappa`` (``max_{i != y} Z_i > Z_y + kappa``, the reference
implementation's test) is a candidate; the smallest-L2 candidate over the whole search is returned.

This is not the L-infinity "CW" of PGD on the CW margin (:func:`iss_jax.robustness.cw`), which keeps only
the margin loss; this one is unbounded and measures the minimal perturbation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax._src.checks import check_image, check_labels, is_concrete
from iss_jax.robustness._attacks import _check_positive_int

Array = jax.Array

# Adam's constants of the reference implementations (TensorFlow / PyTorch defaults).
_B1, _B2, _ADAM_EPS = 0.9, 0.999, 1e-8
_BIG = 1e10  # "no upper bound on c yet" / "no adversarial example yet"


class CWL2Result(NamedTuple):
  """What :func:`cw_l2` found.

  Attributes:
    x_adv: ``(N, H, W, C)`` float in ``[0, 1]``: the smallest-L2 adversarial example found, or the input
      image where none was found.
    success: ``(N,)`` bool, an adversarial example with margin ``kappa`` was found.
    l2: ``(N,)`` float32, ``||x_adv - x||_2`` (0 where ``success`` is False).
    c: ``(N,)`` float32, the constant of the last bisection step.
  """

  x_adv: Array
  success: Array
  l2: Array
  c: Array


def _fooled(logits: Array, y: Array, kappa) -> Array:
  """``max_{i != y} Z_i > Z_y + kappa``, as ``argmax(Z + kappa e_y) != y`` (the reference's test)."""
  onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype)
  return jnp.argmax(logits + kappa * onehot, -1) != y


def _margin_loss(logits: Array, y: Array, kappa) -> Array:
  """``max(Z_y - max_{i != y} Z_i + kappa, 0)`` per example."""
  onehot = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype)
  real = jnp.sum(onehot * logits, -1)
  other = jnp.max(jnp.where(onehot > 0, -jnp.inf, logits), -1)
  return jnp.maximum(real - other + kappa, 0.0)


def cw_l2(apply_fn: Callable[[Array], Array], x, y, *, kappa: float = 0.0, c_init: float = 1e-3,
          binary_steps: int = 9, steps: int = 1000, lr: float = 0.01) -> CWL2Result:
  """Carlini-Wagner L2 (untargeted) with a bisection over ``c`` per example.

  Defaults are those of Carlini & Wagner's reference code except ``steps`` (theirs: 10,000). SPLIC's
  setting is ``kappa=20, binary_steps=5, lr=0.005, steps=1000``. There is no early abort: every example
  runs ``binary_steps * steps`` gradient steps, so the result does not depend on the rest of the batch.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> ``(N, K)`` logits (deterministic; wrap a random model in
      an EOT mean first).
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    kappa: the confidence margin (>= 0).
    c_init: the first ``c`` of every example (> 0).
    binary_steps: bisection steps over ``c`` (>= 1; 1 keeps ``c = c_init``).
    steps: Adam steps per bisection step (>= 1).
    lr: Adam's learning rate (> 0).

  Returns:
    A :class:`CWL2Result`.

  Raises:
    ValueError: bad shapes or labels, or a setting out of range.

  Examples:
    >>> import jax.numpy as jnp
    >>> from iss_jax.robustness import cw_l2
    >>> model = lambda v: v.reshape(-1, 1) * jnp.array([[1.0, -1.0]]) + jnp.array([[0.0, 1.0]])
    >>> res = cw_l2(model, jnp.full((1, 1, 1, 1), 0.6), jnp.array([0]))  # Z = (v, 1 - v): class 1 below 0.5
    >>> bool(res.success[0]), round(float(res.l2[0]), 2)                  # the minimum: from 0.6 to 0.5
    (True, 0.1)

  References:
    Carlini & Wagner, "Towards evaluating the robustness of neural networks", IEEE S&P 2017.
  """
  x = check_image(x, "x", ranks=(4,), min_size=1, value_range=(0.0, 1.0))
  y = check_labels(y, x.shape[0])
  _check_positive_int(binary_steps, "binary_steps")
  _check_positive_int(steps, "steps")
  for name, value in (("kappa", kappa), ("c_init", c_init), ("lr", lr)):
    if is_concrete(value) and not (float(value) >= 0 if name == "kappa" else float(value) > 0):
      raise ValueError(f"{name} must be {'>= 0' if name == 'kappa' else '> 0'}; got {value!r}.")
  n = x.shape[0]
  axes = tuple(range(1, x.ndim))
  to_image = lambda w: 0.5 * (jnp.tanh(w) + 1.0)
  w0 = jnp.arctanh((2.0 * x - 1.0) * 0.999999)  # the reference's shrink keeps atanh finite at 0 and 1
  x0 = to_image(w0)
  expand = lambda v: v.reshape((n,) + (1,) * (x.ndim - 1))

  def objective(w, c):
    image = to_image(w)
    logits = apply_fn(image)
    l2sq = jnp.sum((image - x0) ** 2, axis=axes)
    return jnp.sum(l2sq + c * _margin_loss(logits, y, kappa)), (image, logits)

  grad = jax.grad(objective, has_aux=True)

  def search_step(_, carry):
    c, lower, upper, best_l2sq, best_x = carry

    def adam_step(t, inner):
      w, m, v, found, best_l2sq, best_x = inner
      g, (image, logits) = grad(w, c)
      # The point of this step's gradient is a candidate (the reference records it before the update).
      l2sq = jnp.sum((image - x) ** 2, axis=axes)
      ok = _fooled(logits, y, kappa)
      better = ok & (l2sq < best_l2sq)
      best_l2sq = jnp.where(better, l2sq, best_l2sq)
      best_x = jnp.where(expand(better), image, best_x)
      m = _B1 * m + (1 - _B1) * g
      v = _B2 * v + (1 - _B2) * g * g
      k = (t + 1).astype(x.dtype)
      step = lr / (1 - _B1**k) * m / (jnp.sqrt(v) / jnp.sqrt(1 - _B2**k) + _ADAM_EPS)
      return w - step, m, v, found | ok, best_l2sq, best_x

    zeros = jnp.zeros_like(x)
    _, _, _, found, best_l2sq, best_x = lax.fori_loop(
        0, steps, adam_step, (w0, zeros, zeros, jnp.zeros(n, bool), best_l2sq, best_x))
    upper = jnp.where(found, jnp.minimum(upper, c), upper)
    lower = jnp.where(found, lower, jnp.maximum(lower, c))
    c = jnp.where(upper < _BIG / 10, (lower + upper) / 2, c * 10)
    return c, lower, upper, best_l2sq, best_x

  c = jnp.full((n,), c_init, x.dtype)
  init = (c, jnp.zeros(n, x.dtype), jnp.full((n,), _BIG, x.dtype), jnp.full((n,), jnp.inf, x.dtype), x)
  c, _, _, best_l2sq, best_x = lax.fori_loop(0, binary_steps, search_step, init)
  success = jnp.isfinite(best_l2sq)
  return CWL2Result(x_adv=best_x, success=success, l2=jnp.where(success, jnp.sqrt(best_l2sq), 0.0), c=c)
