"""Small classifiers that mask their gradient in each of the ways :func:`iss_jax.robustness.evaluate` flags,
and an honest one: a two-class rule on the image mean (padded to 10 classes), whose attacks are known.

The images have a mean ``0.5 +- [0.1, 0.15]``; the honest classifier says class 0 below 0.5, class 1 above.
An L-inf attack of ``EPS = 0.25`` moves the mean by about 0.25, so a working gradient attack fools every
image, while a random start moves the mean by about 0.01 (``0.25 / sqrt(3 * 192)``) and fools none.
"""

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax.robustness import RandomClassifier, custom_defense

EPS = 0.25
N = 24
SHAPE = (8, 8, 3)


def data(n=N, seed=0):
  """``(x, y)``: ``n`` images of mean ``0.5 +- [0.1, 0.15]`` (pixels in [0.15, 0.85]) and their labels."""
  rng = np.random.default_rng(seed)
  side = rng.integers(0, 2, n)
  mean = 0.5 + np.where(side == 1, 1, -1) * rng.uniform(0.1, 0.15, n)
  x = mean[:, None, None, None] + rng.uniform(-0.2, 0.2, (n, *SHAPE))
  x = x - x.mean((1, 2, 3), keepdims=True) + mean[:, None, None, None]
  return np.clip(x, 0, 1).astype(np.float32), side.astype(np.int32)


def _logits(s):
  """10 logits from the image mean ``s``: classes 0 / 1 by the side of 0.5, the others far below."""
  z = 20.0 * (s - 0.5)
  return jnp.concatenate([jnp.stack([-z, z], -1), jnp.full((s.shape[0], 8), -10.0)], -1)


def honest(x):
  return _logits(x.mean((1, 2, 3)))


@jax.custom_vjp
def reverse_gradient(x):
  """The identity whose backward pass negates the gradient (a misleading gradient)."""
  return x


reverse_gradient.defvjp(lambda x: (x, None), lambda _, g: (-g,))


def trap(x_clean):
  """A classifier whose gradient is the true one at the clean images and reversed anywhere else: FGSM
  (one step from the clean image) works, iterative attacks from a random start climb the wrong way."""
  x_clean = jnp.asarray(x_clean)

  @jax.custom_vjp
  def gate(x):
    return x

  def bwd(x, g):
    d = jnp.min(jnp.max(jnp.abs(x[:, None] - x_clean[None]), axis=(2, 3, 4)), axis=1)
    return (jnp.where((d < 1e-6)[:, None, None, None], g, -g),)

  gate.defvjp(lambda x: (x, x), bwd)
  return lambda x: honest(gate(x))


def masking_models(x_clean):
  """``{name: (model_fn, defense or None, flags that must be raised)}``; ``"honest"`` raises none."""
  return {
      "honest": (honest, None, ()),
      "softmax": (lambda x: jax.nn.softmax(honest(x)), None, ("outputs are logits, not probabilities",)),
      "random": (RandomClassifier(lambda x, key: honest(x) + 10 * jax.random.normal(key, (x.shape[0], 10))),
                 None, ("clean predictions are deterministic",)),
      # Quantised mean (a shattered gradient): zero gradient, so no gradient attack moves at any eps.
      "quantised": (lambda x: _logits(jnp.round(x.mean((1, 2, 3)) * 40) / 40), None,
                    ("the loss has a gradient at the clean images", "accuracy reaches ~0 as eps grows",
                     "an unbounded attack reaches 100% success",
                     "the gradient-free square is not stronger than the gradient attacks")),
      # A misleading (reversed) gradient: gradient attacks fail, Square does not.
      "reversed": (lambda x: honest(reverse_gradient(x)), None,
                   ("the gradient-free square is not stronger than the gradient attacks",)),
      "trap": (trap(x_clean), None, ("one-step FGSM is not stronger than iterative apgd-ce",)),
      # A defense that does nothing but whose gradient is reversed: examples of the bare model transfer.
      "broken-defense": (honest,
                         custom_defense("reversed", lambda x, key: reverse_gradient(x), gradient="exact"),
                         ("transfer from the bare model is not stronger than adaptive apgd-ce",)),
  }
