"""Opt-in CPU training settings: XLA:CPU convolutions through Eigen, and a transpose-light weight gradient.

On jaxlib 0.10, XLA:CPU hands every large convolution to YNNPACK. For the weight gradient of a 3x3
convolution (which XLA writes as a convolution whose window is the whole feature map) YNNPACK was 3-9x
slower than Eigen on the 32x32 and 16x16 ResNet-18 layers at batch 128 (the same speed at 4x4);
forward and input-gradient convolutions were no faster either. That weight-gradient convolution also
needs the layer input with the batch as its minor axis, and XLA fuses the recomputation of that input
(BatchNorm, ReLU and residual sums back to the last convolution) into this transpose, which then reads
a dozen arrays with a stride of a whole image: after the switch to Eigen, these transposes took half of
the step. :func:`use_fast_cpu_training` sets both right: Eigen convolutions, and a weight gradient in
which the layer input keeps its channels minor (the incoming gradient takes the batch-minor transpose;
unstrided convolutions only: the strided ones keep XLA's). Together 1.48x the default step, 1.06x
PyTorch's, at batch 128 in one interleaved run of ``benchmarks/bench_train_step.py`` (Eigen alone 1.39x).
Summation orders change, so losses match XLA's plain path to float32 rounding, not bit for bit; the
training entry points (``python -m train.<procedure>``) switch it on by default (``--nofast_cpu``: off),
the library does not (it cannot set XLA's flags once JAX runs). Both halves act on CPU computations only:
the XLA flag is one of XLA:CPU's, and the weight-gradient switch is read when a model is traced with the
CPU as JAX's default backend.
"""

from __future__ import annotations

import os

# YNNPACK keeps its default fusion types except the individual convolutions.
EIGEN_CONVOLUTION_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
_FLAG_NAME = EIGEN_CONVOLUTION_FLAGS.split("=")[0]
_MIN_JAXLIB = (0, 10)  # measured on 0.10.2; an XLA that does not know the flag aborts the process
_NHWC_HWIO = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
_switch = {"weight_gradient": False}


def use_fast_cpu_training() -> bool:
  """Make CPU training of the ResNets faster in this process (1.3-1.5x on 2 cores; the training entry
  points call it unless ``--nofast_cpu``).

  Appends :data:`EIGEN_CONVOLUTION_FLAGS` to ``$XLA_FLAGS`` (XLA:CPU convolutions through Eigen rather
  than YNNPACK), so it must run before JAX starts its backends (before the first array is made), and
  makes :class:`~iss_jax.training.ResNet` compute its convolutions' weight gradients with
  :func:`conv_general_dilated`. It leaves ``$XLA_FLAGS`` alone when the user has set
  ``--xla_cpu_experimental_ynn_fusion_type`` there, and on a jaxlib older than 0.10 (whose XLA may not
  know the flag). The XLA half alone, without Python: ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=
  -individual_convolution python -m train.fixed ...``.

  Returns:
    Whether the XLA flag was added.

  Raises:
    RuntimeError: JAX's backends are already running, so a flag set now would be ignored.

  Note:
    Losses and weights match the default path to float32 rounding, not bit for bit. The switched
    convolutions are ``jax.custom_vjp`` functions: reverse-mode derivatives (of any order) work,
    forward-mode ones (``jax.jvp``) through the model do not.
  """
  import jaxlib
  from jax._src import xla_bridge

  if xla_bridge.backends_are_initialized():
    raise RuntimeError("use_fast_cpu_training() must run before JAX starts (before the first array); "
                       f"or set XLA_FLAGS={EIGEN_CONVOLUTION_FLAGS} in the environment.")
  _switch["weight_gradient"] = True
  flags = os.environ.get("XLA_FLAGS", "")
  version = tuple(int(p) for p in jaxlib.__version__.split(".")[:2] if p.isdigit())
  if _FLAG_NAME in flags or version < _MIN_JAXLIB:
    return False
  os.environ["XLA_FLAGS"] = f"{flags} {EIGEN_CONVOLUTION_FLAGS}".strip()
  return True


def model_conv():
  """The ``conv_general_dilated`` the ResNets give ``nn.Conv`` (read when a model is traced): None (lax's)
  unless switched on and JAX's default backend is the CPU (on a GPU/TPU host the switch changes
  nothing)."""
  if not _switch["weight_gradient"]:
    return None
  import jax

  return conv_general_dilated if jax.default_backend() == "cpu" else None


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
  """``lax.conv_general_dilated`` whose kernel gradient keeps the input's channels minor.

  For NHWC / HWIO, ungrouped, undilated, unstrided convolutions the kernel cotangent is the convolution of
  the output cotangent ``g`` (batch: output channels; features: images) with the input ``x`` as the
  window (input features: images; output features: input channels),
  ``dW[a, b, i, o] = sum_{n,h,w} g[n, h, w, o] x[n, h + a - pad, w + b - pad, i]``, flipped. So XLA
  transposes ``g`` (batch minor) instead of ``x``, and ``x`` only moves its batch axis inward. Forward
  and input gradient are lax's; any other convolution is plain ``lax.conv_general_dilated``.

  Args:
    lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
      feature_group_count, precision, **kwargs: as ``jax.lax.conv_general_dilated``.

  Returns:
    The convolution, equal to ``jax.lax.conv_general_dilated``'s; gradients equal to float rounding.
  """
  import jax
  from jax import lax

  def conv(x, w):
    return lax.conv_general_dilated(x, w, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, precision=precision, **kwargs)

  unit = lambda d: d is None or all(v == 1 for v in d)
  # Strided convolutions keep lax's gradient: this one would dilate g, which XLA:CPU's Eigen
  # convolution does not take (it fell back to a loop 8x slower than the whole default step).
  if (lhs.ndim != 4 or kwargs or feature_group_count != 1 or not unit(window_strides)
      or not unit(lhs_dilation) or not unit(rhs_dilation)
      or tuple(lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)) != _NHWC_HWIO):
    return conv(lhs, rhs)
  size, k = lhs.shape[1:3], rhs.shape[:2]
  pads = lax.padtype_to_pads(size, k, (1, 1), padding) if isinstance(padding, str) else padding
  wpads = [(kk - 1 - lo, kk - 1 - hi) for kk, (lo, hi) in zip(k, pads, strict=True)]
  if any(v < 0 for p in wpads for v in p):
    return conv(lhs, rhs)
  swapped = lax.ConvDimensionNumbers((3, 0, 1, 2), (3, 0, 1, 2), (3, 2, 0, 1))

  @jax.custom_vjp
  def f(x, w):
    return conv(x, w)

  def fwd(x, w):
    return conv(x, w), (x, w)

  def bwd(res, g):
    x, w = res
    dx = jax.vjp(lambda x: conv(x, w), x)[1](g)[0]
    dw = lax.conv_general_dilated(g, x, (1, 1), wpads, dimension_numbers=swapped, precision=precision)
    return dx, dw[::-1, ::-1].astype(w.dtype)

  f.defvjp(fwd, bwd)
  return f(lhs, rhs)
