"""Frequency analysis (Wang et al. 2020; Yin et al. 2019) and first-layer kernel statistics.

Low/high-frequency split: per image and channel, the centred 2-D FFT is masked by a disc of radius ``r``
around the zero frequency (low) or its complement (high); both parts are transformed back (real part).
By linearity ``low + high == x`` up to round-off.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax._src.checks import as_float_images, check_image, check_labels
from iss_jax.robustness._defenses import no_defense
from iss_jax.robustness._runner import Runner, runner_for

Array = jax.Array


def radial_mask(height: int, width: int, radius: float) -> np.ndarray:
  """Boolean ``(H, W)`` low-frequency disc of the centred spectrum: ``dist < radius``, radius excluded.

  ``dist`` is the Euclidean distance of a (``fftshift``-ed) frequency sample to the zero frequency at
  ``(H // 2, W // 2)``. This is the convention of Wang et al.'s reference helper ``mask_radial``
  (github.com/HaohanWang/HFC, ``utility/frequencyHelper.py``): ``sqrt((i - n/2)**2 + (j - n/2)**2) < r``,
  centre ``n / 2``. Frequencies exactly at distance ``radius`` belong to the high part (with ``<=`` there
  would be 4 more low frequencies at ``r = 4``: ``(+-4, 0)`` and ``(0, +-4)``), and ``radius = 0`` keeps
  nothing, not even the zero frequency.

  Note: the reference is Python 2 code written for square images: its centre ``rows / 2`` is
  ``rows // 2`` (integer division) on both axes. We centre each axis at its own ``n // 2``; for square
  images this is the reference mask at every size (and its Python 3 reading at even sizes such as 32).

  Args:
    height: ``H``.
    width: ``W``.
    radius: cut-off ``r`` in frequency samples.

  Returns:
    ``(H, W)`` bool, True on the low frequencies.
  """
  yy, xx = np.meshgrid(np.arange(height) - height // 2, np.arange(width) - width // 2, indexing="ij")
  return np.sqrt(yy**2 + xx**2) < radius


def frequency_split(x, radius: float) -> tuple[Array, Array]:
  """Splits ``(N, H, W, C)`` (or ``(H, W, C)``) images into low- and high-frequency parts.

  Args:
    x: float images.
    radius: cut-off radius ``r`` in frequency samples (paper: ``r = 8`` on CIFAR).

  Returns:
    ``(low, high)``, each of the shape and dtype of ``x``; ``low + high == x`` up to round-off. Values
    are not clipped (the model sees the raw components, as in Wang et al.).

  Raises:
    ValueError: bad rank or negative radius.

  Examples:
    >>> import jax, iss_jax
    >>> x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    >>> low, high = iss_jax.robustness.frequency_split(x, 2)
    >>> bool(jax.numpy.allclose(low + high, x, atol=1e-5))
    True

  References:
    H. Wang et al., High-frequency component helps explain the generalization of CNNs, CVPR 2020.
  """
  x = check_image(x, "x", ranks=(3, 4), min_size=1, finite=False)
  if radius < 0:
    raise ValueError(f"radius must be >= 0; got {radius}.")
  h, w = x.shape[-3:-1]
  mask = jnp.asarray(radial_mask(h, w, radius))[:, :, None]
  f = jnp.fft.fftshift(jnp.fft.fft2(x, axes=(-3, -2)), axes=(-3, -2))

  def back(spec):
    return jnp.real(jnp.fft.ifft2(jnp.fft.ifftshift(spec, axes=(-3, -2)), axes=(-3, -2)))

  low = back(jnp.where(mask, f, 0))
  high = back(jnp.where(mask, 0, f))
  return low.astype(x.dtype), high.astype(x.dtype)


def centred_spectrum(x) -> Array:
  """Mean over images and channels of ``|fftshift(fft2(x))|`` for ``(N, H, W, C)`` -> ``(H, W)``."""
  x = jnp.asarray(x)
  f = jnp.fft.fftshift(jnp.fft.fft2(x, axes=(1, 2)), axes=(1, 2))
  return jnp.mean(jnp.abs(f), axis=(0, 3))


def fourier_difference(a, b) -> Array:
  """Expected Fourier difference ``E |F(a) - F(b)|`` (Yin et al. 2019, paper Fig. 6), ``(H, W)`` centred.

  Args:
    a, b: ``(N, H, W, C)`` paired images (e.g. smoothed at 0.6 and the originals).

  Returns:
    ``(H, W)`` mean over images and channels of the magnitude of the centred FFT of ``a - b``.
  """
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.shape != b.shape or a.ndim != 4:
    raise ValueError(f"a and b must be (N, H, W, C) of the same shape; got {a.shape}, {b.shape}.")
  return centred_spectrum(a - b)


def low_frequency_fraction(acc_low, acc_high):
  """The main paper's low-frequency fraction (Tables 9-10, Fig. 4): ``acc_low / (acc_low + acc_high)``.

  Every fraction the paper prints equals this ratio of the accuracy on the low-frequency components to the
  sum of the accuracies on the low- and high-frequency components (e.g. vanilla at r = 10 in Table 9:
  46.19 / (46.19 + 27.77) = 62.45%, printed 62.46%). It is not the share of correctly classified images
  that stay correct from their low-frequency part, which :func:`evaluate_frequency` reports as
  ``"low_fraction"`` (ours).

  Args:
    acc_low: accuracy on the low-frequency components (a number or array, any unit).
    acc_high: accuracy on the high-frequency components, same unit.

  Returns:
    The fraction in ``[0, 1]`` (NaN where both accuracies are 0).

  Examples:
    >>> from iss_jax.robustness import low_frequency_fraction
    >>> round(100 * float(low_frequency_fraction(46.19, 27.77)), 2)
    62.45
  """
  lo, hi = np.asarray(acc_low, np.float64), np.asarray(acc_high, np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    out = np.where(lo + hi > 0, lo / np.where(lo + hi > 0, lo + hi, 1.0), np.nan)
  return float(out) if out.ndim == 0 else out


def evaluate_frequency(apply_fn, x, y, *, radii: Sequence[float] = (4, 8, 12, 16), defense=None,
                       batch_size: int = 100, seed: int = 0, runner: Runner | None = None) -> dict:
  """Accuracy on low/high-frequency components and the low-frequency fraction (Tables 9-10, Fig. 4).

  Two fractions: ``"low_fraction_paper"`` is the paper's, :func:`low_frequency_fraction` (``acc_low /
  (acc_low + acc_high)``, what every fraction of its Tables 9-10 equals); ``"low_fraction"`` is ours, the
  share of the correctly classified clean images still correct from their low-frequency component alone.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> logits.
    x: ``(N, H, W, C)`` images, uint8 or float in ``[0, 1]``.
    y: ``(N,)`` integer labels.
    radii: cut-off radii of :func:`frequency_split`.
    defense: an ``iss_jax.robustness.Defense`` in front of the model (None: the bare model); the
      components are split first, then defended.
    batch_size: images per jitted batch (when no ``runner`` is given).
    seed: PRNG seed of a random defense (when no ``runner`` is given).
    runner: a :class:`~iss_jax.robustness.Runner` of ``apply_fn`` to share compiled functions and clean
      predictions with other evaluations; None: a new one from ``batch_size`` and ``seed``.

  Returns:
    ``{"clean": acc, "radii": [...], "low": {r: acc}, "high": {r: acc}, "low_fraction_paper": {r: frac},
    "low_fraction": {r: frac}, "defense": name}``.
  """
  xf = as_float_images(x)
  y = check_labels(y, len(xf))
  defense = defense or no_defense()
  run = runner_for(apply_fn, runner, batch_size=batch_size, seed=seed)
  clean = run.clean_correct(xf, y, defense)
  out = {"clean": float(np.mean(clean)), "radii": [float(r) for r in radii], "low": {}, "high": {},
         "low_fraction_paper": {}, "low_fraction": {}, "num_examples": int(len(xf)), "defense": defense.name}
  for r in radii:
    low = run.map(jax.jit(lambda xb, k, r=float(r): frequency_split(xb, r)[0]), xf)
    high = run.map(jax.jit(lambda xb, k, r=float(r): frequency_split(xb, r)[1]), xf)
    lo = run.correct(low, y, defense)
    hi = run.correct(high, y, defense)
    key = f"{float(r):g}"
    out["low"][key] = float(np.mean(lo))
    out["high"][key] = float(np.mean(hi))
    out["low_fraction_paper"][key] = low_frequency_fraction(out["low"][key], out["high"][key])
    out["low_fraction"][key] = float(np.sum(lo & clean) / max(np.sum(clean), 1))
  return out


# ----------------------------------------------------------------------------------------------------------
# First-layer kernels


def first_conv_kernel(params) -> tuple[str, np.ndarray]:
  """The first convolution kernel ``(kh, kw, C_in, C_out)`` of a flax params tree.

  Uses ``params["stem_conv"]["kernel"]`` when present (the models of ``iss_jax``), else the first 4-D leaf
  named ``kernel`` in tree order.

  Returns:
    ``(path, kernel)``.

  Raises:
    ValueError: no 4-D ``kernel`` leaf.
  """
  p = params.get("params", params) if hasattr(params, "get") else params
  if hasattr(p, "get") and hasattr(p.get("stem_conv", None), "get") and "kernel" in p["stem_conv"]:
    return "stem_conv/kernel", np.asarray(p["stem_conv"]["kernel"])
  leaves = jax.tree_util.tree_flatten_with_path(p)[0]
  for path, leaf in leaves:
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']") and np.ndim(leaf) == 4:
      return name, np.asarray(leaf)
  raise ValueError("params hold no 4-D convolution 'kernel' leaf.")


def kernel_tv(kernel) -> np.ndarray:
  """Anisotropic TV ``||D w||_1`` of each output filter, summed over input channels (paper App. F).

  Args:
    kernel: ``(kh, kw, C_in, C_out)`` convolution kernel.

  Returns:
    ``(C_out,)`` TV values: sum of absolute differences between vertically and horizontally adjacent taps.
  """
  k = np.asarray(kernel, np.float64)
  if k.ndim != 4:
    raise ValueError(f"kernel must be (kh, kw, C_in, C_out); got shape {k.shape}.")
  dv = np.abs(np.diff(k, axis=0)).sum(axis=(0, 1, 2))
  dh = np.abs(np.diff(k, axis=1)).sum(axis=(0, 1, 2))
  return dv + dh


def kernel_spectra(kernel, size: int = 16) -> np.ndarray:
  """Centred magnitude spectra of first-layer filters, zero-padded to ``size x size`` (paper Fig. 5).

  Args:
    kernel: ``(kh, kw, C_in, C_out)`` kernel.
    size: FFT size.

  Returns:
    ``(C_out, size, size)`` spectra averaged over input channels.
  """
  k = np.asarray(kernel, np.float64)
  if k.ndim != 4:
    raise ValueError(f"kernel must be (kh, kw, C_in, C_out); got shape {k.shape}.")
  f = np.fft.fftshift(np.fft.fft2(k, s=(size, size), axes=(0, 1)), axes=(0, 1))
  return np.transpose(np.abs(f).mean(axis=2), (2, 0, 1))


def high_frequency_energy(kernel, radius: float = 4, size: int = 16) -> np.ndarray:
  """Share of each filter's spectral energy outside radius ``radius`` (of a ``size`` FFT): ``(C_out,)``."""
  spec = kernel_spectra(kernel, size) ** 2
  mask = radial_mask(size, size, radius)
  return spec[:, ~mask].sum(-1) / np.maximum(spec.sum(axis=(1, 2)), 1e-30)
