"""Gradient-masking checks on the model itself: the warning signs of Carlini et al.'s checklist that can be
read off the classifier before any attack runs.

Each check returns the dict of :func:`iss_jax.robustness.adversarial_sanity_checks`
(``{"check", "ok", "detail", "rows"}``), so reports print them side by side; ``ok=False`` is a raised flag.

References:
  Carlini et al., "On evaluating adversarial robustness", 2019 (Sec. 5: the gradient-masking checklist);
  Croce et al., "RobustBench", 2021 (Sec. 3: which defenses the standard attacks cannot evaluate).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# A share of images above this with an exactly zero loss gradient raises the zero-gradient flag.
ZERO_GRADIENT_SHARE = 0.01
# Rows within this of summing to one, all in [0, 1], look like probabilities.
_PROBABILITY_TOL = 1e-3


def _check(name: str, ok: bool, detail: str) -> dict:
  return {"check": name, "ok": bool(ok), "detail": detail, "rows": []}


def probability_check(logits: np.ndarray) -> dict:
  """Flags outputs that look like probabilities (every row in ``[0, 1]`` summing to 1): the attacks'
  cross-entropy then takes a log of a saturated softmax, whose gradient vanishes.

  Args:
    logits: ``(N, K)`` outputs of the classifier on clean images.
  """
  logits = np.asarray(logits, np.float64)
  looks = bool(logits.size and logits.min() >= 0 and logits.max() <= 1
               and np.abs(logits.sum(-1) - 1).max() <= _PROBABILITY_TOL)
  detail = ("every output row lies in [0, 1] and sums to 1: the classifier returns probabilities; return "
            "logits (the scores before softmax) instead" if looks else "outputs are not probabilities")
  return _check("outputs are logits, not probabilities", not looks, detail)


def randomness_check(first: np.ndarray, second: np.ndarray) -> dict:
  """Flags clean predictions that change between two runs with different keys: the classifier is random,
  so a single-draw evaluation overstates it (evaluate it with EOT, the ``rand`` protocol).

  Args:
    first, second: ``(N,)`` predicted classes of the same images in two runs.
  """
  changed = int(np.sum(np.asarray(first) != np.asarray(second)))
  detail = (f"{changed} of {len(first)} clean predictions changed between two runs: the classifier is "
            "random; evaluate it with EOT (version='rand')" if changed else "clean predictions are the same "
            "in two runs")
  return _check("clean predictions are deterministic", changed == 0, detail)


def zero_gradient_check(gradient_norms: np.ndarray, *, max_share: float = ZERO_GRADIENT_SHARE) -> dict:
  """Flags images whose loss gradient is exactly zero at the clean point (a shattered or saturated
  gradient: gradient attacks cannot start there).

  Args:
    gradient_norms: ``(N,)`` largest absolute entry of the cross-entropy gradient w.r.t. each image.
    max_share: the share of zero-gradient images above which the flag is raised.
  """
  zeros = int(np.sum(np.asarray(gradient_norms) == 0))
  share = zeros / max(len(gradient_norms), 1)
  detail = (f"{zeros} of {len(gradient_norms)} images ({share:.1%}) have an exactly zero loss gradient at "
            "the clean point")
  return _check("the loss has a gradient at the clean images", share <= max_share, detail)


def model_checks(logits_fn: Callable[[Array, Array], Array], x, y, *, key: Array) -> list[dict]:
  """The three checks on the model: probabilities, randomness and zero gradients, on one batch.

  Args:
    logits_fn: ``(x, key) -> (N, K)`` outputs of the classifier (behind its defense), on ``(N, H, W, C)``
      float ``[0, 1]`` images; a deterministic one ignores ``key``.
    x: ``(N, H, W, C)`` clean images.
    y: ``(N,)`` labels.
    key: PRNG key; two runs use two keys derived from it.

  Returns:
    ``[probability_check, randomness_check, zero_gradient_check]`` results.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from iss_jax.robustness import model_checks
    >>> w = jax.random.normal(jax.random.key(0), (12, 3))
    >>> softmax_model = lambda x, key: jax.nn.softmax(x.reshape(x.shape[0], -1) @ w)
    >>> x = jax.random.uniform(jax.random.key(1), (4, 2, 2, 3))
    >>> [c["ok"] for c in model_checks(softmax_model, x, jnp.zeros(4, int), key=jax.random.key(2))]
    [False, True, True]
  """
  x, y = jnp.asarray(x), jnp.asarray(y)
  k1, k2 = jax.random.split(key)

  def loss(z, k):
    logits = logits_fn(z, k)
    return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], -1)), logits

  grad, logits = jax.grad(loss, has_aux=True)(x, k1)
  second = jnp.argmax(logits_fn(x, k2), -1)
  norms = jnp.max(jnp.abs(grad).reshape(grad.shape[0], -1), -1)
  return [probability_check(np.asarray(logits)),
          randomness_check(np.asarray(jnp.argmax(logits, -1)), np.asarray(second)),
          zero_gradient_check(np.asarray(norms))]
