"""Auto-PGD (APGD-CE, APGD-DLR, targeted APGD-DLR) in JAX: jitted, batched, per-example state.

The algorithm and its constants follow the paper and its reference code (fra31/auto-attack,
``autoattack/autopgd_base.py``): initial step ``2 * eps``; checkpoints ``w_j = ceil(p_j * steps)`` with
``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (the reference's integer
version: first window ``max(int(0.22 n), 1)``, each next window shorter by ``max(int(0.03 n), 1)`` down to
``max(int(0.06 n), 1)``); momentum ``alpha = 0.75`` (``1`` at the first step); at a checkpoint the step is
halved and the iterate restarts from the best point (with its gradient) when the loss increased in at most
``rho = 0.75`` of the window's steps, or when the step was not halved at the previous checkpoint and the
best loss has not improved since. DLR loss ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)``;
targeted DLR ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`` with targets the 2nd, 3rd, ...
highest clean logits (AutoAttack's standard run: 9 targets, 100 steps, 1 restart each).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from iss_jax.robustness._attacks import (
  _check_attack,
  _check_positive_int,
  _project,
  _radius,
  cross_entropy,
  eot,
)

Array = jax.Array
LOSSES = ("ce", "dlr", "dlr-targeted")


def apgd_checkpoints(steps: int) -> list[int]:
  """APGD's checkpoints ``w_1 < w_2 < ...`` (iteration counts) for a run of ``steps`` iterations.

  The paper's ``w_j = ceil(p_j * steps)`` with ``p_0 = 0, p_1 = 0.22`` and
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, in the integer form of the reference code (first
  window ``max(int(0.22 * steps), 1)`` iterations, each next one ``max(int(0.03 * steps), 1)`` shorter, at
  least ``max(int(0.06 * steps), 1)``); checkpoints past ``steps`` are dropped.

  Examples:
    >>> from iss_jax.robustness import apgd_checkpoints
    >>> apgd_checkpoints(100)
    [22, 41, 57, 70, 80, 87, 93, 99]

  References:
    F. Croce, M. Hein, Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks, ICML 2020, Sec. 3.2; fra31/auto-attack ``autopgd_base.py``.
  """
  _check_positive_int(steps, "steps")
  k = max(int(0.22 * steps), 1)
  k_min, k_decr = max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
  out, w = [], 0
  while w + k <= steps:
    w += k
    out.append(w)
    k = max(k - k_decr, k_min)
  return out


def _top(logits: Array, j: int) -> Array:
  """The ``j``-th largest logit per row (``j = 1``: the maximum), ``(N, K) -> (N,)``."""
  return jnp.sort(logits, axis=-1)[:, -j]


def dlr_loss(logits: Array, y: Array) -> Array:
  """Difference of logits ratio, ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`` per example.

  ``z_pi1 >= z_pi2 >= ...`` are the sorted logits. Shift- and scale-invariant in the logits. With fewer
  than 3 classes the normaliser is undefined and the loss is the plain margin ``max_{i != y} z_i - z_y``.

  Args:
    logits: ``(N, K)`` logits.
    y: ``(N,)`` int labels.

  Returns:
    ``(N,)`` float32 losses (maximised by the attack).

  References:
    Croce & Hein, ICML 2020, Eq. (6).
  """
  z = logits.astype(jnp.float32)
  z_y = jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
  other = jnp.max(jnp.where(jax.nn.one_hot(y, z.shape[-1], dtype=bool), -jnp.inf, z), axis=-1)
  if z.shape[-1] < 3:
    return other - z_y
  return -(z_y - other) / (_top(z, 1) - _top(z, 3) + 1e-12)


def dlr_loss_targeted(logits: Array, y: Array, target: Array) -> Array:
  """Targeted DLR, ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`` per example.

  With fewer than 4 classes the normaliser is undefined and the loss is the margin ``z_t - z_y``.

  References:
    Croce & Hein, ICML 2020, Sec. 5 (APGD-T); ``dlr_loss_targeted`` in fra31/auto-attack.
  """
  z = logits.astype(jnp.float32)
  z_y = jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
  z_t = jnp.take_along_axis(z, target[:, None], axis=-1)[:, 0]
  if z.shape[-1] < 4:
    return z_t - z_y
  return -(z_y - z_t) / (_top(z, 1) - 0.5 * (_top(z, 3) + _top(z, 4)) + 1e-12)


def _loss_fn(loss: str, y, target):
  if loss == "ce":
    return lambda z: cross_entropy(z, y)
  if loss == "dlr":
    return lambda z: dlr_loss(z, y)
  return lambda z: dlr_loss_targeted(z, y, target)


def _evaluator(logits_fn, loss_of_logits, samples: int):
  """``(z, key) -> (loss (N,), logits (N, K), grad)``, each averaged over ``samples`` draws (EOT)."""
  def one(z, k):
    def total(v):
      logits = logits_fn(v, k)
      per = loss_of_logits(logits)
      return jnp.sum(per), (per, logits)
    g, (per, logits) = jax.grad(total, has_aux=True)(z)
    return per, logits.astype(jnp.float32), g

  return one if samples == 1 else eot(one, samples)


class APGDState(NamedTuple):
  """The per-example state of one APGD run (``N`` examples of shape ``(H, W, C)``)."""

  x_adv: Array  # (N, H, W, C) the current iterate
  x_old: Array  # (N, H, W, C) the previous iterate (for the momentum)
  grad: Array  # (N, H, W, C) the loss gradient at x_adv
  step: Array  # (N,) the step size in units of eps (per channel): 2 halved at checkpoints
  x_best: Array  # (N, H, W, C) the point of highest loss so far
  grad_best: Array  # (N, H, W, C) the gradient at x_best
  loss_best: Array  # (N,) float32 the highest loss so far
  x_best_adv: Array  # (N, H, W, C) the last point that fooled the model (else the start)
  fooled: Array  # (N,) bool whether any point fooled the model
  loss_prev: Array  # (N,) float32 the loss of the previous iterate
  n_incr: Array  # (N,) float32 steps of this window where the loss increased
  loss_best_last: Array  # (N,) float32 loss_best at the last checkpoint
  reduced_last: Array  # (N,) bool whether the step was halved at the last checkpoint


def _apgd_run(evaluate, x, y, eps, steps: int, key, rho: float):
  """One APGD run from a random start; returns ``(x_adv, fooled, x_best, loss_best)``."""
  n = x.shape[0]
  bshape = (n,) + (1,) * (x.ndim - 1)
  b = lambda v: v.reshape(bshape)
  k_start, key = jax.random.split(key)
  t = jax.random.uniform(k_start, x.shape, x.dtype, -1.0, 1.0)
  t = t / (jnp.max(jnp.abs(t), axis=(1, 2, 3), keepdims=True) + 1e-12)
  x0 = jnp.clip(x + eps * t, 0.0, 1.0)
  loss0, logits0, g0 = evaluate(x0, jax.random.fold_in(key, 0))
  fooled0 = jnp.argmax(logits0, -1) != y
  checks = apgd_checkpoints(steps)
  is_check = np.zeros(steps, bool)
  window = np.ones(steps, np.float32)
  prev = 0
  for w in checks:
    is_check[w - 1], window[w - 1] = True, w - prev
    prev = w
  is_check, window = jnp.asarray(is_check), jnp.asarray(window)

  init = APGDState(x_adv=x0, x_old=x0, grad=g0, step=jnp.full((n,), 2.0, x.dtype), x_best=x0,
                   grad_best=g0, loss_best=loss0, x_best_adv=x0, fooled=fooled0, loss_prev=loss0,
                   n_incr=jnp.zeros((n,), jnp.float32), loss_best_last=loss0,
                   reduced_last=jnp.ones((n,), bool))

  def body(i, s: APGDState) -> APGDState:
    a = jnp.where(i > 0, 0.75, 1.0).astype(x.dtype)
    z = _project(s.x_adv + b(s.step) * eps * jnp.sign(s.grad), x, eps)
    x_new = _project(s.x_adv + a * (z - s.x_adv) + (1 - a) * (s.x_adv - s.x_old), x, eps)
    loss, logits, g = evaluate(x_new, jax.random.fold_in(key, i + 1))
    wrong = jnp.argmax(logits, -1) != y
    x_best_adv = jnp.where(b(wrong), x_new, s.x_best_adv)
    better = loss > s.loss_best
    x_best = jnp.where(b(better), x_new, s.x_best)
    grad_best = jnp.where(b(better), g, s.grad_best)
    loss_best = jnp.where(better, loss, s.loss_best)
    n_incr = s.n_incr + (loss > s.loss_prev)
    # Checkpoint: halve the step and restart from the best point where the loss oscillated or stalled.
    at = is_check[i]
    reduce = (n_incr <= window[i] * rho) | (~s.reduced_last & (s.loss_best_last >= loss_best))
    reduce = reduce & at
    return APGDState(
        x_adv=jnp.where(b(reduce), x_best, x_new), x_old=s.x_adv,
        grad=jnp.where(b(reduce), grad_best, g), step=jnp.where(reduce, s.step / 2, s.step),
        x_best=x_best, grad_best=grad_best, loss_best=loss_best, x_best_adv=x_best_adv,
        fooled=s.fooled | wrong, loss_prev=loss, n_incr=jnp.where(at, 0.0, n_incr),
        loss_best_last=jnp.where(at, loss_best, s.loss_best_last),
        reduced_last=jnp.where(at, reduce, s.reduced_last))

  s = lax.fori_loop(0, steps, body, init)
  return s.x_best_adv, s.fooled, s.x_best, s.loss_best


def eot_apgd(logits_fn: Callable[[Array, Array], Array], x, y, *, eps, key, steps: int = 100,
             loss: str = "ce", restarts: int = 1, num_targets: int = 9, samples: int = 1,
             rho: float = 0.75) -> Array:
  """APGD on ``logits_fn(x, key)``, each gradient (and loss) averaged over ``samples`` draws (EOT).

  Same as :func:`apgd` for a random model: every iteration draws ``samples`` fresh keys. With
  ``samples=1`` and a deterministic ``logits_fn`` it is :func:`apgd`.

  Args:
    logits_fn: ``logits_fn(x, key) -> (N, K)`` logits, differentiable in ``x``.
    x, y, eps, key, steps, loss, restarts, num_targets, rho: as in :func:`apgd`.
    samples: draws per iteration, static int ``>= 1``.

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``.
  """
  x, y = _check_attack(x, y, eps, steps=steps, restarts=restarts, samples=samples)
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")
  eps = _radius(eps, x)
  b = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))
  n = x.shape[0]
  if loss == "dlr-targeted":
    clean = eot(lambda z, k: logits_fn(z, k).astype(jnp.float32), samples)(x, jax.random.fold_in(key, 7))
    # Targets: the highest clean logits other than the label's (for a correctly classified example the
    # reference's 2nd, 3rd, ... highest; for a misclassified one the label itself is never a target).
    clean = jnp.where(jax.nn.one_hot(y, clean.shape[-1], dtype=bool), -jnp.inf, clean)
    order = jnp.argsort(clean, axis=-1)  # ascending: column -t is the t-th highest non-label logit
    targets = jnp.stack([order[:, -t] for t in range(1, min(num_targets, clean.shape[-1] - 1) + 1)])
  else:
    targets = jnp.zeros((1, n), jnp.int32)  # unused
  # One run per (target, restart), as a scan: the loop body is compiled once.
  runs = targets.shape[0] * restarts
  targets = jnp.repeat(targets, restarts, axis=0)
  keys = jax.random.split(key, runs)

  def one_run(carry, inputs):
    best, fooled, best_loss = carry
    target, run_key = inputs
    evaluate = _evaluator(logits_fn, _loss_fn(loss, y, target), samples)
    x_adv, ok, x_top, top = _apgd_run(evaluate, x, y, eps, steps, run_key, rho)
    # Keep the first fooling point; otherwise the point of highest loss (losses of different targets
    # are not comparable, but an unfooled example's point does not change the accuracy).
    take = ~fooled & (ok | (top > best_loss))
    best = jnp.where(b(take), jnp.where(b(ok), x_adv, x_top), best)
    return (best, fooled | ok, jnp.where(take, top, best_loss)), None

  init = (x, jnp.zeros((n,), bool), jnp.full((n,), -jnp.inf, jnp.float32))
  (best, _, _), _ = lax.scan(one_run, init, (targets, keys))
  return _project(best, x, eps)


def apgd(apply_fn: Callable[[Array], Array], x, y, *, eps, key, steps: int = 100, loss: str = "ce",
         restarts: int = 1, num_targets: int = 9, rho: float = 0.75) -> Array:
  """Auto-PGD (Croce & Hein 2020), L-infinity, on the CE, DLR or targeted DLR loss.

  A budget-aware PGD: momentum 0.75, an initial step ``2 * eps`` halved at the checkpoints
  :func:`apgd_checkpoints` where the loss oscillated (increased in at most ``rho`` of the window's
  steps) or stalled, each halving restarting from the best point so far. Per example the attack returns
  the last point that fooled the model, else the point of highest loss.

  Args:
    apply_fn: ``apply_fn(x) -> (N, K)`` logits, differentiable w.r.t. ``x``.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    eps: L-infinity radius in ``[0, 1]`` pixel units, a scalar or ``(C,)`` per channel (the step is
      ``2 * eps`` per channel); may be traced.
    key: PRNG key (random starts).
    steps: iterations per run, static (AutoAttack: 100).
    loss: ``"ce"`` (APGD-CE), ``"dlr"`` (APGD-DLR) or ``"dlr-targeted"`` (APGD-T: one run per target,
      the 2nd .. ``num_targets + 1``-th highest clean logits).
    restarts: random restarts per run (per target), static.
    num_targets: targets of APGD-T (AutoAttack: 9), capped at ``K - 1``.
    rho: the oscillation threshold (0.75).

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``.

  Raises:
    ValueError: bad shapes, ``eps`` outside ``[0, 1]``, bad ``steps`` / ``restarts`` or unknown ``loss``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> apply_fn = lambda x: x.reshape(x.shape[0], -1) @ w
    >>> x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    >>> x_adv = iss_jax.robustness.apgd(apply_fn, x, jnp.array([0, 1]), eps=8 / 255, steps=20,
    ...                                 key=jax.random.key(2))
    >>> bool(jnp.abs(x_adv - x).max() <= 8 / 255 + 1e-6)
    True

  Note:
    The oscillation count of the first window compares the first step's loss with the loss at the
    random start (the reference compares with an unset buffer, zero). The reference returns the clean
    image for examples it does not fool; we return the highest-loss point (same accuracy).

  References:
    F. Croce, M. Hein, Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks, ICML 2020; reference code fra31/auto-attack ``autoattack/autopgd_base.py``.
  """
  return eot_apgd(lambda z, _: apply_fn(z), x, y, eps=eps, key=key, steps=steps, loss=loss,
                  restarts=restarts, num_targets=num_targets, samples=1, rho=rho)
