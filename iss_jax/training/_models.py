"""Flax ResNets for CIFAR-size and ImageNet-size images, with input normalisation inside the model.

Every model takes float NHWC images in ``[0, 1]`` and normalises them itself (per-channel mean / std), so
attacks, smoothing and corruptions all work in pixel space.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ModuleDef = Any


class _ResidualBlock(nn.Module):
  """The fields of a residual block and its shortcut: the identity, or a strided 1x1 projection."""

  filters: int
  strides: int
  conv: ModuleDef
  norm: ModuleDef

  def _add_shortcut(self, x, y):
    residual = x
    if residual.shape != y.shape:
      residual = self.conv(y.shape[-1], (1, 1), (self.strides, self.strides), name="proj_conv")(x)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(residual + y)


class BasicBlock(_ResidualBlock):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

  expansion = 1

  @nn.compact
  def __call__(self, x):
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides), name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    y = self.conv(self.filters, (3, 3), name="conv2")(y)
    return self._add_shortcut(x, self.norm(name="bn2")(y))


class BottleneckBlock(_ResidualBlock):
  """1x1 - 3x3 - 1x1 bottleneck with 4x expansion (ResNet-50), stride on the 3x3 (torchvision v1.5)."""

  expansion = 4

  @nn.compact
  def __call__(self, x):
    y = self.conv(self.filters, (1, 1), name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides), name="conv2")(y)
    y = nn.relu(self.norm(name="bn2")(y))
    y = self.conv(self.filters * 4, (1, 1), name="conv3")(y)
    return self._add_shortcut(x, self.norm(name="bn3")(y))


class ResNet(nn.Module):
  """A ResNet (He et al. 2016) over float NHWC images in ``[0, 1]``.

  Attributes:
    stage_sizes: number of blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    block_cls: :class:`BasicBlock` or :class:`BottleneckBlock`.
    num_classes: number of logits.
    width: channels of the first stage; stage ``i`` has ``width * 2**i``.
    stem: ``"cifar"`` (one 3x3 stride-1 conv, no max-pool; for 32x32 images) or ``"imagenet"`` (7x7
      stride-2 conv and 3x3 stride-2 max-pool).
    mean, std: per-channel normalisation applied inside the model: ``(x - mean) / std``.
    dtype: computation dtype.

  The first convolution is named ``stem_conv`` (its kernel is
  ``variables["params"]["stem_conv"]["kernel"]``, shape ``(k, k, C_in, width)``).
  """

  stage_sizes: Sequence[int]
  block_cls: ModuleDef = BasicBlock
  num_classes: int = 10
  width: int = 64
  stem: str = "cifar"
  mean: Sequence[float] = CIFAR10_MEAN
  std: Sequence[float] = CIFAR10_STD
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits ``(N, num_classes)`` of float images ``(N, H, W, C)`` in ``[0, 1]``.

    Args:
      x: float images, NHWC, values in ``[0, 1]``.
      train: batch statistics (and updates of the running ones, ``mutable=["batch_stats"]``) if True,
        running statistics if False.
    """
    if x.ndim != 4:
      raise ValueError(f"x must be a batch of images (N, H, W, C); got shape {x.shape}.")
    if self.stem not in ("cifar", "imagenet"):
      raise ValueError(f"stem must be 'cifar' or 'imagenet'; got {self.stem!r}.")
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype, padding="SAME")
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             dtype=self.dtype)
    mean = jnp.asarray(self.mean, self.dtype)
    std = jnp.asarray(self.std, self.dtype)
    if mean.shape[0] != x.shape[-1]:
      mean = jnp.full((x.shape[-1],), jnp.mean(mean), self.dtype)
      std = jnp.full((x.shape[-1],), jnp.mean(std), self.dtype)
    x = (x.astype(self.dtype) - mean.reshape(1, 1, 1, -1)) / std.reshape(1, 1, 1, -1)
    if self.stem == "cifar":
      x = conv(self.width, (3, 3), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
    else:
      x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, size in enumerate(self.stage_sizes):
      for j in range(size):
        strides = 2 if i > 0 and j == 0 else 1
        x = self.block_cls(self.width * 2**i, strides, conv=conv, norm=norm,
                           name=f"stage{i + 1}_block{j + 1}")(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def _stats(stem: str):
  return (CIFAR10_MEAN, CIFAR10_STD) if stem == "cifar" else (IMAGENET_MEAN, IMAGENET_STD)


def resnet18(num_classes: int = 10, stem: str = "cifar", **kwargs) -> ResNet:
  """ResNet-18; with the CIFAR stem and 10 classes it has 11,173,962 parameters (the usual PyTorch model).

  Args:
    num_classes: number of logits.
    stem: ``"cifar"`` or ``"imagenet"``; sets the normalisation statistics too (CIFAR-10 or ImageNet).
    **kwargs: other :class:`ResNet` attributes (``width``, ``dtype``, ``mean``, ``std``).

  Returns:
    An uninitialised :class:`ResNet`.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> model = iss_jax.training.resnet18()
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    >>> model.apply(variables, jnp.zeros((2, 32, 32, 3))).shape
    (2, 10)
  """
  mean, std = _stats(stem)
  kwargs = {"mean": mean, "std": std, **kwargs}
  return ResNet((2, 2, 2, 2), BasicBlock, num_classes=num_classes, stem=stem, **kwargs)


def resnet34(num_classes: int = 10, stem: str = "cifar", **kwargs) -> ResNet:
  """ResNet-34 (basic blocks ``(3, 4, 6, 3)``); arguments as in :func:`resnet18`."""
  mean, std = _stats(stem)
  kwargs = {"mean": mean, "std": std, **kwargs}
  return ResNet((3, 4, 6, 3), BasicBlock, num_classes=num_classes, stem=stem, **kwargs)


def resnet50(num_classes: int = 10, stem: str = "imagenet", **kwargs) -> ResNet:
  """ResNet-50 (bottleneck blocks ``(3, 4, 6, 3)``); ImageNet stem by default, as used on ImageNet-100."""
  mean, std = _stats(stem)
  kwargs = {"mean": mean, "std": std, **kwargs}
  return ResNet((3, 4, 6, 3), BottleneckBlock, num_classes=num_classes, stem=stem, **kwargs)


def resnet_small(num_classes: int = 10, stem: str = "cifar", width: int = 16, **kwargs) -> ResNet:
  """ResNet-8 for CPU-scale experiments: three stages of one basic block, widths 16/32/64.

  78,042 parameters at ``width=16`` (308,650 at ``width=32``); trains on a few thousand 32x32 images
  in minutes on a CPU.
  """
  mean, std = _stats(stem)
  kwargs = {"mean": mean, "std": std, **kwargs}
  return ResNet((1, 1, 1), BasicBlock, num_classes=num_classes, width=width, stem=stem, **kwargs)


MODELS: dict[str, Callable[..., ResNet]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet_small": resnet_small,
}


def create_model(name: str, num_classes: int = 10, stem: str = "cifar", **kwargs) -> ResNet:
  """A model by name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet_small"``.

  Args:
    name: model name.
    num_classes: number of logits.
    stem: ``"cifar"`` or ``"imagenet"``.
    **kwargs: other :class:`ResNet` attributes.

  Returns:
    An uninitialised :class:`ResNet`.

  Raises:
    ValueError: unknown ``name`` or ``stem``.
  """
  if name not in MODELS:
    raise ValueError(f"model must be one of {sorted(MODELS)}; got {name!r}.")
  if stem not in ("cifar", "imagenet"):
    raise ValueError(f"stem must be 'cifar' or 'imagenet'; got {stem!r}.")
  return MODELS[name](num_classes=num_classes, stem=stem, **kwargs)


def count_params(params) -> int:
  """Number of scalars in a parameter pytree."""
  import jax

  return int(sum(p.size for p in jax.tree_util.tree_leaves(params)))
