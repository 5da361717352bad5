"""Classifiers with a competitor's layers built in: the TV layer at the input (Yeh et al. 2022) and PNI's
weight noise (Rakin et al. 2019), around any model of :data:`iss_jax.training.MODELS`.

:class:`DefendedModel` has a Flax module's ``init`` / ``apply`` signature, so the training steps, the
checkpoints and the evaluations treat it as the bare model. Its extra parameters sit beside the model's own
(``params["tv_layer"]["theta"]``, ``params["pni_alpha"]``), which the wrapped Flax module ignores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from iss_jax import baselines
from iss_jax.training._config_schema import check_field
from iss_jax.training._models import create_model

TV_LAYER_KEY = "tv_layer"
FIRST_CONV = "stem_conv"  # the first convolution of every model of create_model (a ViT's patch embedding)
# Parameters that are not the network's weights: no weight decay on them.
EXTRA_KEYS = (TV_LAYER_KEY, baselines.PNI_KEY)


@dataclasses.dataclass(frozen=True)
class DefendedModel:
  """A model with a TV layer (at its input or after its first convolution) and/or PNI weight noise.

  Attributes:
    base: the Flax classifier (e.g. ``iss_jax.training.resnet18()``).
    tv_layer: ``"none"``, ``"smooth"`` (the input is TV-smoothed by a layer with a learned weight) or
      ``"sharp"`` (``2 x - TV(x)``); see ``iss_jax.baselines.tv_layer``.
    tv_layer_weight: the TV layer's initial weight.
    tv_layer_position: ``"input"`` (the image is smoothed) or ``"first_conv"`` (each feature map of the
      first convolution, the submodule named ``stem_conv``, is smoothed; Yeh et al.'s other placement).
    tv_layer_iters: Chambolle iterations of the TV layer (its gradient unrolls them).
    pni: ``"none"``, ``"layerwise"`` or ``"channelwise"`` learned scales of the weight noise; noise is drawn
      at every ``apply``, which then needs ``rngs={"noise": key}``.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> base = iss_jax.training.resnet_small()
    >>> m = iss_jax.training.DefendedModel(base, tv_layer="smooth", pni="layerwise")
    >>> v = m.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    >>> m.apply(v, jnp.zeros((2, 32, 32, 3)), rngs={"noise": jax.random.key(1)}).shape
    (2, 10)
  """

  base: Any
  tv_layer: str = "none"
  tv_layer_weight: float = 0.05
  tv_layer_position: str = "input"
  tv_layer_iters: int = baselines.DEFAULT_LAYER_ITERS
  pni: str = "none"

  def __post_init__(self):
    for name in ("tv_layer", "tv_layer_position", "pni"):  # the allowed values of the config fields
      check_field(name, getattr(self, name), label=name)

  @property
  def random(self) -> bool:
    """Whether a forward pass draws noise (PNI)."""
    return self.pni != "none"

  def init(self, key, x, train: bool = False) -> dict:
    """The base model's variables plus the extra parameters."""
    variables = dict(self.base.init(key, x, train=train))
    params = dict(variables["params"])
    if self.tv_layer != "none" and self.tv_layer_position == "first_conv" and FIRST_CONV not in params:
      raise ValueError(f"tv_layer_position='first_conv' needs a model whose first convolution is the "
                       f"submodule {FIRST_CONV!r} (the models of create_model); {type(self.base).__name__} "
                       "has none.")
    if self.tv_layer != "none":
      params[TV_LAYER_KEY] = {"theta": jnp.asarray(baselines.tv_layer_theta(self.tv_layer_weight),
                                                   jnp.float32)}
    if self.pni != "none":
      params = baselines.pni_init(params, channelwise=self.pni == "channelwise")
    variables["params"] = params
    return variables

  def apply(self, variables, x, train: bool = False, mutable=False, rngs: dict | None = None):
    """The base model's ``apply`` behind the TV layer, with perturbed weights under PNI.

    Raises:
      ValueError: a PNI model called without ``rngs={"noise": key}``.
    """
    params = variables["params"]
    intercept = contextlib.nullcontext()
    if self.tv_layer != "none":
      weight = baselines.tv_layer_weight(params[TV_LAYER_KEY]["theta"])
      smooth = lambda z: baselines.tv_layer(z, weight.astype(z.dtype), mode=self.tv_layer,
                                            iters=self.tv_layer_iters)
      if self.tv_layer_position == "input":
        x = smooth(x)
      else:
        intercept = nn.intercept_methods(_after(FIRST_CONV, smooth))
    if self.pni != "none":
      if not rngs or "noise" not in rngs:
        raise ValueError("a PNI model draws weight noise at every forward pass: pass rngs={'noise': key}.")
      params = baselines.pni_perturb(params, rngs["noise"])
    params = {k: v for k, v in params.items() if k not in EXTRA_KEYS}
    with intercept:
      return self.base.apply({**variables, "params": params}, x, train=train, mutable=mutable)


def _after(module_name: str, fn):
  """A flax method interceptor that applies ``fn`` to the output of the submodule ``module_name``."""
  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and context.module.name == module_name:
      out = fn(out)
    return out
  return interceptor


def build_model(config, num_classes: int) -> Any:
  """The classifier a training config describes: ``config.model`` with its TV layer / PNI noise, if any.

  Args:
    config: reads ``model``, ``stem``, ``width``, ``dtype`` and the fields of :func:`wrap_model` (a
      workdir's stored config: after ``with_absent_fields``).
    num_classes: number of logits.
  """
  base = _create_model(config.model, num_classes, config.stem, config.width,
                       config.get("dtype", "float32"))
  return wrap_model(base, config)


@functools.lru_cache(maxsize=16)
def _create_model(name, num_classes, stem, width, dtype="float32"):
  # dtype: the computation dtype; Flax keeps param_dtype float32, so the weights stay float32.
  kwargs = {"width": width} if width else {}
  if dtype != "float32":
    kwargs["dtype"] = jnp.dtype(dtype)
  return create_model(name, num_classes, stem, **kwargs)


def wrap_model(base, config) -> Any:
  """``base`` itself, or a :class:`DefendedModel` when ``config`` asks for a TV layer or PNI.

  Args:
    base: the Flax classifier.
    config: reads ``tv_layer``, ``tv_layer_weight``, ``tv_layer_position``, ``tv_layer_iters`` and ``pni``.
  """
  if config.tv_layer == "none" and config.pni == "none":
    return base
  return DefendedModel(base, tv_layer=config.tv_layer, tv_layer_weight=float(config.tv_layer_weight),
                       tv_layer_position=config.tv_layer_position, tv_layer_iters=int(config.tv_layer_iters),
                       pni=config.pni)


def weight_decay_mask(params) -> Any:
  """True for the network's weights, False for the extra parameters (TV weight, PNI scales)."""
  return jax.tree_util.tree_map_with_path(lambda path, _: path[0].key not in EXTRA_KEYS, params)
