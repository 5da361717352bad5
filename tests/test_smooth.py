"""iss_jax.smooth against the NumPy/SciPy oracle, invariants, transformations and bad input."""

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sample_data import SAMPLE_PATH

import iss_jax
from iss_jax._src import definition as reference
from iss_jax._src import smooth as smooth_mod

SF = iss_jax.DEFAULT_STEP_FACTOR
# Both implementations of smooth: the pure-XLA scheduler (the GPU/TPU path) and the fused CPU kernel.
IMPLEMENTATIONS = ["xla", "cpu"]
DATA = str(SAMPLE_PATH)

# One tolerance table per dtype: max |out - reference| over pixels, and allowed step difference.
TOLERANCE = {jnp.float64: dict(atol=1e-9, steps=0), jnp.float32: dict(atol=2e-2, steps=0.05)}


def real_images(n, size=None, start=0):
  x = np.load(DATA)["x_test"][start:start + n].astype(np.float64) / 255.0
  if size is not None:
    x = x[:, 8:8 + size, 10:10 + size]
  return x


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("sparsity", [0.3, 0.6])
def test_matches_reference_float64(x64, sparsity, impl):
  images = real_images(3, size=12)
  hnorm = reference.hessian_norm(12, 12)
  out, info = iss_jax.smooth(jnp.asarray(images), sparsity, return_info=True, implementation=impl)
  for i, img in enumerate(images):
    ref, steps, reached = reference.smooth_reference(img, sparsity, hnorm=hnorm, step_factor=SF)
    assert int(info.steps[i]) == steps
    np.testing.assert_allclose(float(info.sparsity[i]), reached, rtol=1e-6)  # float32
    np.testing.assert_allclose(np.asarray(out[i]), ref, atol=TOLERANCE[jnp.float64]["atol"])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_matches_reference_grey_and_step_factor(x64, impl):
  img = real_images(1, size=10, start=5)[0].mean(-1)
  hnorm = reference.hessian_norm(10, 10)
  out, info = iss_jax.smooth(jnp.asarray(img), 0.5, step_factor=1.7, return_info=True, implementation=impl)
  ref, steps, _ = reference.smooth_reference(img[..., None], 0.5, step_factor=1.7, hnorm=hnorm)
  assert out.shape == img.shape
  assert int(info.steps) == steps
  np.testing.assert_allclose(np.asarray(out), ref[..., 0], atol=1e-9)


def test_unrolled_path_matches_the_definition(x64):
  """gradient="unrolled" (a bounded lax.scan) stops where the definition stops, with its image."""
  images = real_images(2, size=8, start=3)
  hnorm = reference.hessian_norm(8, 8)
  targets = [0.3, 0.6]  # the second image caps at 0.6: the cap is part of the rule too
  out, info = iss_jax.smooth_path(jnp.asarray(images), targets, gradient="unrolled", maxiter=3000,
                                  return_info=True)
  for j, t in enumerate(targets):
    for i, img in enumerate(images):
      ref, steps, reached = reference.smooth_reference(img, t, hnorm=hnorm, step_factor=SF, maxiter=3000)
      assert int(info.steps[j, i]) == steps and bool(info.capped[j, i]) == (reached < t)
      np.testing.assert_allclose(np.asarray(out[j, i]), ref, atol=TOLERANCE[jnp.float64]["atol"])


def test_stopping_rule_is_shared():
  """One predicate: the target reached, or the cap (element-wise on NumPy and JAX values alike)."""
  assert reference.stop_reached(0.6, 0.6, 10, 20) and reference.stop_reached(0.1, 0.6, 20, 20)
  assert not reference.stop_reached(0.59, 0.6, 19, 20)
  got = reference.stop_reached(jnp.array([0.7, 0.2, 0.2]), 0.5, jnp.array([1, 30, 1]), 30)
  np.testing.assert_array_equal(got, [True, True, False])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_matches_reference_float32(impl):
  images = real_images(2)
  hnorm = reference.hessian_norm(32, 32)
  out, info = iss_jax.smooth(jnp.asarray(images, jnp.float32), 0.6, return_info=True, implementation=impl)
  assert out.dtype == jnp.float32
  tol = TOLERANCE[jnp.float32]
  for i, img in enumerate(images):
    ref, steps, _ = reference.smooth_reference(img, 0.6, hnorm=hnorm, step_factor=SF)
    assert abs(int(info.steps[i]) - steps) <= tol["steps"] * steps
    assert np.mean(np.abs(np.asarray(out[i]) - ref)) < tol["atol"] / 4
    assert np.max(np.abs(np.asarray(out[i]) - ref)) < 10 * tol["atol"]


def test_hessian_norm_matches_eigensolver():
  for h, w, nu in [(4, 5, 1.0), (6, 6, 0.5), (7, 3, 2.0), (32, 32, 1.0)]:
    np.testing.assert_allclose(float(iss_jax.hessian_norm(h, w, nu)), reference.hessian_norm(h, w, nu),
                               rtol=1e-5)


def test_lbi_solver_api_matches_smooth():
  x = jnp.asarray(real_images(1, size=16)[0], jnp.float32)
  params = iss_jax.lbi_params(16, 16)
  state = iss_jax.lbi_run(x, 0.5, params)
  assert isinstance(state, iss_jax.LBIState)
  # Every component of the projection is constant and equals the mean of b there.
  joined = ~iss_jax.lbi_support(state.z)
  labels, _ = iss_jax.connected_components(joined)
  proj = iss_jax.project(state.b, iss_jax.lbi_support(state.z))
  labels = np.asarray(labels)
  for lab in np.unique(labels):
    members = labels == lab
    np.testing.assert_allclose(np.asarray(proj)[members], np.asarray(state.b)[members].mean(0)[None]
                               * np.ones((members.sum(), 1)), atol=1e-6)
  # smooth (both implementations) stops at the same step; its projection equals the component means of
  # b up to float32 rounding (of the float32 sums in XLA, of the iterates in the CPU kernel).
  exact = np.asarray(state.b, np.float64).copy()
  for lab in np.unique(labels):
    exact[labels == lab] = np.asarray(state.b, np.float64)[labels == lab].mean(0)
  for impl in IMPLEMENTATIONS:
    out, info = iss_jax.smooth(x, 0.5, return_info=True, implementation=impl)
    assert int(info.steps) == int(state.k)
    np.testing.assert_allclose(np.asarray(out), exact, atol=1e-5)
  # Resuming from a state continues the same trajectory.
  half = iss_jax.lbi_run(x, 0.25, params)
  resumed = iss_jax.lbi_run(x, 0.5, params, state=half)
  assert int(resumed.k) == int(state.k)
  np.testing.assert_array_equal(np.asarray(resumed.b), np.asarray(state.b))


def test_endpoints_and_invariants():
  x = jnp.asarray(real_images(2, size=16), jnp.float32)
  np.testing.assert_array_equal(np.asarray(iss_jax.smooth(x, 1.0)), np.asarray(x))
  mean = np.asarray(x).mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(np.asarray(iss_jax.smooth(x, 0.0)), np.broadcast_to(mean, x.shape),
                             atol=1e-6)
  out, info = iss_jax.smooth(x, 0.6, return_info=True)
  assert bool(jnp.all(info.sparsity >= 0.6)) and not bool(jnp.any(info.capped))
  assert float(out.min()) >= float(x.min()) - 1e-5 and float(out.max()) <= float(x.max()) + 1e-5
  # Smaller sparsity: fewer distinct values (coarser structure).
  coarse = iss_jax.smooth(x[0], 0.2)
  assert len(np.unique(np.asarray(coarse).reshape(-1, 3), axis=0)) < len(
      np.unique(np.asarray(out[0]).reshape(-1, 3), axis=0))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_constant_image_is_a_fixed_point_and_does_not_hang(impl):
  x = jnp.full((8, 9, 3), 0.25, jnp.float32)
  out, info = iss_jax.smooth(x, 0.6, return_info=True, implementation=impl)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(x))
  assert int(info.steps) == 0 and not bool(info.capped)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_cap_is_reported(impl):
  x = jnp.asarray(real_images(1, size=16)[0], jnp.float32)
  out, info = iss_jax.smooth(x, 0.9, maxiter=50, return_info=True, implementation=impl)
  assert bool(info.capped) and int(info.steps) == 50 and float(info.sparsity) < 0.9
  params = iss_jax.lbi_params(16, 16)
  state = iss_jax.lbi_run(x, 0.9, params, maxiter=50)
  np.testing.assert_allclose(np.asarray(out), np.asarray(iss_jax.project(
      state.b, iss_jax.lbi_support(state.z))), atol=1e-6)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_batch_with_refill_matches_single_images(monkeypatch, impl):
  # Few slots so that the XLA batch exercises refilling, compaction into narrower widths and an image
  # that is answered without iterating (constant); the CPU kernel shares images out over threads.
  monkeypatch.setattr(smooth_mod, "_SLOTS", 3)
  monkeypatch.setattr(smooth_mod, "_CHUNK", 5)
  x = np.asarray(real_images(7, size=12), np.float32)
  x[4] = 0.5
  x = jnp.asarray(x)
  out, info = iss_jax.smooth(x, 0.5, return_info=True, implementation=impl)
  for i in range(7):
    single, single_info = iss_jax.smooth(x[i], 0.5, return_info=True, implementation=impl)
    assert int(info.steps[i]) == int(single_info.steps)
    np.testing.assert_array_equal(np.asarray(out[i]), np.asarray(single))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_path_matches_separate_runs(impl):
  x = jnp.asarray(real_images(3, size=12), jnp.float32)
  sparsities = jnp.asarray([0.6, 0.2, 1.0, 0.4, 0.0])
  path, info = iss_jax.smooth_path(x, sparsities, return_info=True, implementation=impl)
  assert path.shape == (5,) + x.shape and info.steps.shape == (5, 3)
  for j, s in enumerate(np.asarray(sparsities)):
    np.testing.assert_array_equal(np.asarray(path[j]),
                                  np.asarray(iss_jax.smooth(x, float(s), implementation=impl)))
  # Steps grow with the target along one run.
  assert bool(jnp.all(info.steps[1] <= info.steps[3])) and bool(jnp.all(info.steps[3] <= info.steps[0]))


def test_jit_equals_eager_and_no_recompile():
  x = jnp.asarray(real_images(2, size=12), jnp.float32)
  f = jax.jit(iss_jax.smooth)
  np.testing.assert_array_equal(np.asarray(f(x, 0.5)), np.asarray(iss_jax.smooth(x, 0.5)))
  before = smooth_mod._smooth_core._cache_size()
  f(x, 0.3)
  f(x, 0.7)
  iss_jax.smooth(x, 0.3)
  iss_jax.smooth(x, 0.7)
  assert smooth_mod._smooth_core._cache_size() == before
  assert f._cache_size() == 1


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_vmap_equals_loop(impl):
  x = jnp.asarray(real_images(3, size=10), jnp.float32)
  s = jnp.asarray([0.3, 0.5, 0.7])
  batched = jax.vmap(functools.partial(iss_jax.smooth, implementation=impl))(x, s)
  for i in range(3):
    np.testing.assert_array_equal(np.asarray(batched[i]),
                                  np.asarray(iss_jax.smooth(x[i], s[i], implementation=impl)))


def test_bpda_gradient_is_identity():
  x = jnp.asarray(real_images(2, size=10), jnp.float32)
  w = jax.random.normal(jax.random.key(0), x.shape)
  g = jax.grad(lambda v: jnp.sum(w * iss_jax.smooth(v, 0.5)))(x)
  np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6)


def test_unrolled_gradient_matches_finite_differences(x64):
  x = jnp.asarray(real_images(1, size=6)[0])
  w = jax.random.normal(jax.random.key(1), x.shape, jnp.float64)
  f = lambda v: jnp.sum(w * iss_jax.smooth(v, 0.4, gradient="unrolled", maxiter=400))
  out, info = iss_jax.smooth(x, 0.4, gradient="unrolled", maxiter=400, return_info=True)
  ref, info_ref = iss_jax.smooth(x, 0.4, maxiter=400, return_info=True)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-12)
  assert int(info.steps) == int(info_ref.steps)
  g = jax.grad(f)(x)
  assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
  direction = jax.random.normal(jax.random.key(2), x.shape, jnp.float64)
  eps = 1e-7  # small enough that no edge changes its activation step
  fd = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(float(jnp.vdot(g, direction)), float(fd), rtol=1e-4)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4,), np.float32), "shape"),
    (np.zeros((1, 2, 4, 4, 3), np.float32), "shape"),
    (np.zeros((4, 4, 3), np.uint8), "float"),
    (np.zeros((1, 4, 3), np.float32), "at least 2x2"),
    (np.full((4, 4), np.nan, np.float32), "NaN"),
])
def test_bad_images(bad, match):
  with pytest.raises(ValueError, match=match):
    iss_jax.smooth(bad, 0.5)


def test_forgotten_division_by_255_is_an_error_not_another_smoothing():
  x = real_images(2, size=12)
  with pytest.raises(ValueError, match=r"values in \[.*\], outside the expected \[0, 1\]; divide 0..255"):
    iss_jax.smooth(jnp.asarray(x * 255, jnp.float32), 0.6)
  with pytest.raises(ValueError, match="outside the expected"):  # below 0 too (e.g. mean-subtracted input)
    iss_jax.smooth(jnp.asarray(x - 0.5, jnp.float32), 0.6)
  with pytest.raises(Exception, match="outside the expected"):  # inside jit: when the call runs
    jax.jit(iss_jax.smooth)(jnp.asarray(x * 255, jnp.float32), 0.6).block_until_ready()
  # Rounding above 1 passes; value_range=None accepts anything (e.g. unclipped noisy images).
  iss_jax.smooth(jnp.asarray(x, jnp.float32) * (1 + 1e-6), 0.6)
  noisy = jnp.asarray(x + 0.3 * np.random.default_rng(0).standard_normal(x.shape), jnp.float32)
  assert iss_jax.smooth(noisy, 0.6, value_range=None).shape == x.shape


def test_channels_first_is_an_error_and_many_channels_warn():
  x = jnp.asarray(real_images(2, size=8), jnp.float32)
  for bad in (jnp.moveaxis(x, -1, 1), jnp.moveaxis(x[0], -1, 0)):  # (N, 3, H, W) and (3, H, W)
    with pytest.raises(ValueError, match="looks channels-first"):
      iss_jax.smooth(bad, 0.5)
  grey_batch = x[..., 0]  # (2, 8, 8): read as one 2x8 image with 8 channels
  with pytest.warns(UserWarning, match=r"pass x\[\.\.\., None\]"):
    iss_jax.smooth(grey_batch, 0.5)
  assert iss_jax.smooth(grey_batch[..., None], 0.5).shape == (2, 8, 8, 1)


def test_bad_arguments():
  x = jnp.ones((4, 4, 3)) * jnp.linspace(0, 1, 4)[:, None, None]
  for s in (-0.1, 1.5, float("nan")):
    with pytest.raises(ValueError, match="sparsity"):
      iss_jax.smooth(x, s)
  with pytest.raises(ValueError, match="step_factor"):
    iss_jax.smooth(x, 0.5, step_factor=2.0)
  with pytest.raises(ValueError, match="kappa"):
    iss_jax.smooth(x, 0.5, kappa=0.0)
  with pytest.raises(ValueError, match="gradient"):
    iss_jax.smooth(x, 0.5, gradient="exact")
  with pytest.raises(ValueError, match="scalar"):
    iss_jax.smooth(x, [0.5, 0.6])


def test_traced_bad_values_raise_at_run_time():
  f = jax.jit(iss_jax.smooth)
  x = jnp.ones((4, 4)) * jnp.linspace(0, 1, 4)[None]
  with pytest.raises(Exception, match="sparsity must lie in"):
    f(x, 1.5).block_until_ready()
  with pytest.raises(Exception, match="NaN"):
    f(x.at[0, 0].set(jnp.inf), 0.5).block_until_ready()


def test_mesh_sharded_batch_matches_single_device(tmp_path):
  script = tmp_path / "mesh.py"
  script.write_text(
      "import os\n"
      "os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'\n"
      "import jax, jax.numpy as jnp, numpy as np, iss_jax\n"
      f"x = jnp.asarray(np.load({DATA!r})['x_test'][:5, 4:14, 4:14] / 255.0, jnp.float32)\n"
      "mesh = jax.make_mesh((2,), ('data',))\n"
      "a, ia = iss_jax.smooth(x, 0.5, mesh=mesh, return_info=True)\n"
      "b, ib = iss_jax.smooth(x, 0.5, return_info=True)\n"
      "assert jax.device_count() == 2\n"
      "np.testing.assert_array_equal(np.asarray(a), np.asarray(b))\n"
      "np.testing.assert_array_equal(np.asarray(ia.steps), np.asarray(ib.steps))\n"
      "print('ok')\n")
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=600)
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_empty_batch():
  out, info = iss_jax.smooth(jnp.zeros((0, 4, 4, 3)), 0.5, return_info=True)
  assert out.shape == (0, 4, 4, 3) and info.steps.shape == (0,)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_exact_tie_targets_stop_where_the_definition_stops(x64, impl):
  """A target that count / m meets exactly (7x9 grey: m = 110 edges, 0.2 = 22 / 110) stops at that step."""
  with jax.enable_x64(False):  # float32, where XLA's count * (1 / m) gave 0.19999999 and ran on
    img = real_images(1, start=3)[0, :7, :9].mean(-1)
    _, info = iss_jax.smooth(jnp.asarray(img, jnp.float32), 0.2, return_info=True, implementation=impl)
  _, steps, reached = reference.smooth_reference(img[..., None], 0.2, step_factor=SF)
  assert reached == 0.2 and int(info.steps) == steps
