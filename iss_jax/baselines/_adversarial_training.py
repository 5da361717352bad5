"""Adversarial-training losses: PGD-AT (Madry et al. 2018) and TRADES (Zhang et al. 2019).

Both take the model as ``logits_fn(x) -> (N, K)`` logits that closes over the parameters being
trained, so ``jax.grad`` of the loss w.r.t. those parameters is the training gradient. The inner
maximisation runs :func:`iss_jax.robustness.pgd_maximize` on ``attack_logits_fn`` (default: ``logits_fn``; for
BatchNorm models pass the inference-mode model, as the reference implementations attack in
``eval()`` mode) and its result is ``stop_gradient``-ed: the outer gradient is taken at the fixed
adversarial example (Danskin's theorem).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from iss_jax._src.checks import check_image, check_labels
from iss_jax.robustness import cross_entropy, pgd_maximize

Array = jax.Array

MADRY_EPS = 8 / 255
MADRY_STEP = 2 / 255
TRADES_BETA = 6.0


def _call(logits_fn, x, has_aux):
  out = logits_fn(x)
  return out if has_aux else (out, None)


def _check(x, y, key):
  x = check_image(x, "x", ranks=(4,), min_size=1, finite=False)
  y = jnp.asarray(check_labels(y, x.shape[0]))
  if key is None:
    raise ValueError("key is required (the random start of the inner PGD).")
  return x, y


def kl_divergence(logits_p: Array, logits_q: Array) -> Array:
  """Per-example ``KL(softmax(logits_p) || softmax(logits_q))``, ``(N, K)`` each -> ``(N,)``."""
  logp = jax.nn.log_softmax(logits_p.astype(jnp.float32), axis=-1)
  logq = jax.nn.log_softmax(logits_q.astype(jnp.float32), axis=-1)
  return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


def adversarial_examples(logits_fn: Callable, x, y, *, key, method: str = "pgd", eps=MADRY_EPS,
                         step_size=MADRY_STEP, steps: int = 10, random_start: bool = True) -> Array:
  """The inner maximisation of PGD-AT (``method="pgd"``) or TRADES (``method="trades"``).

  Args:
    logits_fn: ``logits_fn(x) -> (N, K)`` logits (typically the inference-mode model).
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels (unused by TRADES).
    key: PRNG key for the random start.
    method: ``"pgd"`` maximises ``CE(f(x'), y)``; ``"trades"`` maximises ``KL(f(x) || f(x'))``.
    eps: L-infinity radius (Madry: 8/255).
    step_size: sign-gradient step (Madry: 2/255).
    steps: PGD iterations (static).
    random_start: uniform start in the ball (needed for TRADES: the KL has zero gradient at ``x' =
      x``).

  Returns:
    ``stop_gradient`` adversarial images, ``|x' - x| <= eps``, in ``[0, 1]``.

  Raises:
    ValueError: bad shapes, missing ``key`` or unknown ``method``.
  """
  x, y = _check(x, y, key)
  if method == "pgd":
    objective = lambda z: cross_entropy(logits_fn(z), y)
  elif method == "trades":
    clean = jax.lax.stop_gradient(logits_fn(x))
    objective = lambda z: kl_divergence(clean, logits_fn(z))
  else:
    raise ValueError(f"method must be 'pgd' or 'trades'; got {method!r}.")
  x_adv = pgd_maximize(objective, jax.lax.stop_gradient(x), eps=eps, step_size=step_size,
                       steps=steps, key=key, random_start=random_start)
  return jax.lax.stop_gradient(x_adv)


def pgd_at_loss(logits_fn: Callable, x, y, *, key, eps=MADRY_EPS, step_size=MADRY_STEP,
                steps: int = 10, random_start: bool = True,
                attack_logits_fn: Callable | None = None, has_aux: bool = False):
  """Madry et al. adversarial training loss: ``mean_i CE(f(x'_i), y_i)``, ``x'`` from PGD on the CE.

  Args:
    logits_fn: ``logits_fn(x) -> logits`` (or ``(logits, aux)`` with ``has_aux``), closing over the
      trained parameters.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    key: PRNG key for PGD's random start.
    eps: L-infinity radius (Madry, CIFAR-10: 8/255).
    step_size: PGD step (2/255).
    steps: PGD iterations (Madry trained with 7; 10 is the common choice).
    random_start: uniform random start in the ball (Madry: yes).
    attack_logits_fn: model used by the attack, ``x -> logits``; default ``logits_fn`` (its aux
      dropped).
    has_aux: ``logits_fn`` returns ``(logits, aux)``.

  Returns:
    ``(loss, info)``: scalar mean loss and a dict with ``x_adv``, ``logits_adv`` and (with
    ``has_aux``) ``aux``, the aux output of the training forward pass.

  Raises:
    ValueError: bad shapes or missing ``key``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> f = lambda x: x.reshape(x.shape[0], -1) @ w
    >>> x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    >>> loss, info = iss_jax.baselines.pgd_at_loss(f, x, jnp.array([0, 1]), key=jax.random.key(2), steps=3)
    >>> loss.shape, info["x_adv"].shape
    ((), (2, 4, 4, 3))

  References:
    A. Madry et al., "Towards deep learning models resistant to adversarial attacks", ICLR 2018.
  """
  x, y = _check(x, y, key)
  attack_fn = attack_logits_fn or (lambda z: _call(logits_fn, z, has_aux)[0])
  x_adv = adversarial_examples(attack_fn, x, y, key=key, method="pgd", eps=eps, step_size=step_size,
                               steps=steps, random_start=random_start)
  logits_adv, aux = _call(logits_fn, x_adv, has_aux)
  loss = jnp.mean(cross_entropy(logits_adv, y))
  info = {"x_adv": x_adv, "logits_adv": logits_adv}
  if has_aux:
    info["aux"] = aux
  return loss, info


def trades_loss(logits_fn: Callable, x, y, *, key, beta=TRADES_BETA, eps=MADRY_EPS,
                step_size=MADRY_STEP, steps: int = 10, attack_logits_fn: Callable | None = None,
                has_aux: bool = False):
  """TRADES loss: ``mean_i [CE(f(x_i), y_i) + beta KL(f(x_i) || f(x'_i))]``, ``x'`` maximising the
  KL.

  Args:
    logits_fn: ``logits_fn(x) -> logits`` (or ``(logits, aux)`` with ``has_aux``), closing over the
      trained parameters. Called once on the concatenation ``[x; x']`` (so BatchNorm sees one batch
      of both; the reference implementation calls the model twice).
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    key: PRNG key for the inner maximisation's random start.
    beta: trade-off weight (paper: 6 on CIFAR-10).
    eps: L-infinity radius (8/255).
    step_size: inner PGD step (2/255; the reference uses 0.007).
    steps: inner PGD iterations (10 as in the reference).
    attack_logits_fn: model used by the inner maximisation; default ``logits_fn``.
    has_aux: ``logits_fn`` returns ``(logits, aux)``.

  Returns:
    ``(loss, info)``: scalar loss and a dict with ``x_adv``, ``logits`` (clean), ``logits_adv``, the
    mean ``natural`` CE and ``robust`` KL terms and (with ``has_aux``) ``aux``.

  Raises:
    ValueError: bad shapes or missing ``key``.

  Note:
    The inner maximisation starts from a uniform point of the ``eps`` ball (Madry's start) instead
    of the reference's ``x + 0.001 N(0, 1)``; both only serve to leave ``x' = x``, where the KL's
    gradient is 0.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> f = lambda x: jnp.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], -1)  # a 2-class toy model
    >>> x = jnp.full((2, 4, 4, 3), 0.5)
    >>> loss, info = iss_jax.baselines.trades_loss(f, x, jnp.array([0, 1]), key=jax.random.key(0), steps=3)
    >>> bool(info["robust"] >= 0)
    True

  References:
    H. Zhang et al., "Theoretically principled trade-off between robustness and accuracy", ICML
    2019.
  """
  x, y = _check(x, y, key)
  attack_fn = attack_logits_fn or (lambda z: _call(logits_fn, z, has_aux)[0])
  x_adv = adversarial_examples(attack_fn, x, y, key=key, method="trades", eps=eps,
                               step_size=step_size, steps=steps, random_start=True)
  n = x.shape[0]
  logits_all, aux = _call(logits_fn, jnp.concatenate([x, x_adv], axis=0), has_aux)
  logits, logits_adv = logits_all[:n], logits_all[n:]
  natural = jnp.mean(cross_entropy(logits, y))
  robust = jnp.mean(kl_divergence(logits, logits_adv))
  info = {"x_adv": x_adv, "logits": logits, "logits_adv": logits_adv, "natural": natural,
          "robust": robust}
  if has_aux:
    info["aux"] = aux
  return natural + beta * robust, info
