"""Layer-wise relevance propagation (LRP-epsilon) for flax.linen classifiers, as a modified gradient.

The rule. Every affine layer ``z = W a + b`` (``nn.Conv``, ``nn.Dense``, ``nn.DenseGeneral``, an
inference-mode ``nn.BatchNorm``; a convolution whose output feeds a BatchNorm directly is folded into it,
so the pair is one affine layer) redistributes the relevance ``R_k`` of its outputs with the epsilon rule

    R_j = a_j * sum_k W_kj R_k / (z_k + eps * sign(z_k)),        sign(0) = +1,

while ReLU, max-pooling, sums (residual connections), fan-out and average pooling pass relevance through
(for these piecewise-linear, bias-free, positively homogeneous pieces LRP-0 equals gradient x input). This
is computed as one backward pass whose gradient is rescaled by ``z / (z + eps sign z)`` at the output of
each affine layer (Zennit's modified-gradient formulation): relevance at a point is activation x modified
gradient. Input relevance is taken at the input of the first affine layer (for the ``iss_jax`` models the
normalised image ``(x - mean) / std``, the input of ``stem_conv``), one value per pixel and channel.

Transformers (CP-LRP, Ali et al. 2022): an ``nn.LayerNorm`` is an affine layer with its standard deviation
held constant (the LN-rule); in an ``nn.MultiHeadDotProductAttention`` the query and key projections are
held constant, so the attention weights are (the AH-rule) and relevance flows through the values; an
elementwise activation between two affine layers of one module (a ViT's MLP GELU, or a ReLU inside a
residual block) passes relevance unchanged (``a * grad``: the identity rule, the gradient for ReLU).
The last rule reads any input of an affine layer that has the shape of the previous affine output of the
same module (and is not that output) as an elementwise activation of it: true of the ``iss_jax`` ResNets
and ViT; a model that adds a skip connection between two layers inside one module's body is misread.

Conservation. With ``eps = 0`` and no biases, the input relevance sums to the explained logit exactly.
Otherwise each affine layer absorbs ``sum_k R_k - sum_j R_j = sum_k R_k (b_k + eps sign z_k) / (z_k + eps
sign z_k)`` (its bias and the stabiliser); :func:`lrp` reports that amount, and input relevance plus
absorbed relevance equals the logit for networks built from the pieces above (the ResNets, tested).
Constants added outside modules (a ViT's position embeddings and class token) and other nonlinearities
keep relevance that is neither input nor absorbed: ``residual`` measures it (for ``vit_tiny`` it is the
relevance of the position embeddings and class token; with those zero the ViT conserves exactly, tested).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax._src.checks import check_image

Array = jax.Array


def _gate(a, z):
  """``a`` with the gradient of ``a = (a / z) * z``, ``a / z`` held constant (0 where ``z = 0``).

  The identity rule for an elementwise activation ``a = f(z)``: relevance ``a * grad`` passes through
  unchanged. For ReLU this is its gradient; for GELU it replaces the gradient (Ali et al. 2022).
  """
  safe = jnp.where(z == 0, 1.0, z)
  gate = jax.lax.stop_gradient(jnp.where(z == 0, 0.0, a / safe))
  return jax.lax.stop_gradient(a) + (z - jax.lax.stop_gradient(z)) * gate


class LRPResult(NamedTuple):
  """The output of :func:`lrp`.

  Attributes:
    relevance: ``(N, H, W, C)`` float32 relevance of each input pixel and channel (at the input of the
      first affine layer, reshaped to the image when the model flattens it first).
    target: ``(N,)`` int32 explained classes.
    logit: ``(N,)`` float32 explained logits (the relevance put in at the top).
    absorbed: ``(N,)`` float32 relevance absorbed by biases and the epsilon stabiliser.
    residual: ``(N,)`` float32 ``logit - relevance.sum() - absorbed``: zero up to round-off for networks of
      the pieces the rules cover (ResNets; a ViT without position embeddings and class token); otherwise
      the relevance of constants added outside modules and of uncovered nonlinearities.
  """

  relevance: np.ndarray
  target: np.ndarray
  logit: np.ndarray
  absorbed: np.ndarray
  residual: np.ndarray


def _role(context) -> str | None:
  """What LRP does with a module call: ``"linear"``, ``"norm"`` (BatchNorm), ``"layernorm"``,
  ``"constant"`` (the query / key projections of a ``MultiHeadDotProductAttention``: attention weights
  are held constant) or None (pass through: the call is differentiated normally)."""
  import flax.linen as nn

  if context.method_name != "__call__":
    return None
  module = context.module
  attention = nn.MultiHeadDotProductAttention
  if isinstance(module, (nn.Dense, nn.DenseGeneral)) and isinstance(module.parent, attention):
    return "constant" if module.name in ("query", "key") else "linear"
  if isinstance(module, (nn.Conv, nn.Dense, nn.DenseGeneral)):
    return "linear"
  if isinstance(module, nn.BatchNorm):
    return "norm"
  if isinstance(module, nn.LayerNorm) and module.reduction_axes == -1 and module.feature_axes == -1:
    return "layernorm"
  return None


def _layernorm(module, x, ref):
  """A LayerNorm of ``x`` over the last axis, with the standard deviation of ``ref`` held constant."""
  params = module.variables.get("params", {})
  inv = jax.lax.stop_gradient(jax.lax.rsqrt(jnp.var(ref, axis=-1, keepdims=True) + module.epsilon))
  y = (x - jnp.mean(x, axis=-1, keepdims=True)) * inv
  if module.use_scale:
    y = y * params["scale"].reshape((1,) * (y.ndim - 1) + (-1,))
  if module.use_bias:
    y = y + params["bias"].reshape((1,) * (y.ndim - 1) + (-1,))
  return y


def _call_graph(model, variables, x, call_kwargs):
  """Shapes and folding of the affine calls, in call order: ``[(role, in_shape, out_shape, fold_into)]``.

  ``fold_into`` is the index of the BatchNorm / LayerNorm call that consumes a linear call's output
  directly (that linear call is folded into it), else None.
  """
  import flax.linen as nn

  calls = []  # (role, input, output)

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    role = _role(context)
    if role is not None and role != "constant":
      calls.append((role, args[0], out))
    return out

  graph = []

  def traced(v, z):
    with nn.intercept_methods(record):
      model.apply(v, z, **call_kwargs)
    for i, (role, inp, out) in enumerate(calls):
      fold = None
      if role == "linear":
        fold = next((j for j in range(i + 1, len(calls))
                     if calls[j][0] in ("norm", "layernorm") and calls[j][1] is out), None)
      graph.append((role, tuple(inp.shape), tuple(out.shape), fold))
    calls.clear()
    return 0

  jax.eval_shape(traced, variables, x)
  return graph


def lrp(model, variables, x, *, target=None, epsilon: float = 1e-6, call_kwargs=None) -> LRPResult:
  """LRP-epsilon relevance maps of a flax.linen classifier (the rule is stated in the module docstring).

  Args:
    model: a ``flax.linen.Module`` with ``model.apply(variables, x, **call_kwargs) -> logits``.
    variables: its variables (BatchNorm running statistics included).
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    target: ``(N,)`` classes to explain; the predicted classes when None.
    epsilon: the stabiliser ``eps >= 0`` of the epsilon rule (absolute, in the units of each layer's
      pre-activation); 0 gives LRP-0. Larger values absorb more relevance in weak, contradictory
      activations and give sparser, less noisy maps.
    call_kwargs: extra keyword arguments of ``apply`` (default ``{"train": False}``; BatchNorm must use
      its running statistics to be affine).

  Returns:
    An :class:`LRPResult`; ``relevance.sum((1, 2, 3)) + absorbed == logit`` for ReLU networks.

  Raises:
    ValueError: bad ``x``, negative ``epsilon``, ``target`` of the wrong length, a model without affine
      (Conv/Dense) layers, or one whose first affine layer does not read the image (up to a reshape).

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax  # doctest: +SKIP
    >>> model = iss_jax.training.resnet_small()  # doctest: +SKIP
    >>> v = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))  # doctest: +SKIP
    >>> res = iss_jax.analysis.lrp(model, v, jnp.full((1, 32, 32, 3), 0.5))  # doctest: +SKIP
    >>> res.relevance.shape  # doctest: +SKIP
    (1, 32, 32, 3)

  References:
    S. Bach et al., On pixel-wise explanations for non-linear classifier decisions by layer-wise relevance
    propagation, PLoS ONE 2015. G. Montavon et al., Layer-wise relevance propagation: an overview, 2019.
    C. Anders et al., Software for dataset-wide XAI: from local explanations to global insights with
    Zennit, CoRelAy, and ViRelAy, 2021 (the modified-gradient formulation).
  """
  import flax.linen as nn

  x = check_image(x, "x", ranks=(4,), min_size=1).astype(jnp.float32)
  if not np.isfinite(epsilon) or epsilon < 0:
    raise ValueError(f"epsilon must be a finite number >= 0; got {epsilon}.")
  call_kwargs = {"train": False} if call_kwargs is None else dict(call_kwargs)
  graph = _call_graph(model, variables, x, call_kwargs)
  if not graph:
    raise ValueError("model has no Conv, Dense or BatchNorm layer for LRP to propagate through.")
  folded = {i for i, g in enumerate(graph) if g[3] is not None}
  source = {g[3]: i for i, g in enumerate(graph) if g[3] is not None}  # norm call -> folded linear call
  stabilised = [i for i in range(len(graph)) if i not in folded]
  n = x.shape[0]
  attention = nn.MultiHeadDotProductAttention

  def forward(delta, probes):
    counter = [0]
    first, layers = [], []  # input of the first affine call; (z, bias, ratio) of each stabilised call
    last = [None]  # (parent path, output) of the latest stabilised call

    def hook(next_fun, args, kwargs, context):
      role = _role(context)
      if role is None:
        return next_fun(*args, **kwargs)
      if role == "constant":
        return jax.lax.stop_gradient(next_fun(*args, **kwargs))
      i = counter[0]
      counter[0] += 1
      inp = args[0]
      if i == 0:
        inp = inp + delta
        first.append(inp)
      parent = tuple(context.module.path[:-1])
      if (last[0] is not None and inp is not last[0][1] and last[0][0] == parent
          and inp.shape == last[0][1].shape and not isinstance(context.module.parent, attention)):
        inp = _gate(inp, last[0][1])  # an elementwise activation between two affine layers of one module
      if i not in source:  # append a zero input: the second half of the output is the layer's bias
        inp = jnp.concatenate([inp, jnp.zeros_like(inp)])
      if role == "layernorm":
        out = _layernorm(context.module, inp, jnp.concatenate([inp[:n], inp[:n]]))
      else:
        out = next_fun(inp, *args[1:], **kwargs)
      if i in folded:  # the normalisation it feeds receives (and splits) the doubled batch
        return out
      z, bias = out[:n], jax.lax.stop_gradient(out[n:])
      den = z + epsilon * jnp.where(z >= 0, 1.0, -1.0)
      safe = jnp.where(den == 0, 1.0, den)
      ratio = jax.lax.stop_gradient(jnp.where(den == 0, 0.0, z / safe))
      zs = jax.lax.stop_gradient(z)
      layers.append((zs, bias, ratio))
      result = zs + (z - zs) * ratio + probes[len(layers) - 1]
      last[0] = (parent, result)
      return result

    with nn.intercept_methods(hook):
      logits = model.apply(variables, x, **call_kwargs)
    return logits, first[0], layers

  if target is not None:
    target = jnp.asarray(target, jnp.int32).reshape(-1)
    if target.shape[0] != n:
      raise ValueError(f"target must hold one class per image ({n}); got shape {target.shape}.")

  @jax.jit
  def explain(target):
    zero_delta = jnp.zeros(graph[0][1], jnp.float32)
    zero_probes = [jnp.zeros(graph[i][2], jnp.float32) for i in stabilised]
    if target is None:
      target = jnp.argmax(forward(zero_delta, zero_probes)[0], -1).astype(jnp.int32)

    def score(delta, probes):
      lg, a0, layers = forward(delta, probes)
      picked = jnp.take_along_axis(lg, target[:, None], -1)[:, 0]
      return jnp.sum(picked), (picked, a0, layers)

    grads, aux = jax.grad(score, argnums=(0, 1), has_aux=True)(zero_delta, zero_probes)
    return target, grads, aux

  target, (g_in, g_layers), (picked, a0, layers) = explain(target)
  relevance = a0 * g_in
  if relevance.size != x.size:
    raise ValueError(f"the first affine layer's input {relevance.shape} is not the image batch {x.shape} "
                     "(up to a reshape), so LRP cannot map relevance to pixels.")
  relevance = relevance.reshape(x.shape)

  def per_image(v):
    return jnp.sum(v.reshape(n, -1), axis=1)

  absorbed = sum(per_image(g * z - g * ratio * (z - b)) for (z, b, ratio), g in
                 zip(layers, g_layers, strict=True))
  residual = picked - per_image(relevance) - absorbed
  as32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
  return LRPResult(as32(relevance), np.asarray(target, np.int32), as32(picked), as32(absorbed),
                   as32(residual))
