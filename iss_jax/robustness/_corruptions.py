"""CIFAR-10-C corruptions: an offline, seeded generator of all 19 types of Hendrycks' ``make_cifar_c.py``
(the 15 of CIFAR-10-C and the 4 held-out ones) with its CIFAR (32x32) parameters, and readers for the
official ``.npy`` files and TFDS ``cifar10_corrupted``.

The generator is NumPy/SciPy/Pillow (data preparation, not part of a differentiable model). Each type
returns what the official function returns (values on the 0-255 scale, float or uint8, in the official
dtype), and uint8 output is ``np.uint8`` of that, i.e. truncated, as in the official
``np.uint8(corruption(img))``. Images it makes are labelled "CIFAR-10-C-style": same formulas, severity
constants and conversions, but our own random streams and our own re-implementations of the OpenCV,
ImageMagick and scikit-image helpers (written from their sources and documented where used), so they are
not byte-identical to the official release.

Frost reads the official frost photographs at run time; see :func:`frost_texture_dir`.

References:
  D. Hendrycks and T. Dietterich, Benchmarking neural network robustness to common corruptions and
  perturbations, ICLR 2019 (github.com/hendrycks/robustness, ``ImageNet-C/create_c/make_cifar_c.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from iss_jax._src.checks import as_float_images, check_labels
from iss_jax.robustness._defenses import Defense, with_bare
from iss_jax.robustness._runner import Runner, runner_for

# Corruption names as in the official CIFAR-10-C file names, in the official order.
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)
# The four held-out types of make_cifar_c.py, in its order.
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
# Every type the generator makes: the 15 of CIFAR-10-C, then the 4 held-out ones.
AVAILABLE_CORRUPTIONS = CORRUPTIONS + EXTRA_CORRUPTIONS
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
# (mean, std, zoom, threshold, blur radius, blur sigma, image weight)
_SNOW = ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))
# (image weight, frost weight)
_FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
_FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
_BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
_CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
_SATURATE = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))
_JPEG = (80, 65, 58, 50, 40)
_PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
_ELASTIC = tuple((32 * a, 32 * b, 32 * c) for a, b, c in
                 ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                  (0.1, 0.03, 0.03)))
# (mean, std, blur sigma, threshold, water intensity or mud blur sigma, mud)
_SPATTER = ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1))
_WATER_RGB = (175, 238, 238)  # pale turquoise, added to the (RGB) image channels in this order
_MUD_RGB = (63, 42, 20)  # mud brown
_SPATTER_KERNEL = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])

# Types that need RGB images (colour spaces, colour constants, PIL RGB images).
_RGB_ONLY = ("snow", "frost", "brightness", "saturate", "jpeg_compression", "pixelate", "spatter")


def _sk_gaussian(x, sigma, *, mode="nearest", truncate=4.0):
  """``skimage.filters.gaussian`` with ``channel_axis=-1`` on an ``(H, W[, C])`` float image (float64)."""
  if sigma == 0:
    return np.asarray(x, np.float64)
  sig = (sigma, sigma) + (0,) * (x.ndim - 2)
  return ndimage.gaussian_filter(np.asarray(x, np.float64), sig, mode=mode, truncate=truncate)


def _unit(x):
  """The official ``np.array(x) / 255.`` (float64)."""
  return x / 255.0


def _unit32(x):
  """The official ``np.array(x, dtype=np.float32) / 255.`` (float32)."""
  return x.astype(np.float32) / np.float32(255)


def _gaussian_noise(x, s, rng):
  x = _unit(x)
  return np.clip(x + rng.normal(size=x.shape, scale=_GAUSSIAN[s - 1]), 0, 1) * 255


def _shot_noise(x, s, rng):
  c = _SHOT[s - 1]
  return np.clip(rng.poisson(_unit(x) * c) / c, 0, 1) * 255


def _impulse_noise(x, s, rng):
  """skimage ``random_noise(mode='s&p', amount=c)``: each value independently (channels too) becomes 0 or
  1 with probability ``c``, salt and pepper equally likely."""
  c = _IMPULSE[s - 1]
  x = _unit(x)
  flip = rng.random(x.shape) < c
  salt = rng.random(x.shape) < 0.5
  return np.clip(np.where(flip, salt.astype(x.dtype), x), 0, 1) * 255


def _speckle_noise(x, s, rng):
  x = _unit(x)
  return np.clip(x + x * rng.normal(size=x.shape, scale=_SPECKLE[s - 1]), 0, 1) * 255


def _gaussian_blur(x, s, rng):
  return np.clip(_sk_gaussian(_unit(x), _GAUSSIAN_BLUR[s - 1]), 0, 1) * 255


def _glass_blur(x, s, rng):
  """Blur, locally "shuffle" pixels, blur again.

  Note: the official loop ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on NumPy views copies pixel
  ``(h', w')`` onto ``(h, w)`` and leaves ``(h', w')`` unchanged (the right-hand side holds views, not
  copies). We reproduce that behaviour, and the offsets drawn with ``randint(-d, d)`` (``d`` excluded).
  """
  sigma, delta, iterations = _GLASS[s - 1]
  h_size, w_size = x.shape[:2]
  img = np.uint8(_sk_gaussian(_unit(x), sigma) * 255)
  for _ in range(iterations):
    for h in range(h_size - delta, delta, -1):
      for w in range(w_size - delta, delta, -1):
        dx, dy = rng.integers(-delta, delta, size=(2,))
        img[h, w] = img[h + dy, w + dx]
  return np.clip(_sk_gaussian(img / 255.0, sigma), 0, 1) * 255


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
  x = _unit(x)
  out = np.stack([ndimage.correlate(x[..., c], kernel, mode="mirror") for c in range(x.shape[-1])], -1)
  return np.clip(out, 0, 1) * 255


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


# Slack of the floor in _magick_motion_blur: a weighted mean that is an integer in exact arithmetic (a flat
# region) must not drop by one through round-off (~1e-13 on the 0-255 scale); far below any real fraction.
_FLOOR_SLACK = 1e-9


def _magick_motion_blur(img, radius, sigma, angle):
  """ImageMagick motion blur of an 8-bit ``(H, W, C)`` image (values 0..255), returned as uint8.

  Each output value is the weighted sum of :func:`motion_blur_kernel`'s taps, with pixels beyond the border
  repeating the edge pixel (ImageMagick's default virtual-pixel method), then floored to 8 bits.

  Note: the floor is the rounding the 8-bit result of the official Wand/ImageMagick call is reported to
  have in comparisons with the official files; it could not be run here. ImageMagick 6's
  own source (``ClampToQuantum`` adds 0.5, ``ScaleQuantumToChar`` rounds) reads as round-to-nearest, so
  this choice rests on that comparison, not on the source.
  """
  weights, dy, dx = motion_blur_kernel(radius, sigma, angle)
  img = np.asarray(img, np.float64)
  h, w = img.shape[:2]
  rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
  out = np.zeros_like(img)
  for wt, oy, ox in zip(weights, dy, dx, strict=True):
    out += wt * img[np.clip(rows + oy, 0, h - 1), np.clip(cols + ox, 0, w - 1)]
  return np.floor(np.clip(out, 0, 255) + _FLOOR_SLACK).astype(np.uint8)


def _motion_blur(x, s, rng):
  """Motion blur of the 8-bit (PNG-encoded in the official code) image; uint8 like the official result."""
  radius, sigma = _MOTION[s - 1]
  return _magick_motion_blur(np.round(x), radius, sigma, rng.uniform(-45, 45))


def _clipped_zoom(img, zoom_factor):
  h = img.shape[0]
  ch = int(np.ceil(h / zoom_factor))
  top = (h - ch) // 2
  img = ndimage.zoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
  trim = (img.shape[0] - h) // 2
  return img[trim:trim + h, trim:trim + h]


def _zoom_blur(x, s, rng):
  factors = _ZOOM[s - 1]
  x = _unit(x).astype(np.float32)
  out = np.zeros_like(x)
  for z in factors:
    out += _clipped_zoom(x, z)
  return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255


def _rgb2gray(x):
  """``cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)`` of a float32 image: ``0.299 R + 0.587 G + 0.114 B``."""
  c = np.float32((0.299, 0.587, 0.114))
  return x[..., 0] * c[0] + x[..., 1] * c[1] + x[..., 2] * c[2]


def _snow(x, s, rng):
  """Falling snow: a thresholded, zoomed noise layer, motion-blurred through ImageMagick (8-bit) and added
  twice (once rotated by 180 degrees) to the whitened image."""
  loc, scale, zoom, threshold, radius, sigma, weight = _SNOW[s - 1]
  x = _unit32(x)
  layer = rng.normal(size=x.shape[:2], loc=loc, scale=scale)
  layer = _clipped_zoom(layer[..., None], zoom)[..., 0]
  layer[layer < threshold] = 0
  layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8)  # the official 'L' PNG handed to ImageMagick
  layer = _magick_motion_blur(layer[..., None], radius, sigma, rng.uniform(-135, -45)) / 255.0
  x = weight * x + (1 - weight) * np.maximum(x, _rgb2gray(x)[..., None] * 1.5 + 0.5)
  return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


# The frost photographs make_cifar_c.py draws from: np.random.randint(5) picks among the first five of its
# six-name list, so frost6.jpg is never used.
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
FROST_DIR_ENV = "ISS_JAX_FROST_DIR"
_FROST_HELP = (
    "frost reads the frost photographs of Hendrycks' make_cifar_c.py (" + ", ".join(FROST_FILES) + "). "
    "Either `pip install imagecorruptions` (its frost/ folder is read from the installed package without "
    "importing it, so `pip install --no-deps imagecorruptions` is enough), or pass frost_dir=DIR (or set "
    f"${FROST_DIR_ENV}=DIR) to a folder holding those files, e.g. ImageNet-C/create_c/ of "
    "github.com/hendrycks/robustness.")


def frost_texture_dir(frost_dir: str | None = None) -> str:
  """The folder the frost photographs are read from.

  Looked up in this order: ``frost_dir``; the environment variable ``ISS_JAX_FROST_DIR``; the ``frost/``
  folder of an installed ``imagecorruptions`` package (found with ``importlib.util.find_spec``, without
  importing it: its import needs OpenCV and scikit-image, reading its image files does not). The images are
  not shipped with iss-jax.

  Args:
    frost_dir: a folder holding :data:`FROST_FILES`, or None.

  Returns:
    The absolute path of the folder.

  Raises:
    ValueError: no folder found, or the folder lacks some of :data:`FROST_FILES`; the message says what to
      install or pass.
  """
  if frost_dir is None and os.environ.get(FROST_DIR_ENV):
    frost_dir, origin = os.environ[FROST_DIR_ENV], f"${FROST_DIR_ENV}"
  else:
    origin = "frost_dir"
  if frost_dir is None:
    spec = importlib.util.find_spec("imagecorruptions")
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
      candidate = os.path.join(loc, "frost")
      if all(os.path.isfile(os.path.join(candidate, f)) for f in FROST_FILES):
        return os.path.abspath(candidate)
    raise ValueError(f"No frost images found. {_FROST_HELP}")
  missing = [f for f in FROST_FILES if not os.path.isfile(os.path.join(frost_dir, f))]
  if missing:
    raise ValueError(f"{origin} {frost_dir!r} lacks {', '.join(missing)}. {_FROST_HELP}")
  return os.path.abspath(frost_dir)


def _cv_resize_fifth(img):
  """``cv2.resize(img, (0, 0), fx=0.2, fy=0.2)`` (bilinear, pixel centres at ``i + 0.5``) of a uint8 image.

  The output size is ``round(n * 0.2)``; output pixel ``i`` samples input ``(i + 0.5) * 5 - 0.5 = 5 i + 2``
  exactly (interpolation weight 1), clamped to the last pixel, so the resize is plain subsampling.
  """
  h, w = img.shape[:2]
  rows = np.minimum(5 * np.arange(int(round(h * 0.2))) + 2, h - 1)
  cols = np.minimum(5 * np.arange(int(round(w * 0.2))) + 2, w - 1)
  return img[rows][:, cols]


@functools.lru_cache(maxsize=4)
def _frost_textures(folder: str) -> tuple[np.ndarray, ...]:
  """The five frost photographs of ``folder`` as ``cv2.imread`` gives them (8-bit RGB, alpha dropped, not
  composited), resized by 0.2: a tuple of uint8 ``(h, w, 3)`` arrays."""
  from PIL import Image

  out = []
  for name in FROST_FILES:
    with Image.open(os.path.join(folder, name)) as im:
      out.append(_cv_resize_fifth(np.asarray(im.convert("RGB"), np.uint8)))
  return tuple(out)


def _frost(x, s, rng, textures):
  """A random crop of one of five frost photographs (resized by 0.2), blended with the image."""
  a, b = _FROST[s - 1]
  texture = textures[rng.integers(5)]
  h, w = x.shape[:2]
  if texture.shape[0] <= h or texture.shape[1] <= w:
    raise ValueError(f"frost needs images smaller than the resized frost photographs ({texture.shape[:2]}); "
                     f"got {(h, w)}.")
  top, left = rng.integers(0, texture.shape[0] - h), rng.integers(0, texture.shape[1] - w)
  return np.clip(a * x + b * texture[top:top + h, left:left + w], 0, 255)


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
  x = _unit(x)
  size = 1 << int(np.ceil(np.log2(max(x.shape[:2]))))
  max_val = x.max()
  x = x + c[0] * _plasma_fractal(rng, size, c[1])[: x.shape[0], : x.shape[1], None]
  return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def _hsv_shift(x, fn):
  """skimage ``rgb2hsv``, ``fn`` on the HSV image, ``hsv2rgb`` (matplotlib's conversions: same formulas)."""
  import matplotlib.colors as mcolors

  hsv = mcolors.rgb_to_hsv(np.clip(_unit(x), 0, 1))
  hsv = fn(hsv)
  return np.clip(mcolors.hsv_to_rgb(hsv), 0, 1) * 255


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
  x = _unit(x)
  means = x.mean(axis=(0, 1), keepdims=True)
  return np.clip((x - means) * c + means, 0, 1) * 255


def _pil(x):
  """The 8-bit PIL image the official code receives (exact for uint8 input, rounded for float input)."""
  from PIL import Image

  return Image.fromarray(np.uint8(np.round(np.clip(x, 0, 255))))


def _jpeg_compression(x, s, rng):
  from PIL import Image

  buf = io.BytesIO()
  _pil(x).save(buf, "JPEG", quality=_JPEG[s - 1])
  return np.asarray(Image.open(buf), np.uint8)


def _pixelate(x, s, rng):
  from PIL import Image

  h, w = x.shape[:2]
  c = _PIXELATE[s - 1]
  img = _pil(x).resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
  return np.asarray(img, np.uint8)


def _affine_from_points(src, dst):
  """cv2.getAffineTransform: the 2x3 matrix ``M`` with ``dst = M @ [src; 1]`` for three (x, y) points."""
  a = np.concatenate([src, np.ones((3, 1))], axis=1)
  return np.linalg.solve(a, dst).T


def _elastic_transform(x, s, rng):
  """Random affine (reflect-101 border, bilinear) then a smoothed random displacement field."""
  alpha, sigma, affine = _ELASTIC[s - 1]
  x = _unit32(x).astype(np.float64)
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
  return np.clip(out.astype(np.float32), 0, 1) * 255  # the official image is float32


# ----------------------------------------------------------------------------------------------------------
# OpenCV helpers of spatter, re-implemented from OpenCV's sources (imgproc: canny.cpp, distransform.cpp,
# histogram.cpp, box_filter.cpp, filter.cpp) for the cases spatter uses.


def _cv_canny(img, low, high):
  """``cv2.Canny(img, low, high)`` of a uint8 ``(H, W)`` image: aperture 3, L1 gradient.

  3x3 Sobel gradients (replicated border); magnitude ``|dx| + |dy|``; non-maximum suppression in the
  gradient's sector (tan 22.5 degrees in fixed point, neighbours beyond the image count as 0, strict ``>``
  on one side and ``>=`` on the other as in OpenCV); hysteresis: a pixel with magnitude ``> low`` that
  survives suppression is an edge when its 8-connected group of such pixels holds one with magnitude
  ``> high``. Returns a uint8 map of 0 and 255.
  """
  a = np.pad(img.astype(np.int64), 1, mode="edge")
  dx = (a[:-2, 2:] + 2 * a[1:-1, 2:] + a[2:, 2:]) - (a[:-2, :-2] + 2 * a[1:-1, :-2] + a[2:, :-2])
  dy = (a[2:, :-2] + 2 * a[2:, 1:-1] + a[2:, 2:]) - (a[:-2, :-2] + 2 * a[:-2, 1:-1] + a[:-2, 2:])
  mag = np.abs(dx) + np.abs(dy)
  h, w = mag.shape
  padded = np.pad(mag, 1)

  def at(di, dj):
    return padded[1 + di:1 + di + h, 1 + dj:1 + dj + w]

  shift = 15
  tg22 = int(0.4142135623730950488016887242097 * (1 << shift) + 0.5)
  ax, ay = np.abs(dx), np.abs(dy) << shift
  tg22x = ax * tg22
  tg67x = tg22x + (ax << (shift + 1))
  along_x = ay < tg22x
  along_y = ~along_x & (ay > tg67x)
  same_sign = (dx ^ dy) >= 0
  keep_x = (mag > at(0, -1)) & (mag >= at(0, 1))
  keep_y = (mag > at(-1, 0)) & (mag >= at(1, 0))
  keep_d = np.where(same_sign, (mag > at(-1, -1)) & (mag > at(1, 1)), (mag > at(-1, 1)) & (mag > at(1, -1)))
  candidate = (mag > low) & np.where(along_x, keep_x, np.where(along_y, keep_y, keep_d))
  labels, _ = ndimage.label(candidate, structure=np.ones((3, 3), int))
  strong = np.unique(labels[candidate & (mag > high)])
  return np.where(np.isin(labels, strong[strong > 0]), 255, 0).astype(np.uint8)


def _cv_distance_l2_5(img):
  """``cv2.distanceTransform(img, cv2.DIST_L2, 5)``: the two-pass 5x5 chamfer distance of each nonzero pixel
  to the nearest zero pixel, weights 1, 1.4, 2.1969 in 16-bit fixed point, pixels beyond the border
  at ``INT_MAX >> 2``; float32 ``(H, W)``."""
  hv, diag, long_ = 65536, 91750, 143976  # cvRound(w * 2**16) of the float weights
  init = (2**31 - 1) >> 2
  h, w = img.shape
  zero = (np.asarray(img) == 0).tolist()
  t = [[init] * (w + 4) for _ in range(h + 4)]
  for i in range(2, h + 2):
    r2, r1, r0 = t[i - 2], t[i - 1], t[i]
    for j in range(2, w + 2):
      if zero[i - 2][j - 2]:
        r0[j] = 0
      else:
        r0[j] = min(r2[j - 1] + long_, r2[j + 1] + long_, r1[j - 2] + long_, r1[j - 1] + diag, r1[j] + hv,
                    r1[j + 1] + diag, r1[j + 2] + long_, r0[j - 1] + hv)
  for i in range(h + 1, 1, -1):
    r0, r1, r2 = t[i], t[i + 1], t[i + 2]
    for j in range(w + 1, 1, -1):
      if r0[j] > hv:
        r0[j] = min(r0[j], r2[j + 1] + long_, r2[j - 1] + long_, r1[j + 2] + long_, r1[j + 1] + diag,
                    r1[j] + hv, r1[j - 1] + diag, r1[j - 2] + long_, r0[j + 1] + hv)
  return np.array([row[2:w + 2] for row in t[2:h + 2]], np.float32) * np.float32(2.0**-16)


def _cv_box3(img):
  """``cv2.blur(img, (3, 3))`` (reflect-101 border): float32 in -> float32 (sum in double, times 1/9);
  uint8 in -> the rounded mean as uint8."""
  p = np.pad(np.asarray(img, np.float64), 1, mode="reflect")
  h, w = img.shape
  total = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3))
  if img.dtype == np.uint8:
    return np.rint(total / 9).astype(np.uint8)
  return (total * (1.0 / 9)).astype(np.float32)


def _cv_equalize_hist(img):
  """``cv2.equalizeHist`` of a uint8 image: LUT ``saturate_cast<uchar>(cumsum * (255.f / (N - h0)))`` from the
  first occupied bin (float32 product, rounded half to even)."""
  hist = np.bincount(img.ravel(), minlength=256)
  first = int(np.flatnonzero(hist)[0])
  total = img.size
  if hist[first] == total:
    return np.full_like(img, first)
  scale = np.float32(255.0) / np.float32(total - hist[first])
  lut = np.zeros(256, np.uint8)
  cum = np.cumsum(hist[first + 1:]).astype(np.float32)
  lut[first + 1:] = np.clip(np.rint(cum * scale), 0, 255).astype(np.uint8)
  return lut[img]


def _cv_filter2d_u8(img, kernel):
  """``cv2.filter2D(img, cv2.CV_8U, kernel)`` for an integer kernel: correlation about the centre,
  reflect-101 border, saturated to 0..255."""
  out = ndimage.correlate(img.astype(np.int64), np.asarray(kernel, np.int64), mode="mirror")
  return np.clip(out, 0, 255).astype(np.uint8)


def _wrap_uint8(v):
  """``v.astype(np.uint8)`` for float ``v >= 0``: truncation, and values past 255 wrap as the C cast does on
  x86 (``liquid * 255`` can pass 255 where the blurred noise exceeds 1)."""
  return (np.floor(v).astype(np.int64) % 256).astype(np.uint8)


def _spatter(x, s, rng):
  """Water (severities 1-3) or mud (4-5) splashes from a thresholded, blurred noise layer."""
  loc, scale, sigma, threshold, strength, mud = _SPATTER[s - 1]
  x = _unit32(x)
  liquid = _sk_gaussian(rng.normal(size=x.shape[:2], loc=loc, scale=scale), sigma)
  liquid[liquid < threshold] = 0
  if not mud:
    liquid8 = _wrap_uint8(liquid * 255)
    dist = _cv_distance_l2_5(255 - _cv_canny(liquid8, 50, 150))
    dist = np.minimum(dist, np.float32(20))  # cv2.threshold(..., 20, 20, THRESH_TRUNC)
    dist = _cv_equalize_hist(_cv_box3(dist).astype(np.uint8))
    dist = _cv_box3(_cv_filter2d_u8(dist, _SPATTER_KERNEL)).astype(np.float32)
    m = liquid8 * dist
    peak = m.max()
    # The official code divides by the peak unguarded (0/0 -> NaN where no water is left); we add nothing.
    m = m / peak * np.float32(strength) if peak > 0 else np.zeros_like(m)
    colour = np.float32(np.array(_WATER_RGB) / 255.0)  # the official float32(175 / 255.), ...
    return np.clip(x + m[..., None] * colour, 0, 1) * 255
  m = _sk_gaussian(np.where(liquid > threshold, 1.0, 0.0), strength)
  m[m < 0.8] = 0
  colour = (np.float32(np.array(_MUD_RGB) / 255.0) * m[..., None]).astype(np.float32)
  x = (x * (1 - m[..., None])).astype(np.float32)
  return np.clip(x + colour, 0, 1) * 255


_FUNCS = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur, "glass_blur": _glass_blur, "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur, "snow": _snow, "frost": _frost, "fog": _fog, "brightness": _brightness,
    "contrast": _contrast, "elastic_transform": _elastic_transform, "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression, "speckle_noise": _speckle_noise, "gaussian_blur": _gaussian_blur,
    "spatter": _spatter, "saturate": _saturate,
}


def _rng(name: str, severity: int, seed: int) -> np.random.Generator:
  """The one random stream of a ``corrupt`` call, drawn from image by image in order."""
  return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(severity)])


def corrupt(x, name: str, severity: int, *, seed: int = 0, frost_dir: str | None = None):
  """Applies a CIFAR-10-C corruption ("CIFAR-10-C-style", offline and seeded) to images.

  Each type follows ``make_cifar_c.py`` (CIFAR parameters) up to its last step: the official function's
  0-255 result is cast with ``np.uint8`` (truncation) for uint8 input, as in the official
  ``np.uint8(corruption(img))``; types whose official result is already 8-bit (motion blur through
  ImageMagick, JPEG, pixelate) are 8-bit here too.

  Args:
    x: ``(H, W, C)`` or ``(N, H, W, C)`` images, uint8 in ``[0, 255]`` or float in ``[0, 1]``; RGB
      (``C = 3``) for snow, frost, spatter, brightness, saturate, JPEG and pixelate; square for zoom blur
      and snow (as the official code, written for 32x32).
    name: one of :data:`AVAILABLE_CORRUPTIONS`: the 15 CIFAR-10-C types (:data:`CORRUPTIONS`, official
      file names, e.g. ``"gaussian_noise"``) or the 4 held-out ones (:data:`EXTRA_CORRUPTIONS`).
    severity: integer in ``1..5``.
    seed: integer seed; the same ``(seed, name, severity, x)`` always gives the same output.
    frost_dir: folder of the frost photographs (``"frost"`` only); see :func:`frost_texture_dir` for the
      fallbacks (``$ISS_JAX_FROST_DIR``, an installed ``imagecorruptions``).

  Returns:
    The corrupted images with the shape of ``x``: uint8 (truncated like the official ``np.uint8`` cast)
    for uint8 input, float32 in ``[0, 1]`` (the 0-255 result divided by 255, not quantised) for float
    input.

  Raises:
    ValueError: unknown ``name``, ``severity`` outside ``1..5``, bad rank or channel count, float values
      outside ``[0, 1]``, or (frost) no frost photographs found: the message says what to install or pass.

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
  if name in _RGB_ONLY and x.shape[-1] != 3:
    raise ValueError(f"{name} needs RGB images (C = 3); got shape {x.shape}.")
  is_uint8 = x.dtype == np.uint8
  if is_uint8:
    x255 = x.astype(np.float64)  # the official np.array(pil_image), exactly
  elif np.issubdtype(x.dtype, np.floating):
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or not np.all(np.isfinite(x))):
      raise ValueError("float x must hold finite values in [0, 1].")
    x255 = x.astype(np.float64) * 255
  else:
    raise ValueError(f"x must be uint8 or float; got dtype {x.dtype}.")
  fn = _FUNCS[name]
  if name == "frost":
    fn = functools.partial(_frost, textures=_frost_textures(frost_texture_dir(frost_dir)))
  batch = x255 if x.ndim == 4 else x255[None]
  rng = _rng(name, int(severity), seed)
  out = np.stack([fn(img, int(severity), rng) for img in batch]) if len(batch) else batch
  out = out if x.ndim == 4 else out[0]
  if is_uint8:
    return np.uint8(out)  # truncation, as the official np.uint8(corruption(img)); every type clips to 0..255
  return np.clip(out / 255.0, 0, 1).astype(np.float32)


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
      raise ValueError(f"CIFAR-10-C file {p} not found; data_dir must be the extracted CIFAR-10-C folder "
                       "(https://zenodo.org/record/2535967).")
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
    raise ValueError(f"TFDS cifar10_corrupted/{name}_{severity} unavailable ({e}); the offline generator "
                     "(corrupt) or the official .npy files (load_cifar10c) need no download.") from e
  x, y = tfds.as_numpy(ds)
  if num_examples is not None:
    x, y = x[:num_examples], y[:num_examples]
  return np.asarray(x, np.uint8), np.asarray(y, np.int32)


def evaluate_corruptions(apply_fn, x, y, *, names: Sequence[str] = PAPER_CORRUPTIONS,
                         severities: Sequence[int] = (1, 2, 3, 4, 5), defenses: Sequence[Defense] = (),
                         source: str = "generate", seed: int = 0, cifar10c_dir: str | None = None,
                         indices=None, tfds_data_dir: str | None = None, frost_dir: str | None = None,
                         batch_size: int = 100, progress: bool = True, runner: Runner | None = None) -> dict:
  """Accuracy on CIFAR-10-C corruptions per type and severity, bare and behind each defense.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> logits.
    x: clean ``(N, H, W, C)`` uint8 test images in official order (used by ``source="generate"``).
    y: ``(N,)`` labels of ``x``.
    names: corruption names (``iss_jax.robustness.AVAILABLE_CORRUPTIONS`` for ``generate``).
    severities: subset of ``1..5``.
    defenses: defended models to evaluate besides the bare one.
    source: ``"generate"`` (offline seeded CIFAR-10-C-style generator), ``"npy"`` (official files in
      ``cifar10c_dir``, rows of the official test ``indices``) or ``"tfds"`` (``cifar10_corrupted``, first
      ``N`` test images).
    seed: generator seed.
    cifar10c_dir: folder of the official ``.npy`` files (``source="npy"``).
    indices: official test indices of ``x`` (``source="npy"``); ``arange(N)`` when None.
    tfds_data_dir: TFDS data dir (``source="tfds"``).
    frost_dir: folder of the official frost photographs for ``"frost"`` (see
      :func:`iss_jax.robustness.frost_texture_dir`).
    batch_size: images per jitted batch (when no ``runner`` is given).
    progress: show a tqdm bar.
    runner: a :class:`~iss_jax.robustness.Runner` of ``apply_fn`` to share compiled functions and clean
      predictions with other evaluations; None: a new one from ``batch_size`` and ``seed``.

  Returns:
    ``{"accuracy": {name: {severity: {defense: acc}}}, "mean_over_types": {severity: {defense: acc}},
    "mean": {defense: acc}, "clean": {defense: acc}, "source": label, ...}`` (severity keys are strings).

  Raises:
    ValueError: unknown source/name, bad severity, or missing files.
  """
  if source not in ("generate", "npy", "tfds"):
    raise ValueError(f"source must be 'generate', 'npy' or 'tfds'; got {source!r}.")
  x = np.asarray(x)
  y = check_labels(y, len(x))
  everyone = with_bare(defenses)
  for s in severities:
    if int(s) not in range(1, 6):
      raise ValueError(f"severities must be in 1..5; got {s}.")
  if source == "generate":
    for nme in names:
      if nme not in AVAILABLE_CORRUPTIONS:
        raise ValueError(f"corruption {nme!r} not available offline; choose from "
                         f"{AVAILABLE_CORRUPTIONS}.")
  if source == "generate" and "frost" in names:
    frost_texture_dir(frost_dir)  # no photographs: say so before anything runs
  if source == "npy" and cifar10c_dir is None:
    raise ValueError("source='npy' needs cifar10c_dir (the folder with the official CIFAR-10-C .npy files).")
  run = runner_for(apply_fn, runner, batch_size=batch_size, seed=seed)
  xf = as_float_images(x)
  clean = {d.name: float(np.mean(run.clean_correct(xf, y, d))) for d in everyone}
  acc = {}
  bar = tqdm(total=len(names) * len(severities), desc="corruptions", disable=not progress)
  for nme in names:
    acc[nme] = {}
    for sev in severities:
      if source == "generate":
        xc, yc = corrupt(x if x.dtype == np.uint8 else np.uint8(x * 255 + 0.5), nme,
                                     int(sev), seed=seed, frost_dir=frost_dir), y
      elif source == "npy":
        idx = np.arange(len(x)) if indices is None else np.asarray(indices)
        xc, yc = load_cifar10c(cifar10c_dir, nme, int(sev), idx)
        if len(yc) == len(y) and not np.array_equal(yc, y):
          raise ValueError("CIFAR-10-C labels disagree with the dataset labels: the indices do not map "
                           "the dataset to the official test order.")
      else:
        xc, yc = load_tfds_cifar10c(nme, int(sev), tfds_data_dir, num_examples=len(x))
      xcf = as_float_images(xc)
      acc[nme][str(sev)] = {d.name: float(np.mean(run.correct(xcf, yc, d))) for d in everyone}
      bar.update(1)
  bar.close()
  dnames = [d.name for d in everyone]
  mean_types = {str(s): {d: float(np.mean([acc[n][str(s)][d] for n in names])) for d in dnames}
                for s in severities}
  mean_sev = {n: {d: float(np.mean([acc[n][str(s)][d] for s in severities])) for d in dnames}
              for n in names}
  label = {"generate": "CIFAR-10-C-style (offline generator, make_cifar_c.py CIFAR parameters, "
                       f"seed {seed})",
           "npy": f"CIFAR-10-C official .npy ({cifar10c_dir})",
           "tfds": "TFDS cifar10_corrupted"}[source]
  return {"accuracy": acc, "mean_over_types": mean_types, "mean_over_severities": mean_sev,
          "mean": {d: float(np.mean([mean_types[str(s)][d] for s in severities])) for d in dnames},
          "clean": clean, "source": label, "num_examples": int(len(x)),
          "names": list(names), "severities": [int(s) for s in severities],
          "defenses": dnames[1:]}
