"""Smoothing large images and whole datasets: the default step cap, the capped share, the sharded cache.

The sharded cache is checked against the single-process cache (the same bits) and against
``iss_jax.smooth_path`` (the library function the cache stores, rounded to uint8); the default cap against
an explicit ``maxiter``.
"""

import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax
from iss_jax.training import _train
from train.configs import fixed

REPO = Path(__file__).parents[1]
# A test image of the shipped CIFAR-10 sample whose greyscale version needs 20,000-40,000 steps to 0.6.
GREY_SLOW = 79


def _real(n, size=16, seed=0):
  """``n`` real CIFAR-10 test images (the shipped sample), cropped to ``size`` x ``size``, uint8."""
  x, _ = iss_jax.training.load_dataset("cifar10_sample", "test")
  return np.ascontiguousarray(x[seed:seed + n, :size, :size])


def _reference(x, sparsities):
  """What the cache stores: ``iss_jax.smooth_path`` of the images, rounded to uint8."""
  out = iss_jax.smooth_path(jnp.asarray(x, jnp.float32) / 255.0, jnp.asarray(sparsities, jnp.float32))
  return np.round(np.clip(np.asarray(out), 0.0, 1.0) * 255.0).astype(np.uint8)


def _files(entry: Path) -> dict:
  return {p.name: p.read_bytes() for p in sorted(entry.glob("chunk_*.npz"))}


@jax.jit
def _smooth_fn(x, sparsities):
  out, info = iss_jax.smooth_path(x, sparsities, return_info=True)
  return out, info.steps, info.capped


class _Counting:
  """The cache's default smoothing (``iss_jax.smooth_path`` at the default settings), counting the chunks
  it smooths."""

  def __init__(self):
    self.calls = 0

  def __call__(self, x, sparsities):
    self.calls += 1
    return _smooth_fn(x, sparsities)


# ------------------------------------------------------------------------------------------ default cap


def _flat(size, channels):
  """An image that never reaches sparsity 0.5: one bright pixel, every other edge has D x = 0."""
  return jnp.zeros((1, size, size, channels)).at[0, 1, 1].set(1.0)


def test_default_cap_is_20000_up_to_32x32_colour_and_grows_for_larger_images():
  steps = {}
  for size in (32, 33):
    _, info = iss_jax.smooth(_flat(size, 3), 0.5, return_info=True)
    assert bool(info.capped[0])
    steps[size] = int(info.steps[0])
  assert steps[32] == iss_jax.DEFAULT_MAXITER  # CIFAR-10 keeps its cap (and its cache keys)
  assert steps[33] > iss_jax.DEFAULT_MAXITER


def test_default_cap_lets_a_grey_image_that_needs_more_than_20000_steps_reach_its_target():
  # A real CIFAR-10 test image in greyscale (one channel: about twice the steps of colour).
  x, _ = iss_jax.training.load_dataset("cifar10_sample", "test")
  grey = x[GREY_SLOW].astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) / 255.0
  grey = jnp.asarray(np.round(grey * 255.0)[..., None] / 255.0, jnp.float32)
  _, info = iss_jax.smooth(grey, 0.6, return_info=True)
  _, old = iss_jax.smooth(grey, 0.6, maxiter=iss_jax.DEFAULT_MAXITER, return_info=True)
  assert bool(old.capped) and float(old.sparsity) < 0.6  # the former cap stopped it short
  assert not bool(info.capped) and float(info.sparsity) >= 0.6 and int(info.steps) > iss_jax.DEFAULT_MAXITER


def test_capped_share_is_reported():
  x = jnp.concatenate([_flat(8, 3), jax.random.uniform(jax.random.key(0), (3, 8, 8, 3))])
  _, info = iss_jax.smooth(x, 0.5, return_info=True)
  assert np.asarray(info.capped).tolist() == [True, False, False, False]
  assert float(info.capped_share) == np.mean(np.asarray(info.capped))
  _, path_info = iss_jax.smooth_path(x, [0.2, 0.5], return_info=True)
  np.testing.assert_array_equal(path_info.capped_share, np.mean(np.asarray(path_info.capped), axis=1))


def test_dataset_smoothing_at_the_default_cap_reports_the_capped_share_and_warns_naming_maxiter(tmp_path):
  flat = np.zeros((1, 8, 8, 3), np.uint8)
  flat[0, 1, 1] = 255  # never reaches sparsity 0.5
  x = np.concatenate([flat, np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)])
  kw = dict(batch_size=4, progress=False, return_info=True)
  with pytest.warns(UserWarning, match=r"1 images \(25%\).*maxiter=20000.*pass a larger maxiter="):
    _, info = iss_jax.training.smooth_dataset(x, [0.5], cache_dir=tmp_path / "a", **kw)
  assert info["capped"] == [1] and info["capped_share"] == [0.25]
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a cap the caller chose: reported in the info only
    _, info = iss_jax.training.smooth_dataset(x, [0.5], cache_dir=tmp_path / "b", maxiter=5000, **kw)
  assert info["capped_share"] == [0.25]


# --------------------------------------------------------------------------------------- sharded cache


def test_two_shards_equal_one_process_bit_for_bit(tmp_path):
  x = _real(16)
  kw = dict(batch_size=4, progress=False, return_info=True)
  single, _ = iss_jax.training.smooth_dataset(x, [0.3, 0.5], cache_dir=tmp_path / "one", shard=(0, 1), **kw)
  np.testing.assert_array_equal(single, _reference(x, [0.3, 0.5]))
  shared = tmp_path / "two"
  assert iss_jax.training.smooth_dataset(x, [0.3, 0.5], cache_dir=shared, shard=(0, 2), wait=False,
                                         **kw) is None  # shard 1's chunks are missing
  (entry,) = shared.glob("*/p0.3_0.5")
  assert sorted(_files(entry)) == ["chunk_00000.npz", "chunk_00002.npz"]
  assert not (entry / "complete.json").exists()
  both, info = iss_jax.training.smooth_dataset(x, [0.3, 0.5], cache_dir=shared, shard=(1, 2), wait=False,
                                               **kw)
  np.testing.assert_array_equal(both, single)
  (one_entry,) = (tmp_path / "one").glob("*/p0.3_0.5")
  # The same entry, byte for byte (one process removed its chunks, the two kept theirs).
  assert (entry / "images.npy").read_bytes() == (one_entry / "images.npy").read_bytes()
  with np.load(entry / "stats.npz") as a, np.load(one_entry / "stats.npz") as b:
    assert all(np.array_equal(a[k], b[k]) for k in ("steps", "capped"))
  assert not _files(one_entry) and sorted(_files(entry)) == [f"chunk_{i:05d}.npz" for i in range(4)]
  assert (entry / "complete.json").exists() and info["capped_share"] == [0.0, 0.0]
  assert not list(shared.rglob("*.tmp"))


def test_killed_sharded_job_resumes_with_another_process_count(tmp_path):
  x = _real(16, seed=16)
  fn = _Counting()
  kw = dict(cache_dir=tmp_path, batch_size=4, progress=False, smooth_fn=fn)
  assert iss_jax.training.smooth_dataset(x, [0.3], shard=(0, 2), max_chunks=1, **kw) is None  # killed
  assert fn.calls == 1
  for index in range(3):  # resumed by three processes: only the three missing chunks are smoothed
    out = iss_jax.training.smooth_dataset(x, [0.3], shard=(index, 3), wait=False, **kw)
  assert fn.calls == 4
  np.testing.assert_array_equal(out, _reference(x, [0.3]))


def test_a_waiting_process_smooths_the_chunks_of_a_stalled_shard(tmp_path):
  x = _real(8, seed=40)
  fn = _Counting()
  out = iss_jax.training.smooth_dataset(x, [0.3], cache_dir=tmp_path, batch_size=4, progress=False,
                                        smooth_fn=fn, shard=(0, 2), stall_s=0.2)
  assert fn.calls == 2  # its own chunk, then shard 1's after 0.2 s without a new chunk
  np.testing.assert_array_equal(out, _reference(x, [0.3]))


def test_load_false_fills_the_cache_and_returns_only_the_info(tmp_path):
  x = _real(4, seed=60)
  out, info = iss_jax.training.smooth_dataset(x, [0.3], cache_dir=tmp_path, batch_size=4, progress=False,
                                              return_info=True, load=False)
  assert out is None and info["maxiter"] == iss_jax.DEFAULT_MAXITER and len(info["mean_steps"]) == 1
  again = iss_jax.training.smooth_dataset(x, [0.3], cache_dir=tmp_path, batch_size=4, progress=False)
  np.testing.assert_array_equal(again, _reference(x, [0.3]))


def test_bad_shard(tmp_path):
  with pytest.raises(ValueError, match="shard must be"):
    iss_jax.training.smooth_dataset(_real(2), [0.5], cache_dir=tmp_path, shard=(2, 2))


# ------------------------------------------------------------------------- the job and the training run


def _training_config(cache_dir):
  config = fixed.get_config("quick")
  config.update(train_limit=16, smooth_batch_size=4, cache_dir=str(cache_dir), progress=False)
  return config


def test_shards_of_the_training_set_fill_the_entry_the_training_run_reads(tmp_path):
  config = _training_config(tmp_path)
  x_train = iss_jax.training.load_dataset(config.dataset, "train")[0][:config.train_limit]
  levels = [s for s in _train.sparsity_schedule(config) if s < 1.0]
  assert iss_jax.training.smooth_training_set(config, x_train, levels, shard=(1, 2), wait=False) is None
  _, info = iss_jax.training.smooth_training_set(config, x_train, levels, shard=(0, 2), load=False)
  images, train_info = _train._training_images(config, x_train, _train.sparsity_schedule(config))
  assert train_info["reused"] and train_info["path"] == info["path"]
  np.testing.assert_array_equal(images[0.6], _reference(x_train, [0.6])[0])


@pytest.mark.slow
def test_distributed_job_fills_the_cache_that_training_reads(tmp_path):
  """``python -m train.smooth_dataset`` on two ``jax.distributed`` processes (a SLURM step, simulated
  by its environment on this machine); the training run's smoothing then reuses the entry."""
  flags = ["--config.train_limit=16", "--config.smooth_batch_size=4", f"--config.cache_dir={tmp_path}",
           "--config.progress=false", "--config.distributed=true", "--sparsity=0.6"]
  job = str(random.randrange(1, 4000))
  procs = []
  for rank in range(2):
    env = {**os.environ, "SLURM_JOB_ID": job, "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": "2",
           "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("XLA_FLAGS", None)
    procs.append(subprocess.Popen([sys.executable, "-m", "train.smooth_dataset", *flags], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs, strict=True):
    assert p.returncode == 0, err[-2000:]
  summaries = [json.loads(out) for out, _ in outs]
  assert sorted(s["shard"] for s in summaries) == ["0/2", "1/2"] and all(s["complete"] for s in summaries)

  config = _training_config(tmp_path)
  x_train = iss_jax.training.load_dataset(config.dataset, "train")[0][:config.train_limit]
  images, info = _train._training_images(config, x_train, _train.sparsity_schedule(config))
  assert info["reused"] and info["path"] == summaries[0]["path"]
  np.testing.assert_array_equal(images[0.6], _reference(x_train, [0.6])[0])


# --------------------------------------------------------------------------------------------------
# Memory-mapped entries, chunks sized for the devices, smoothing over a mesh.


def test_entries_are_memory_mapped_from_one_atomically_written_file(tmp_path):
  from iss_jax.training import _smooth_cache as cache

  x = _real(6, size=8, seed=40)
  levels = [0.3, 0.45, 0.6]
  out = iss_jax.training.smooth_dataset(x, levels, cache_dir=tmp_path, batch_size=4, progress=False)
  assert isinstance(out, np.memmap) and not out.flags.writeable
  np.testing.assert_array_equal(out, _reference(x, levels))
  (entry,) = [p for p in tmp_path.rglob("complete.json")]
  images = entry.parent / "images.npy"
  assert images.exists() and not list(entry.parent.glob(".*.tmp"))
  # A subset of the entry's sparsities: evenly spaced ones stay a memory map (a slice), others are copied.
  one = iss_jax.training.smooth_dataset(x, [0.45], cache_dir=tmp_path, batch_size=4, progress=False)
  two = iss_jax.training.smooth_dataset(x, [0.3, 0.6], cache_dir=tmp_path, batch_size=4, progress=False)
  back = iss_jax.training.smooth_dataset(x, [0.6, 0.3], cache_dir=tmp_path, batch_size=4, progress=False)
  assert isinstance(one, np.memmap) and isinstance(two, np.memmap) and not isinstance(back, np.memmap)
  np.testing.assert_array_equal(one, out[1:2])
  np.testing.assert_array_equal(two, out[[0, 2]])
  np.testing.assert_array_equal(back, out[[2, 0]])
  # An entry written before images.npy and stats.npz existed (chunks only: as two processes leave it, less
  # those two files) is consolidated on first read, to the same bits.
  old = tmp_path / "old"
  for index in range(2):
    iss_jax.training.smooth_dataset(x, levels, cache_dir=old, batch_size=4, progress=False,
                                    shard=(index, 2), wait=False)
  (entry,) = [p for p in old.rglob("complete.json")]
  images = entry.parent / "images.npy"
  images.unlink()
  (entry.parent / "stats.npz").unlink()
  again = iss_jax.training.smooth_dataset(x, levels, cache_dir=old, batch_size=4, progress=False)
  assert images.exists()
  np.testing.assert_array_equal(again, out)
  # An interrupted consolidation leaves neither images.npy nor a temporary file.
  images.unlink()
  found = cache._Entry.find(entry.parent.parent, "t", levels)[0]

  def boom(*args, **kwargs):
    raise KeyboardInterrupt

  real_load = np.load
  try:
    np.load = boom
    with pytest.raises(KeyboardInterrupt):
      found.consolidate()
  finally:
    np.load = real_load
  assert not images.exists() and not list(entry.parent.glob(".*"))


def test_chunks_follow_the_devices():
  from types import SimpleNamespace

  from iss_jax.training import _smooth_cache as cache

  cpu = [SimpleNamespace(platform="cpu")] * 2
  assert cache.device_chunk(256, (32, 32, 3), cpu) == 256
  for platform in ("gpu", "tpu"):
    one, eight = [SimpleNamespace(platform=platform)], [SimpleNamespace(platform=platform)] * 8
    assert cache.device_chunk(256, (32, 32, 3), one) == 4096  # the scheduler's width for CIFAR-10
    assert cache.device_chunk(256, (32, 32, 3), eight) == 8 * 4096
    assert cache.device_chunk(256, (224, 224, 3), eight) == 8 * 356  # its memory budget at 224x224
    assert cache.device_chunk(50_000, (224, 224, 3), eight) == 50_000  # a larger chunk asked for stays
    assert cache.device_chunk(1001, (224, 224, 3), [SimpleNamespace(platform=platform)] * 3) == 1068


def test_a_mesh_of_two_devices_fills_the_same_entry(tmp_path):
  # Two CPU devices: each chunk smoothed over both (the training set's local_mesh) gives the bits of one.
  script = tmp_path / "mesh.py"
  script.write_text(
      "import os\n"
      "os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'\n"
      "import numpy as np, iss_jax\n"
      "from iss_jax.training import _smooth_cache as cache\n"
      "x, _ = iss_jax.training.load_dataset('cifar10_sample', 'test')\n"
      "x = np.ascontiguousarray(x[50:55, :8, :8])\n"
      "mesh = cache.local_mesh()\n"
      "assert mesh is not None and mesh.size == 2\n"
      f"a = iss_jax.training.smooth_dataset(x, [0.4, 0.7], cache_dir={str(tmp_path / 'a')!r}, batch_size=3,\n"
      "                                     progress=False, mesh=mesh)\n"
      f"b = iss_jax.training.smooth_dataset(x, [0.4, 0.7], cache_dir={str(tmp_path / 'b')!r}, batch_size=3,\n"
      "                                     progress=False)\n"
      "np.testing.assert_array_equal(a, b)\n"
      "print('ok')\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_a_completed_entry_keeps_its_images_once(tmp_path):
  """Completing an entry leaves images.npy and stats.npz, not the chunks as well; it answers as before."""
  x = _real(12, seed=3)
  kw = dict(cache_dir=tmp_path, batch_size=4, progress=False, return_info=True)
  first, info = iss_jax.training.smooth_dataset(x, [0.4], **kw)
  (entry,) = tmp_path.glob("*/p0.4")
  assert sorted(p.name for p in entry.iterdir()) == ["complete.json", "images.npy", "meta.json", "stats.npz"]
  again, info2 = iss_jax.training.smooth_dataset(x, [0.4], **kw)
  np.testing.assert_array_equal(again, first)
  np.testing.assert_array_equal(first, _reference(x, [0.4]))
  assert info2["reused"] and info2["mean_steps"] == info["mean_steps"] and info2["capped"] == info["capped"]
