"""Grad-CAM saliency maps for flax.linen classifiers, CNNs and ViTs (paper App. C, Fig. 1b / Fig. 9)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax._src.checks import check_image

Array = jax.Array


def _call_paths(model, variables, x, call_kwargs):
  """Module paths (tuples) whose ``__call__`` returns a 3-D or 4-D array, with shapes, in call order."""
  import flax.linen as nn

  found = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and isinstance(out, jax.Array) and out.ndim in (3, 4):
      found.append((tuple(context.module.path), out.shape, isinstance(context.module, nn.Conv)))
    return out

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v, z: model.apply(v, z, **call_kwargs), variables, x)
  return found


def _token_grid(paths, shape):
  """``(extra, gh, gw)`` when a 3-D output ``(N, T, D)`` is ``T = extra + gh * gw`` tokens of the patch grid
  of a convolution (a ViT's patch embedding; ``extra`` leading class tokens, 0 or 1), else None."""
  if len(shape) != 3:
    return None
  grids = [s[1:3] for _, s, is_conv in paths if is_conv and len(s) == 4 and s[1] * s[2] > 1]
  for gh, gw in reversed(grids):
    if shape[1] - gh * gw in (0, 1):
      return shape[1] - gh * gw, gh, gw
  return None


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
      module whose output is 4-D and has spatial size > 1 (the last convolutional block), or for a token
      model (a ViT) the last token layer whose patch tokens still reach the logits (the last block's
      first LayerNorm: after the last attention only the class token is read).
    call_kwargs: extra keyword arguments of ``apply`` (default ``{"train": False}``).

  Returns:
    ``(cams (N, H, W) float in [0, 1], target (N,), layer path str)``.

  Raises:
    ValueError: bad ``x`` or a layer that is not found / not 4-D or tokens.

  Note:
    Token models. A 3-D output ``(N, T, D)`` with ``T = gh * gw`` or ``1 + gh * gw`` for the patch grid
    ``(gh, gw)`` of a convolution (the patch embedding) is read as tokens: the leading class token is
    dropped and the rest reshaped to ``(N, gh, gw, D)``, then Grad-CAM proceeds as for a convolutional
    layer (gradients averaged over the patch grid as channel weights).

  References:
    R. R. Selvaraju et al., Grad-CAM, IJCV 2019.
  """
  import flax.linen as nn

  x = check_image(x, "x", ranks=(4,), min_size=1).astype(jnp.float32)
  call_kwargs = {"train": False} if call_kwargs is None else dict(call_kwargs)
  paths = _call_paths(model, variables, x, call_kwargs)
  tokens = [(p, s) for p, s, _ in paths if len(p) > 0 and _token_grid(paths, s) is not None]
  if layer is None and tokens:
    layer, shape = _last_token_layer(model, variables, x, call_kwargs, tokens, paths)
  elif layer is None:
    cands = [(p, s) for p, s, _ in paths if len(s) == 4 and s[1] > 1 and s[2] > 1 and len(p) > 0]
    if not cands:
      raise ValueError("no module with a 4-D (N, h, w, c) output or a token output was found for "
                       "Grad-CAM.")
    layer, shape = cands[-1]
  else:
    layer = tuple(layer.split("/")) if isinstance(layer, str) else tuple(layer)
    shapes = [s for p, s, _ in paths if p == layer and (len(s) == 4 or _token_grid(paths, s))]
    if not shapes:
      raise ValueError(f"layer {'/'.join(layer)!r} not found among the 4-D or token outputs "
                       f"{['/'.join(p) for p, s, _ in paths if len(s) == 4 or _token_grid(paths, s)]}.")
    shape = shapes[-1]
  grid = _token_grid(paths, shape)

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
  if grid is not None:  # tokens -> (N, gh, gw, D), leading class token dropped
    extra, gh, gw = grid
    grads = grads[:, extra:].reshape(shape[0], gh, gw, shape[2])
    acts = acts[:, extra:].reshape(shape[0], gh, gw, shape[2])
  alpha = jnp.mean(grads, axis=(1, 2), keepdims=True)
  cam = jax.nn.relu(jnp.sum(alpha * acts, axis=-1))
  cam = jax.image.resize(cam, (x.shape[0],) + x.shape[1:3], method="linear")
  cam = cam - jnp.min(cam, axis=(1, 2), keepdims=True)
  cam = cam / jnp.maximum(jnp.max(cam, axis=(1, 2), keepdims=True), 1e-12)
  return np.asarray(cam), np.asarray(target), "/".join(layer)


def _last_token_layer(model, variables, x, call_kwargs, tokens, paths):
  """The last token layer whose patch tokens the logits depend on (one backward pass over all of them).

  After the last attention, a ViT's head reads the class token only, so later token outputs have zero
  gradient on every patch token; Grad-CAM needs the last layer before that (e.g. the last block's first
  LayerNorm, as pytorch-grad-cam uses for ViTs).
  """
  import flax.linen as nn

  def score(probes):
    count = {}

    def hook(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      key = tuple(context.module.path)
      if context.method_name == "__call__" and key in probes and key not in count:
        count[key] = 1
        out = out + probes[key]
      return out

    with nn.intercept_methods(hook):
      logits = model.apply(variables, x, **call_kwargs)
    return jnp.sum(jnp.max(logits, axis=-1))

  probes = {p: jnp.zeros(s, jnp.float32) for p, s in tokens}
  grads = jax.grad(score)(probes)
  for p, s in reversed(tokens):
    extra = _token_grid(paths, s)[0]
    if bool(jnp.any(grads[p][:, extra:] != 0)):
      return p, s
  raise ValueError("no token layer of the model influences the logits through its patch tokens.")
