"""Smoothing a whole training set once, in resumable chunks, cached on disk and reused by later runs.

Layout: ``<cache_dir>/<tag>-<data hash>-<solver hash>/p<s1>_<s2>_.../`` holds ``meta.json``, one
``chunk_XXXXX.npz`` per batch of images (written atomically, so a killed run leaves only whole chunks) and
``complete.json`` once every chunk is there. A request is answered by any complete entry of the same data
and solver settings whose sparsities include the requested ones (a 0.3..0.8 path serves a fixed 0.6 run).

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

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iss_jax._src import lbi
from iss_jax._src.io import atomic_write
from iss_jax._src.smooth import smooth_path
from iss_jax.training._data import dataset_fingerprint


def _json(obj) -> str:
  return json.dumps(obj, indent=1, sort_keys=True)


SmoothFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]


@functools.lru_cache(maxsize=8)
def _default_smooth_fn(kappa, nu, step_factor, maxiter) -> SmoothFn:
  """Jitted :func:`iss_jax.smooth_path` with these settings; one per settings, so that repeated calls (the
  processes' shards, a resume, tests) compile once per shape."""

  @jax.jit
  def fn(x, sparsities):
    out, info = smooth_path(x, sparsities, kappa=kappa, nu=nu, step_factor=step_factor,
                            maxiter=maxiter, return_info=True)
    return out, info.steps, info.capped

  return fn


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


def _chunk_path(entry: Path, i: int) -> Path:
  return entry / f"chunk_{i:05d}.npz"


def _entry_info(entry: Path, n: int, *, load: bool = True) -> tuple[np.ndarray | None, dict]:
  """The images of a complete entry (``None`` without ``load``: only the steps and flags are read) and
  its info: mean / max LBI steps, capped count and share per sparsity."""
  meta = json.loads((entry / "meta.json").read_text())
  keys = ("images", "steps", "capped") if load else ("steps", "capped")
  parts = {k: [] for k in keys}
  for i in range(meta["num_chunks"]):
    with np.load(_chunk_path(entry, i)) as chunk:  # an npz reads only the arrays asked for
      for k in keys:
        parts[k].append(chunk[k])
  arrays = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
  if arrays["steps"].shape[1] != n:
    raise ValueError(f"{entry}: cache holds {arrays['steps'].shape[1]} images, expected {n}; delete it.")
  steps, capped = arrays["steps"], arrays["capped"]
  info = {"sparsities": meta["sparsities"], "mean_steps": steps.mean(axis=1).tolist(),
          "max_steps": steps.max(axis=1).tolist(), "capped": capped.sum(axis=1).tolist(),
          "capped_share": capped.mean(axis=1).tolist(), "maxiter": meta["settings"]["maxiter"],
          "path": str(entry)}
  return arrays.get("images"), info


_PER_SPARSITY = ("mean_steps", "max_steps", "capped", "capped_share")
# smooth_dataset left at the default maxiter warns when more than this share of the images hit it.
_CAPPED_WARN_SHARE = 0.05


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


def smooth_dataset(x: np.ndarray, sparsities: Sequence[float], *, cache_dir: str | os.PathLike = "cache",
                   tag: str = "data", batch_size: int = 128, kappa: float = lbi.DEFAULT_KAPPA,
                   nu: float = lbi.DEFAULT_NU, step_factor: float = lbi.DEFAULT_STEP_FACTOR,
                   maxiter: int | None = None, smooth_fn: SmoothFn | None = None,
                   max_chunks: int | None = None, progress: bool = True,
                   return_info: bool = False, shard: tuple[int, int] | None = None, wait: bool = True,
                   stall_s: float | None = None, load: bool = True):
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
    load: read the smoothed images back; ``False`` returns None in their place (a smoothing job that only
      fills the cache; with ``return_info``, ``(None, info)``).

  Returns:
    uint8 ``(P, N, H, W, C)`` in the order of ``sparsities`` (and the info dict with ``return_info``); None
    when ``max_chunks`` stopped the run early or (``wait=False``) other shards are not done.

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

  def finish(entry, idx=None, reused=True):
    images, info = _entry_info(entry, n, load=load)
    if idx is not None:
      info = {**info, "sparsities": want, **{k: [info[k][i] for i in idx] for k in _PER_SPARSITY}}
      images = None if images is None else images[idx]
    info["reused"] = reused
    if default_cap:
      _warn_if_mass_capped(info, tag)
    return (images, info) if return_info else images

  # 1. Any complete entry covering the request.
  if root.is_dir():
    for entry in sorted(root.iterdir()):
      if (entry / "complete.json").exists():
        meta = json.loads((entry / "meta.json").read_text())
        idx = _covers(meta["sparsities"], want)
        if idx is not None:
          return finish(entry, idx)

  # 2. Compute (or resume) the entry for exactly these sparsities.
  entry = root / _tag_of(want)
  entry.mkdir(parents=True, exist_ok=True)
  meta_path = entry / "meta.json"
  if meta_path.exists():
    meta = json.loads(meta_path.read_text())
    batch_size = meta["batch_size"]
  else:  # every process writes the same file, atomically
    meta = {"sparsities": want, "batch_size": batch_size, "num_images": n,
            "num_chunks": -(-n // batch_size), "settings": settings, "shape": list(x.shape)}
    atomic_write(meta_path, _json({**meta, "root": str(root)}))
  num_chunks = meta["num_chunks"]
  fn = smooth_fn or _default_smooth_fn(kappa, nu, step_factor, maxiter)
  targets = jnp.asarray(want, jnp.float32)
  size = lambda i: min(batch_size, n - i * batch_size)
  missing = lambda: [i for i in range(num_chunks) if not _chunk_path(entry, i).exists()]
  shard_note = f" (shard {index + 1}/{count})" if count > 1 else ""
  bar = tqdm(total=n, desc=f"smoothing {tag} at {want}{shard_note}", unit="img", disable=not progress,
             initial=n - sum(size(i) for i in missing()))
  computed, chunk_s, capped_here = 0, 0.0, 0

  def compute(chunks) -> bool:
    """Smooths the chunks not yet on disk; False when ``max_chunks`` stopped it."""
    nonlocal computed, chunk_s, capped_here
    for i in chunks:
      if _chunk_path(entry, i).exists():  # written meanwhile by another process
        continue
      if max_chunks is not None and computed >= max_chunks:
        return False
      t0 = time.perf_counter()
      xb = x[i * batch_size:(i + 1) * batch_size]
      m = xb.shape[0]
      if m < batch_size:  # pad with constant images (answered without iterating): one compiled shape.
        xb = np.concatenate([xb, np.zeros((batch_size - m,) + xb.shape[1:], xb.dtype)])
      images, steps, capped = fn(jnp.asarray(xb, jnp.float32) / 255.0, targets)
      images = np.asarray(jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0).astype(jnp.uint8))[:, :m]
      steps, capped = np.asarray(steps)[:, :m], np.asarray(capped)[:, :m]
      atomic_write(_chunk_path(entry, i),
                   lambda f, a=images, s=steps, c=capped: np.savez(f, images=a, steps=s, capped=c))
      computed += 1
      chunk_s = max(chunk_s, time.perf_counter() - t0)
      capped_here += int(capped.any(axis=0).sum())
      bar.update(m)
      bar.set_postfix(capped=capped_here, refresh=False)
    return True

  if not compute([i for i in missing() if i % count == index]):
    bar.close()
    return None
  # 3. The other shards' chunks: written by the other processes, or here when they stall.
  left = missing()
  if left and not wait:
    bar.close()
    return None
  stall = stall_s if stall_s is not None else max(60.0, 3 * chunk_s)
  last_change = time.monotonic()
  while left:
    time.sleep(min(10.0, max(stall, 0.0) / 20))
    now_left = [i for i in left if not _chunk_path(entry, i).exists()]  # chunks are never removed
    if len(now_left) < len(left):
      bar.update(sum(size(i) for i in left if i not in now_left))
      last_change = time.monotonic()
    left = now_left
    if left and time.monotonic() - last_change >= stall:
      bar.set_postfix_str(f"no new chunk for {stall:.0f} s: smoothing {len(left)} here")
      if not compute(left):
        bar.close()
        return None
      left = missing()
  bar.close()
  atomic_write(entry / "complete.json", _json({"num_images": n}))
  return finish(entry, reused=computed == 0)


def smooth_training_set(config, x_train: np.ndarray, sparsities: Sequence[float], **kwargs):
  """:func:`smooth_dataset` of a training run's images, keyed exactly as ``train_and_evaluate`` keys them.

  The cache entry depends on the data and on ``config``'s dataset name, ``cache_dir``,
  ``smooth_batch_size`` and solver fields (``kappa``, ``nu``, ``step_factor``, ``maxiter``); a smoothing
  job (``python -m train.smooth_dataset``) that calls this with the training config fills the entry the
  training run then reads.

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
      batch_size=config.smooth_batch_size, kappa=config.kappa, nu=config.nu,
      step_factor=config.step_factor, maxiter=config.maxiter or None, progress=config.progress,
      return_info=True,
      **kwargs)
