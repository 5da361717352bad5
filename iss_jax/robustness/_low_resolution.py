"""Low resolution (paper Sec. 4.4): down to ``size x size``, nearest-neighbour back up; its evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iss_jax._src.checks import as_float_images, check_image, check_labels
from iss_jax._src.lbi import num_edges, tv_grad
from iss_jax.robustness._defenses import Defense, with_bare
from iss_jax.robustness._runner import Runner, runner_for


def nearest_upsample(x, size: tuple[int, int]):
  """Nearest-neighbour upsampling of ``(N, h, w, C)`` images to ``size = (H, W)``.

  Output pixel ``i`` copies input pixel ``floor(i * h / H)`` (PyTorch ``mode="nearest"``), so for
  ``H = k h`` it is exact block replication.
  """
  x = jnp.asarray(x)
  h, w = x.shape[1:3]
  rows = (np.arange(size[0]) * h) // size[0]
  cols = (np.arange(size[1]) * w) // size[1]
  return x[:, rows][:, :, cols]


def low_resolution(x, size: int, *, method: str = "linear", antialias: bool = True):
  """Downsamples ``(N, H, W, C)`` images to ``size x size`` and nearest-upsamples back to ``H x W``.

  Args:
    x: ``(N, H, W, C)`` float images.
    size: intermediate size (paper Sec. 4.4), ``1 <= size <= min(H, W)``.
    method: ``jax.image.resize`` method of the downsampling (``"linear"``, ``"cubic"``, ``"lanczos3"``,
      ``"nearest"``).
    antialias: low-pass before downsampling (a triangle filter for ``"linear"``).

  Returns:
    ``(N, H, W, C)`` images of the same dtype.

  Raises:
    ValueError: bad rank or ``size``.

  Examples:
    >>> import jax.numpy as jnp, iss_jax
    >>> iss_jax.robustness.low_resolution(jnp.ones((1, 32, 32, 3)), 16).shape
    (1, 32, 32, 3)
  """
  x = check_image(x, "x", ranks=(4,), min_size=1, finite=False)
  if not 1 <= int(size) <= min(x.shape[1:3]):
    raise ValueError(f"size must be in 1..{min(x.shape[1:3])}; got {size}.")
  small = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), method=method, antialias=antialias)
  return nearest_upsample(small, x.shape[1:3]).astype(x.dtype)


def nonzero_edge_fraction(x) -> float:
  """Mean share of 4-neighbour edges whose pixels differ in some channel, over ``(N, H, W, C)`` images.

  ``iss_jax.smooth`` cannot reach a target sparsity above this share (edges with ``D x = 0`` never
  activate): it then stops at ``maxiter`` and returns nearly the input.
  """
  x = jnp.asarray(np.asarray(x))
  if not len(x):
    return 0.0
  differs = jnp.any(tv_grad(jnp.moveaxis(x, 0, -1)) != 0, axis=3)  # (2, H, W, N), D x as iss_jax.smooth
  counts = np.asarray(jnp.sum(differs, axis=(0, 1, 2)), np.float64)  # the padding slots are never set
  return float(np.mean(counts / num_edges(x.shape[1], x.shape[2])))


def evaluate_low_resolution(apply_fn, x, y, *, sizes: Sequence[int] = (28, 24, 20, 16, 12, 8),
                            defenses: Sequence[Defense] = (), method: str = "linear",
                            antialias: bool = True, batch_size: int = 100, seed: int = 0,
                            progress: bool = True, runner: Runner | None = None) -> dict:
  """Accuracy on low-resolution images (down to ``size``, nearest up), bare and behind each defense.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> logits, or a ``RandomClassifier``.
    x: ``(N, H, W, C)`` images, uint8 or float in ``[0, 1]``.
    y: ``(N,)`` int labels.
    sizes: intermediate sizes (see :func:`low_resolution`).
    defenses: defended models to evaluate besides the bare one.
    method: the downsampling method of :func:`low_resolution`.
    antialias: low-pass before downsampling.
    batch_size: images per jitted batch (when no ``runner`` is given).
    seed: PRNG seed (when no ``runner`` is given).
    progress: show a tqdm bar.
    runner: a :class:`~iss_jax.robustness.Runner` of ``apply_fn`` to share compiled functions and clean
      predictions with other evaluations; None: a new one from ``batch_size`` and ``seed``.

  Returns:
    ``{"accuracy": {size: {defense: acc}}, "clean": {defense: acc}, "filter": str, ...}``.
  """
  xf = as_float_images(x)
  y = check_labels(y, len(xf))
  everyone = with_bare(defenses)
  run = runner_for(apply_fn, runner, batch_size=batch_size, seed=seed)
  clean = {d.name: float(np.mean(run.clean_correct(xf, y, d))) for d in everyone}
  acc = {}
  edges = {"original": nonzero_edge_fraction(xf)}
  for size in tqdm(sizes, desc="low resolution", disable=not progress):
    down = jax.jit(lambda xb, k, size=int(size): low_resolution(xb, size, method=method,
                                                                 antialias=antialias))
    xl = run.map(down, xf)
    edges[str(size)] = nonzero_edge_fraction(xl)
    acc[str(size)] = {d.name: float(np.mean(run.correct(xl, y, d))) for d in everyone}
  return {"accuracy": acc, "clean": clean, "sizes": [int(s) for s in sizes],
          "nonzero_edge_fraction": edges,
          "filter": f"jax.image.resize method={method!r}, antialias={antialias}; nearest upsampling "
                    "(source pixel floor(i*s/H))",
          "num_examples": int(len(xf)), "defenses": [d.name for d in everyone[1:]]}
