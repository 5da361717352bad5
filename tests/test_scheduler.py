"""The XLA scheduler's shape (slots, chunk, compaction) follows platform and batch, never the results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sample_data import SAMPLE_PATH

import iss_jax
from iss_jax._src import smooth as smooth_mod


def real_images(n, size, start=0):
  x = np.load(SAMPLE_PATH)["x_test"][start:start + n].astype(np.float32) / 255.0
  return x[:, 8:8 + size, 10:10 + size]


def test_cpu_shape_is_the_tuned_default():
  shape = smooth_mod._schedule_shape(1000, (32, 32, 3), 4, "cpu")
  assert shape == smooth_mod.ScheduleShape(chunk=32, widths=(32, 4, 1))
  assert smooth_mod._schedule_shape(5, (32, 32, 3), 4, "cpu").widths == (5, 1)
  assert smooth_mod._schedule_shape(1, (32, 32, 3), 4, "cpu").widths == (1,)


@pytest.mark.parametrize("platform", ["cuda", "rocm", "tpu"])
def test_accelerator_shape_follows_batch_and_memory(platform):
  big = smooth_mod._schedule_shape(50_000, (32, 32, 3), 4, platform)
  assert big.widths[0] == 4096 and big.widths[-1] == 256 and big.chunk == 64
  assert smooth_mod._schedule_shape(1000, (32, 32, 3), 4, platform).widths[0] == 1000  # the whole batch
  large = smooth_mod._schedule_shape(50_000, (224, 224, 3), 4, platform)
  per_slot = 10 * 224 * 224 * 3 * 4
  assert large.widths[0] * per_slot <= 2 * 2**30 < (large.widths[0] + 1) * per_slot
  for shape in (big, large, smooth_mod._schedule_shape(3, (8, 8, 1), 8, platform)):
    assert list(shape.widths) == sorted(set(shape.widths), reverse=True) and shape.widths[-1] >= 1


def test_shape_does_not_change_results(monkeypatch):
  x = real_images(7, 12)
  x[3] = 0.25  # constant: answered without iterating
  x = jnp.asarray(x)
  sparsities = jnp.asarray([0.5, 0.2, 1.0, 0.35])
  outs, used = [], []
  for chunk, widths in [(32, (7, 1)), (3, (4, 2, 1)), (50, (2,))]:
    shape = smooth_mod.ScheduleShape(chunk=chunk, widths=widths)
    monkeypatch.setattr(smooth_mod, "_schedule_shape", lambda *args, shape=shape: used.append(shape) or shape)
    smooth_mod._smooth_core.clear_cache()  # the shape is chosen at trace time
    outs.append(iss_jax.smooth_path(x, sparsities, return_info=True, implementation="xla"))
  assert len(set(used)) == 3
  (ref, ref_info), *others = outs
  for out, info in others:
    np.testing.assert_array_equal(np.asarray(info.steps), np.asarray(ref_info.steps))
    np.testing.assert_array_equal(np.asarray(info.sparsity), np.asarray(ref_info.sparsity))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def full_images(indices):
  return np.load(SAMPLE_PATH)["x_test"][np.asarray(indices)].astype(np.float32) / 255.0


def _xla_smooth(x):
  smooth_mod._smooth_core.clear_cache()  # _UNROLL is read at trace time
  return iss_jax.smooth(x, 0.6, return_info=True, implementation="xla")


def test_steps_per_loop_iteration_do_not_change_results(monkeypatch):
  # Real 32x32 CIFAR-10 images at the default sparsity: one or two steps per iteration of the step loop,
  # with a chunk that two does not divide, give the same stopping steps and the same images, bit for bit.
  x = jnp.asarray(full_images([4, 28, 38]))  # 1,489 to 1,726 steps each
  runs = []
  for unroll, chunk in [(1, 32), (2, 7)]:
    monkeypatch.setattr(smooth_mod, "_UNROLL", unroll)
    monkeypatch.setattr(smooth_mod, "_CHUNK", chunk)
    runs.append(_xla_smooth(x))
  (ref, ref_info), *others = runs
  assert int(ref_info.steps.min()) > 100 and not bool(ref_info.capped.any())
  for out, info in others:
    np.testing.assert_array_equal(np.asarray(info.steps), np.asarray(ref_info.steps))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def test_step_loop_holds_no_copy_of_z(monkeypatch):
  # The optimised HLO of the XLA scheduler on CPU: no step loop copies the (2, H, W, C, slots) z buffer.
  # With one step per iteration XLA does copy it (b's update reads z_k and z_{k+1}): the check can fail.
  from benchmarks.bench_accelerator import step_loop_copies

  x = jnp.asarray(full_images(range(8)))
  counts = {}
  for unroll in (1, 2):
    monkeypatch.setattr(smooth_mod, "_UNROLL", unroll)
    smooth_mod._smooth_core.clear_cache()
    fn = lambda x: iss_jax.smooth(x, 0.6, implementation="xla")  # noqa: E731
    hlo = jax.jit(fn).lower(x).compile().as_text()
    loops = step_loop_copies(hlo, (2, 32, 32, 3), step_rsqrt=1)
    assert len(loops) == len(smooth_mod._schedule_shape(8, (32, 32, 3), 4, "cpu").widths), loops
    assert all(lp["steps_in_body"] == unroll for lp in loops), loops
    counts[unroll] = [lp["z_copies"] for lp in loops]
  assert all(c == 0 for c in counts[2]), counts
  assert all(c >= 1 for c in counts[1]), counts
