"""Flax ResNets and a ViT for CIFAR-size and ImageNet-size images, with input normalisation inside the model.

Every model takes float NHWC images in ``[0, 1]`` and normalises them itself (per-channel mean / std), so
attacks, smoothing and corruptions all work in pixel space. Every model's first convolution is named
``stem_conv`` and its classifier ``head``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from iss_jax._src.normalization import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from iss_jax.training import _cpu

ModuleDef = Any


def _normalise(x, mean, std, dtype):
  """``(x - mean) / std`` per channel of a batch ``(N, H, W, C)``; for other than 3 channels (e.g. grey),
  the mean statistics."""
  if x.ndim != 4:
    raise ValueError(f"x must be a batch of images (N, H, W, C); got shape {x.shape}.")
  mean = jnp.asarray(mean, dtype)
  std = jnp.asarray(std, dtype)
  if mean.shape[0] != x.shape[-1]:
    mean = jnp.full((x.shape[-1],), jnp.mean(mean), dtype)
    std = jnp.full((x.shape[-1],), jnp.mean(std), dtype)
  return (x.astype(dtype) - mean.reshape(1, 1, 1, -1)) / std.reshape(1, 1, 1, -1)


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
    x = _normalise(x, self.mean, self.std, self.dtype)
    if self.stem not in ("cifar", "imagenet"):
      raise ValueError(f"stem must be 'cifar' or 'imagenet'; got {self.stem!r}.")
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype, padding="SAME",
                             conv_general_dilated=_cpu.model_conv())  # None unless opted in
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
                             dtype=self.dtype)
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


def default_patch_size(height: int, width: int) -> int:
  """The ViT patch size for an image size: 4 up to 64 pixels a side, else the divisor nearest 16.

  32x32 gives patch 4 (an 8x8 grid, 64 tokens), 224x224 patch 16 (14x14), 84x84 patch 14 (6x6); the rule
  uses the shorter side and the patch must divide both.

  Args:
    height: image height in pixels.
    width: image width in pixels.

  Returns:
    The patch side in pixels.

  Raises:
    ValueError: no patch in [8, 32] divides a side over 64 pixels, or the patch does not divide the other
      side; pass ``patch_size`` to the model.
  """
  side = min(height, width)
  if side <= 64:
    patch = 4
  else:
    divisors = [p for p in range(8, 33) if side % p == 0]
    if not divisors:
      raise ValueError(f"patch_size: no patch of 8 to 32 pixels divides the image side {side}; pass "
                       "patch_size=P to the ViT with P dividing the image height and width.")
    patch = min(divisors, key=lambda p: (abs(p - 16), -p))
  if height % patch or width % patch:
    raise ValueError(f"patch_size: the patch {patch} does not divide the image size {height}x{width}; "
                     "pass patch_size=P to the ViT with P dividing the image height and width.")
  return patch


_DENSE_INIT = nn.initializers.truncated_normal(0.02)  # timm / DeiT: trunc_normal_(std=0.02), bias 0


class EncoderBlock(nn.Module):
  """A pre-norm transformer block: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))`` (exact GELU), as in ViT."""

  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm1")(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype, kernel_init=_DENSE_INIT,
                                        name="attention")(y, y)
    x = x + y
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm2")(x)
    y = nn.Dense(self.mlp_dim, dtype=self.dtype, kernel_init=_DENSE_INIT, name="mlp_fc1")(y)
    y = nn.gelu(y, approximate=False)
    y = nn.Dense(dim, dtype=self.dtype, kernel_init=_DENSE_INIT, name="mlp_fc2")(y)
    return x + y


class ViT(nn.Module):
  """A Vision Transformer (Dosovitskiy et al. 2021) over float NHWC images in ``[0, 1]``.

  Patches of ``patch_size`` pixels are embedded by a strided convolution (``stem_conv``), a learned class
  token is prepended, learned position embeddings are added, ``depth`` pre-norm encoder blocks follow,
  and the head reads the final-LayerNorm CLASS TOKEN (not a global average pool), as DeiT does. There is
  no dropout, drop-path or BatchNorm: the model has only ``params`` and ``train`` changes nothing.

  Attributes:
    num_classes: number of logits.
    width: token dimension (192 for ViT-Tiny).
    depth: number of encoder blocks.
    num_heads: attention heads; must divide ``width``.
    mlp_dim: hidden units of each block's MLP; 0 = ``4 * width``.
    patch_size: patch side in pixels; 0 = from the image size (:func:`default_patch_size`: 4 for 32x32,
      16 for 224x224). The position embeddings are sized for the image size seen at ``init``.
    mean, std: per-channel normalisation applied inside the model: ``(x - mean) / std``.
    dtype: computation dtype.
  """

  num_classes: int = 10
  width: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_dim: int = 0
  patch_size: int = 0
  mean: Sequence[float] = CIFAR10_MEAN
  std: Sequence[float] = CIFAR10_STD
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Logits ``(N, num_classes)`` of float images ``(N, H, W, C)`` in ``[0, 1]``.

    Args:
      x: float images, NHWC, values in ``[0, 1]``.
      train: accepted for the ResNets' interface; the ViT has no dropout or BatchNorm.

    Raises:
      ValueError: ``x`` is not a batch of images, ``width`` is not a multiple of ``num_heads``, or the patch
        does not divide the image size.
    """
    del train
    x = _normalise(x, self.mean, self.std, self.dtype)
    if self.width % self.num_heads:
      raise ValueError(f"width ({self.width}) must be a multiple of num_heads ({self.num_heads}).")
    patch = self.patch_size or default_patch_size(x.shape[1], x.shape[2])
    if x.shape[1] % patch or x.shape[2] % patch:
      raise ValueError(f"patch_size ({patch}) must divide the image size {x.shape[1]}x{x.shape[2]}.")
    x = nn.Conv(self.width, (patch, patch), (patch, patch), padding="VALID", dtype=self.dtype,
                name="stem_conv")(x)
    n, gh, gw, d = x.shape
    x = x.reshape(n, gh * gw, d)
    cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, d))
    x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, d)).astype(x.dtype), x], axis=1)
    x = x + self.param("pos_embed", _DENSE_INIT, (1, gh * gw + 1, d)).astype(x.dtype)
    for i in range(self.depth):
      x = EncoderBlock(self.num_heads, self.mlp_dim or 4 * self.width, dtype=self.dtype,
                       name=f"block{i + 1}")(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="final_norm")(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=_DENSE_INIT, name="head")(x[:, 0])
    return logits.astype(jnp.float32)


def vit_tiny(num_classes: int = 10, stem: str = "cifar", **kwargs) -> ViT:
  """ViT-Tiny: width 192, 12 blocks, 3 heads, MLP 768 (4 x width), class token (DeiT-Tiny's shape).

  The patch follows the image size (4 for 32x32: 64 tokens; 16 for 224x224: 196 tokens) unless
  ``patch_size`` is given. At 224x224 with 1,000 classes it has 5,717,416 parameters, as timm's
  ``deit_tiny_patch16_224``; at 32x32 with 10 classes, 5,362,762.

  Args:
    num_classes: number of logits.
    stem: ``"cifar"`` or ``"imagenet"``: only the normalisation statistics (CIFAR-10 or ImageNet); the
      ViT has one patch-embedding stem.
    **kwargs: other :class:`ViT` attributes (``width``, ``depth``, ``num_heads``, ``mlp_dim``,
      ``patch_size``, ``dtype``, ``mean``, ``std``).

  Returns:
    An uninitialised :class:`ViT`.

  Examples:
    >>> import jax, jax.numpy as jnp, iss_jax
    >>> model = iss_jax.training.vit_tiny(depth=1)
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    >>> model.apply(variables, jnp.zeros((2, 32, 32, 3))).shape
    (2, 10)
  """
  mean, std = _stats(stem)
  kwargs = {"mean": mean, "std": std, "width": 192, "depth": 12, "num_heads": 3, **kwargs}
  return ViT(num_classes=num_classes, **kwargs)  # mlp_dim 0: 4 * width (768)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet_small": resnet_small,
    "vit_tiny": vit_tiny,
}


def create_model(name: str, num_classes: int = 10, stem: str = "cifar", **kwargs) -> ResNet | ViT:
  """A model by name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet_small"`` or ``"vit_tiny"``.

  Args:
    name: model name.
    num_classes: number of logits.
    stem: ``"cifar"`` or ``"imagenet"`` (for the ViT only the normalisation statistics).
    **kwargs: other :class:`ResNet` or :class:`ViT` attributes (``width``: the ResNet's first-stage
      channels, the ViT's token dimension).

  Returns:
    An uninitialised :class:`ResNet` or :class:`ViT`. The ResNets keep BatchNorm statistics
    (``variables["batch_stats"]``); the ViT has ``params`` only.

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
