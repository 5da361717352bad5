"""Tests for the CIFAR-10-C-style corruption generator and the official-file reader.

Official facts checked here come from ``make_cifar_c.py`` (github.com/hendrycks/robustness,
``ImageNet-C/create_c/``): the parameter tables, the final ``np.uint8(corruption(img))`` (truncation), and
the OpenCV / ImageMagick steps our helpers re-implement.
"""

import importlib.util
import os

import numpy as np
import pytest
from PIL import Image
from sample_data import SAMPLE_PATH

import iss_jax
from iss_jax.robustness import _corruptions as C

RNG = np.random.default_rng(0)
SAMPLE = str(SAMPLE_PATH)
X8 = RNG.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
# The official CIFAR tables (make_cifar_c.py), typed in again so that the module's copies are checked.
SNOW_IMAGE_WEIGHT = (0.95, 0.9, 0.9, 0.85, 0.8)
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
FROST_SHAPES = {"frost1.png": (200, 240), "frost2.png": (180, 230), "frost3.png": (180, 230),
                "frost4.jpg": (175, 263), "frost5.jpg": (196, 212)}  # (H, W); resized by 0.2 to > 32


def _smooth_images(n=6):
  """Smooth colour images (corruptions that blur leave them close to themselves)."""
  yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
  base = np.stack([yy, xx, 0.5 * (yy + xx)], -1)
  return np.clip(0.1 + 0.8 * base[None] * np.linspace(0.5, 1, n)[:, None, None, None], 0, 1)


def _write_frost_dir(folder, fill):
  """Five stand-in frost photographs in the official formats (RGBA PNG for 1-3, RGB JPEG for 4-5);
  ``fill(name, shape)`` gives each one's RGB pixels. Returns the folder."""
  os.makedirs(folder, exist_ok=True)
  for name, (h, w) in FROST_SHAPES.items():
    rgb = fill(name, (h, w, 3)).astype(np.uint8)
    if name.endswith(".png"):
      alpha = np.full((h, w, 1), 77, np.uint8)  # dropped, not composited, as cv2.imread(IMREAD_COLOR)
      Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA").save(os.path.join(folder, name))
    else:
      Image.fromarray(rgb).save(os.path.join(folder, name), quality=95)
  return str(folder)


@pytest.fixture(scope="module")
def grey_frost_dir(tmp_path_factory):
  """Stand-in frost photographs of constant grey 200 (decoded exactly from PNG and JPEG alike)."""
  return _write_frost_dir(tmp_path_factory.mktemp("frost_grey"), lambda name, shape: np.full(shape, 200))


@pytest.fixture(scope="module")
def noise_frost_dir(tmp_path_factory):
  """Stand-in frost photographs of random colours (each file different)."""
  rng = np.random.default_rng(5)
  return _write_frost_dir(tmp_path_factory.mktemp("frost_noise"),
                          lambda name, shape: rng.integers(0, 256, size=shape))


def _real_frost_dir():
  """The frost/ folder of an installed imagecorruptions package, or None."""
  spec = importlib.util.find_spec("imagecorruptions")
  for loc in (spec.submodule_search_locations or []) if spec is not None else []:
    folder = os.path.join(loc, "frost")
    if all(os.path.isfile(os.path.join(folder, f)) for f in C.FROST_FILES):
      return folder
  return None


def test_all_official_types_are_available():
  assert len(C.CORRUPTIONS) == 15 and {"snow", "frost"} <= set(C.CORRUPTIONS)
  assert C.EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
  assert C.AVAILABLE_CORRUPTIONS == C.CORRUPTIONS + C.EXTRA_CORRUPTIONS
  assert iss_jax.robustness.AVAILABLE_CORRUPTIONS == C.AVAILABLE_CORRUPTIONS


@pytest.mark.parametrize("name", C.AVAILABLE_CORRUPTIONS)
def test_shapes_dtypes_range_and_determinism(name, grey_frost_dir, monkeypatch):
  monkeypatch.setenv(C.FROST_DIR_ENV, grey_frost_dir)
  out = iss_jax.robustness.corrupt(X8, name, 3, seed=1)
  assert out.shape == X8.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out, iss_jax.robustness.corrupt(X8, name, 3, seed=1))
  xf = X8[:2] / 255.0
  outf = iss_jax.robustness.corrupt(xf, name, 3, seed=1)
  assert outf.dtype == np.float32 and outf.min() >= 0 and outf.max() <= 1
  assert iss_jax.robustness.corrupt(X8[0], name, 1).shape == X8[0].shape


# ---------------------------------------------------------------------------------- final uint8 conversion


def test_uint8_output_truncates_like_the_official_cast():
  """Brightness on grey pixels is ``k / 255 + c`` in every channel; the official ``np.uint8`` of
  ``(k / 255 + 0.2) * 255`` truncates, which is ``k + 50`` (not ``k + 51``) where round-off leaves the
  product just below the integer."""
  k = np.arange(256)
  x = np.broadcast_to(k[:, None, None, None], (256, 1, 1, 3)).astype(np.uint8)
  out = iss_jax.robustness.corrupt(x, "brightness", 4)[:, 0, 0, 0]
  official = np.uint8(np.clip(k / 255.0 + 0.2, 0, 1) * 255)
  np.testing.assert_array_equal(out, official)
  assert np.sum(official.astype(int) < np.minimum(k + 51, 255)) >= 10  # the truncation does bite


@pytest.mark.parametrize("severity", [3, 4])
def test_saturate_output_is_the_truncated_official_value(severity):
  """A literal port of the official saturate (matplotlib's HSV conversions for skimage's) then
  ``np.uint8``; adding 1e-6 before the cast (the old conversion) would change some values."""
  import matplotlib.colors as mcolors

  a, b = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
  hsv = mcolors.rgb_to_hsv(X8 / 255.0)
  hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
  official = np.clip(mcolors.hsv_to_rgb(hsv), 0, 1) * 255
  np.testing.assert_array_equal(iss_jax.robustness.corrupt(X8, "saturate", severity), np.uint8(official))
  assert np.any(np.uint8(official + 1e-6) != np.uint8(official))


def test_float_input_gives_unquantised_float_output():
  x = _smooth_images(2)
  out = iss_jax.robustness.corrupt(x, "contrast", 2)
  m = x.mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(out, (x - m) * 0.5 + m, atol=1e-6)
  assert np.abs(out * 255 - np.round(out * 255)).max() > 0.1  # not rounded to 8 bits


# ----------------------------------------------------------------------------------------------------------


def test_brightness_on_grey_is_clipped_shift():
  """On grey pixels HSV value = the grey level, so brightness adds c to every channel (clipped)."""
  g = np.linspace(0, 1, 11)
  x = np.broadcast_to(g[:, None, None, None], (11, 4, 4, 3)).copy()
  for s, c in enumerate((0.05, 0.1, 0.15, 0.2, 0.3), start=1):
    np.testing.assert_allclose(iss_jax.robustness.corrupt(x, "brightness", s), np.minimum(x + c, 1),
                               atol=1e-6)


def test_brightness_keeps_hue_and_saturation():
  import matplotlib.colors as mcolors

  x = np.array([[[[0.2, 0.4, 0.6], [0.5, 0.1, 0.3]]]])  # (1, 1, 2, 3)
  out = iss_jax.robustness.corrupt(x, "brightness", 2)
  h0, h1 = mcolors.rgb_to_hsv(x), mcolors.rgb_to_hsv(out.astype(np.float64))
  np.testing.assert_allclose(h1[..., :2], h0[..., :2], atol=1e-5)
  np.testing.assert_allclose(h1[..., 2], h0[..., 2] + 0.1, atol=1e-5)


def test_contrast_formula():
  x = _smooth_images(2)
  m = x.mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(iss_jax.robustness.corrupt(x, "contrast", 5), (x - m) * 0.15 + m, atol=1e-6)


@pytest.mark.parametrize("severity,std", list(enumerate((0.04, 0.06, 0.08, 0.09, 0.10), start=1)))
def test_gaussian_noise_statistics(severity, std):
  x = np.full((64, 32, 32, 3), 0.5)  # far from the clip
  d = iss_jax.robustness.corrupt(x, "gaussian_noise", severity).astype(np.float64) - 0.5
  assert abs(d.mean()) < 4 * std / np.sqrt(d.size)
  assert abs(d.std() - std) < 0.02 * std


def test_shot_noise_statistics():
  x = np.full((64, 32, 32, 3), 0.4)
  for s, c in enumerate((500, 250, 100, 75, 50), start=1):
    out = iss_jax.robustness.corrupt(x, "shot_noise", s).astype(np.float64)
    np.testing.assert_allclose(np.unique(np.round(out * c, 3)) % 1, 0, atol=2e-3)  # multiples of 1/c
    assert abs(out.mean() - 0.4) < 4 * np.sqrt(0.4 / c / out.size)
    assert abs(out.var() - 0.4 / c) < 0.05 * 0.4 / c  # Poisson: var = mean / c


def test_impulse_noise_fraction_and_values():
  x = np.full((64, 32, 32, 3), 0.5)
  for s, c in enumerate((0.01, 0.02, 0.03, 0.05, 0.07), start=1):
    out = iss_jax.robustness.corrupt(x, "impulse_noise", s)
    changed = out != np.float32(0.5)
    assert set(np.unique(out[changed])) <= {0.0, 1.0}
    assert abs(changed.mean() - c) < 5 * np.sqrt(c / out.size)
    assert abs((out[changed] == 1).mean() - 0.5) < 0.05


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur",
                                  "motion_blur", "brightness", "contrast", "defocus_blur", "snow"])
def test_severity_ordering(name):
  """Mean absolute change grows with severity for the monotone types."""
  x = np.load(SAMPLE)["x_test"][:16]
  diffs = [np.abs(iss_jax.robustness.corrupt(x, name, s).astype(float) - x).mean() for s in (1, 3, 5)]
  assert diffs[0] < diffs[1] < diffs[2]


def test_snow_severity_ordering_at_every_step():
  x = np.load(SAMPLE)["x_test"][:16]
  diffs = [np.abs(iss_jax.robustness.corrupt(x, "snow", s).astype(float) - x).mean() for s in range(1, 6)]
  assert np.all(np.diff(diffs) > 0), diffs


def test_spatter_severity_ordering_within_water_and_mud():
  """Severities 1-3 splash water, 4-5 mud (make_cifar_c's last table column); within each the mean change
  from the clean image grows."""
  x = np.load(SAMPLE)["x_test"][:16]
  diffs = [np.abs(iss_jax.robustness.corrupt(x, "spatter", s).astype(float) - x).mean() for s in range(1, 6)]
  assert diffs[0] < diffs[1] < diffs[2] and diffs[3] < diffs[4], diffs


def test_motion_blur_kernel_is_imagemagick_like():
  w, dy, dx = C.motion_blur_kernel(6, 1.0, 0.0)
  assert w.shape == (13,) and abs(w.sum() - 1) < 1e-12 and np.all(np.diff(w) < 0)
  np.testing.assert_array_equal(dy, 0)  # angle 0: along +x
  np.testing.assert_array_equal(dx, np.arange(13))
  _, dy, dx = C.motion_blur_kernel(6, 1.0, 90.0)
  np.testing.assert_array_equal(dx, 0)
  np.testing.assert_array_equal(dy, np.arange(13))


def test_motion_blur_is_floored():
  """ImageMagick's weighted sum, floored to 8 bits (not rounded), edge pixels repeated past the border."""
  img = RNG.integers(0, 256, size=(32, 32, 3)).astype(np.float64)
  w, dy, dx = C.motion_blur_kernel(6, 2.0, 30.0)
  rows, cols = np.arange(32)[:, None], np.arange(32)[None, :]
  exact = sum(wt * img[np.clip(rows + oy, 0, 31), np.clip(cols + ox, 0, 31)]
              for wt, oy, ox in zip(w, dy, dx, strict=True))
  out = C._magick_motion_blur(img, 6, 2.0, 30.0)
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, np.floor(exact + 1e-9))
  assert 0.3 < np.mean(out != np.round(exact)) < 0.7  # rounding would differ on about half the values
  flat = np.full((8, 8, 3), 77.0)  # an exact integer mean must not lose one to round-off
  np.testing.assert_array_equal(C._magick_motion_blur(flat, 9, 2.5, 12.3), 77)


def test_corrupt_motion_blur_uses_the_floored_blur():
  """``corrupt`` draws the angle from its stream and returns the 8-bit blur unchanged."""
  x = X8[:1]
  for s, (radius, sigma) in enumerate(((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)), start=1):
    angle = C._rng("motion_blur", s, 4).uniform(-45, 45)
    expected = C._magick_motion_blur(x[0].astype(np.float64), radius, sigma, angle)
    np.testing.assert_array_equal(iss_jax.robustness.corrupt(x, "motion_blur", s, seed=4)[0], expected)


def test_blurs_leave_constant_images_unchanged():
  x = np.full((2, 32, 32, 3), 0.3)
  for name in ("motion_blur", "defocus_blur", "gaussian_blur", "zoom_blur", "elastic_transform"):
    np.testing.assert_allclose(iss_jax.robustness.corrupt(x, name, 5), x, atol=1 / 255 + 1e-6, err_msg=name)


def test_glass_blur_copies_neighbours():
  """With sigma ~0 (severity 1), every pixel equals some pixel of the blurred image within 1 step."""
  x = X8[:1]
  out = iss_jax.robustness.corrupt(x, "glass_blur", 1)
  assert np.abs(out.astype(int) - x).mean() > 1  # pixels moved
  assert out.shape == x.shape


def test_elastic_severity_one_is_pure_affine():
  """Severity 1 has no displacement field (alpha = 0): a translation-free affine of a linear ramp stays
  affine, so second differences vanish away from the border."""
  yy, xx = np.meshgrid(np.arange(32.0), np.arange(32.0), indexing="ij")
  ramp = (0.2 + 0.01 * yy + 0.012 * xx)[None, :, :, None].repeat(3, -1)
  out = iss_jax.robustness.corrupt(ramp, "elastic_transform", 1).astype(np.float64)[0, 8:24, 8:24, 0]
  assert np.abs(np.diff(out, 2, axis=0)).max() < 1e-5
  assert np.abs(np.diff(out, 2, axis=1)).max() < 1e-5


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="name"):
    iss_jax.robustness.corrupt(X8, "nope", 1)
  with pytest.raises(ValueError, match="severity"):
    iss_jax.robustness.corrupt(X8, "gaussian_noise", 6)
  with pytest.raises(ValueError, match="x must be"):
    iss_jax.robustness.corrupt(X8[0, 0], "gaussian_noise", 1)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    iss_jax.robustness.corrupt(X8 / 100.0, "gaussian_noise", 1)


def test_load_cifar10c_rows_and_indices(tmp_path):
  x = np.arange(50000, dtype=np.uint8)[:, None, None, None].repeat(2, 1)  # tiny stand-in images
  y = (np.arange(50000) % 10).astype(np.uint8)
  np.save(os.path.join(tmp_path, "gaussian_noise.npy"), x)
  np.save(os.path.join(tmp_path, "labels.npy"), y)
  xs, ys = iss_jax.robustness.load_cifar10c(str(tmp_path), "gaussian_noise", 3, indices=[0, 5, 9999])
  np.testing.assert_array_equal(xs[:, 0, 0, 0], np.uint8(np.array([20000, 20005, 29999]) % 256))
  np.testing.assert_array_equal(ys, [0, 5, 9])
  with pytest.raises(ValueError, match="not found"):
    iss_jax.robustness.load_cifar10c(str(tmp_path), "shot_noise", 1)


# ---------------------------------------------------------------------------------------------------- snow


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_snow_on_black_closed_form(severity):
  """On a black image the whitened image is the constant ``(1 - w) * 0.5`` (grey * 1.5 + 0.5 = 0.5) and the
  snow layer is added once as is and once turned by 180 degrees: the output is grey, symmetric under that
  turn, and equals ``floor((1 - w) * 0.5 * 255)`` wherever no flake falls (most common value)."""
  w = SNOW_IMAGE_WEIGHT[severity - 1]
  out = iss_jax.robustness.corrupt(np.zeros((6, 32, 32, 3), np.uint8), "snow", severity, seed=3).astype(int)
  base = int((1 - w) * 0.5 * 255)
  assert out.min() == base
  values, counts = np.unique(out, return_counts=True)
  assert values[np.argmax(counts)] == base
  np.testing.assert_array_equal(out, np.rot90(out, 2, axes=(1, 2)))
  np.testing.assert_array_equal(out[..., 0], out[..., 2])
  # Flakes fall within 45 degrees of vertical (angle in [-135, -45]): streaks are smoother along columns.
  assert np.abs(np.diff(out, axis=1)).mean() < np.abs(np.diff(out, axis=2)).mean()


def test_snow_keeps_white_white_and_only_brightens():
  white = np.full((2, 32, 32, 3), 255, np.uint8)
  np.testing.assert_array_equal(iss_jax.robustness.corrupt(white, "snow", 5), 255)
  for s in (1, 5):
    out = iss_jax.robustness.corrupt(X8, "snow", s).astype(int)
    assert np.all(out >= X8.astype(int) - 1)  # - 1: float32 round-off before the truncation


# --------------------------------------------------------------------------------------------------- frost


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_frost_parameter_table(severity, grey_frost_dir):
  """With constant grey-200 frost photographs the output is ``np.uint8(clip(a x + 200 b, 0, 255))``, with
  ``(a, b)`` of the official table."""
  a, b = FROST[severity - 1]
  out = iss_jax.robustness.corrupt(X8, "frost", severity, seed=2, frost_dir=grey_frost_dir)
  np.testing.assert_array_equal(out, np.uint8(np.clip(a * X8.astype(np.float64) + b * 200, 0, 255)))


def _find_window(out, textures, b):
  """Which (texture, top, left) window ``t`` gives ``out == np.uint8(b * t)`` (as np.uint8 of a float)."""
  hits = []
  for k, tex in enumerate(textures):
    win = np.lib.stride_tricks.sliding_window_view(np.uint8(b * tex.astype(np.float64)), out.shape, (0, 1, 2))
    match = np.all(win == out, axis=(-3, -2, -1))[:, :, 0]
    hits += [(k, int(i), int(j)) for i, j in zip(*np.nonzero(match), strict=True)]
  return hits


def _resized_textures(folder):
  """The five photographs as read by cv2.imread and shrunk by cv2.resize(fx=0.2): RGB, every 5th pixel
  from the third (output i samples 5 i + 2), round(n / 5) of them."""
  out = []
  for name in C.FROST_FILES:
    rgb = np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"))
    h, w = rgb.shape[:2]
    out.append(rgb[2::5, 2::5][: round(h / 5), : round(w / 5)])
  return out


def test_frost_is_a_crop_of_a_resized_photograph(noise_frost_dir):
  """On a black image frost is ``b`` times a 32x32 crop of one of the five photographs resized by 0.2."""
  textures = _resized_textures(noise_frost_dir)
  out = iss_jax.robustness.corrupt(np.zeros((12, 32, 32, 3), np.uint8), "frost", 5, seed=0,
                                   frost_dir=noise_frost_dir)
  used = set()
  for img in out:
    hits = _find_window(img, textures, 0.45)
    assert len(hits) == 1
    used.add(hits[0][0])
  assert len(used) >= 3  # several photographs are drawn


def test_frost_weight_grows_with_severity(grey_frost_dir):
  """The frost's weight relative to the image's, b / a, measured from two probe images, grows."""
  ratios = []
  for s in range(1, 6):
    black, grey = (iss_jax.robustness.corrupt(np.full((1, 32, 32, 3), v, np.uint8), "frost", s,
                                              frost_dir=grey_frost_dir).mean() for v in (0, 100))
    b = black / 200
    a = (grey - black) / 100
    ratios.append(b / a)
  assert np.all(np.diff(ratios) > 0), ratios


def test_frost_finds_its_photographs(grey_frost_dir, tmp_path, monkeypatch):
  monkeypatch.delenv(C.FROST_DIR_ENV, raising=False)
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "imagecorruptions" else real_find_spec(name, *a))
  with pytest.raises(ValueError, match=r"pip install imagecorruptions.*frost_dir=DIR"):
    iss_jax.robustness.corrupt(X8, "frost", 1)
  partial = _write_frost_dir(tmp_path / "partial", lambda name, shape: np.zeros(shape))
  os.remove(os.path.join(partial, "frost4.jpg"))
  with pytest.raises(ValueError, match="frost_dir .* lacks frost4.jpg"):
    C.frost_texture_dir(partial)
  monkeypatch.setenv(C.FROST_DIR_ENV, grey_frost_dir)
  assert C.frost_texture_dir() == os.path.abspath(grey_frost_dir)
  np.testing.assert_array_equal(iss_jax.robustness.corrupt(X8, "frost", 1),
                                iss_jax.robustness.corrupt(X8, "frost", 1, frost_dir=grey_frost_dir))
  with pytest.raises(ValueError, match=r"\$ISS_JAX_FROST_DIR .* lacks frost1.png"):
    monkeypatch.setenv(C.FROST_DIR_ENV, str(tmp_path / "nowhere"))
    iss_jax.robustness.corrupt(X8, "frost", 1)
  other = iss_jax.robustness.corrupt(X8, "gaussian_noise", 1)  # other types never need the photographs
  assert other.shape == X8.shape


@pytest.mark.skipif(_real_frost_dir() is None, reason="imagecorruptions (its frost/ folder) not installed")
def test_frost_with_the_official_photographs(monkeypatch):
  """Against the real frost photographs that imagecorruptions ships (the same files as the official repo)."""
  monkeypatch.delenv(C.FROST_DIR_ENV, raising=False)
  folder = _real_frost_dir()
  assert C.frost_texture_dir() == os.path.abspath(folder)
  out = iss_jax.robustness.corrupt(np.zeros((5, 32, 32, 3), np.uint8), "frost", 5, seed=1)
  assert out.shape == (5, 32, 32, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, iss_jax.robustness.corrupt(np.zeros((5, 32, 32, 3), np.uint8), "frost",
                                                                5, seed=1))
  textures = _resized_textures(folder)
  assert [t.shape[:2] for t in textures] == [(120, 180), (63, 112), (63, 112), (70, 105), (99, 132)]
  for img in out:
    assert _find_window(img, textures, 0.45)
  diffs = [np.abs(iss_jax.robustness.corrupt(X8, "frost", s).astype(float) - X8).mean() for s in (1, 2)]
  assert diffs[0] < diffs[1]


# ------------------------------------------------------------------------------------------------- spatter


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_spatter_water_adds_pale_turquoise(severity):
  """Water adds ``m * (175, 238, 238) / 255`` with ``m`` in ``[0, 0.5]`` (peak normalised to the table's
  0.5): on black, blue equals green, red is 175/238 of it, and the brightest green is ``0.5 * 238``."""
  black = np.zeros((6, 32, 32, 3), np.uint8)
  out = iss_jax.robustness.corrupt(black, "spatter", severity, seed=1).astype(int)
  np.testing.assert_array_equal(out[..., 2], out[..., 1])
  wet = out[..., 1] > 20
  assert wet.any()
  np.testing.assert_allclose(out[..., 0][wet], out[..., 1][wet] * 175 / 238, atol=1.01)
  assert np.all(np.abs(out[..., 1].max(axis=(1, 2)) - 0.5 * 238) <= 1)
  assert np.all(iss_jax.robustness.corrupt(X8, "spatter", severity).astype(int) >= X8)  # water only adds


@pytest.mark.parametrize("severity", [4, 5])
def test_spatter_mud_blends_towards_brown(severity):
  """Mud blends each splashed pixel towards (63, 42, 20) with a weight ``m`` in ``[0.8, 1]`` (the blurred
  mask below 0.8 is dropped): on white, red falls to at most ``255 - 0.8 * (255 - 63)``, and one ``m``
  explains all three channels."""
  out = iss_jax.robustness.corrupt(np.full((6, 32, 32, 3), 255, np.uint8), "spatter", severity,
                                   seed=1).astype(float)
  mud = out[..., 0] < 255
  assert mud.any() and not mud.all()
  np.testing.assert_array_equal(out[~mud], 255)
  assert out[..., 0][mud].max() <= 255 - 0.8 * (255 - 63) + 1
  m = (255 - out[..., 0][mud]) / (255 - 63)
  for c, target in ((1, 42), (2, 20)):
    np.testing.assert_allclose(out[..., c][mud], 255 - m * (255 - target), atol=2)


def test_spatter_follows_the_official_water_pipeline():
  """Severity 1 equals the water steps written out with the helpers (the stream's one normal draw)."""
  from iss_jax.robustness._corruptions import _sk_gaussian

  x = X8[:1]
  liquid = _sk_gaussian(C._rng("spatter", 1, 7).normal(size=(32, 32), loc=0.62, scale=0.1), 0.7)
  liquid[liquid < 0.7] = 0
  liquid8 = (liquid * 255).astype(np.uint8)
  dist = np.minimum(C._cv_distance_l2_5(255 - C._cv_canny(liquid8, 50, 150)), 20)
  dist = C._cv_equalize_hist(C._cv_box3(dist).astype(np.uint8))
  dist = C._cv_box3(C._cv_filter2d_u8(dist, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])).astype(np.float32)
  m = liquid8 * dist
  m = m / m.max() * np.float32(0.5)
  colour = np.float32(np.array([175, 238, 238]) / 255.0)
  img = x[0].astype(np.float32) / np.float32(255)
  expected = np.uint8(np.clip(img + m[..., None] * colour, 0, 1) * 255)
  np.testing.assert_array_equal(iss_jax.robustness.corrupt(x, "spatter", 1, seed=7)[0], expected)


# ------------------------------------------------------------------------ OpenCV helpers (closed forms)


def test_canny_step_edges_and_hysteresis():
  x = np.zeros((32, 32), np.uint8)
  x[:, 16:] = 200  # |dx| = 4 * 200 at columns 15 and 16; suppression keeps the first (strict > on the left)
  edges = C._cv_canny(x, 50, 150)
  expected = np.zeros((32, 32), np.uint8)
  expected[:, 15] = 255
  np.testing.assert_array_equal(edges, expected)
  weak = np.zeros((32, 32), np.uint8)
  weak[:, 16:] = 30  # magnitude 120: above low (50), never above high (150)
  assert not C._cv_canny(weak, 50, 150).any()
  mixed = weak.copy()
  mixed[:8, 16:] = 200  # a strong part joined to the weak part: hysteresis keeps the whole edge
  assert np.all(C._cv_canny(mixed, 50, 150)[12:, 15] == 255)


def test_distance_transform_chamfer_weights():
  img = np.full((9, 9), 255, np.uint8)
  img[4, 4] = 0
  d = C._cv_distance_l2_5(img)
  assert d.dtype == np.float32 and d[4, 4] == 0
  fix = np.float32(2.0**-16)
  assert d[4, 5] == d[3, 4] == 1
  assert d[5, 5] == np.float32(91750) * fix  # 1.4 in 16-bit fixed point
  assert d[5, 6] == d[2, 3] == np.float32(143976) * fix  # 2.1969
  assert d[4, 6] == 2 and d[6, 6] == np.float32(2 * 91750) * fix
  assert C._cv_distance_l2_5(np.full((5, 5), 1, np.uint8)).min() >= 8192  # no zero pixel: from INT_MAX >> 2


def test_equalize_hist_and_filters():
  img = np.repeat(np.array([0, 10, 20], np.uint8), [512, 256, 256]).reshape(32, 32)
  # scale 255 / 512; 256 * scale = 127.5 rounds half to even
  assert set(np.unique(C._cv_equalize_hist(img))) == {0, 128, 255}
  np.testing.assert_array_equal(C._cv_equalize_hist(np.full((4, 4), 9, np.uint8)), 9)
  flat = np.full((6, 6), 200, np.uint8)
  np.testing.assert_array_equal(C._cv_filter2d_u8(flat, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]), 200)
  np.testing.assert_array_equal(C._cv_filter2d_u8(flat, [[0, 0, 0], [0, 2, 0], [0, 0, 0]]), 255)  # saturates
  ramp = np.tile(np.arange(6, dtype=np.uint8) * 10, (6, 1))
  np.testing.assert_array_equal(C._cv_box3(ramp)[:, 1:-1], ramp[:, 1:-1])  # a linear ramp is its own mean
  assert C._cv_box3(ramp)[0, 0] == 7  # reflect-101: columns 1, 0, 1 -> (10 + 0 + 10) / 3 = 6.7, rounded
  assert C._cv_box3(ramp.astype(np.float32)).dtype == np.float32
