"""One straight-through (BPDA) gradient for every non-differentiable or random preprocessing."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _zero_cotangent(a):
  if jnp.issubdtype(jnp.result_type(a), jnp.inexact):
    return jnp.zeros_like(a)
  return np.zeros(jnp.shape(a), jax.dtypes.float0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _bpda(forward, surrogate, has_aux, x, args):
  return forward(x, *args)


def _bpda_fwd(forward, surrogate, has_aux, x, args):
  return forward(x, *args), (x, args)


def _bpda_bwd(forward, surrogate, has_aux, res, cotangent):
  x, args = res
  if has_aux:
    cotangent = cotangent[0]
  _, vjp = jax.vjp(surrogate, x)
  (dx,) = vjp(cotangent)
  return dx, jax.tree_util.tree_map(_zero_cotangent, args)


def straight_through(forward: Callable, x, *args, surrogate: Callable | None = None,
                     has_aux: bool = False):
  """``forward(x, *args)`` exactly, with the gradient of ``surrogate(x)`` (BPDA).

  Backward Pass Differentiable Approximation (Athalye et al. 2018): the forward pass runs the real,
  possibly non-differentiable or random, preprocessing; ``jax.grad`` sees ``surrogate`` instead (the
  identity by default). ``args`` (targets, keys, parameters) get zero cotangents. This is the gradient
  ``iss_jax.smooth`` (``gradient="bpda"``) and SPLIC give an adaptive attacker.

  Args:
    forward: ``forward(x, *args) -> y``, or ``-> (y, aux)`` with ``has_aux``; must be hashable (a
      function or ``functools.partial``), as it is a static argument of the ``custom_vjp``.
    x: the differentiated input.
    *args: further inputs, arrays or pytrees of arrays, that get no gradient.
    surrogate: ``surrogate(x) -> y'`` with ``y'`` of ``y``'s shape and dtype, whose vector-Jacobian
      product stands in for ``forward``'s; None: the identity (``y`` must then have ``x``'s shape).
    has_aux: ``forward`` returns ``(y, aux)``; ``aux`` (e.g. integer diagnostics) gets no gradient.

  Returns:
    ``forward(x, *args)``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> f = lambda x: iss_jax.straight_through(jnp.round, x)
    >>> float(f(1.4)), float(jax.grad(f)(1.4))
    (1.0, 1.0)

  References:
    A. Athalye, N. Carlini, D. Wagner, "Obfuscated gradients give a false sense of security", ICML 2018.
  """
  return _bpda(forward, surrogate or _identity, bool(has_aux), x, args)


def _identity(x):
  return x


_bpda.defvjp(_bpda_fwd, _bpda_bwd)
