"""Counting the classifier's forward and backward passes as the compiled attacks run them.

:class:`PassCounter` wraps a classifier so that every execution of it inside jitted code (loops, scans,
``vmap`` and EOT included) adds the number of images it ran on to ``forward``, and every backward pass
through it (a vector-Jacobian product: one per image per gradient, ``K`` per image for a full Jacobian) to
``backward``. The counts come from the executions themselves (``jax.debug.callback``), not from arithmetic
on the attack's settings, so early stops, restarts and the padding of the last batch are counted as run.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from iss_jax.robustness._runner import RandomClassifier

Array = jax.Array


class PassCounter:
  """Counts the images a classifier is run on, forward and backward, inside jitted code.

  Attributes:
    forward: images passed forward through the classifier so far (a forward pass of a batch of ``N``
      counts ``N``).
    backward: images passed backward (one vector-Jacobian product of a batch of ``N`` counts ``N``).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from iss_jax.robustness import PassCounter
    >>> counter = PassCounter()
    >>> f = counter.wrap(lambda x: x.reshape(x.shape[0], -1) @ jnp.ones((4, 3)))
    >>> g = jax.jit(jax.grad(lambda x: f(x).sum()))(jnp.ones((5, 2, 2, 1)))
    >>> counter.read()
    (5, 5)
  """

  def __init__(self):
    self.forward = 0
    self.backward = 0

  def _adder(self, field: str):
    def add(rows):
      setattr(self, field, getattr(self, field) + int(np.size(rows)))
    return add

  def wrap(self, model_fn: Callable) -> Callable:
    """``model_fn`` counted: ``apply_fn(x) -> logits`` or a :class:`RandomClassifier` (which stays one).

    The wrapped classifier computes the same logits and the same gradient.
    """
    random = isinstance(model_fn, RandomClassifier)
    fn = model_fn.fn if random else (lambda x, key: model_fn(x))
    forward, backward = self._adder("forward"), self._adder("backward")
    rows = lambda a: a.reshape(a.shape[0], -1)[:, 0]  # one value per image: vmap adds its axis to it

    # Each callback reads the pass's output, not its input: a callback on a loop-invariant input (the image
    # inside an EOT loop over draws) would be hoisted out of the loop when it is differentiated.
    @jax.custom_vjp
    def counted(x, key):
      out = fn(x, key)
      jax.debug.callback(forward, rows(out))
      return out

    def fwd(x, key):
      out, vjp = jax.vjp(lambda z: fn(z, key), x)
      jax.debug.callback(forward, rows(out))
      return out, vjp

    def bwd(vjp, g):
      jax.debug.callback(backward, rows(g))
      return vjp(g)[0], None

    counted.defvjp(fwd, bwd)
    if random:
      return RandomClassifier(counted)
    return lambda x: counted(x, None)

  def read(self) -> tuple[int, int]:
    """``(forward, backward)`` after every pending callback has run."""
    jax.effects_barrier()
    return self.forward, self.backward
