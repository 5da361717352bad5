"""Smoothing a whole training set once, in resumable chunks, cached on disk and reused by later runs.

Layout: ``<cache_dir>/<tag>-<data hash>-<solver hash>/p<s1>_<s2>_.../`` holds ``meta.json``, one
``chunk_XXXXX.npz`` per batch of images (written atomically, so a killed run leaves only whole chunks) and
``complete.json`` once every chunk is there. Completing an entry writes its images into one memory-mapped
``images.npy`` and the solver's per-image steps into ``stats.npz``, then (in a single process) removes the
chunks, so that a finished entry takes the disk of its images once. A request is answered by any complete
entry of the same data and solver settings whose sparsities include the requested ones (a 0.3..0.8 path
serves a fixed 0.6 run).

Storage: smoothed images are stored as **uint8** after ``round(255 * clip(y, 0, 1))``. Each smoothed pixel
is a component mean of ``b``; rounding adds at most 1/510 per pixel, the same quantisation as the original
uint8 images (vanilla training sees exactly that grid too), and takes 1 byte per value instead of 4.

Several processes (``jax.distributed``, or independent jobs given ``shard=(i, n)``) fill one entry
together: chunk ``c`` belongs to shard ``c % n``; each process smooths its own missing chunks, then waits
for the others' (a shared ``cache_dir``), smoothing itself any that stop arriving (a dead process, or a
cache folder that is not shared), so that every process ends with the whole entry. Chunks depend only on
the images in them, so the entry is the same file for file whatever the number of processes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iss_jax._src import lbi
from iss_jax._src.io import atomic_path, atomic_write
from iss_jax._src.smooth import _schedule_shape, smooth_path
from iss_jax.training._data import dataset_fingerprint


def _json(obj) -> str:
  return json.dumps(obj, indent=1, sort_keys=True)


SmoothFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]


@functools.lru_cache(maxsize=8)
def _default_smooth_fn(kappa, nu, step_factor, maxiter, mesh=None) -> SmoothFn:
  """Jitted :func:`iss_jax.smooth_path` with these settings (over ``mesh``'s devices when given); one per
  settings, so that repeated calls (the processes' shards, a resume, tests) compile once per shape."""

  @jax.jit
  def fn(x, sparsities):
    out, info = smooth_path(x, sparsities, kappa=kappa, nu=nu, step_factor=step_factor,
                            maxiter=maxiter, return_info=True, mesh=mesh)
    return out, info.steps, info.capped

  return fn


def local_mesh() -> jax.sharding.Mesh | None:
  """A one-axis mesh of this process's devices, or None for a single device."""
  devices = jax.local_devices()
  return jax.sharding.Mesh(np.asarray(devices), ("data",)) if len(devices) > 1 else None


def device_chunk(batch_size: int, image_shape: Sequence[int], devices: Sequence | None = None) -> int:
  """Images per cache chunk on ``devices`` (default: this process's): ``batch_size`` on CPU; on GPU/TPU
  at least the device count times the XLA scheduler's width for the image (4,096 CIFAR-10 images per
  device, 356 at 224x224x3), rounded up to a multiple of the device count.

  Why. A chunk is one call, and a call lasts as long as its slowest image. With 256-image chunks on one
  device, 82% of CIFAR-10 chunks hold an image that runs to the step cap, so nearly every call lasts
  20,000 steps with most slots idle; a chunk as wide as the scheduler keeps every slot busy (a straggler
  holds one slot, not the call) and the devices each smooth their own share (``mesh``).
  """
  devices = list(jax.local_devices() if devices is None else devices)
  platform = devices[0].platform
  if platform == "cpu":
    return batch_size
  width = _schedule_shape(1 << 30, tuple(image_shape), 4, platform).widths[0]
  chunk = max(batch_size, len(devices) * width)
  return -(-chunk // len(devices)) * len(devices)


def _tag_of(sparsities) -> str:
  return "p" + "_".join(f"{s:g}" for s in sparsities)


def _covers(have: Sequence[float], want: Sequence[float]) -> list[int] | None:
  idx = []
  for s in want:
    hits = [i for i, h in enumerate(have) if abs(h - s) < 1e-6]
    if not hits:
      return None
    idx.append(hits[0])
  return idx


_PER_SPARSITY = ("mean_steps", "max_steps", "capped", "capped_share")
# smooth_dataset left at the default maxiter warns when more than this share of the images hit it.
_CAPPED_WARN_SHARE = 0.05


class _Entry(NamedTuple):
  """One cache entry: the folder ``<root>/p<s1>_<s2>_...`` of one smoothing run over a whole image set.

  It holds ``meta.json`` (the sparsities, chunk size, image count, solver settings), one
  ``chunk_XXXXX.npz`` per chunk of ``batch_size`` images (``images`` uint8 ``(P, B, H, W, C)``, ``steps``
  and ``capped`` ``(P, B)``) and, once every chunk is there, ``images.npy`` ``(P, N, H, W, C)``,
  ``stats.npz`` (``steps``, ``capped`` ``(P, N)``) and ``complete.json``; the chunks are then removed
  when one process filled the entry (with several, another may still be reading them: they stay).
  """

  path: Path
  tag: str  # readable name of the image set, for messages
  meta: dict

  @classmethod
  def find(cls, root: Path, tag: str, want: Sequence[float]) -> tuple[_Entry, list[int]] | None:
    """A complete entry of ``root`` whose sparsities include ``want``, and their indices in it."""
    if root.is_dir():
      for path in sorted(root.iterdir()):
        if (path / "complete.json").exists():
          entry = cls(path, tag, json.loads((path / "meta.json").read_text()))
          idx = _covers(entry.meta["sparsities"], want)
          if idx is not None:
            return entry, idx
    return None

  @classmethod
  def open(cls, root: Path, tag: str, meta: dict) -> _Entry:
    """The entry of ``meta["sparsities"]`` under ``root``, created with ``meta`` or resumed (with the
    chunk size it was created with)."""
    path = root / _tag_of(meta["sparsities"])
    path.mkdir(parents=True, exist_ok=True)
    meta_path = path / "meta.json"
    if meta_path.exists():
      return cls(path, tag, json.loads(meta_path.read_text()))
    atomic_write(meta_path, _json({**meta, "root": str(root)}))  # every process writes the same file
    return cls(path, tag, meta)

  def chunk_file(self, i: int) -> Path:
    return self.path / f"chunk_{i:05d}.npz"

  def chunk_size(self, i: int) -> int:
    b = self.meta["batch_size"]
    return min(b, self.meta["num_images"] - i * b)

  def missing(self, chunks: Sequence[int] | None = None) -> list[int]:
    """The chunks (of ``chunks``, default all) not on disk yet; chunks are never removed."""
    chunks = range(self.meta["num_chunks"]) if chunks is None else chunks
    return [i for i in chunks if not self.chunk_file(i).exists()]

  def write_chunk(self, i: int, images: np.ndarray, steps: np.ndarray, capped: np.ndarray) -> None:
    atomic_write(self.chunk_file(i), lambda f: np.savez(f, images=images, steps=steps, capped=capped))

  def mark_complete(self, prune: bool) -> None:
    """Writes ``images.npy``, ``stats.npz`` and ``complete.json`` (in that order: a reader that sees
    ``complete.json`` finds both), then with ``prune`` removes the chunks."""
    self.consolidate()
    stats = self.path / "stats.npz"
    if not stats.exists():
      arrays = self._chunk_stats()
      atomic_write(stats, lambda f: np.savez(f, **arrays))
    atomic_write(self.path / "complete.json", _json({"num_images": self.meta["num_images"]}))
    if prune:
      for i in range(self.meta["num_chunks"]):
        self.chunk_file(i).unlink(missing_ok=True)

  def _chunk_stats(self) -> dict:
    parts = {k: [] for k in ("steps", "capped")}
    for i in range(self.meta["num_chunks"]):
      with np.load(self.chunk_file(i)) as chunk:  # an npz reads only the arrays asked for
        for k in parts:
          parts[k].append(chunk[k])
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}

  def images_file(self) -> Path:
    return self.path / "images.npy"

  def consolidate(self) -> None:
    """Writes every chunk's images into one ``images.npy`` ``(P, N, H, W, C)`` uint8, atomically (a
    temporary file filled through a memory map, then renamed), so that readers memory-map it instead of
    holding the whole set in RAM. Chunk by chunk: never more than one chunk in memory."""
    if self.images_file().exists():
      return
    shape = (len(self.meta["sparsities"]), self.meta["num_images"], *self.meta["shape"][1:])
    b = self.meta["batch_size"]
    with atomic_path(self.images_file()) as tmp:
      out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))
      for i in range(self.meta["num_chunks"]):
        with np.load(self.chunk_file(i)) as chunk:
          out[:, i * b:i * b + self.chunk_size(i)] = chunk["images"]
      out.flush()
      del out

  def read(self, n: int, *, load: bool = True) -> tuple[np.ndarray | None, dict]:
    """The images of the complete entry, memory-mapped read-only from ``images.npy`` (written first if an
    older entry lacks it; ``None`` without ``load``), and its info: mean / max LBI steps, capped count
    and share per sparsity."""
    stats = self.path / "stats.npz"
    if stats.exists():
      with np.load(stats) as f:
        arrays = {k: f[k] for k in ("steps", "capped")}
    else:  # an entry completed before stats.npz existed
      arrays = self._chunk_stats()
    if load:
      self.consolidate()
      arrays["images"] = np.load(self.images_file(), mmap_mode="r")
    if arrays["steps"].shape[1] != n:
      raise ValueError(f"{self.path}: cache holds {arrays['steps'].shape[1]} images, expected {n}; delete "
                       "it.")
    steps, capped = arrays["steps"], arrays["capped"]
    info = {"sparsities": self.meta["sparsities"], "mean_steps": steps.mean(axis=1).tolist(),
            "max_steps": steps.max(axis=1).tolist(), "capped": capped.sum(axis=1).tolist(),
            "capped_share": capped.mean(axis=1).tolist(), "maxiter": self.meta["settings"]["maxiter"],
            "path": str(self.path)}
    return arrays.get("images"), info


def _select(images: np.ndarray, idx: list[int]) -> np.ndarray:
  """``images[idx]`` along the sparsity axis; a slice (still memory-mapped, nothing read) when ``idx`` is
  evenly spaced and increasing, as a single sparsity or a schedule's consecutive levels are."""
  steps = {b - a for a, b in zip(idx, idx[1:], strict=False)}
  if len(steps) <= 1 and min(steps, default=1) > 0:
    step = steps.pop() if steps else 1
    return images[idx[0]:idx[-1] + 1:step]
  return images[idx]


def _warn_if_mass_capped(info: dict, tag: str) -> None:
  shares = info["capped_share"]
  worst = int(np.argmax(shares))
  if shares[worst] > _CAPPED_WARN_SHARE:
    warnings.warn(
        f"smoothing {tag}: {info['capped'][worst]} images ({100 * shares[worst]:.0f}%) stopped at the "
        f"default step cap maxiter={info['maxiter']} before sparsity {info['sparsities'][worst]:g}; pass a "
        "larger maxiter= to smooth them to the target.", stacklevel=3)


def _resolve_shard(shard) -> tuple[int, int]:
  if shard is None:
    return jax.process_index(), jax.process_count()
  index, count = (int(v) for v in shard)
  if not 0 <= index < count:
    raise ValueError(f"shard must be (index, count) with 0 <= index < count; got {tuple(shard)}.")
  return index, count


class _Filler:
  """Smooths the missing chunks of an entry, one jitted call and one file each, and shows the progress."""

  def __init__(self, entry: _Entry, x: np.ndarray, fn: SmoothFn, targets: jax.Array,
               max_chunks: int | None, bar):
    self.entry, self.x, self.fn, self.targets, self.max_chunks, self.bar = (
        entry, x, fn, targets, max_chunks, bar)
    self.computed, self.slowest_s, self.capped = 0, 0.0, 0

  def fill(self, chunks: Sequence[int]) -> bool:
    """Smooths those of ``chunks`` not yet on disk; False when ``max_chunks`` stopped it."""
    b = self.entry.meta["batch_size"]
    for i in chunks:
      if self.entry.chunk_file(i).exists():  # written meanwhile by another process
        continue
      if self.max_chunks is not None and self.computed >= self.max_chunks:
        return False
      t0 = time.perf_counter()
      xb = self.x[i * b:(i + 1) * b]
      m = xb.shape[0]
      if m < b:  # pad with constant images (answered without iterating): one compiled shape.
        xb = np.concatenate([xb, np.zeros((b - m,) + xb.shape[1:], xb.dtype)])
      images, steps, capped = self.fn(jnp.asarray(xb, jnp.float32) / 255.0, self.targets)
      images = np.asarray(jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0).astype(jnp.uint8))[:, :m]
      steps, capped = np.asarray(steps)[:, :m], np.asarray(capped)[:, :m]
      self.entry.write_chunk(i, images, steps, capped)
      self.computed += 1
      self.slowest_s = max(self.slowest_s, time.perf_counter() - t0)
      self.capped += int(capped.any(axis=0).sum())
      self.bar.update(m)
      self.bar.set_postfix(capped=self.capped, refresh=False)
    return True

  def wait_for_the_others(self, stall_s: float | None) -> bool:
    """Waits until every chunk is on disk, smoothing here those that stop arriving for ``stall_s``
    seconds (default: three times the slowest chunk here, at least 60 s); False when ``max_chunks``
    stopped it."""
    stall = stall_s if stall_s is not None else max(60.0, 3 * self.slowest_s)
    left = self.entry.missing()
    last_change = time.monotonic()
    while left:
      time.sleep(min(10.0, max(stall, 0.0) / 20))
      now_left = self.entry.missing(left)
      if len(now_left) < len(left):
        self.bar.update(sum(self.entry.chunk_size(i) for i in left if i not in now_left))
        last_change = time.monotonic()
      left = now_left
      if left and time.monotonic() - last_change >= stall:
        self.bar.set_postfix_str(f"no new chunk for {stall:.0f} s: smoothing {len(left)} here")
        if not self.fill(left):
          return False
        left = self.entry.missing()
    return True


def smooth_dataset(x: np.ndarray, sparsities: Sequence[float], *, cache_dir: str | os.PathLike = "cache",
                   tag: str = "data", batch_size: int = 128, kappa: float = lbi.DEFAULT_KAPPA,
                   nu: float = lbi.DEFAULT_NU, step_factor: float = lbi.DEFAULT_STEP_FACTOR,
                   maxiter: int | None = None, smooth_fn: SmoothFn | None = None,
                   max_chunks: int | None = None, progress: bool = True,
                   return_info: bool = False, shard: tuple[int, int] | None = None, wait: bool = True,
                   stall_s: float | None = None, load: bool = True, mesh=None):
  """Smooths every image of ``x`` at every sparsity (one :func:`iss_jax.smooth_path` run), with a disk cache.

  Args:
    x: uint8 images ``(N, H, W, C)``.
    sparsities: the targets, e.g. ``[0.6]`` or the iterative schedule ``[0.3, 0.4, ..., 0.8]``; all come
      from one LBI run per image.
    cache_dir: cache root (default ``cache/``); shared by every process of a multi-process run.
    tag: readable prefix of the cache entry (e.g. the dataset name); the key itself is a content hash of
      ``x`` and the solver settings, so a tag never causes a stale hit.
    batch_size: images per chunk (one jitted call and one file each; the last chunk is padded with
      constant images, which are answered without iterating).
    kappa, nu, step_factor, maxiter: solver settings of :func:`iss_jax.smooth` (part of the key).
      ``maxiter`` ``None`` (default): the default cap of :func:`iss_jax.smooth` for the image size (20,000
      at 32x32 in colour, 53,000 at 224x224), resolved before keying (a 32x32 colour cache keyed with
      20,000 is found); a run left at it warns when more than 5% of the images hit it.
    smooth_fn: ``fn(x_float (B, H, W, C), sparsities (P,)) -> (images (P, B, H, W, C), steps (P, B),
      capped (P, B))``; default: jitted :func:`iss_jax.smooth_path` with the settings above.
    max_chunks: compute at most this many new chunks, then return None (for tests of resuming).
    progress: show a tqdm bar.
    return_info: also return a dict (cache path, mean / max LBI steps, number and share of the images
      that hit ``maxiter``, per sparsity).
    shard: ``(index, count)``: this process smooths the chunks ``c`` with ``c % count == index``.
      ``None`` (default): ``(jax.process_index(), jax.process_count())``, so that the processes of a
      ``jax.distributed`` run share the work (one process: every chunk).
    wait: after its own chunks, wait for the other shards' chunks to appear in ``cache_dir`` (smoothing
      any that stall itself) and finish the entry; ``False``: return None while other shards' chunks are
      missing (independent jobs; whichever finds the entry whole finishes it).
    stall_s: seconds without a new chunk after which a waiting process smooths the missing chunks itself;
      ``None``: three times its own slowest chunk, at least 60 s.
    load: read the smoothed images back (memory-mapped, read-only: ``images.npy`` of the entry, so a
      large set is paged in as training reads it, never held whole in RAM); ``False`` returns None in
      their place (a smoothing job that only fills the cache; with ``return_info``, ``(None, info)``).
    mesh: a ``jax.sharding.Mesh``: each chunk is smoothed over all its devices (``iss_jax.smooth``'s
      ``mesh``; results are the same). ``None``: one device.

  Returns:
    uint8 ``(P, N, H, W, C)`` in the order of ``sparsities``, a read-only memory map (a copy in RAM when
    the requested sparsities are not evenly spaced in the entry), and the info dict with ``return_info``;
    None when ``max_chunks`` stopped the run early or (``wait=False``) other shards are not done.

  Raises:
    ValueError: ``x`` not uint8 NHWC, bad sparsities, batch size or shard.

  Examples:
    >>> import numpy as np, iss_jax
    >>> x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    >>> import tempfile
    >>> out = iss_jax.training.smooth_dataset(x, [0.5], cache_dir=tempfile.mkdtemp(), progress=False)
    >>> out.shape, out.dtype
    ((1, 4, 8, 8, 3), dtype('uint8'))
  """
  x = np.asarray(x)
  if x.dtype != np.uint8 or x.ndim != 4:
    raise ValueError(f"x must be uint8 images (N, H, W, C); got {x.dtype} with shape {x.shape}.")
  want = [float(s) for s in np.atleast_1d(np.asarray(sparsities, np.float64))]
  if not want or any(not 0.0 <= s <= 1.0 for s in want):
    raise ValueError(f"sparsities must be a non-empty list of values in [0, 1]; got {sparsities}.")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
  index, count = _resolve_shard(shard)
  default_cap = maxiter is None
  if default_cap:
    maxiter = lbi.default_maxiter(*x.shape[1:])
  n = x.shape[0]
  settings = {"kappa": float(kappa), "nu": float(nu), "step_factor": float(step_factor),
              "maxiter": int(maxiter), "storage": "uint8-round", "custom_fn": smooth_fn is not None}
  solver_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
  root = Path(cache_dir) / f"{tag.replace(':', '_').replace('/', '_')}-{dataset_fingerprint(x)}-{solver_hash}"

  def answer(entry: _Entry, idx: list[int] | None = None, reused: bool = True):
    images, info = entry.read(n, load=load)
    if idx is not None:
      info = {**info, "sparsities": want, **{k: [info[k][i] for i in idx] for k in _PER_SPARSITY}}
      images = None if images is None else _select(images, idx)
    info["reused"] = reused
    if default_cap:
      _warn_if_mass_capped(info, tag)
    return (images, info) if return_info else images

  # 1. Any complete entry covering the request.
  found = _Entry.find(root, tag, want)
  if found is not None:
    return answer(*found)

  # 2. Compute (or resume) the entry for exactly these sparsities: this shard's chunks, then the others'.
  entry = _Entry.open(root, tag, {"sparsities": want, "batch_size": batch_size, "num_images": n,
                                  "num_chunks": -(-n // batch_size), "settings": settings,
                                  "shape": list(x.shape)})
  shard_note = f" (shard {index + 1}/{count})" if count > 1 else ""
  with tqdm(total=n, desc=f"smoothing {tag} at {want}{shard_note}", unit="img", disable=not progress,
            initial=n - sum(entry.chunk_size(i) for i in entry.missing())) as bar:
    filler = _Filler(entry, x, smooth_fn or _default_smooth_fn(kappa, nu, step_factor, maxiter, mesh),
                     jnp.asarray(want, jnp.float32), max_chunks, bar)
    if not filler.fill([i for i in entry.missing() if i % count == index]):
      return None
    if entry.missing() and not wait:
      return None
    if not filler.wait_for_the_others(stall_s):
      return None
  entry.mark_complete(prune=count == 1)
  return answer(entry, reused=filler.computed == 0)


def smooth_training_set(config, x_train: np.ndarray, sparsities: Sequence[float], **kwargs):
  """:func:`smooth_dataset` of a training run's images, keyed exactly as ``train_and_evaluate`` keys them.

  The cache entry depends on the data and on ``config``'s dataset name, ``cache_dir``,
  ``smooth_batch_size`` and solver fields (``kappa``, ``nu``, ``step_factor``, ``maxiter``); a smoothing
  job (``python -m train.smooth_dataset``) that calls this with the training config fills the entry the
  training run then reads. Sized for the devices: the chunks are :func:`device_chunk` (``smooth_batch_size``
  on CPU, the scheduler's width times the device count on GPU/TPU) and each is smoothed over all of this
  process's devices (:func:`local_mesh`).

  Args:
    config: a training ``ConfigDict`` (``train/configs/<procedure>.py:get_config()``).
    x_train: uint8 ``(N, H, W, C)``: the training images as ``train_and_evaluate`` loads them.
    sparsities: the smoothing levels of the schedule (those below 1).
    **kwargs: further arguments of :func:`smooth_dataset` (``shard``, ``wait``, ``load``, ``stall_s``).

  Returns:
    ``(images, info)`` as :func:`smooth_dataset` with ``return_info=True``.
  """
  return smooth_dataset(
      x_train, sparsities, cache_dir=config.cache_dir, tag=f"{config.dataset}-train-{x_train.shape[0]}",
      batch_size=device_chunk(config.smooth_batch_size, x_train.shape[1:]), kappa=config.kappa,
      nu=config.nu, step_factor=config.step_factor, maxiter=config.maxiter or None,
      progress=config.progress, return_info=True, mesh=local_mesh(), **kwargs)
