"""The Pallas kernel (``implementation="pallas"``), run here in Pallas interpret mode on CPU, against the
readable definition (float64) and the XLA scheduler (float32): same stopping steps, same images.

Interpret mode is slow, so the images are small real crops and the sparsities low (few hundred steps).
"""

import jax
import jax.extend.core as jax_core
import jax.numpy as jnp
import numpy as np
import pytest
from sample_data import SAMPLE_PATH

import iss_jax
from iss_jax._src import definition as reference
from iss_jax._src import lbi, pallas_kernel

SF = iss_jax.DEFAULT_STEP_FACTOR


def real_images(n, height, width, start=0, dtype=np.float32):
  x = np.load(SAMPLE_PATH)["x_test"][start:start + n].astype(dtype) / 255.0
  return x[:, 8:8 + height, 10:10 + width]


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.mark.parametrize("height, width, grey", [(6, 6, False), (7, 9, True)])
def test_matches_reference_float64(x64, height, width, grey):
  images = real_images(2, height, width, start=3, dtype=np.float64)
  if grey:
    images = images.mean(-1, keepdims=True)  # (N, H, W, 1): a grey batch
  hnorm = reference.hessian_norm(height, width)
  # On the grey 7x9 crops 0.2 * 110 edges = 22 is a tie, where count / m must be exact (the kernel's is;
  # XLA rewrites the scheduler's as count * (1 / m), which rounds to 0.19999999 and stops later).
  sparsities = (0.4, 0.2)
  out, info = iss_jax.smooth_path(jnp.asarray(images), sparsities, return_info=True, implementation="pallas")
  assert out.dtype == jnp.float64 and out.shape == (2,) + images.shape
  for j, sparsity in enumerate(sparsities):
    for i, img in enumerate(images):
      ref, steps, reached = reference.smooth_reference(img.reshape(height, width, -1), sparsity, hnorm=hnorm,
                                                       step_factor=SF)
      assert int(info.steps[j, i]) == steps
      np.testing.assert_allclose(float(info.sparsity[j, i]), reached, rtol=1e-6)
      np.testing.assert_allclose(np.asarray(out[j, i]).reshape(ref.shape), ref, atol=1e-9, rtol=0)


def test_equals_xla_float32_and_path_in_any_order():
  # Targets with target * m (m = 480 edges) not a whole number: at a tie the XLA scheduler's
  # count / m (rewritten by XLA as count * (1 / m)) can round below the target; the kernel's is exact.
  x = np.asarray(real_images(4, 16, 16, start=10))
  x[2] = 0.5  # constant: answered without iterating
  x = jnp.asarray(x)
  sparsities = jnp.asarray([0.33, 0.0, 0.17, 1.0, 0.27])
  out, info = iss_jax.smooth_path(x, sparsities, return_info=True, implementation="pallas")
  ref, ref_info = iss_jax.smooth_path(x, sparsities, return_info=True, implementation="xla")
  np.testing.assert_array_equal(np.asarray(info.steps), np.asarray(ref_info.steps))
  np.testing.assert_array_equal(np.asarray(info.capped), np.asarray(ref_info.capped))
  np.testing.assert_allclose(np.asarray(info.sparsity), np.asarray(ref_info.sparsity), rtol=1e-6)  # 1 ulp
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-6, rtol=0)
  assert int(info.steps[0, 0]) > 100  # it did iterate


def test_capped_images_are_flagged_and_return_the_last_step():
  x = jnp.asarray(real_images(2, 8, 8))
  out, info = iss_jax.smooth(x, 0.9, maxiter=25, return_info=True, implementation="pallas")
  assert bool(jnp.all(info.capped)) and bool(jnp.all(info.steps == 25))
  params = iss_jax.lbi_params(8, 8)
  for i in range(2):
    state = iss_jax.lbi_run(x[i], 0.9, params, maxiter=25)
    np.testing.assert_allclose(float(info.sparsity[i]), float(state.sparsity), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out[i]), np.asarray(iss_jax.project(
        state.b, iss_jax.lbi_support(state.z))), atol=1e-6, rtol=0)


def test_padding_and_shift_forms_do_not_change_results():
  # The GPU form (power-of-two padding, shifted loads from a halo buffer) and the TPU form ((8, 128)
  # padding, pltpu.roll), both in interpret mode, and the unpadded offset form, against the unpadded roll
  # form, bit for bit.
  x4 = jnp.asarray(real_images(2, 5, 7, start=20))
  params = lbi.make_params(5, 7)
  targets = jnp.asarray([[0.3, 0.1, -1.0], [0.2, 0.2, 0.35]], jnp.float32)
  run = lambda **kw: pallas_kernel.smooth_targets(x4, targets, params.kappa, params.nu, params.alpha,
                                                  jnp.int32(10_000), **kw)
  base = run(platform="cpu", how="roll")
  for kw in (dict(platform="cuda"), dict(platform="tpu"), dict(platform="cpu")):
    for a, b in zip(run(**kw), base, strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert pallas_kernel.padded_size(5, 7, "cuda") == (16, 16)
  assert pallas_kernel.padded_size(33, 9, "cuda") == (64, 16)
  assert pallas_kernel.padded_size(7, 9, "tpu") == (8, 128)


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_lowers_for_gpu_and_tpu(platform):
  # Lowering only (Triton on GPU, Mosaic on TPU), no device: catches primitives without a lowering rule.
  # Whether it then compiles and how fast it runs was not checked (no GPU/TPU was available).
  x4 = jnp.zeros((2, 7, 9, 3), jnp.float32)
  targets = jnp.zeros((2, 2), jnp.float32)
  params = lbi.make_params(7, 9)
  fn = jax.jit(lambda x, t: pallas_kernel.smooth_targets(x, t, params.kappa, params.nu, params.alpha,
                                                         jnp.int32(100), platform=platform,
                                                         interpret=False))
  text = fn.trace(x4, targets).lower(lowering_platforms=(platform,)).as_text()
  assert "iss_split_lbi" in text


def test_not_chosen_automatically_and_bad_dtype():
  from iss_jax._src import smooth as smooth_mod

  x = jnp.zeros((1, 4, 4, 1), jnp.float32)
  assert smooth_mod._resolve_implementation(None, x, "bpda") in ("auto", "xla")
  assert smooth_mod._resolve_implementation("pallas", x, "bpda") == "pallas"
  assert smooth_mod._resolve_implementation("pallas", x, "unrolled") == "xla"
  with pytest.raises(ValueError, match="float32 or float64"):
    smooth_mod._resolve_implementation("pallas", x.astype(jnp.bfloat16), "bpda")


def test_full_cifar_images_stop_at_the_cpu_kernels_step():
  # Two real 32x32x3 CIFAR-10 test images at the default sparsity (1,489 and 1,726 steps), the GPU's shift
  # form in interpret mode: the same stopping step as the CPU kernel (built with -ffp-contract=off) and
  # the XLA scheduler, and the same image to float32 rounding. Interpret mode on CPU contracts no
  # multiply-add, so equality is required here; a GPU's FMAs may move a stop by one step at an exact tie,
  # which benchmarks/bench_accelerator.py reports (count, largest difference) instead of requiring.
  x = jnp.asarray(np.load(SAMPLE_PATH)["x_test"][[4, 38]].astype(np.float32) / 255.0)
  out, info = iss_jax.smooth(x, 0.6, return_info=True, implementation="pallas")
  baselines = ["xla"] + (["cpu"] if iss_jax.cpu_kernel_available() else [])
  for impl in baselines:
    ref, ref_info = iss_jax.smooth(x, 0.6, return_info=True, implementation=impl)
    np.testing.assert_array_equal(np.asarray(info.steps), np.asarray(ref_info.steps))
    np.testing.assert_array_equal(np.asarray(info.sparsity), np.asarray(ref_info.sparsity))
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5, rtol=0)
  assert int(info.steps.min()) > 1000


def test_integer_thresholds_are_the_table_comparison(x64):
  # count >= threshold  <=>  table[count] >= target, for every count, at ties (0.2 * 110 = 22 edges of a
  # 7x9 grey crop, 0.5 * 60), between entries, at the ends, in float32 and float64.
  for height, width in ((7, 9), (6, 6), (32, 32)):
    table = pallas_kernel._fractions(height, width)
    m = lbi.num_edges(height, width)
    assert table.dtype == np.float32 and len(table) == m + 1 and np.all(np.diff(table) > 0)
    targets = np.asarray([-1.0, 0.0, 0.2, 0.5, 0.6, 1 / 3, 0.999, 1.0, float(table[7]),
                          np.nextafter(float(table[7]), 2.0)])
    for dtype in (np.float32, np.float64):
      t = targets.astype(dtype)
      thr = np.asarray(pallas_kernel.thresholds(jnp.asarray(t[None]), height, width))[0]
      counts = np.arange(m + 1)
      expected = table[None, :].astype(dtype) >= t[:, None]
      np.testing.assert_array_equal(counts[None, :] >= thr[:, None], expected)


@pytest.mark.parametrize("how", pallas_kernel.SHIFT_FORMS)
def test_no_matrix_products_in_the_kernel(how):
  # The kernel's shifts are loads at offsets or rotations: no dot_general in any form's kernel body.
  x4 = jnp.zeros((1, 7, 9, 3), jnp.float32)
  params = lbi.make_params(7, 9)
  platform = "tpu" if how == "tpu" else "cuda"
  fn = lambda x: pallas_kernel.smooth_targets(x, jnp.zeros((1, 1)), params.kappa, params.nu, params.alpha,
                                              jnp.int32(10), platform=platform, interpret=False, how=how)
  names = _primitives(jax.make_jaxpr(fn)(x4).jaxpr)
  assert "pallas_call" in names and "dot_general" not in names
  assert bool({"roll", "rotate"} & names or "concatenate" in names) == (how != "offset"), names


def _primitives(jaxpr) -> set[str]:
  """Names of the primitives of ``jaxpr`` and of every jaxpr nested in its equations' parameters."""
  names = set()
  for eqn in jaxpr.eqns:
    names.add(eqn.primitive.name)
    for value in eqn.params.values():
      for v in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(v, "jaxpr", v)
        if isinstance(inner, jax_core.Jaxpr):
          names |= _primitives(inner)
  return names


def test_images_packed_on_the_lanes_equal_one_image_per_program():
  # The TPU layout (interpret mode): images side by side on the 128 lanes, each with its own step count,
  # targets and stop (here 8 images of width 11 in 16-lane segments, 6 real ones and 2 of padding),
  # against one image per program and against the CPU roll form, bit for bit. Stops differ by image
  # (0 to ~2,500 steps), so segments are held while others step.
  x4 = jnp.asarray(real_images(6, 12, 11))
  params = lbi.make_params(12, 11)
  targets = jnp.asarray([[0.3, 0.1], [0.2, 0.35], [-1.0, 0.25], [0.4, 0.4], [0.15, 0.3], [0.33, 0.05]],
                        jnp.float32)
  run = lambda **kw: pallas_kernel.smooth_targets(x4, targets, params.kappa, params.nu, params.alpha,
                                                  jnp.int32(10_000), **kw)
  assert pallas_kernel.images_per_program(12, 11, "tpu") == (8, 16)
  assert pallas_kernel.images_per_program(32, 32, "tpu") == (4, 32)  # CIFAR-10: 4 per 128-lane tile
  assert pallas_kernel.images_per_program(32, 32, "cuda") == (1, 32)
  packed, single, roll = run(platform="tpu"), run(platform="tpu", pack=False), run(platform="cpu", how="roll")
  assert len(set(np.asarray(single[2]).ravel().tolist())) > 5
  for a, b, c in zip(packed, single, roll, strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
  # The GPU's offset form with packing (not its default) holds the same bits.
  for a, b in zip(run(platform="cpu", pack=True, how="offset"), single, strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
