"""L-infinity adversarial attacks in JAX: FGSM, PGD (with restarts) and a generic PGD maximiser, plus EOT.

The attack core lives here: one projected sign-gradient ascent (``_ascend``), one EOT mean (:func:`eot`)
and one restart wrapper (:func:`best_of_restarts`), which PGD, FGSM, CW and their EOT forms share.

All attacks work in ``[0, 1]`` pixel space on ``(N, H, W, C)`` float images: every returned
``x_adv`` satisfies ``|x_adv - x| <= eps`` elementwise and ``0 <= x_adv <= 1``. ``eps`` is a scalar or a
``(C,)`` array of per-channel radii broadcast over the last (channel) axis (:func:`eps_radius` turns a
radius on normalised inputs into one); ``eps`` and ``step_size`` may be traced (an epsilon sweep does
not recompile); ``steps`` and ``restarts`` are static Python ints. The model is any differentiable
``apply_fn(x) -> logits`` (for a flax model:
``lambda x: model.apply(variables, x, train=False)``, BatchNorm in inference mode); a defense ``d``
is attacked adaptively by passing ``lambda x: apply_fn(d(x))``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from iss_jax._src.checks import check_image, check_labels, is_concrete
from iss_jax._src.normalization import CIFAR10_STD

Array = jax.Array
EPS_SPACES = ("pixel", "normalized")  # where an eps is measured: [0, 1] pixels, or inputs (x - mean) / std


def _check_batch(x, name="x") -> Array:
  return check_image(x, name, ranks=(4,), min_size=1, finite=False)


def _check_positive_int(value, name: str) -> int:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name} must be a Python int >= 1; got {value!r}.")
  return value


def _check_eps(eps, channels: int | None = None):
  """``eps`` a scalar or a ``(channels,)`` array of per-channel radii, each in ``[0, 1]`` (when concrete)."""
  shape = jnp.shape(eps)
  if len(shape) > 1 or (len(shape) == 1 and channels is not None and shape[0] != channels):
    want = f"({channels},)" if channels is not None else "(C,)"
    raise ValueError(f"eps must be a scalar or an array of shape {want}, one radius per channel (the last "
                     f"axis of x); got shape {shape}.")
  if is_concrete(eps):
    v = np.asarray(eps, np.float64)
    if not np.all((v >= 0.0) & (v <= 1.0)):
      raise ValueError(f"eps must be in [0, 1] (pixel space; a radius on normalised inputs is "
                       f"eps_radius(eps, space='normalized')); got {eps}.")


def eps_radius(eps, space: str = "pixel", std=CIFAR10_STD):
  """The pixel-space L-infinity radius of ``eps`` given in ``space``: what every attack's ``eps`` takes.

  ``"pixel"`` (the default, the field's convention) returns ``eps`` unchanged: a radius in ``[0, 1]``
  pixel units. ``"normalized"`` reads ``eps`` as a radius on normalised inputs ``(x - mean_c) / std_c``
  (the main paper, Sec. 4.2: "eps stands for the attack strengths on normalized images"), i.e. the
  per-channel pixel radius ``eps * std_c``: 8/255 normalised is about 2/255 in pixels on CIFAR-10.

  Args:
    eps: a radius ``>= 0``, scalar or ``(C,)``.
    space: ``"pixel"`` or ``"normalized"``.
    std: the per-channel standard deviations of the normalisation (``"normalized"`` only), in ``[0, 1]``
      pixel units; default CIFAR-10's ``(0.2470, 0.2435, 0.2616)``.

  Returns:
    ``"pixel"``: ``eps`` as a float (or float64 ``(C,)`` array); ``"normalized"``: the float64 ``(C,)``
    array ``eps * std``.

  Raises:
    ValueError: an unknown ``space``, ``std`` not a 1-D array of positive numbers, or a radius outside
      ``[0, 1]`` in pixels.

  Examples:
    >>> from iss_jax.robustness import eps_radius
    >>> [round(float(r) * 255, 3) for r in eps_radius(8 / 255, "normalized")]
    [1.976, 1.948, 2.093]
    >>> eps_radius(8 / 255)
    0.03137254901960784
  """
  if space not in EPS_SPACES:
    raise ValueError(f"space must be one of {EPS_SPACES}; got {space!r}.")
  e = np.asarray(eps, np.float64)
  if space == "pixel":
    radius = float(e) if e.ndim == 0 else e
  else:
    s = np.asarray(std, np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s) & (s > 0)):
      raise ValueError(f"std must be a 1-D sequence of positive per-channel standard deviations; got "
                       f"{std!r}.")
    radius = e * s
  if np.any(~np.isfinite(e)) or np.any(e < 0) or np.any(np.asarray(radius) > 1.0):
    raise ValueError(f"eps must be >= 0 with a pixel radius in [0, 1]; got eps={eps} in {space} space "
                     f"(pixel radius {radius}).")
  return radius


def _check_attack(x, y, eps, **counts):
  """The checks an attack starts with: a float ``(N, H, W, C)`` batch, ``(N,)`` labels, ``eps`` a scalar
  or ``(C,)`` in ``[0, 1]`` and each of ``counts`` (steps, restarts, samples, ...) a Python int ``>= 1``."""
  x = _check_batch(x)
  y = jnp.asarray(check_labels(y, x.shape[0]))
  _check_eps(eps, x.shape[-1])
  for name, value in counts.items():
    _check_positive_int(value, name)
  return x, y


def cross_entropy(logits: Array, y: Array) -> Array:
  """Per-example softmax cross-entropy, ``(N, K)`` logits and ``(N,)`` int labels -> ``(N,)``."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]


def _radius(eps, x: Array) -> Array:
  """``eps`` (or a step) as an array of ``x``'s dtype that broadcasts against ``x``: a scalar stays one, a
  per-channel ``(C,)`` becomes ``(1, ..., 1, C)``."""
  e = jnp.asarray(eps, x.dtype)
  return e if e.ndim == 0 else e.reshape((1,) * (x.ndim - e.ndim) + e.shape)


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
  eps, step_size = _radius(eps, x), _radius(step_size, x)
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
    eps: L-infinity radius in ``[0, 1]`` pixel units, a scalar or ``(C,)`` per channel; may be traced.
    step_size: step length per iteration, a scalar or ``(C,)``; may be traced.
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
  _check_eps(eps, x.shape[-1])
  _check_positive_int(steps, "steps")
  if random_start and key is None:
    raise ValueError("key is required when random_start=True.")
  eps, step_size = _radius(eps, x), _radius(step_size, x)
  x_adv = _uniform_start(key, x, eps) if random_start else x
  return _ascend(lambda z, _: objective(z), x, x_adv, eps=eps, step_size=step_size, steps=steps)


def fgsm(apply_fn: Callable[[Array], Array], x, y, *, eps) -> Array:
  """Fast gradient sign method: ``x + eps * sign(grad_x CE(apply_fn(x), y))``, clipped to ``[0, 1]``.

  Args:
    apply_fn: ``apply_fn(x) -> (N, K)`` logits, differentiable w.r.t. ``x``.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` integer labels.
    eps: L-infinity radius in ``[0, 1]`` pixel units, a scalar or ``(C,)`` per channel; may be traced.

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
  _check_eps(eps, x.shape[-1])
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
    eps: L-infinity radius in ``[0, 1]`` pixel units, a scalar or ``(C,)`` per channel; may be traced.
    step_size: step per iteration, a scalar or ``(C,)`` (a common choice: ``2.5 * eps / steps``); may be
      traced.
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
    eps: L-infinity radius, a scalar or ``(C,)`` per channel.
    step_size: sign-gradient step, a scalar or ``(C,)``.
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
