"""Grad-CAM saliency maps for flax.linen classifiers (paper App. C, Fig. 1b / Fig. 9)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax._src.checks import check_image

Array = jax.Array


def _call_paths(model, variables, x, call_kwargs):
  """Module paths (tuples) whose ``__call__`` returns a ``(N, h, w, c)`` array, in call order."""
  import flax.linen as nn

  found = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and isinstance(out, jax.Array) and out.ndim == 4:
      found.append((tuple(context.module.path), out.shape))
    return out

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v, z: model.apply(v, z, **call_kwargs), variables, x)
  return found


def grad_cam(model, variables, x, *, target=None, layer=None, call_kwargs=None):
  """Grad-CAM maps of a flax.linen classifier.

  ``cam = relu(sum_k alpha_k A_k)`` with ``A`` the activation of ``layer`` and ``alpha_k`` the spatial mean
  of ``d logit_target / d A_k``; the map is bilinearly resized to the input size and scaled to ``[0, 1]``
  per image.

  Args:
    model: a ``flax.linen.Module`` with ``model.apply(variables, x, **call_kwargs) -> logits``.
    variables: its variables.
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    target: ``(N,)`` classes to explain; the predicted classes when None.
    layer: module path (tuple of names or ``"/"``-joined string) whose output is ``A``; default: the last
      module whose output is 4-D and has spatial size > 1 (the last convolutional block).
    call_kwargs: extra keyword arguments of ``apply`` (default ``{"train": False}``).

  Returns:
    ``(cams (N, H, W) float in [0, 1], target (N,), layer path str)``.

  Raises:
    ValueError: bad ``x`` or a layer that is not found / not 4-D.

  References:
    R. R. Selvaraju et al., Grad-CAM, IJCV 2019.
  """
  import flax.linen as nn

  x = check_image(x, "x", ranks=(4,), min_size=1).astype(jnp.float32)
  call_kwargs = {"train": False} if call_kwargs is None else dict(call_kwargs)
  paths = _call_paths(model, variables, x, call_kwargs)
  if layer is None:
    cands = [(p, s) for p, s in paths if s[1] > 1 and s[2] > 1 and len(p) > 0]
    if not cands:
      raise ValueError("no module with a 4-D (N, h, w, c) output was found for Grad-CAM.")
    layer, shape = cands[-1]
  else:
    layer = tuple(layer.split("/")) if isinstance(layer, str) else tuple(layer)
    shapes = [s for p, s in paths if p == layer]
    if not shapes:
      raise ValueError(f"layer {'/'.join(layer)!r} not found among 4-D outputs "
                       f"{['/'.join(p) for p, _ in paths]}.")
    shape = shapes[-1]

  def forward(delta):
    captured = []

    def hook(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if context.method_name == "__call__" and tuple(context.module.path) == layer and not captured:
        out = out + delta
        captured.append(out)
      return out

    with nn.intercept_methods(hook):
      logits = model.apply(variables, x, **call_kwargs)
    return logits, captured[0]

  logits, acts = forward(jnp.zeros(shape, jnp.float32))
  if target is None:
    target = jnp.argmax(logits, -1)
  target = jnp.asarray(target, jnp.int32)

  def score(delta):
    lg, _ = forward(delta)
    return jnp.sum(jnp.take_along_axis(lg, target[:, None], -1))

  grads = jax.grad(score)(jnp.zeros(shape, jnp.float32))
  alpha = jnp.mean(grads, axis=(1, 2), keepdims=True)
  cam = jax.nn.relu(jnp.sum(alpha * acts, axis=-1))
  cam = jax.image.resize(cam, (x.shape[0],) + x.shape[1:3], method="linear")
  cam = cam - jnp.min(cam, axis=(1, 2), keepdims=True)
  cam = cam / jnp.maximum(jnp.max(cam, axis=(1, 2), keepdims=True), 1e-12)
  return np.asarray(cam), np.asarray(target), "/".join(layer)
