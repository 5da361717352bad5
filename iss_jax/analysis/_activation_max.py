"""Activation maximisation (Erhan et al. 2009) with L2, total-variation and jitter regularisation.

The images that most excite a unit show what the unit detects; the smooth-kernel paper uses them to
compare how perceptually aligned models are. :func:`module_activation` reads any module's input or
output of a flax.linen model, so a unit can be a first-layer filter or a penultimate feature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax._src.checks import check_image

Array = jax.Array


def module_activation(model, variables, x, layer, *, which: str = "output", call_kwargs=None) -> Array:
  """The input or output of one module of a flax.linen model (differentiable w.r.t. ``x``).

  Args:
    model: a ``flax.linen.Module``.
    variables: its variables.
    x: the model's input, e.g. ``(N, H, W, C)`` float images in ``[0, 1]``.
    layer: module path, a tuple of names or a ``"/"``-joined string (``"stem_conv"``, ``"head"``,
      ``"stage3_block1/conv2"``); the first call of that module is read.
    which: ``"output"`` (what the module returns) or ``"input"`` (its first positional argument; the
      input of ``"head"`` is the penultimate feature vector).
    call_kwargs: extra keyword arguments of ``apply`` (default ``{"train": False}``).

  Returns:
    The activation, e.g. ``(N, h, w, c)`` for a convolution's output or ``(N, d)`` for a Dense input.

  Raises:
    ValueError: ``which`` not ``"input"`` / ``"output"``, or no module at ``layer``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax  # doctest: +SKIP
    >>> model = iss_jax.training.resnet_small()  # doctest: +SKIP
    >>> v = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))  # doctest: +SKIP
    >>> iss_jax.analysis.module_activation(model, v, jnp.zeros((2, 32, 32, 3)), "head",  # doctest: +SKIP
    ...                                      which="input").shape
    (2, 64)
  """
  import flax.linen as nn

  if which not in ("input", "output"):
    raise ValueError(f"which must be 'input' or 'output'; got {which!r}.")
  path = tuple(layer.split("/")) if isinstance(layer, str) else tuple(layer)
  call_kwargs = {"train": False} if call_kwargs is None else dict(call_kwargs)
  found, seen = [], []

  def hook(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__":
      here = tuple(context.module.path)
      seen.append("/".join(here))
      if here == path and not found:
        found.append(args[0] if which == "input" else out)
    return out

  with nn.intercept_methods(hook):
    model.apply(variables, x, **call_kwargs)
  if not found:
    raise ValueError(f"layer {'/'.join(path)!r} is not a module of the model; modules called: "
                     f"{sorted(set(seen))[:40]}.")
  return found[0]


def total_variation(x) -> Array:
  """Isotropic total variation ``sum sqrt(dx^2 + dy^2 + 1e-8)`` of each ``(H, W, C)`` image: ``(N,)``.

  Forward differences, summed over channels inside the square root (colour TV), the last row / column
  taking zero differences.
  """
  dy = jnp.pad(jnp.diff(x, axis=1), ((0, 0), (0, 1), (0, 0), (0, 0)))
  dx = jnp.pad(jnp.diff(x, axis=2), ((0, 0), (0, 0), (0, 1), (0, 0)))
  return jnp.sum(jnp.sqrt(jnp.sum(dx**2 + dy**2, axis=-1) + 1e-8), axis=(1, 2))


class ActivationMaxResult(NamedTuple):
  """The output of :func:`activation_maximization`.

  Attributes:
    images: ``(N, H, W, C)`` float32 images in ``[0, 1]`` that maximise the regularised objective.
    initial: ``(N,)`` float32 unit activations of the starting images.
    final: ``(N,)`` float32 unit activations of ``images`` (no jitter).
    objective: ``(steps,)`` float32 mean regularised objective over the images, per step (jittered).
  """

  images: np.ndarray
  initial: np.ndarray
  final: np.ndarray
  objective: np.ndarray


def activation_maximization(unit_fn: Callable[[Array], Array], x0, *, steps: int = 256,
                            learning_rate: float = 0.05, l2: float = 0.0, tv: float = 0.0,
                            jitter: int = 0, key=None) -> ActivationMaxResult:
  """Images that maximise units, by projected gradient ascent with regularisation.

  Maximises, for each image ``i`` independently,

      unit_fn(roll(x, s))_i - l2 * ||x_i - 0.5||^2 - tv * TV(x_i),

  over ``x_i`` in ``[0, 1]``, where ``roll`` shifts the image by a random integer offset ``s`` in
  ``[-jitter, jitter]`` per axis at each step (the same offset for the batch; jitter averages out the
  high-frequency patterns that fit one alignment only), ``TV`` is :func:`total_variation` and the L2 term
  pulls towards mid-grey. Steps are Adam's (``b1 = 0.9``, ``b2 = 0.999``) with a cosine-decayed learning
  rate, each followed by clipping to ``[0, 1]`` (the paper's projected gradient).

  Args:
    unit_fn: ``unit_fn(x) -> (N,)`` the activation of image ``i``'s unit for each image (e.g. channel
      ``k_i`` of a first-layer convolution averaged over positions, or feature ``k_i`` of the penultimate
      layer); differentiable.
    x0: ``(N, H, W, C)`` float starting images in ``[0, 1]`` (e.g. grey plus a little Gaussian noise).
    steps: ascent steps (static).
    learning_rate: Adam's peak step (pixel units).
    l2: weight of ``||x - 0.5||^2`` (summed over pixels).
    tv: weight of the total variation (summed over pixels).
    jitter: largest random shift in pixels (0: none).
    key: PRNG key of the jitter; required when ``jitter > 0``.

  Returns:
    An :class:`ActivationMaxResult`.

  Raises:
    ValueError: bad ``x0``, ``steps < 1``, a negative weight or jitter, or jitter without a key.

  Examples:
    >>> import jax.numpy as jnp, iss_jax
    >>> w = jnp.linspace(-1, 1, 12).reshape(1, 2, 2, 3)
    >>> res = iss_jax.analysis.activation_maximization(
    ...     lambda x: jnp.sum(w * (x - 0.5), axis=(1, 2, 3)), jnp.full((1, 2, 2, 3), 0.5), l2=4.0)
    >>> bool(res.final[0] > res.initial[0])
    True

  References:
    D. Erhan et al., Visualizing higher-layer features of a deep network, 2009. K. Simonyan et al., Deep
    inside convolutional networks, 2013. A. Mahendran and A. Vedaldi, Understanding deep image
    representations by inverting them, CVPR 2015 (TV and jitter regularisation).
  """
  x0 = check_image(x0, "x0", ranks=(4,), min_size=1, value_range=(0.0, 1.0)).astype(jnp.float32)
  if int(steps) < 1:
    raise ValueError(f"steps must be >= 1; got {steps}.")
  for name, v in (("learning_rate", learning_rate), ("l2", l2), ("tv", tv), ("jitter", jitter)):
    if not np.isfinite(v) or v < 0:
      raise ValueError(f"{name} must be a finite number >= 0; got {v}.")
  if jitter and key is None:
    raise ValueError("key is required when jitter > 0.")
  key = jax.random.key(0) if key is None else key
  jitter = int(jitter)
  steps = int(steps)

  def objective(x, shift):
    moved = jnp.roll(x, (shift[0], shift[1]), axis=(1, 2)) if jitter else x
    act = unit_fn(moved)
    return act - l2 * jnp.sum((x - 0.5) ** 2, axis=(1, 2, 3)) - tv * total_variation(x)

  def step(carry, inputs):
    x, m, v = carry
    t, k = inputs
    shift = jax.random.randint(k, (2,), -jitter, jitter + 1)
    value, g = jax.value_and_grad(lambda z: jnp.sum(objective(z, shift)))(x)
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g**2
    mhat = m / (1 - 0.9 ** (t + 1))
    vhat = v / (1 - 0.999 ** (t + 1))
    lr = learning_rate * 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
    x = jnp.clip(x + lr * mhat / (jnp.sqrt(vhat) + 1e-8), 0.0, 1.0)
    return (x, m, v), value / x.shape[0]

  @jax.jit
  def run(x0, key):
    keys = jax.random.split(key, steps)
    (x, _, _), values = jax.lax.scan(step, (x0, jnp.zeros_like(x0), jnp.zeros_like(x0)),
                                     (jnp.arange(steps, dtype=jnp.float32), keys))
    return x, unit_fn(x0), unit_fn(x), values

  x, initial, final, values = run(x0, key)
  as32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
  return ActivationMaxResult(as32(x), as32(initial), as32(final), as32(values))
