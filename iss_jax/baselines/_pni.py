"""PNI: parametric noise injection on the weights (Rakin, He, Fan, CVPR 2019), as pure functions on params.

Every convolution and dense kernel ``W`` (the ``"kernel"`` leaves of a Flax parameter tree) is used as
``W + alpha * eta`` with ``eta ~ N(0, std(W)^2)`` drawn afresh at every forward pass, training and test
alike, and ``alpha`` a learned scale per layer (PNI-W, layer-wise; ``channelwise=True``: one per output
channel), initialised at 0.25. As in the reference implementation, ``std(W)`` and ``eta`` carry no
gradient, so ``d/dW = 1`` and ``d/dalpha = eta``. PNI is trained with PGD adversarial training (without
an adversary ``alpha`` goes to 0) and, being random, evaluated with EOT.

The scales live beside the model's own parameters, under ``params[PNI_KEY]``, as a flat dict ``{"a/b/kernel":
alpha}``; Flax ignores the extra entry, :func:`pni_perturb` consumes it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

PNI_KEY = "pni_alpha"
PNI_INIT = 0.25


def _name(path) -> str:
  """``"a/b/kernel"``: the name of a leaf's path in a parameter tree."""
  return "/".join(str(getattr(p, "key", getattr(p, "name", p))) for p in path)


def _kernels(params) -> dict[str, Array]:
  """``{"a/b/kernel": W}`` of the kernel leaves of a parameter tree (without the PNI scales)."""
  flat = jax.tree_util.tree_flatten_with_path({k: v for k, v in params.items() if k != PNI_KEY})[0]
  named = ((_name(path), leaf) for path, leaf in flat)
  return {name: leaf for name, leaf in named if name.rsplit("/", 1)[-1] == "kernel" and leaf.ndim >= 2}


def pni_init(params, *, init: float = PNI_INIT, channelwise: bool = False) -> dict:
  """``params`` plus the PNI noise scales ``params[PNI_KEY] = {"a/b/kernel": alpha}``.

  Args:
    params: a Flax parameter tree (``variables["params"]``).
    init: initial scale (paper: 0.25).
    channelwise: one scale per output channel (the kernel's last axis) instead of one per layer.

  Returns:
    A new dict with the scales added (float32 ``()`` or ``(out,)`` each).

  Raises:
    ValueError: ``params`` has no kernel, or ``init < 0``.

  Examples:
    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> from iss_jax.baselines import pni_init
    >>> params = nn.Dense(3).init(jax.random.key(0), jnp.ones((1, 4)))["params"]
    >>> {k: v.shape for k, v in pni_init(params)["pni_alpha"].items()}
    {'kernel': ()}
  """
  if not float(init) >= 0:
    raise ValueError(f"PNI initial scale must be a number >= 0; got {init!r}.")
  kernels = _kernels(params)
  if not kernels:
    raise ValueError("params has no 'kernel' leaf for PNI to perturb.")
  scales = {name: jnp.full((w.shape[-1],) if channelwise else (), float(init), jnp.float32)
            for name, w in kernels.items()}
  return {**{k: v for k, v in params.items() if k != PNI_KEY}, PNI_KEY: scales}


def pni_perturb(params, key: Array) -> dict:
  """The parameters one forward pass of a PNI model uses: every kernel ``W + alpha * eta`` (module doc).

  Args:
    params: a parameter tree with scales from :func:`pni_init` (a tree without them is returned as is).
    key: PRNG key of this forward pass.

  Returns:
    The parameter tree without the scales, kernels perturbed; differentiable w.r.t. the kernels and the
    scales.
  """
  if PNI_KEY not in params:
    return params
  scales = params[PNI_KEY]
  names = sorted(scales)
  keys = dict(zip(names, jax.random.split(key, len(names)), strict=True))

  def perturb(path, w):
    name = _name(path)
    if name not in scales:
      return w
    eta = jax.lax.stop_gradient(jnp.std(w) * jax.random.normal(keys[name], w.shape, w.dtype))
    scale = scales[name].astype(w.dtype)
    if scale.ndim:  # channel-wise: one scale per output channel, the kernel's last axis
      scale = scale.reshape((1,) * (w.ndim - 1) + scale.shape)
    return w + scale * eta

  return jax.tree_util.tree_map_with_path(perturb, {k: v for k, v in params.items() if k != PNI_KEY})


def pni_scales(params) -> dict[str, float]:
  """``{layer: mean |alpha|}`` of a PNI parameter tree (what training learned), for reports."""
  return {k: float(jnp.mean(jnp.abs(v))) for k, v in params.get(PNI_KEY, {}).items()}
