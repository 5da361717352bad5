"""L-infinity adversarial attacks in JAX: FGSM, PGD (with restarts) and a generic PGD maximiser, plus EOT.

The attack core lives here: one projected sign-gradient ascent (``_ascend``), one EOT mean (:func:`eot`)
and one restart wrapper (:func:`best_of_restarts`), which PGD, FGSM, CW and their EOT forms share.

All attacks work in ``[0, 1]`` pixel space on ``(N, H, W, C)`` float images: every returned
``x_adv`` satisfies ``|x_adv - x| <= eps`` elementwise and ``0 <= x_adv <= 1``. ``eps`` and
``step_size`` may be traced (an epsilon sweep does not recompile); ``steps`` and ``restarts`` are
static Python ints. The model is any differentiable ``apply_fn(x) -> logits`` (for a flax model:
``lambda x: model.apply(variables, x, train=False)``, BatchNorm in inference mode); a defense ``d``
is attacked adaptively by passing ``lambda x: apply_fn(d(x))``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax._src.checks import check_image, check_labels, is_concrete

Array = jax.Array


def _check_batch(x, name="x") -> Array:
  return check_image(x, name, ranks=(4,), min_size=1, finite=False)


def _check_positive_int(value, name: str) -> int:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name} must be a Python int >= 1; got {value!r}.")
  return value


def _check_eps(eps):
  if is_concrete(eps) and not (0.0 <= float(eps) <= 1.0):
    raise ValueError(f"eps must be in [0, 1] (pixel space); got {eps}.")


def _check_attack(x, y, eps, **counts):
  """The checks an attack starts with: a float ``(N, H, W, C)`` batch, ``(N,)`` labels, ``eps`` in
  ``[0, 1]`` and each of ``counts`` (steps, restarts, samples, ...) a Python int ``>= 1``."""
  x = _check_batch(x)
  y = jnp.asarray(check_labels(y, x.shape[0]))
  _check_eps(eps)
  for name, value in counts.items():
    _check_positive_int(value, name)
  return x, y


def cross_entropy(logits: Array, y: Array) -> Array:
  """Per-example softmax cross-entropy, ``(N, K)`` logits and ``(N,)`` int labels -> ``(N,)``."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]


def _project(x_adv: Array, x: Array, eps) -> Array:
  return jnp.clip(jnp.clip(x_adv, x - eps, x + eps), 0.0, 1.0)


def _uniform_start(key, x: Array, eps) -> Array:
  """A uniform point of the ``eps`` ball around ``x``, clipped to ``[0, 1]``."""
  return _project(x + jax.random.uniform(key, x.shape, x.dtype, -eps, eps), x, eps)


def _ascend(value_fn: Callable[[Array, Array | None], Array], x: Array, x_adv: Array, *, eps, step_size,
            steps: int, key=None) -> Array:
  """The one projected sign-gradient ascent of every PGD-style attack (PGD, FGSM, CW, their EOT forms).

  ``steps`` times ``x_adv <- Proj(x_adv + step_size * sign(grad sum(value_fn(x_adv, key_t))))`` with
  ``key_t = fold_in(key, t)`` (``None`` when ``key`` is None), ``Proj`` the clip to ``[x - eps, x + eps]``
  and then to ``[0, 1]``.
  """
  grad = jax.grad(lambda z, k: jnp.sum(value_fn(z, k)))

  def body(t, x_adv):
    k = None if key is None else jax.random.fold_in(key, t)
    return _project(x_adv + step_size * jnp.sign(grad(x_adv, k)), x, eps)

  return lax.fori_loop(0, steps, body, x_adv)


def sign_ascent(value_fn: Callable[[Array, Array], Array], x, *, eps, step_size, steps: int, key,
                random_start: bool = True) -> Array:
  """Projected sign-gradient ascent of a random ``value_fn(x, key_t) -> (N,)``, a fresh ``key_t`` per step.

  ``key`` splits into the random start's key and the one every step's ``key_t = fold_in(., t)`` derives
  from (the stream of :func:`eot_pgd` and :func:`iss_jax.robustness.eot_cw`).
  """
  eps = jnp.asarray(eps, x.dtype)
  step_size = jnp.asarray(step_size, x.dtype)
  k0, key = jax.random.split(key)
  x_adv = _uniform_start(k0, x, eps) if random_start else x
  return _ascend(value_fn, x, x_adv, eps=eps, step_size=step_size, steps=steps, key=key)


def keep_stronger(best, x_adv: Array, score: Array):
  """Per example the restart with the higher score: ``best`` is ``(x_adv, score)`` so far, or None."""
  if best is None:
    return x_adv, score
  better = score > best[1]
  return jnp.where(better[:, None, None, None], x_adv, best[0]), jnp.maximum(score, best[1])


def best_of_restarts(attack_once: Callable[[int], Array], score: Callable[[Array, int], Array],
                     restarts: int) -> Array:
  """The one restart wrapper: per example the strongest of ``attack_once(r)``, ``r < restarts``.

  ``score(x_adv, r) -> (N,)`` ranks the runs (highest kept, the first on ties). With one restart its
  result comes back unscored (no extra forward pass, which is costly behind a defense).
  """
  best = None
  for r in range(restarts):
    x_adv = attack_once(r)
    if restarts == 1:
      return x_adv
    best = keep_stronger(best, x_adv, score(x_adv, r))
  return best[0]


def pgd_maximize(objective: Callable[[Array], Array], x, *, eps, step_size, steps: int, key=None,
                 random_start: bool = True) -> Array:
  """Projected sign-gradient ascent of per-example objectives in an L-infinity ball.

  Runs ``x_{t+1} = Proj(x_t + step_size * sign(grad sum(objective(x_t))))`` where ``Proj`` clips to
  ``[x - eps, x + eps]`` and then to ``[0, 1]`` (Madry et al. 2018). Examples are independent, so the gradient
  of the summed objective is each example's own gradient.

  Args:
    objective: ``objective(x_adv) -> (N,)`` per-example values to maximise (e.g. a loss); must be
      differentiable w.r.t. its input.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    eps: L-infinity radius in ``[0, 1]`` pixel units; scalar, may be traced.
    step_size: step length per iteration; scalar, may be traced.
    steps: number of iterations, a static Python int ``>= 1``.
    key: PRNG key for the random start; required when ``random_start``.
    random_start: start from ``x + U(-eps, eps)`` (clipped) instead of ``x``.

  Returns:
    ``(N, H, W, C)`` adversarial images with ``|x_adv - x| <= eps`` and values in ``[0, 1]``.

  Raises:
    ValueError: ``x`` not a float ``(N, H, W, C)`` batch, ``eps`` outside ``[0, 1]``, bad ``steps``, or
      ``random_start`` without a ``key``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> x = jnp.full((2, 4, 4, 1), 0.5)
    >>> objective = lambda z: jnp.sum(z, axis=(1, 2, 3))
    >>> x_adv = iss_jax.robustness.pgd_maximize(objective, x, eps=0.1, step_size=0.05,
    ...                              steps=3, random_start=False)
    >>> float(x_adv.max())
    0.6...
  """
  x = _check_batch(x)
  _check_eps(eps)
  _check_positive_int(steps, "steps")
  if random_start and key is None:
    raise ValueError("key is required when random_start=True.")
  eps = jnp.asarray(eps, x.dtype)
  step_size = jnp.asarray(step_size, x.dtype)
  x_adv = _uniform_start(key, x, eps) if random_start else x
  return _ascend(lambda z, _: objective(z), x, x_adv, eps=eps, step_size=step_size, steps=steps)


def fgsm(apply_fn: Callable[[Array], Array], x, y, *, eps) -> Array:
  """Fast gradient sign method: ``x + eps * sign(grad_x CE(apply_fn(x), y))``, clipped to ``[0, 1]``.

  Args:
    apply_fn: ``apply_fn(x) -> (N, K)`` logits, differentiable w.r.t. ``x``.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` integer labels.
    eps: L-infinity radius in ``[0, 1]`` pixel units; may be traced.

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``.

  Raises:
    ValueError: bad shapes/dtypes or ``eps`` outside ``[0, 1]``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> apply_fn = lambda x: x.reshape(x.shape[0], -1) @ w
    >>> x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    >>> x_adv = iss_jax.robustness.fgsm(apply_fn, x, jnp.array([0, 1]), eps=8 / 255)
    >>> bool(jnp.abs(x_adv - x).max() <= 8 / 255 + 1e-6)
    True

  References:
    Goodfellow et al., Explaining and harnessing adversarial examples, ICLR 2015.
  """
  x = _check_batch(x)
  y = check_labels(y, x.shape[0])
  _check_eps(eps)
  return pgd_maximize(lambda z: cross_entropy(apply_fn(z), y), x, eps=eps, step_size=eps, steps=1,
                      random_start=False)


def pgd(apply_fn: Callable[[Array], Array], x, y, *, eps, step_size, steps: int, key=None,
        random_start: bool = True, restarts: int = 1) -> Array:
  """Projected gradient descent (Madry et al.) on the cross-entropy, with random restarts.

  Each restart runs :func:`pgd_maximize` from its own random start; per example the result of the
  strongest restart is kept: a misclassified one if any, otherwise the one with the highest loss.

  Args:
    apply_fn: ``apply_fn(x) -> (N, K)`` logits, differentiable w.r.t. ``x``.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` integer labels.
    eps: L-infinity radius in ``[0, 1]`` pixel units; may be traced.
    step_size: step per iteration (a common choice: ``2.5 * eps / steps``); may be traced.
    steps: iterations per restart, static Python int ``>= 1``.
    key: PRNG key (required with ``random_start``); split across restarts.
    random_start: start each restart at a uniform point of the ball.
    restarts: number of restarts, static Python int ``>= 1``.

  Returns:
    ``(N, H, W, C)`` adversarial images within ``eps`` of ``x`` and in ``[0, 1]``.

  Raises:
    ValueError: bad shapes/dtypes, ``eps`` outside ``[0, 1]``, bad ``steps``/``restarts``, or a missing
      ``key`` with ``random_start``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> apply_fn = lambda x: x.reshape(x.shape[0], -1) @ w
    >>> x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    >>> x_adv = iss_jax.robustness.pgd(apply_fn, x, jnp.array([0, 1]), eps=8 / 255, step_size=2 / 255,
    ...                                steps=5,
    ...                     key=jax.random.key(2))
    >>> x_adv.shape
    (2, 4, 4, 3)

  References:
    Madry et al., Towards deep learning models resistant to adversarial attacks, ICLR 2018.
  """
  x = _check_batch(x)
  y = check_labels(y, x.shape[0])
  _check_positive_int(restarts, "restarts")
  if random_start and key is None:
    raise ValueError("key is required when random_start=True.")
  keys = jax.random.split(key, restarts) if key is not None else [None] * restarts
  objective = lambda z: cross_entropy(apply_fn(z), y)

  def score(x_adv, _):
    logits = apply_fn(x_adv)
    # Misclassification dominates; the loss breaks ties (finite, so +1e9 keeps the order).
    return cross_entropy(logits, y) + 1e9 * (jnp.argmax(logits, -1) != y)

  return best_of_restarts(lambda r: pgd_maximize(objective, x, eps=eps, step_size=step_size, steps=steps,
                                                 key=keys[r], random_start=random_start), score, restarts)


def eot(fn: Callable, n: int) -> Callable:
  """Expectation over transformation: averages a random function over ``n`` independent draws.

  The one EOT mean of the attacks: every EOT attack (:func:`eot_pgd`, ``eot_cw``, ``eot_apgd``, DeepFool
  and AutoAttack against a random model) averages through it.

  Args:
    fn: ``fn(x, key) -> array`` (or a tuple / pytree of arrays), e.g. logits of a model behind a
      randomised defense.
    n: number of draws, Python int ``>= 1``.

  Returns:
    ``g(x, key) -> mean_i fn(x, key_i)`` with ``key_i`` the ``n`` keys split from ``key`` (each leaf
    averaged); its gradient is the average gradient, which is what an EOT attack ascends (pass
    ``lambda z: g(z, key)`` as the model).

  Raises:
    ValueError: ``n`` not an int ``>= 1``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> noisy = lambda x, key: x + jax.random.normal(key, x.shape)
    >>> g = iss_jax.robustness.eot(noisy, 4096)
    >>> bool(jnp.abs(g(jnp.zeros(3), jax.random.key(0))).max() < 0.1)
    True

  References:
    Athalye et al., Synthesizing robust adversarial examples, ICML 2018.
  """
  _check_positive_int(n, "n")

  def averaged(x, key):
    draws = lax.map(lambda k: fn(x, k), jax.random.split(key, n))
    return jax.tree_util.tree_map(lambda v: jnp.mean(v, axis=0), draws)

  return averaged


def eot_pgd(logits_fn: Callable[[Array, Array], Array], x, y, *, key, eps, step_size, steps: int,
            samples: int, random_start: bool = True) -> Array:
  """PGD on the cross-entropy averaged over ``samples`` draws of a random defense, new each step.

  Args:
    logits_fn: ``logits_fn(x, key) -> logits`` of the defended model (differentiable in ``x``, e.g.
      through BPDA).
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    key: PRNG key (random start and the draws).
    eps: L-infinity radius.
    step_size: sign-gradient step.
    steps: iterations (static).
    samples: EOT draws per step (static).
    random_start: start from a uniform point of the ball (else from ``x``).

  Returns:
    Adversarial images with ``|x' - x| <= eps`` in ``[0, 1]``.

  References:
    A. Athalye, N. Carlini, D. Wagner, "Obfuscated gradients give a false sense of security", ICML
    2018.
  """
  x, y = _check_attack(x, y, eps, steps=steps, samples=samples)
  value = eot(lambda z, k: cross_entropy(logits_fn(z, k), y), samples)
  return sign_ascent(value, x, eps=eps, step_size=step_size, steps=steps, key=key, random_start=random_start)
