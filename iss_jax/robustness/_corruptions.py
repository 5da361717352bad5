"""CIFAR-10-C corruptions: an offline, seeded generator with the CIFAR (32x32) parameters of Hendrycks'
``make_cifar_c.py``, and readers for the official ``.npy`` files and TFDS ``cifar10_corrupted``.

The generator is NumPy/SciPy (data preparation, not part of a differentiable model). Images it makes are
labelled "CIFAR-10-C-style": same formulas and severity constants, our own random streams and our own
re-implementations of the OpenCV/ImageMagick/scikit-image helpers, so they are not byte-identical to the
official release.

References:
  D. Hendrycks and T. Dietterich, Benchmarking neural network robustness to common corruptions and
  perturbations, ICLR 2019 (github.com/hendrycks/robustness, ``ImageNet-C/create_c/make_cifar_c.py``).
"""

from __future__ import annotations

import io
import os
import zlib

import numpy as np
from scipy import ndimage

# Corruption names as in the official CIFAR-10-C file names, in the official order.
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)
# The seven types of the paper's Table 1.
PAPER_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur",
                     "brightness", "elastic_transform")

# CIFAR parameters of make_cifar_c.py, indexed by severity - 1.
_GAUSSIAN = (0.04, 0.06, 0.08, 0.09, 0.10)
_SHOT = (500, 250, 100, 75, 50)
_IMPULSE = (0.01, 0.02, 0.03, 0.05, 0.07)
_SPECKLE = (0.06, 0.1, 0.12, 0.16, 0.2)
_GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)
_GLASS = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
_DEFOCUS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
_MOTION = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
_ZOOM = tuple(np.arange(1, top, 0.01) for top in (1.06, 1.11, 1.16, 1.21, 1.26))
_FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
_BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
_CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
_SATURATE = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))
_JPEG = (80, 65, 58, 50, 40)
_PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
_ELASTIC = tuple((32 * a, 32 * b, 32 * c) for a, b, c in
                 ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                  (0.1, 0.03, 0.03)))


def _sk_gaussian(x, sigma, *, mode="nearest", truncate=4.0):
  """``skimage.filters.gaussian`` with ``channel_axis=-1`` on an ``(H, W[, C])`` float image."""
  if sigma == 0:
    return np.asarray(x, np.float64)
  sig = (sigma, sigma) + (0,) * (x.ndim - 2)
  return ndimage.gaussian_filter(np.asarray(x, np.float64), sig, mode=mode, truncate=truncate)


def _gaussian_noise(x, s, rng):
  return np.clip(x + rng.normal(size=x.shape, scale=_GAUSSIAN[s - 1]), 0, 1)


def _shot_noise(x, s, rng):
  c = _SHOT[s - 1]
  return np.clip(rng.poisson(x * c) / c, 0, 1)


def _impulse_noise(x, s, rng):
  """skimage ``random_noise(mode='s&p', amount=c)``: each value independently (channels too) becomes 0 or
  1 with probability ``c``, salt and pepper equally likely."""
  c = _IMPULSE[s - 1]
  flip = rng.random(x.shape) < c
  salt = rng.random(x.shape) < 0.5
  return np.where(flip, salt.astype(x.dtype), x)


def _speckle_noise(x, s, rng):
  return np.clip(x + x * rng.normal(size=x.shape, scale=_SPECKLE[s - 1]), 0, 1)


def _gaussian_blur(x, s, rng):
  return np.clip(_sk_gaussian(x, _GAUSSIAN_BLUR[s - 1]), 0, 1)


def _glass_blur(x, s, rng):
  """Blur, locally "shuffle" pixels, blur again.

  Note: the official loop ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on NumPy views copies pixel
  ``(h', w')`` onto ``(h, w)`` and leaves ``(h', w')`` unchanged (the right-hand side holds views, not
  copies). We reproduce that behaviour, and the offsets drawn with ``randint(-d, d)`` (``d`` excluded).
  """
  sigma, delta, iterations = _GLASS[s - 1]
  h_size, w_size = x.shape[:2]
  img = np.uint8(_sk_gaussian(x, sigma) * 255)
  for _ in range(iterations):
    for h in range(h_size - delta, delta, -1):
      for w in range(w_size - delta, delta, -1):
        dx, dy = rng.integers(-delta, delta, size=(2,))
        img[h, w] = img[h + dy, w + dx]
  return np.clip(_sk_gaussian(img / 255.0, sigma), 0, 1)


def _disk(radius, alias_blur):
  """make_cifar_c's anti-aliased disk kernel (cv2.GaussianBlur with a 3x3 or 5x5 window)."""
  if radius <= 8:
    coords, ksize = np.arange(-8, 9), 3
  else:
    coords, ksize = np.arange(-radius, radius + 1), 5
  xx, yy = np.meshgrid(coords, coords)
  disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
  disk /= disk.sum()
  half = ksize // 2
  g = np.exp(-(np.arange(-half, half + 1) ** 2) / (2 * alias_blur**2))
  g /= g.sum()
  disk = ndimage.correlate1d(disk, g, axis=0, mode="mirror")  # cv2 default border: reflect-101
  return ndimage.correlate1d(disk, g, axis=1, mode="mirror")


def _defocus_blur(x, s, rng):
  radius, alias = _DEFOCUS[s - 1]
  kernel = _disk(radius, alias)
  out = np.stack([ndimage.correlate(x[..., c], kernel, mode="mirror") for c in range(x.shape[-1])], -1)
  return np.clip(out, 0, 1)


def motion_blur_kernel(radius: float, sigma: float, angle: float):
  """ImageMagick ``MotionBlurImage`` weights and integer offsets (one-sided Gaussian along ``angle``).

  Args:
    radius: blur radius in pixels; the kernel has ``2 * ceil(radius) + 1`` taps.
    sigma: Gaussian standard deviation of the tap weights.
    angle: direction in degrees.

  Returns:
    ``(weights (K,), dy (K,), dx (K,))`` with weights summing to 1.
  """
  width = 2 * int(np.ceil(radius)) + 1
  i = np.arange(width, dtype=np.float64)
  weights = np.exp(-(i**2) / (2.0 * sigma**2))
  weights /= weights.sum()
  px, py = width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle))
  norm = np.hypot(px, py)
  dx = np.ceil(i * py / norm - 0.5).astype(int)
  dy = np.ceil(i * px / norm - 0.5).astype(int)
  return weights, dy, dx


def _motion_blur(x, s, rng):
  """ImageMagick motion blur of the uint8 image, edge pixels repeated beyond the border, then 8-bit."""
  radius, sigma = _MOTION[s - 1]
  weights, dy, dx = motion_blur_kernel(radius, sigma, rng.uniform(-45, 45))
  img = np.round(x * 255.0)  # the official code blurs the PNG-encoded uint8 image
  h, w = img.shape[:2]
  rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
  out = np.zeros_like(img)
  for wt, oy, ox in zip(weights, dy, dx, strict=True):
    out += wt * img[np.clip(rows + oy, 0, h - 1), np.clip(cols + ox, 0, w - 1)]
  return np.clip(np.round(out), 0, 255) / 255.0


def _clipped_zoom(img, zoom_factor):
  h = img.shape[0]
  ch = int(np.ceil(h / zoom_factor))
  top = (h - ch) // 2
  img = ndimage.zoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
  trim = (img.shape[0] - h) // 2
  return img[trim:trim + h, trim:trim + h]


def _zoom_blur(x, s, rng):
  factors = _ZOOM[s - 1]
  x = x.astype(np.float32)
  out = np.zeros_like(x)
  for z in factors:
    out += _clipped_zoom(x, z)
  return np.clip((x + out) / (len(factors) + 1), 0, 1)


def _plasma_fractal(rng, mapsize=32, wibbledecay=3.0):
  """Diamond-square height map in [0, 1] (make_cifar_c's ``plasma_fractal``)."""
  arr = np.empty((mapsize, mapsize), dtype=np.float64)
  arr[0, 0] = 0
  step = mapsize
  wibble = 100.0

  def wibbled(a):
    return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

  while step >= 2:
    corner = arr[0:mapsize:step, 0:mapsize:step]
    sq = corner + np.roll(corner, -1, axis=0)
    sq = sq + np.roll(sq, -1, axis=1)
    arr[step // 2:mapsize:step, step // 2:mapsize:step] = wibbled(sq)
    dr = arr[step // 2:mapsize:step, step // 2:mapsize:step]
    ul = arr[0:mapsize:step, 0:mapsize:step]
    lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
    arr[0:mapsize:step, step // 2:mapsize:step] = wibbled(lt)
    tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
    arr[step // 2:mapsize:step, 0:mapsize:step] = wibbled(tt)
    step //= 2
    wibble /= wibbledecay
  arr -= arr.min()
  return arr / arr.max()


def _fog(x, s, rng):
  c = _FOG[s - 1]
  size = 1 << int(np.ceil(np.log2(max(x.shape[:2]))))
  max_val = x.max()
  x = x + c[0] * _plasma_fractal(rng, size, c[1])[: x.shape[0], : x.shape[1], None]
  return np.clip(x * max_val / (max_val + c[0]), 0, 1)


def _hsv_shift(x, fn):
  import matplotlib.colors as mcolors

  hsv = mcolors.rgb_to_hsv(np.clip(x, 0, 1))
  hsv = fn(hsv)
  return np.clip(mcolors.hsv_to_rgb(hsv), 0, 1)


def _brightness(x, s, rng):
  c = _BRIGHTNESS[s - 1]

  def shift(hsv):
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return hsv

  return _hsv_shift(x, shift)


def _saturate(x, s, rng):
  a, b = _SATURATE[s - 1]

  def shift(hsv):
    hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
    return hsv

  return _hsv_shift(x, shift)


def _contrast(x, s, rng):
  c = _CONTRAST[s - 1]
  means = x.mean(axis=(0, 1), keepdims=True)
  return np.clip((x - means) * c + means, 0, 1)


def _pil(x):
  from PIL import Image

  return Image.fromarray(np.uint8(np.round(np.clip(x, 0, 1) * 255)))


def _jpeg_compression(x, s, rng):
  from PIL import Image

  buf = io.BytesIO()
  _pil(x).save(buf, "JPEG", quality=_JPEG[s - 1])
  return np.asarray(Image.open(buf), np.float64) / 255.0


def _pixelate(x, s, rng):
  from PIL import Image

  h, w = x.shape[:2]
  c = _PIXELATE[s - 1]
  img = _pil(x).resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
  return np.asarray(img, np.float64) / 255.0


def _affine_from_points(src, dst):
  """cv2.getAffineTransform: the 2x3 matrix ``M`` with ``dst = M @ [src; 1]`` for three (x, y) points."""
  a = np.concatenate([src, np.ones((3, 1))], axis=1)
  return np.linalg.solve(a, dst).T


def _elastic_transform(x, s, rng):
  """Random affine (reflect-101 border, bilinear) then a smoothed random displacement field."""
  alpha, sigma, affine = _ELASTIC[s - 1]
  h, w, ch = x.shape
  centre = np.float32((h, w)) // 2
  size = min(h, w) // 3
  pts1 = np.float32([centre + size, [centre[0] + size, centre[1] - size], centre - size])
  pts2 = pts1 + rng.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
  m = _affine_from_points(pts1.astype(np.float64), pts2.astype(np.float64))  # (x, y) forward map
  # cv2.warpAffine samples the source at M^-1 (x, y); scipy wants the (row, col) -> (row, col) map.
  inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
  swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], np.float64)
  rc = swap @ inv @ swap
  warped = np.stack([ndimage.affine_transform(x[..., c], rc[:2, :2], offset=rc[:2, 2], order=1,
                                              mode="mirror") for c in range(ch)], -1)
  dx = _sk_gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
  dy = _sk_gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  out = np.stack([ndimage.map_coordinates(warped[..., c], [yy + dy, xx + dx], order=1, mode="reflect")
                  for c in range(ch)], -1)
  return np.clip(out, 0, 1)


_FUNCS = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur, "glass_blur": _glass_blur, "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur, "fog": _fog, "brightness": _brightness, "contrast": _contrast,
    "elastic_transform": _elastic_transform, "pixelate": _pixelate, "jpeg_compression": _jpeg_compression,
    "speckle_noise": _speckle_noise, "gaussian_blur": _gaussian_blur, "saturate": _saturate,
}
# snow, frost and spatter are not generated: frost needs the frost photographs shipped with the official
# code, snow/spatter need OpenCV/ImageMagick internals we do not replicate.
AVAILABLE_CORRUPTIONS = tuple(n for n in CORRUPTIONS + ("speckle_noise", "gaussian_blur", "saturate")
                              if n in _FUNCS)


def corrupt(x, name: str, severity: int, *, seed: int = 0):
  """Applies a CIFAR-10-C corruption ("CIFAR-10-C-style", offline and seeded) to images.

  Args:
    x: ``(H, W, C)`` or ``(N, H, W, C)`` images, uint8 in ``[0, 255]`` or float in ``[0, 1]``; RGB
      (``C = 3``) for the colour-space corruptions (brightness, saturate, jpeg, pixelate).
    name: one of :data:`AVAILABLE_CORRUPTIONS` (official CIFAR-10-C file names, e.g. ``"gaussian_noise"``).
    severity: integer in ``1..5``.
    seed: integer seed; the same ``(seed, name, severity, x)`` always gives the same output.

  Returns:
    The corrupted images with the shape of ``x``: uint8 (truncated like the official ``np.uint8`` cast)
    for uint8 input, float32 in ``[0, 1]`` for float input.

  Raises:
    ValueError: unknown ``name``, ``severity`` outside ``1..5``, bad rank, or float values outside
      ``[0, 1]``.

  Examples:
    >>> import numpy as np, iss_jax
    >>> x = np.full((2, 32, 32, 3), 128, np.uint8)
    >>> int(iss_jax.robustness.corrupt(x, "brightness", 5).max())  # floor((128 / 255 + 0.3) * 255)
    204

  References:
    Hendrycks and Dietterich, ICLR 2019; parameters of ``make_cifar_c.py`` (32x32 images).
  """
  if name not in _FUNCS:
    raise ValueError(f"name must be one of {AVAILABLE_CORRUPTIONS}; got {name!r}.")
  if not isinstance(severity, (int, np.integer)) or not 1 <= int(severity) <= 5:
    raise ValueError(f"severity must be an integer in 1..5; got {severity!r}.")
  x = np.asarray(x)
  if x.ndim not in (3, 4):
    raise ValueError(f"x must be (H, W, C) or (N, H, W, C); got shape {x.shape}.")
  is_uint8 = x.dtype == np.uint8
  if is_uint8:
    xf = x.astype(np.float64) / 255.0
  elif np.issubdtype(x.dtype, np.floating):
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or not np.all(np.isfinite(x))):
      raise ValueError("float x must hold finite values in [0, 1].")
    xf = x.astype(np.float64)
  else:
    raise ValueError(f"x must be uint8 or float; got dtype {x.dtype}.")
  batch = xf if x.ndim == 4 else xf[None]
  fn = _FUNCS[name]
  rng = np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(severity)])
  out = np.stack([fn(img, int(severity), rng) for img in batch]) if len(batch) else batch
  out = out if x.ndim == 4 else out[0]
  if is_uint8:
    return np.uint8(np.clip(out, 0, 1) * 255 + 1e-6)  # floor like np.uint8; 1e-6 absorbs k/255*255 round-off
  return np.clip(out, 0, 1).astype(np.float32)


def load_cifar10c(data_dir: str, name: str, severity: int, indices=None):
  """Reads one corruption/severity of the official CIFAR-10-C release (``<data_dir>/<name>.npy``).

  Args:
    data_dir: folder with ``<name>.npy`` (50,000 x 32 x 32 x 3 uint8) and ``labels.npy``.
    name: corruption file name, e.g. ``"gaussian_noise"``.
    severity: ``1..5``; rows ``(severity - 1) * 10000 ... severity * 10000`` in official test order.
    indices: official test indices to keep (e.g. the dataset's ``idx_test``); all 10,000 when None.

  Returns:
    ``(x uint8 (M, 32, 32, 3), y int32 (M,))``.

  Raises:
    ValueError: missing files or a bad severity, with the path that was looked for.
  """
  if not 1 <= int(severity) <= 5:
    raise ValueError(f"severity must be in 1..5; got {severity}.")
  path = os.path.join(data_dir, f"{name}.npy")
  labels_path = os.path.join(data_dir, "labels.npy")
  for p in (path, labels_path):
    if not os.path.exists(p):
      raise ValueError(f"CIFAR-10-C file {p} not found; pass --cifar10c_dir pointing to the extracted "
                       "CIFAR-10-C folder (https://zenodo.org/record/2535967).")
  rows = slice((severity - 1) * 10000, severity * 10000)
  x = np.load(path, mmap_mode="r")[rows]
  y = np.load(labels_path, mmap_mode="r")[rows]
  if indices is not None:
    indices = np.asarray(indices)
    x, y = x[indices], y[indices]
  return np.ascontiguousarray(x), np.asarray(y, np.int32)


def load_tfds_cifar10c(name: str, severity: int, data_dir=None, num_examples=None):
  """Reads TFDS ``cifar10_corrupted/<name>_<severity>`` (test split, official order).

  Raises:
    ValueError: tensorflow-datasets missing or the dataset not downloadable/prepared.
  """
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise ValueError("TFDS source needs `pip install tensorflow-datasets tensorflow-cpu`.") from e
  try:
    ds = tfds.load(f"cifar10_corrupted/{name}_{int(severity)}", split="test", data_dir=data_dir,
                   batch_size=-1, as_supervised=True)
  except Exception as e:  # noqa: BLE001 - TFDS raises many types; report one clear message.
    raise ValueError(f"TFDS cifar10_corrupted/{name}_{severity} unavailable ({e}); use --source=generate "
                     "or --source=npy --cifar10c_dir=...") from e
  x, y = tfds.as_numpy(ds)
  if num_examples is not None:
    x, y = x[:num_examples], y[:num_examples]
  return np.asarray(x, np.uint8), np.asarray(y, np.int32)
