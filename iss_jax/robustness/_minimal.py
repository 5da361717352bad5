"""CW-L-infinity (PGD on the Carlini-Wagner margin loss) and DeepFool (minimal L2 / L-infinity perturbation).

DeepFool's constants follow its reference code (LTS4/DeepFool, ``Python/deepfool.py``): the 10 highest
clean classes are the candidates, overshoot ``0.02``, at most 50 iterations, the label is the clean
prediction, ``r_i = |f_k| / ||w_k||_2 * w_k / ||w_k||_2`` for the closest linearised boundary, and the
returned image is ``x + (1 + overshoot) * sum_i r_i``; the L-infinity variant (paper Sec. 3, ``q = 1``)
uses ``|f_k| / ||w_k||_1 * sign(w_k)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax.robustness._attacks import (
  _check_attack,
  _check_batch,
  _check_positive_int,
  _project,
  _radius,
  best_of_restarts,
  eot,
  sign_ascent,
)
from iss_jax.robustness._square import margin

Array = jax.Array


def cw_loss(logits: Array, y: Array, kappa: float = 50.0) -> Array:
  """The Carlini-Wagner margin ``min(max_{i != y} z_i - z_y, kappa)`` per example (maximised).

  ``kappa`` is the confidence cap (the CW-L-infinity attack of Madry et al.'s challenge uses 50).
  """
  return jnp.minimum(-margin(logits, y), kappa)


def eot_cw(logits_fn: Callable[[Array, Array], Array], x, y, *, eps, step_size, steps: int, key,
           random_start: bool = True, restarts: int = 1, samples: int = 1, kappa: float = 50.0) -> Array:
  """:func:`cw` on a random ``logits_fn(x, key)``, the loss averaged over ``samples`` draws per step."""
  x, y = _check_attack(x, y, eps, steps=steps, restarts=restarts, samples=samples)
  value = eot(lambda z, k: cw_loss(logits_fn(z, k), y, kappa), samples)
  run = lambda r: sign_ascent(value, x, eps=eps, step_size=step_size, steps=steps,
                              key=jax.random.fold_in(key, r), random_start=random_start)
  return best_of_restarts(run, lambda x_adv, r: value(x_adv, jax.random.fold_in(key, 10_000 + r)), restarts)


def cw(apply_fn: Callable[[Array], Array], x, y, *, eps, step_size, steps: int, key,
       random_start: bool = True, restarts: int = 1, kappa: float = 50.0) -> Array:
  """CW-L-infinity: PGD (sign steps, projection to the ball and ``[0, 1]``) on the CW margin loss.

  Maximises ``min(max_{i != y} z_i - z_y, kappa)`` instead of the cross-entropy, which does not saturate
  on confident models; restarts keep, per example, the run with the highest margin.

  Args:
    apply_fn: ``apply_fn(x) -> (N, K)`` logits, differentiable w.r.t. ``x``.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    eps: L-infinity radius in ``[0, 1]`` pixel units, a scalar or ``(C,)`` per channel; may be traced.
    step_size: sign-gradient step; may be traced.
    steps: iterations, static.
    key: PRNG key (random starts).
    random_start: start from a uniform point of the ball.
    restarts: random restarts, static.
    kappa: confidence cap of the margin.

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> apply_fn = lambda x: x.reshape(x.shape[0], -1) @ w
    >>> x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    >>> x_adv = iss_jax.robustness.cw(apply_fn, x, jnp.array([0, 1]), eps=8 / 255, step_size=2 / 255,
    ...                               steps=10, key=jax.random.key(2))
    >>> bool(jnp.abs(x_adv - x).max() <= 8 / 255 + 1e-6)
    True

  References:
    N. Carlini, D. Wagner, Towards evaluating the robustness of neural networks, IEEE S&P 2017 (the
    margin loss); Madry et al., ICLR 2018 (PGD).
  """
  return eot_cw(lambda z, _: apply_fn(z), x, y, eps=eps, step_size=step_size, steps=steps, key=key,
                random_start=random_start, restarts=restarts, samples=1, kappa=kappa)


def deepfool(apply_fn: Callable[[Array], Array], x, *, norm: str = "linf", num_classes: int = 10,
             overshoot: float = 0.02, max_iter: int = 50) -> tuple[Array, Array]:
  """DeepFool (Moosavi-Dezfooli et al. 2016): an approximately minimal perturbation that changes the label.

  Each iteration linearises the ``num_classes - 1`` boundaries between the clean prediction and the next
  highest clean classes and steps onto the closest one (L2: ``|f_k| / ||w_k||_2`` along ``w_k``; L-inf:
  ``|f_k| / ||w_k||_1`` along ``sign(w_k)``), accumulating ``r``; the image is ``x + (1 + overshoot) r``
  clipped to ``[0, 1]``. An example stops at its first label change (``lax.while_loop`` until all have
  or ``max_iter``).

  Args:
    apply_fn: ``apply_fn(x) -> (N, K)`` logits, differentiable w.r.t. ``x``.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    norm: ``"linf"`` or ``"l2"``.
    num_classes: candidate classes (the clean top ``num_classes``, capped at ``K``), static.
    overshoot: the overshoot factor (0.02).
    max_iter: iteration cap (50).

  Returns:
    ``(x_adv, fooled)``: ``(N, H, W, C)`` images in ``[0, 1]`` and ``(N,)`` bool, whether the label
    changed. ``x_adv - x`` is the (unbounded) minimal perturbation; its norm is DeepFool's robustness
    estimate.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> apply_fn = lambda x: x.reshape(x.shape[0], -1) @ w
    >>> x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    >>> x_adv, fooled = iss_jax.robustness.deepfool(apply_fn, x)
    >>> x_adv.shape
    (2, 4, 4, 3)

  Note:
    The reference does not clip to ``[0, 1]``; we clip the image each iteration (so a pixel range
    constraint can make an example take more iterations or fail).

  References:
    S.-M. Moosavi-Dezfooli, A. Fawzi, P. Frossard, DeepFool: a simple and accurate method to fool deep
    neural networks, CVPR 2016; reference code LTS4/DeepFool ``Python/deepfool.py``.
  """
  x = _check_batch(x)
  if norm not in ("linf", "l2"):
    raise ValueError(f"norm must be 'linf' or 'l2'; got {norm!r}.")
  _check_positive_int(max_iter, "max_iter")
  n = x.shape[0]
  clean = apply_fn(x).astype(jnp.float32)
  k = min(int(num_classes), clean.shape[-1])
  top = jnp.argsort(-clean, axis=-1)[:, :k]  # (N, k) candidate classes, top[:, 0] the label
  label = top[:, 0]
  b = lambda v: v.reshape(n, 1, 1, 1)

  def grads(z):
    logits, vjp = jax.vjp(lambda v: apply_fn(v).astype(jnp.float32), z)
    cts = jax.nn.one_hot(top.T, logits.shape[-1], dtype=logits.dtype)  # (k, N, K)
    g = jax.vmap(lambda ct: vjp(ct)[0])(cts)  # (k, N, H, W, C)
    return jnp.take_along_axis(logits, top, axis=-1), g

  def body(state):
    i, r_tot, done, x_adv = state
    f, g = grads(x_adv)
    w = g[1:] - g[:1]  # (k-1, N, H, W, C)
    fk = (f[:, 1:] - f[:, :1]).T  # (k-1, N)
    wf = w.reshape(k - 1, n, -1)
    dual = jnp.sum(jnp.abs(wf), -1) if norm == "linf" else jnp.sqrt(jnp.sum(wf * wf, -1))
    pert = jnp.abs(fk) / (dual + 1e-12)
    best = jnp.argmin(pert, axis=0)  # (N,)
    pick = lambda a: jnp.take_along_axis(a, best.reshape((1, n) + (1,) * (a.ndim - 2)), axis=0)[0]
    w_b, p_b, d_b = pick(w), pick(pert), pick(dual)
    r_i = b(p_b) * (jnp.sign(w_b) if norm == "linf" else w_b / b(d_b + 1e-12))
    r_tot = jnp.where(b(done), r_tot, r_tot + r_i)
    x_adv = jnp.clip(x + (1 + overshoot) * r_tot, 0.0, 1.0)
    done = done | (jnp.argmax(apply_fn(x_adv), -1) != label)
    return i + 1, r_tot, done, x_adv

  def cond(state):
    i, _, done, _ = state
    return (i < max_iter) & ~jnp.all(done)

  init = (jnp.int32(0), jnp.zeros_like(x), jnp.zeros((n,), bool), x)
  if k < 2:
    return x, init[2]
  _, _, done, x_adv = lax.while_loop(cond, body, init)
  return x_adv, done


def deepfool_linf(apply_fn: Callable[[Array], Array], x, y, *, eps, **kwargs) -> Array:
  """DeepFool's L-infinity perturbation clipped to the ``eps`` ball: an attack at a given ``eps``."""
  x_adv, _ = deepfool(apply_fn, x, norm="linf", **kwargs)
  return _project(x_adv, x, _radius(eps, x))
