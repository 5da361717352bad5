"""Smooth-kernel regulariser (Wang et al., "Smooth kernels improve adversarial robustness", Sec.
3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def kernel_smoothness(w, *, diagonal: bool = False) -> Array:
  """``R(w) = exp(sum_pairs (w_ij - w_hk)^2 - sum_ij w_ij^2)`` for every 2-D slice of a conv kernel.

  Args:
    w: conv kernel ``(kh, kw, ...)``, spatial axes first (flax ``nn.Conv`` layout ``(kh, kw, C_in,
      C_out)``); the trailing axes are broadcast over (one 2-D kernel per input/output channel
      pair).
    diagonal: also count diagonal neighbours (8-neighbourhood); default False, 4-neighbourhood.

  Returns:
    ``R`` per 2-D slice, shape ``w.shape[2:]``.

  Note:
    Each unordered neighbour pair is counted once (the paper's implementation note).
  """
  w = jnp.asarray(w)
  if w.ndim < 2:
    raise ValueError(f"w must have at least 2 (spatial) axes; got shape {w.shape}.")
  diffs = jnp.sum((w[1:] - w[:-1]) ** 2, axis=(0, 1)) + jnp.sum((w[:, 1:] - w[:, :-1]) ** 2,
                                                                 axis=(0, 1))
  if diagonal:
    diffs = diffs + jnp.sum((w[1:, 1:] - w[:-1, :-1]) ** 2, axis=(0, 1))
    diffs = diffs + jnp.sum((w[1:, :-1] - w[:-1, 1:]) ** 2, axis=(0, 1))
  return jnp.exp(diffs - jnp.sum(w**2, axis=(0, 1)))


def conv_kernels(params) -> list[tuple[str, Array]]:
  """The regularised kernels of a params pytree: 4-D leaves named ``kernel`` with spatial size > 1.

  Args:
    params: a flax params tree (``variables["params"]``) or any pytree.

  Returns:
    ``[(path, kernel), ...]`` in tree order.
  """
  found = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    last = path[-1] if path else None
    name = getattr(last, "key", getattr(last, "name", None))
    if name == "kernel" and jnp.ndim(leaf) == 4 and leaf.shape[0] * leaf.shape[1] > 1:
      found.append((jax.tree_util.keystr(path), leaf))
  return found


def smooth_kernel_penalty(params, *, diagonal: bool = False, reduction: str = "sum") -> Array:
  """Smooth-kernel penalty ``sum_w R(w)`` over every conv kernel of a model (Wang et al., Sec. 3).

  For every conv kernel and every (input, output) channel pair, ``R`` is the exponential of the sum
  of squared differences between spatially adjacent weights minus the kernel's squared norm (the
  norm is subtracted so that the penalty cannot be lowered by shrinking the kernel; the exponential
  strengthens the penalty early in training and weakens it once kernels are smooth). Add ``lambda *
  penalty`` to any training loss (cross-entropy, PGD-AT, TRADES); the paper tunes ``lambda`` in
  ``{0.01, ..., 100}``.

  Args:
    params: params pytree; conv kernels are the 4-D leaves named ``kernel`` (flax layout ``(kh, kw,
      C_in, C_out)``). 1x1 kernels have no spatial neighbours and are skipped (their ``R`` would be
      ``exp(-w^2)``, which only rewards larger weights); dense (2-D) kernels are skipped.
    diagonal: count diagonal neighbours too (8-neighbourhood); default 4-neighbourhood.
    reduction: ``"sum"`` (default, the paper: ``R`` summed over all 2-D kernels, so the gradient on
      each weight does not depend on the model's size) or ``"mean"`` (averaged over all 2-D
      kernels).

  Returns:
    Scalar float penalty (0.0 if there is no conv kernel).

  Raises:
    ValueError: unknown ``reduction``.

  Examples:
    >>> import jax.numpy as jnp, iss_jax
    >>> params = {"conv": {"kernel": jnp.zeros((3, 3, 1, 2)), "bias": jnp.zeros(2)}}
    >>> float(iss_jax.baselines.smooth_kernel_penalty(params))  # exp(0) for each of the 2 slices
    2.0

  References:
    H. Wang, S. Ge, Z. Lipton, E. Xing, "Smooth kernels improve adversarial robustness and
    perceptually- aligned gradients", Sec. 3, final regularisation R(w).
  """
  if reduction not in ("sum", "mean"):
    raise ValueError(f"reduction must be 'sum' or 'mean'; got {reduction!r}.")
  values = [kernel_smoothness(k, diagonal=diagonal) for _, k in conv_kernels(params)]
  if not values:
    return jnp.zeros((), jnp.float32)
  total = sum(jnp.sum(v) for v in values)
  if reduction == "mean":
    total = total / sum(v.size for v in values)
  return total
