"""Smoothing a whole training set once, in resumable chunks, cached on disk and reused by later runs.

Layout: ``<cache_dir>/<tag>-<data hash>-<solver hash>/p<s1>_<s2>_.../`` holds ``meta.json``, one
``chunk_XXXXX.npz`` per batch of images (written atomically, so a killed run leaves only whole chunks) and
``complete.json`` once every chunk is there. A request is answered by any complete entry of the same data
and solver settings whose sparsities include the requested ones (a 0.3..0.8 path serves a fixed 0.6 run).

Storage: smoothed images are stored as **uint8** after ``round(255 * clip(y, 0, 1))``. Each smoothed pixel
is a component mean of ``b``; rounding adds at most 1/510 per pixel, the same quantisation as the original
uint8 images (vanilla training sees exactly that grid too), and takes 1 byte per value instead of 4.
"""

from __future__ import annotations

import hashlib
import json
import os
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


def _default_smooth_fn(kappa, nu, step_factor, maxiter) -> SmoothFn:
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


def _load_entry(entry: Path, n: int) -> tuple[np.ndarray, dict]:
  meta = json.loads((entry / "meta.json").read_text())
  chunks = [np.load(entry / f"chunk_{i:05d}.npz") for i in range(meta["num_chunks"])]
  images = np.concatenate([c["images"] for c in chunks], axis=1)
  steps = np.concatenate([c["steps"] for c in chunks], axis=1)
  capped = np.concatenate([c["capped"] for c in chunks], axis=1)
  if images.shape[1] != n:
    raise ValueError(f"{entry}: cache holds {images.shape[1]} images, expected {n}; delete it.")
  info = {"sparsities": meta["sparsities"], "mean_steps": steps.mean(axis=1).tolist(),
          "max_steps": steps.max(axis=1).tolist(), "capped": capped.sum(axis=1).tolist(),
          "path": str(entry)}
  return images, info


def smooth_dataset(x: np.ndarray, sparsities: Sequence[float], *, cache_dir: str | os.PathLike = "cache",
                   tag: str = "data", batch_size: int = 128, kappa: float = lbi.DEFAULT_KAPPA,
                   nu: float = lbi.DEFAULT_NU, step_factor: float = lbi.DEFAULT_STEP_FACTOR,
                   maxiter: int = lbi.DEFAULT_MAXITER, smooth_fn: SmoothFn | None = None,
                   max_chunks: int | None = None, progress: bool = True,
                   return_info: bool = False):
  """Smooths every image of ``x`` at every sparsity (one :func:`iss_jax.smooth_path` run), with a disk cache.

  Args:
    x: uint8 images ``(N, H, W, C)``.
    sparsities: the targets, e.g. ``[0.6]`` or the iterative schedule ``[0.3, 0.4, ..., 0.8]``; all come
      from one LBI run per image.
    cache_dir: cache root (default ``cache/``).
    tag: readable prefix of the cache entry (e.g. the dataset name); the key itself is a content hash of
      ``x`` and the solver settings, so a tag never causes a stale hit.
    batch_size: images per chunk (one jitted call and one file each; the last chunk is padded).
    kappa, nu, step_factor, maxiter: solver settings of :func:`iss_jax.smooth` (part of the key).
    smooth_fn: ``fn(x_float (B, H, W, C), sparsities (P,)) -> (images (P, B, H, W, C), steps (P, B),
      capped (P, B))``; default: jitted :func:`iss_jax.smooth_path` with the settings above.
    max_chunks: compute at most this many new chunks, then return None (for tests of resuming).
    progress: show a tqdm bar.
    return_info: also return a dict (cache path, mean / max LBI steps and number of capped images per
      sparsity).

  Returns:
    uint8 ``(P, N, H, W, C)`` in the order of ``sparsities`` (and the info dict with ``return_info``); None
    when ``max_chunks`` stopped the run early.

  Raises:
    ValueError: ``x`` not uint8 NHWC, bad sparsities or batch size.

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
  n = x.shape[0]
  settings = {"kappa": float(kappa), "nu": float(nu), "step_factor": float(step_factor),
              "maxiter": int(maxiter), "storage": "uint8-round", "custom_fn": smooth_fn is not None}
  solver_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
  root = Path(cache_dir) / f"{tag.replace(':', '_').replace('/', '_')}-{dataset_fingerprint(x)}-{solver_hash}"

  # 1. Any complete entry covering the request.
  if root.is_dir():
    for entry in sorted(root.iterdir()):
      if (entry / "complete.json").exists():
        meta = json.loads((entry / "meta.json").read_text())
        idx = _covers(meta["sparsities"], want)
        if idx is not None:
          images, info = _load_entry(entry, n)
          info = {**info, "sparsities": want, "reused": True,
                  **{k: [info[k][i] for i in idx] for k in ("mean_steps", "max_steps", "capped")}}
          return (images[idx], info) if return_info else images[idx]

  # 2. Compute (or resume) the entry for exactly these sparsities.
  entry = root / _tag_of(want)
  entry.mkdir(parents=True, exist_ok=True)
  meta_path = entry / "meta.json"
  if meta_path.exists():
    meta = json.loads(meta_path.read_text())
    batch_size = meta["batch_size"]
  else:
    meta = {"sparsities": want, "batch_size": batch_size, "num_images": n,
            "num_chunks": -(-n // batch_size), "settings": settings, "shape": list(x.shape)}
    atomic_write(meta_path, _json({**meta, "root": str(root)}))
  num_chunks = meta["num_chunks"]
  fn = smooth_fn or _default_smooth_fn(kappa, nu, step_factor, maxiter)
  targets = jnp.asarray(want, jnp.float32)
  todo = [i for i in range(num_chunks) if not (entry / f"chunk_{i:05d}.npz").exists()]
  bar = tqdm(total=n, desc=f"smoothing {tag} at {want}", unit="img", disable=not progress,
             initial=n - sum(min(batch_size, n - i * batch_size) for i in todo))
  computed = 0
  for i in todo:
    if max_chunks is not None and computed >= max_chunks:
      bar.close()
      return None
    xb = x[i * batch_size:(i + 1) * batch_size]
    m = xb.shape[0]
    if m < batch_size:  # pad with copies of the last image: one compiled shape.
      xb = np.concatenate([xb, np.repeat(xb[-1:], batch_size - m, axis=0)])
    images, steps, capped = fn(jnp.asarray(xb, jnp.float32) / 255.0, targets)
    images = np.asarray(jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0).astype(jnp.uint8))[:, :m]
    steps, capped = np.asarray(steps)[:, :m], np.asarray(capped)[:, :m]
    atomic_write(entry / f"chunk_{i:05d}.npz",
                        lambda f, a=images, s=steps, c=capped: np.savez(f, images=a, steps=s, capped=c))
    computed += 1
    bar.update(m)
  bar.close()
  atomic_write(entry / "complete.json", _json({"num_images": n}))
  images, info = _load_entry(entry, n)
  info["reused"] = computed == 0
  return (images, info) if return_info else images
