"""The defense protocol: a defense is one named thing that every evaluation takes.

A :class:`Defense` is a test-time preprocessing (or model wrapper) with its forward pass, the gradient an
adaptive attacker gets through it, and whether it is random. ISS smoothing is one defense among the
competitors of ``iss_jax.baselines`` (TV, low-pass, SPLIC), and every evaluation (clean, adversarial under
the paper protocol / adaptive / worst case, corruptions, low resolution, frequency) runs a model behind a
defense through the one runner of :mod:`iss_jax.robustness`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from iss_jax._src.components import connected_components
from iss_jax._src.projection import component_mean
from iss_jax._src.smooth import smooth

Array = jax.Array

GRADIENTS = ("none", "exact", "bpda", "bpda-partition")
BPDA_FORMS = ("partition", "identity")  # the backward pass of smoothing_defense's BPDA


class Defense(NamedTuple):
  """A named test-time defense.

  Attributes:
    name: label used in tables and JSON, e.g. ``"smooth@0.6"`` or ``"tv@0.08"``.
    transform: ``transform(x, key) -> x'`` on ``(N, H, W, C)`` float ``[0, 1]`` batches, or None for
      the bare model. ``key`` is a PRNG key; deterministic transforms ignore it.
    gradient: what ``jax.grad`` sees through ``transform``, i.e. what an adaptive attacker uses:
      ``"exact"`` (the true gradient, e.g. TV's unrolled iteration), ``"bpda-partition"`` (the mean over
      each region of the output, :func:`partition_gradient`), ``"bpda"`` (a straight-through
      surrogate, ``iss_jax.straight_through``) or ``"none"`` (no transform).
    random: True when the output depends on ``key``; adaptive attacks then average the gradient over
      draws (EOT) and predictions draw a fresh key per batch.
  """

  name: str
  transform: Callable[[Array, Array], Array] | None
  gradient: str
  random: bool

  def logits_fn(self, apply_fn: Callable[[Array], Array]) -> Callable[[Array, Array], Array]:
    """``(x, key) -> logits`` of ``apply_fn`` behind this defense (differentiable as ``gradient`` says)."""
    if self.transform is None:
      return lambda x, key: apply_fn(x)
    transform = self.transform
    return lambda x, key: apply_fn(transform(x, key))

  def describe_gradient(self) -> str:
    """How an adaptive attack differentiates this defense, in words (for report tables)."""
    how = {"none": "no transform", "exact": "exact gradient through the transform",
           "bpda": "BPDA (straight-through identity backward)",
           "bpda-partition": "BPDA (backward: the mean over each region of the smoothed output, the "
                             "Jacobian where its partition is locally constant)"}[self.gradient]
    return how + (" + EOT (gradient averaged over random draws)" if self.random else "")


def custom_defense(name: str, transform, *, gradient: str, random: bool = False) -> Defense:
  """A :class:`Defense` from any ``transform(x, key) -> x'``; every named defense is built by it.

  Args:
    name: the label in tables.
    transform: ``(N, H, W, C)`` float ``[0, 1]`` batch and a PRNG key -> transformed batch, or None.
    gradient: ``"exact"``, ``"bpda"`` (wrap a non-differentiable forward in
      ``iss_jax.straight_through``) or ``"none"`` (only with ``transform=None``).
    random: whether the output depends on the key.

  Raises:
    ValueError: an unknown ``gradient``.
  """
  if gradient not in GRADIENTS:
    raise ValueError(f"gradient must be one of {GRADIENTS}; got {gradient!r}.")
  return Defense(str(name), transform, gradient, bool(random))


def no_defense() -> Defense:
  """The bare model (``"none"``)."""
  return custom_defense("none", None, gradient="none")


def _regions(img: Array) -> Array:
  """``(H, W)`` labels of the 4-connected regions of equal value (all channels) of an ``(H, W, C)`` image."""
  h, w, _ = img.shape
  across = jnp.zeros((h, w), bool).at[:, :-1].set(jnp.all(img[:, :-1] == img[:, 1:], axis=-1))
  down = jnp.zeros((h, w), bool).at[:-1, :].set(jnp.all(img[:-1] == img[1:], axis=-1))
  return connected_components(jnp.stack([across, down]))[0]


def partition_gradient(transform: Callable[[Array, Array], Array]) -> Callable[[Array, Array], Array]:
  """``transform`` (piecewise constant output) with the backward pass of its partition frozen.

  The forward pass is ``transform(x, key)`` exactly; ``jax.grad`` sees ``x -> P x``, the mean of ``x`` over
  each region of equal value of the output (4-connected, all channels equal). ISS smoothing ends with the
  projection onto its components (Prop. 3.1), whose output on each component is the mean of ``x`` there:
  where the partition does not change, ``P`` is its exact Jacobian. The identity backward of plain BPDA
  also ascends the part of the gradient that the averaging removes, so its sign steps lose strength.

  Args:
    transform: ``(N, H, W, C)`` batch and key -> batch of the same shape, piecewise constant per image.

  Returns:
    ``(x, key) -> transform(x, key)`` with that gradient.
  """
  def fn(x, key):
    @jax.custom_vjp
    def apply(z):
      return transform(z, key)

    def forward(z):
      out = transform(z, key)
      return out, out

    def backward(out, cotangent):  # P is an average per region: self-adjoint
      return (jax.vmap(component_mean)(cotangent, jax.vmap(_regions)(lax.stop_gradient(out))),)

    apply.defvjp(forward, backward)
    return apply(x)

  return fn


def smoothing_defense(sparsity: float, *, bpda: str = "partition", **smooth_kwargs) -> Defense:
  """ISS smoothing at ``sparsity`` as a test-time defense (``"smooth@S"``).

  Args:
    sparsity: target edge sparsity in ``[0, 1]``.
    bpda: the backward pass an adaptive attacker gets (with ``iss_jax.smooth``'s default
      ``gradient="bpda"``): ``"partition"`` (default; the mean over each component of the smoothed image,
      :func:`partition_gradient`, the Jacobian where the partition is locally constant) or
      ``"identity"`` (straight-through). On the quick fixed@0.6 model at 2/255 (100 test images) the
      partition form breaks 2 more images than the identity with FGSM, PGD and APGD-CE alike.
    **smooth_kwargs: further keyword arguments of ``iss_jax.smooth`` (``maxiter``, ``step_factor``, ...).
      ``gradient="unrolled"`` makes the adaptive attack use the exact gradient of the bounded run.

  Raises:
    ValueError: ``sparsity`` outside ``[0, 1]`` or an unknown ``bpda``.

  Examples:
    >>> from iss_jax.robustness import smoothing_defense
    >>> d = smoothing_defense(0.6)
    >>> d.name, d.gradient, d.random
    ('smooth@0.6', 'bpda-partition', False)
  """
  s = float(sparsity)
  if not 0.0 <= s <= 1.0:
    raise ValueError(f"smoothing sparsity must be in [0, 1]; got {sparsity}.")
  kw = dict(smooth_kwargs)
  # The evaluations hand the defense [0, 1] images (iss_jax.as_float_images) or parts of them that may leave
  # [0, 1] (frequency components), which it smooths as they are.
  kw.setdefault("value_range", None)
  if bpda not in BPDA_FORMS:
    raise ValueError(f"bpda must be one of {BPDA_FORMS}; got {bpda!r}.")
  transform = lambda x, key: smooth(x, s, **kw)
  if kw.get("gradient") == "unrolled":
    return custom_defense(f"smooth@{s:g}", transform, gradient="exact")
  if bpda == "identity":
    return custom_defense(f"smooth@{s:g}", transform, gradient="bpda")
  return custom_defense(f"smooth@{s:g}", partition_gradient(transform), gradient="bpda-partition")


def with_bare(defenses: Sequence[Defense]) -> list[Defense]:
  """``[no_defense(), *defenses]``, checking types and that names are unique (they key every table)."""
  out = [no_defense()]
  for d in defenses:
    if not isinstance(d, Defense):
      raise ValueError(f"defenses must be iss_jax.robustness.Defense values (e.g. smoothing_defense(0.6) "
                       f"or iss_jax.baselines.make_defense('tv@0.08')); got {d!r}.")
    if d.transform is not None:
      out.append(d)
  names = [d.name for d in out]
  if len(set(names)) != len(names):
    raise ValueError(f"defense names must be unique; got {names}.")
  return out
