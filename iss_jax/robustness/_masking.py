"""Gradient-masking checks: the warning signs of Carlini et al.'s checklist, on the model itself (read off
the classifier before any attack runs) and on the attacks' results (which :func:`iss_jax.robustness.evaluate`
computes during its run).

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

from iss_jax.robustness._stats import wilson_interval

Array = jax.Array

# A share of images above this with an exactly zero loss gradient raises the zero-gradient flag.
ZERO_GRADIENT_SHARE = 0.01
# Rows within this of summing to one, all in [0, 1], look like probabilities.
_PROBABILITY_TOL = 1e-3
# Accuracy counted as "~0" at a large eps (the eps-sweep check), as in adversarial_sanity_checks.
ZERO_ACCURACY = 0.05
# An unbounded attack whose success rate's 95% interval lies below this has not reached 100%.
UNBOUNDED_SUCCESS = 0.99


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


def randomness_check(first: np.ndarray, second: np.ndarray, *, random_protocol: bool = False) -> dict:
  """Flags clean predictions that change between two runs with different keys: the classifier is random,
  so a single-draw evaluation overstates it (evaluate it with EOT, the ``rand`` protocol).

  Args:
    first, second: ``(N,)`` predicted classes of the same images in two runs.
    random_protocol: the evaluation already treats the classifier as random (``version="rand"``): a
      change is then expected and not flagged.
  """
  changed = int(np.sum(np.asarray(first) != np.asarray(second)))
  if not changed:
    detail = "clean predictions are the same in two runs"
  elif random_protocol:
    detail = (f"{changed} of {len(first)} clean predictions changed between two runs: the classifier is "
              "random, evaluated with EOT (the rand protocol)")
  else:
    detail = (f"{changed} of {len(first)} clean predictions changed between two runs: the classifier is "
              "random; evaluate it with EOT (version='rand')")
  return _check("clean predictions are deterministic", changed == 0 or random_protocol, detail)


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


def model_checks(logits_fn: Callable[[Array, Array], Array], x, y, *, key: Array,
                 random_protocol: bool = False) -> list[dict]:
  """The three checks on the model: probabilities, randomness and zero gradients, on one batch.

  Args:
    logits_fn: ``(x, key) -> (N, K)`` outputs of the classifier (behind its defense), on ``(N, H, W, C)``
      float ``[0, 1]`` images; a deterministic one ignores ``key``.
    x: ``(N, H, W, C)`` clean images.
    y: ``(N,)`` labels.
    key: PRNG key; two runs use two keys derived from it.
    random_protocol: the classifier is evaluated as random (see :func:`randomness_check`).

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

  @jax.jit
  def measure(x, y, k1, k2):
    grad, logits = jax.grad(loss, has_aux=True)(x, y, k1)
    return logits, jnp.argmax(logits_fn(x, k2), -1), jnp.max(jnp.abs(grad).reshape(grad.shape[0], -1), -1)

  def loss(z, y, k):
    logits = logits_fn(z, k)
    return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], -1)), logits

  logits, second, norms = measure(x, y, k1, k2)
  return [probability_check(np.asarray(logits)),
          randomness_check(np.asarray(jnp.argmax(logits, -1)), np.asarray(second),
                           random_protocol=random_protocol),
          zero_gradient_check(np.asarray(norms))]


def _above(a: float, b: float, n: int) -> bool:
  """Accuracy ``a`` is above ``b`` beyond sampling noise: their 95% Wilson intervals on ``n`` images do not
  overlap (the rule of :func:`iss_jax.robustness.adversarial_sanity_checks`)."""
  return wilson_interval(a, n)[0] > wilson_interval(b, n)[1]


def _show(v: float, n: int) -> str:
  lo, hi = wilson_interval(v, n)
  return f"{v:.1%} [{lo:.1%}, {hi:.1%}]"


def gradient_free_check(before: float, after: float, n: int, *, name: str = "square") -> dict:
  """Flags a gradient-free attack that breaks images the gradient attacks could not: robust accuracy
  after the gradient attacks (``before``) is above the accuracy once the gradient-free attack ``name``
  also ran (``after``) beyond sampling noise. The gradient then misleads the attacks (masking).

  Args:
    before: accuracy after the gradient attacks.
    after: accuracy after the gradient attacks and ``name``, on the same ``n`` images.
    n: images.
    name: the gradient-free attack.
  """
  detail = f"after the gradient attacks {_show(before, n)}, after {name} too {_show(after, n)}"
  return _check(f"the gradient-free {name} is not stronger than the gradient attacks",
                not _above(before, after, n), detail)


def one_step_check(one_step: float, iterative: float, n: int, *, name: str = "apgd-ce") -> dict:
  """Flags a one-step attack (FGSM) that is stronger than an iterative one (``name``) beyond sampling
  noise: the iterative attack's later steps follow a misleading gradient.

  Args:
    one_step: accuracy under FGSM.
    iterative: accuracy under the iterative attack, on the same ``n`` images.
    n: images.
    name: the iterative attack.
  """
  detail = f"FGSM {_show(one_step, n)} vs {name} {_show(iterative, n)}"
  return _check(f"one-step FGSM is not stronger than iterative {name}", not _above(iterative, one_step, n),
                detail)


def large_eps_check(accuracy: float, eps: float, n: int, *, zero_tol: float = ZERO_ACCURACY) -> dict:
  """Flags accuracy that does not fall to ~0 at a large ``eps`` (e.g. 0.5, where any image can be moved to
  a grey one): the 95% interval of ``accuracy`` lies above ``zero_tol``.

  Args:
    accuracy: accuracy under a gradient attack at ``eps``.
    eps: the large radius.
    n: images.
    zero_tol: accuracy counted as ~0.
  """
  detail = f"accuracy {_show(accuracy, n)} at eps={eps:g} ({eps * 255:.3g}/255)"
  return _check("accuracy reaches ~0 as eps grows", wilson_interval(accuracy, n)[0] <= zero_tol, detail)


def unbounded_check(success_rate: float, n: int, *, name: str = "APGD-CE at eps=1",
                    min_success: float = UNBOUNDED_SUCCESS) -> dict:
  """Flags an unbounded attack that does not reach 100% success on the correctly classified images (its
  success rate's 95% interval lies below ``min_success``): with no radius every image can be changed.

  Args:
    success_rate: share of the ``n`` correctly classified images the unbounded attack fooled.
    n: images attacked.
    name: the attack.
    min_success: see above.
  """
  if n == 0:
    return _check("an unbounded attack reaches 100% success", True, "no correctly classified image")
  detail = f"{name} fooled {_show(success_rate, n)} of {n} correctly classified images"
  return _check("an unbounded attack reaches 100% success",
                wilson_interval(success_rate, n)[1] >= min_success, detail)


def transfer_check(gray_box: float, adaptive: float, n: int, *, name: str = "apgd-ce") -> dict:
  """Flags examples made on the bare model (gray-box, transferred through the defense) that are stronger
  than the same attack through the defense (adaptive) beyond sampling noise: the adaptive attack's
  gradient through the defense is broken or misleading.

  Args:
    gray_box: accuracy of the defended model on ``name``'s examples for the bare model.
    adaptive: accuracy under ``name`` through the defense, on the same ``n`` images.
    n: images.
    name: the attack.
  """
  detail = f"{name} gray-box (bare model, then defend) {_show(gray_box, n)} vs adaptive {_show(adaptive, n)}"
  return _check(f"transfer from the bare model is not stronger than adaptive {name}",
                not _above(adaptive, gray_box, n), detail)
