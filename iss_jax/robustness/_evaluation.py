"""Robustness evaluations over any ``apply_fn(x) -> logits``: adversarial (with adaptive attacks on test-time
smoothing), corruptions, low resolution and denoising PSNR. Each returns a plain dict of numbers (JSON-ready).

Test-time smoothing ``s`` means ``apply_fn(iss_jax.smooth(x, s))``. Images are float ``(N, H, W, C)`` in
``[0, 1]`` (uint8 input is divided by 255). Work runs in fixed-size jitted batches (the last one padded), so a
sweep over ``eps`` or the sparsity does not recompile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iss_jax._src import attacks, corruptions
from iss_jax._src.metrics import psnr
from iss_jax._src.smooth import smooth

Array = jax.Array
NONE = "none"


def as_float_images(x, name: str = "x") -> np.ndarray:
  """uint8 ``[0, 255]`` or float ``[0, 1]`` ``(N, H, W, C)`` images -> float32 ``[0, 1]``."""
  x = np.asarray(x)
  if x.ndim != 4:
    raise ValueError(f"{name} must be (N, H, W, C) images; got shape {x.shape}.")
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"{name} must be uint8 or float in [0, 1]; got dtype {x.dtype}.")
  return x.astype(np.float32)


def _check_labels(y, n):
  y = np.asarray(y)
  if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"y must be ({n},) integer labels; got shape {y.shape}, dtype {y.dtype}.")
  return y.astype(np.int32)


def _check_sparsities(sparsities):
  out = tuple(float(s) for s in sparsities)
  for s in out:
    if not 0.0 <= s <= 1.0:
      raise ValueError(f"smoothing sparsities must be in [0, 1]; got {s}.")
  return out


def defense_name(sparsity) -> str:
  """Column label of a test-time defense: ``"none"`` or ``"smooth@0.6"``."""
  return NONE if sparsity is None else f"smooth@{float(sparsity):g}"


def _batches(n: int, batch_size: int):
  for start in range(0, n, batch_size):
    yield start, min(start + batch_size, n)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
  if len(a) == size:
    return a
  reps = np.concatenate([np.arange(len(a)), np.zeros(size - len(a), int)])
  return a[reps]


class _Runner:
  """Jitted, fixed-batch-size helpers around one ``apply_fn`` (compiled once per shape)."""

  def __init__(self, apply_fn, batch_size: int, smooth_kwargs=None):
    self.apply_fn = apply_fn
    self.batch_size = int(batch_size)
    kw = dict(smooth_kwargs or {})
    self.smooth_fn = lambda z, s: smooth(z, s, **kw)
    self._predict = jax.jit(lambda xb: jnp.argmax(apply_fn(xb), -1))
    self._smooth = jax.jit(self.smooth_fn)

  def map(self, fn, x: np.ndarray, *args, desc=None, progress=False):
    """Applies jitted ``fn(batch, *args)`` over ``x`` in padded batches; concatenates the results."""
    outs = []
    it = list(_batches(len(x), self.batch_size))
    for a, b in tqdm(it, desc=desc, disable=not progress or len(it) < 2, leave=False):
      out = fn(jnp.asarray(_pad(x[a:b], self.batch_size)), *args)
      outs.append(np.asarray(out)[: b - a])
    return np.concatenate(outs) if outs else np.zeros((0,))

  def predict(self, x, **kw):
    return self.map(self._predict, x, **kw)

  def smooth(self, x, s, **kw):
    return self.map(self._smooth, x, jnp.float32(s), **kw)

  def predict_defended(self, x, s, **kw):
    """Predictions with test-time smoothing ``s`` (None: no defense)."""
    return self.predict(x if s is None else self.smooth(x, s, **kw), **kw)


# ----------------------------------------------------------------------------------------------------------
# Adversarial


def evaluate_adversarial(apply_fn: Callable[[Array], Array], x, y, *, eps_grid: Sequence[float],
                         attacks_: Sequence[str] = ("fgsm", "pgd"), steps: int = 10,
                         step_size_factor: float = 2.5, restarts: int = 1, random_start: bool = True,
                         sparsities: Sequence[float] = (), protocols: Sequence[str] = ("transfer", "bpda"),
                         smooth_kwargs=None, batch_size: int = 100, seed: int = 0,
                         progress: bool = True) -> dict:
  """Accuracy under FGSM/PGD at each ``eps``, bare and behind test-time smoothing, with sanity checks.

  For each sparsity ``s`` the defended model is ``apply_fn(smooth(., s))``. Protocols:

  * ``"transfer"`` (the paper's protocol): attack the bare model, then smooth the adversarial images.
  * ``"bpda"``: attack the defended model end to end; the forward pass runs the real ``iss_jax.smooth`` and
    the backward pass treats it as the identity (BPDA, Athalye et al. 2018).
  * ``"adaptive"``: per example the stronger of the two (an example counts as broken if either breaks it),
    so it is never weaker than the paper's protocol by construction.

  ``smooth`` is deterministic, so EOT (expectation over randomness) is not needed for it; PGD's random start
  is the only randomness and is covered by ``restarts``.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> ``(N, K)`` logits, BatchNorm in inference mode.
    x: ``(N, H, W, C)`` images, uint8 or float in ``[0, 1]``.
    y: ``(N,)`` integer labels.
    eps_grid: L-infinity radii in ``[0, 1]`` pixel space (e.g. ``[2/255, 4/255, 8/255]``).
    attacks_: subset of ``("fgsm", "pgd")``.
    steps: PGD iterations.
    step_size_factor: PGD step ``= step_size_factor * eps / steps`` (Madry et al. use 2.5).
    restarts: PGD random restarts.
    random_start: PGD random start.
    sparsities: test-time smoothing sparsities (empty: bare model only).
    protocols: subset of ``("transfer", "bpda")`` for the defended models.
    smooth_kwargs: extra keyword arguments for ``iss_jax.smooth`` (e.g. ``maxiter``).
    batch_size: images per jitted batch.
    seed: PRNG seed for PGD random starts.
    progress: show a tqdm bar.

  Returns:
    A dict with ``"clean"`` (``{defense: accuracy}``), ``"rows"`` (list of ``{"attack", "eps", "defense",
    "protocol", "accuracy"}``), ``"checks"`` (list of ``{"check", "ok", "detail"}``), ``"violations"`` (count)
    and ``"settings"``.

  Raises:
    ValueError: bad shapes, unknown attack/protocol, ``eps`` outside ``[0, 1]``.
  """
  x = as_float_images(x)
  y = _check_labels(y, len(x))
  eps_grid = [float(e) for e in eps_grid]
  for e in eps_grid:
    if not 0.0 <= e <= 1.0:
      raise ValueError(f"eps_grid values must be in [0, 1] (pixel space); got {e}.")
  for a in attacks_:
    if a not in ("fgsm", "pgd"):
      raise ValueError(f"attacks must be 'fgsm' or 'pgd'; got {a!r}.")
  for p in protocols:
    if p not in ("transfer", "bpda"):
      raise ValueError(f"protocols must be 'transfer' or 'bpda'; got {p!r}.")
  sparsities = _check_sparsities(sparsities)
  run = _Runner(apply_fn, batch_size, smooth_kwargs)

  def attack(model_fn, name):
    def fn(xb, yb, eps, key):
      if name == "fgsm":
        return attacks.fgsm(model_fn, xb, yb, eps=eps)
      return attacks.pgd(model_fn, xb, yb, eps=eps, step_size=step_size_factor * eps / steps,
                         steps=steps, key=key, random_start=random_start, restarts=restarts)
    return fn

  plain = {a: jax.jit(attack(apply_fn, a)) for a in attacks_}
  bpda = {a: jax.jit(lambda xb, yb, eps, key, s, a=a: attack(
      lambda z: apply_fn(run.smooth_fn(z, s)), a)(xb, yb, eps, key)) for a in attacks_}

  defenses = [None] + list(sparsities)
  correct = {}  # (attack, eps, defense, protocol) -> bool (N,)
  clean = {d: run.predict_defended(x, d) == y for d in defenses}
  total = len(eps_grid) * len(attacks_) * (1 + len(sparsities) * ("bpda" in protocols))
  bar = tqdm(total=total, desc="adversarial", disable=not progress)
  key = jax.random.key(seed)
  for ai, a in enumerate(attacks_):
    for ei, eps in enumerate(eps_grid):
      k = jax.random.fold_in(key, 1000 * ai + ei)
      keys = iter(jax.random.split(k, 1 + (len(x) + batch_size - 1) // batch_size))
      outs = []
      for b0, b1 in _batches(len(x), batch_size):
        xb = jnp.asarray(_pad(x[b0:b1], batch_size))
        yb = jnp.asarray(_pad(y[b0:b1], batch_size))
        outs.append(np.asarray(plain[a](xb, yb, jnp.float32(eps), next(keys)))[: b1 - b0])
      x_adv = np.concatenate(outs)
      correct[(a, eps, NONE, "none")] = run.predict(x_adv) == y
      for s in sparsities:
        d = defense_name(s)
        if "transfer" in protocols:
          correct[(a, eps, d, "transfer")] = run.predict_defended(x_adv, s) == y
      bar.update(1)
      for s in sparsities if "bpda" in protocols else ():
        d = defense_name(s)
        outs = []
        kb = jax.random.fold_in(k, int(round(s * 1000)))
        for bi, (b0, b1) in enumerate(_batches(len(x), batch_size)):
          xb = jnp.asarray(_pad(x[b0:b1], batch_size))
          yb = jnp.asarray(_pad(y[b0:b1], batch_size))
          outs.append(np.asarray(bpda[a](xb, yb, jnp.float32(eps), jax.random.fold_in(kb, bi),
                                         jnp.float32(s)))[: b1 - b0])
        xb_adv = np.concatenate(outs)
        assert float(np.abs(xb_adv - x).max()) <= eps + 1e-5
        correct[(a, eps, d, "bpda")] = run.predict_defended(xb_adv, s) == y
        if "transfer" in protocols:
          correct[(a, eps, d, "adaptive")] = correct[(a, eps, d, "bpda")] & correct[(a, eps, d, "transfer")]
        bar.update(1)
  bar.close()

  rows = [{"attack": a, "eps": e, "defense": d, "protocol": p, "accuracy": float(np.mean(c))}
          for (a, e, d, p), c in correct.items()]
  result = {
      "clean": {defense_name(d): float(np.mean(c)) for d, c in clean.items()},
      "rows": rows,
      "num_examples": int(len(x)),
      "settings": {"eps_grid": eps_grid, "attacks": list(attacks_), "pgd_steps": steps,
                   "pgd_step_size": f"{step_size_factor} * eps / {steps}", "restarts": restarts,
                   "random_start": random_start, "sparsities": list(sparsities),
                   "protocols": list(protocols), "seed": seed, "norm": "Linf, [0, 1] pixel space",
                   "eot": "not used: iss_jax.smooth is deterministic"},
  }
  result["checks"] = adversarial_sanity_checks(result)
  result["violations"] = sum(not c["ok"] for c in result["checks"])
  return result


def adversarial_sanity_checks(result: dict, *, zero_tol: float = 0.05) -> list[dict]:
  """Checks an :func:`evaluate_adversarial` result; every failed check is a reason to distrust the table.

  Checks: (1) PGD accuracy on the bare model at the largest ``eps`` is at most ``zero_tol`` when that
  ``eps >= 16/255`` (an attack that cannot break an undefended model at large ``eps`` is broken); (2) accuracy
  never increases with ``eps``; (3) PGD is never weaker than FGSM; (4) the adaptive BPDA attack is never
  weaker than the non-adaptive (transfer) one.

  Args:
    result: the dict returned by :func:`evaluate_adversarial`.
    zero_tol: accuracy counted as "~0".

  Returns:
    A list of ``{"check": str, "ok": bool, "detail": str}``.
  """
  acc = {(r["attack"], r["eps"], r["defense"], r["protocol"]): r["accuracy"] for r in result["rows"]}
  n = max(result.get("num_examples", 1), 1)
  tol = 0.5 / n  # strictly-worse by at least one example
  checks = []
  eps_grid = sorted({k[1] for k in acc})
  if "pgd" in {k[0] for k in acc} and eps_grid and eps_grid[-1] >= 16 / 255 - 1e-9:
    a = acc[("pgd", eps_grid[-1], NONE, "none")]
    checks.append({"check": "PGD drives the bare model to ~0 at the largest eps", "ok": a <= zero_tol,
                   "detail": f"accuracy {a:.2%} at eps={eps_grid[-1] * 255:.3g}/255"})
  groups = {}
  for (a, e, d, p), v in acc.items():
    groups.setdefault((a, d, p), []).append((e, v))
  for (a, d, p), pts in sorted(groups.items()):
    pts.sort()
    bad = [f"{e1 * 255:.3g}->{e2 * 255:.3g}/255: {v1:.2%}->{v2:.2%}"
           for (e1, v1), (e2, v2) in zip(pts[:-1], pts[1:], strict=True) if v2 > v1 + tol]
    checks.append({"check": f"accuracy non-increasing in eps ({a}, {d}, {p})", "ok": not bad,
                   "detail": "; ".join(bad) or "ok"})
  for (a, e, d, p), v in sorted(acc.items()):
    if a == "pgd" and ("fgsm", e, d, p) in acc:
      f = acc[("fgsm", e, d, p)]
      checks.append({"check": f"PGD <= FGSM (eps={e * 255:.3g}/255, {d}, {p})", "ok": v <= f + tol,
                     "detail": f"PGD {v:.2%} vs FGSM {f:.2%}"})
    if p == "bpda" and (a, e, d, "transfer") in acc:
      t = acc[(a, e, d, "transfer")]
      checks.append({"check": f"adaptive BPDA <= transfer ({a}, eps={e * 255:.3g}/255, {d})",
                     "ok": v <= t + tol, "detail": f"BPDA {v:.2%} vs transfer {t:.2%}"})
  return checks


# ----------------------------------------------------------------------------------------------------------
# Corruptions


def evaluate_corruptions(apply_fn, x, y, *, names: Sequence[str] = corruptions.PAPER_CORRUPTIONS,
                         severities: Sequence[int] = (1, 2, 3, 4, 5), sparsities: Sequence[float] = (),
                         source: str = "generate", seed: int = 0, cifar10c_dir: str | None = None,
                         indices=None, tfds_data_dir: str | None = None, smooth_kwargs=None,
                         batch_size: int = 100, progress: bool = True) -> dict:
  """Accuracy on CIFAR-10-C corruptions per type and severity, bare and with test-time smoothing.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> logits.
    x: clean ``(N, H, W, C)`` uint8 test images in official order (used by ``source="generate"``).
    y: ``(N,)`` labels of ``x``.
    names: corruption names (``iss_jax.AVAILABLE_CORRUPTIONS`` for ``generate``).
    severities: subset of ``1..5``.
    sparsities: test-time smoothing sparsities.
    source: ``"generate"`` (offline seeded CIFAR-10-C-style generator), ``"npy"`` (official files in
      ``cifar10c_dir``, rows of the official test ``indices``) or ``"tfds"`` (``cifar10_corrupted``, first
      ``N`` test images).
    seed: generator seed.
    cifar10c_dir: folder of the official ``.npy`` files (``source="npy"``).
    indices: official test indices of ``x`` (``source="npy"``); ``arange(N)`` when None.
    tfds_data_dir: TFDS data dir (``source="tfds"``).
    smooth_kwargs: extra keyword arguments for ``iss_jax.smooth``.
    batch_size: images per jitted batch.
    progress: show a tqdm bar.

  Returns:
    ``{"accuracy": {name: {severity: {defense: acc}}}, "mean_over_types": {severity: {defense: acc}},
    "mean": {defense: acc}, "clean": {defense: acc}, "source": label, ...}`` (severity keys are strings).

  Raises:
    ValueError: unknown source/name, bad severity, or missing files.
  """
  if source not in ("generate", "npy", "tfds"):
    raise ValueError(f"source must be 'generate', 'npy' or 'tfds'; got {source!r}.")
  x = np.asarray(x)
  y = _check_labels(y, len(x))
  sparsities = _check_sparsities(sparsities)
  for s in severities:
    if int(s) not in range(1, 6):
      raise ValueError(f"severities must be in 1..5; got {s}.")
  if source == "generate":
    for nme in names:
      if nme not in corruptions.AVAILABLE_CORRUPTIONS:
        raise ValueError(f"corruption {nme!r} not available offline; choose from "
                         f"{corruptions.AVAILABLE_CORRUPTIONS}.")
  if source == "npy" and cifar10c_dir is None:
    raise ValueError("source='npy' needs cifar10c_dir (the folder with the official CIFAR-10-C .npy files).")
  run = _Runner(apply_fn, batch_size, smooth_kwargs)
  defenses = [None] + list(sparsities)
  xf = as_float_images(x) if len(x) else np.zeros((0, 32, 32, 3), np.float32)
  clean = {defense_name(d): float(np.mean(run.predict_defended(xf, d) == y)) for d in defenses}
  acc = {}
  bar = tqdm(total=len(names) * len(severities), desc="corruptions", disable=not progress)
  for nme in names:
    acc[nme] = {}
    for sev in severities:
      if source == "generate":
        xc, yc = corruptions.corrupt(x if x.dtype == np.uint8 else np.uint8(x * 255 + 0.5), nme,
                                     int(sev), seed=seed), y
      elif source == "npy":
        idx = np.arange(len(x)) if indices is None else np.asarray(indices)
        xc, yc = corruptions.load_cifar10c(cifar10c_dir, nme, int(sev), idx)
        if len(yc) == len(y) and not np.array_equal(yc, y):
          raise ValueError("CIFAR-10-C labels disagree with the dataset labels: the indices do not map "
                           "the dataset to the official test order.")
      else:
        xc, yc = corruptions.load_tfds_cifar10c(nme, int(sev), tfds_data_dir, num_examples=len(x))
      xcf = as_float_images(xc)
      acc[nme][str(sev)] = {defense_name(d): float(np.mean(run.predict_defended(xcf, d) == yc))
                            for d in defenses}
      bar.update(1)
  bar.close()
  dnames = [defense_name(d) for d in defenses]
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
          "sparsities": list(sparsities)}


# ----------------------------------------------------------------------------------------------------------
# Low resolution


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
    >>> iss_jax.low_resolution(jnp.ones((1, 32, 32, 3)), 16).shape
    (1, 32, 32, 3)
  """
  x = jnp.asarray(x)
  if x.ndim != 4:
    raise ValueError(f"x must be (N, H, W, C); got shape {x.shape}.")
  if not 1 <= int(size) <= min(x.shape[1:3]):
    raise ValueError(f"size must be in 1..{min(x.shape[1:3])}; got {size}.")
  small = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), method=method, antialias=antialias)
  return nearest_upsample(small, x.shape[1:3]).astype(x.dtype)


def nonzero_edge_fraction(x) -> float:
  """Mean share of 4-neighbour edges whose pixels differ in some channel, over ``(N, H, W, C)`` images.

  ``iss_jax.smooth`` cannot reach a target sparsity above this share (edges with ``D x = 0`` never
  activate): it then stops at ``maxiter`` and returns nearly the input.
  """
  x = np.asarray(x)
  dv = np.any(x[:, 1:] != x[:, :-1], axis=-1)
  dh = np.any(x[:, :, 1:] != x[:, :, :-1], axis=-1)
  per_image = (dv.sum((1, 2)) + dh.sum((1, 2))) / (dv[0].size + dh[0].size)
  return float(per_image.mean()) if len(x) else 0.0


def evaluate_low_resolution(apply_fn, x, y, *, sizes: Sequence[int] = (28, 24, 20, 16, 12, 8),
                            sparsities: Sequence[float] = (), method: str = "linear",
                            antialias: bool = True, smooth_kwargs=None, batch_size: int = 100,
                            progress: bool = True) -> dict:
  """Accuracy on low-resolution images (down to ``size``, nearest up), bare and with smoothing.

  Returns:
    ``{"accuracy": {size: {defense: acc}}, "clean": {defense: acc}, "filter": str, ...}``.
  """
  xf = as_float_images(x)
  y = _check_labels(y, len(xf))
  sparsities = _check_sparsities(sparsities)
  run = _Runner(apply_fn, batch_size, smooth_kwargs)
  defenses = [None] + list(sparsities)
  clean = {defense_name(d): float(np.mean(run.predict_defended(xf, d) == y)) for d in defenses}
  acc = {}
  edges = {"original": nonzero_edge_fraction(xf)}
  for size in tqdm(sizes, desc="low resolution", disable=not progress):
    down = jax.jit(lambda xb, size=int(size): low_resolution(xb, size, method=method, antialias=antialias))
    xl = run.map(down, xf)
    edges[str(size)] = nonzero_edge_fraction(xl)
    acc[str(size)] = {defense_name(d): float(np.mean(run.predict_defended(xl, d) == y)) for d in defenses}
  return {"accuracy": acc, "clean": clean, "sizes": [int(s) for s in sizes],
          "nonzero_edge_fraction": edges,
          "filter": f"jax.image.resize method={method!r}, antialias={antialias}; nearest upsampling "
                    "(source pixel floor(i*s/H))",
          "num_examples": int(len(xf)), "sparsities": list(sparsities)}


# ----------------------------------------------------------------------------------------------------------
# Denoising PSNR


def evaluate_denoise(x, *, sigma: float = 0.1, sparsity: float = 0.6, tv_denoise=None,
                     tv_weights: Sequence[float] = (0.02, 0.05, 0.08, 0.12, 0.2),
                     tune_examples: int = 64, x_tune=None, seed: int = 0, smooth_kwargs=None,
                     batch_size: int = 100, progress: bool = True) -> dict:
  """PSNR of noisy, ISS-smoothed and (optionally) TV-denoised images (paper App. K, Fig. 15).

  Noise: ``clip(x + sigma * N(0, 1), 0, 1)``. The TV weight is the one of ``tv_weights`` with the best
  mean PSNR on ``tune_examples`` images of ``x_tune`` (held out; else the first images of ``x``) with
  their own noise draw.

  Args:
    x: ``(N, H, W, C)`` clean images, uint8 or float in ``[0, 1]``.
    sigma: noise standard deviation.
    sparsity: ISS smoothing sparsity.
    tv_denoise: ``tv_denoise(x, weight) -> x`` (e.g. ``iss_jax.tv_denoise``) or None to skip.
    tv_weights: candidate TV weights.
    tune_examples: images used to tune the TV weight.
    x_tune: held-out clean images for the TV weight (e.g. training images); None: the first of ``x``.
    seed: noise seed.
    smooth_kwargs: extra keyword arguments for ``iss_jax.smooth``.
    batch_size: images per jitted batch.
    progress: show a tqdm bar.

  Returns:
    ``{"psnr": {"noisy": [...], "smoothed": [...], "tv": [...]?}, "mean": {...}, "std": {...},
    "tv_weight": w or None, ...}``.
  """
  xf = as_float_images(x)
  noise = np.asarray(jax.random.normal(jax.random.key(seed), xf.shape, jnp.float32))
  noisy = np.clip(xf + sigma * noise, 0.0, 1.0)
  run = _Runner(lambda z: z, batch_size, smooth_kwargs)
  smoothed = run.smooth(noisy, sparsity, desc="smooth", progress=progress)
  out = {"noisy": np.asarray(psnr(xf, noisy)), "smoothed": np.asarray(psnr(xf, smoothed))}
  tv_weight = None
  tuning = {}
  if tv_denoise is not None:
    if x_tune is None:
      x_tune, tune_note = xf[:tune_examples], f"first {tune_examples} evaluation images (not held out)"
    else:
      x_tune, tune_note = as_float_images(x_tune, "x_tune")[:tune_examples], "held-out images"
    n_tune = np.asarray(jax.random.normal(jax.random.key(seed + 1), x_tune.shape, jnp.float32))
    noisy_tune = jnp.asarray(np.clip(x_tune + sigma * n_tune, 0.0, 1.0))
    for w in tv_weights:
      tuning[str(w)] = float(np.mean(psnr(x_tune, tv_denoise(noisy_tune, w))))
    tv_weight = float(max(tv_weights, key=lambda w: tuning[str(w)]))
    tv = run.map(jax.jit(lambda xb: tv_denoise(xb, tv_weight)), noisy)
    out["tv"] = np.asarray(psnr(xf, tv))
  return {"psnr": {k: v.tolist() for k, v in out.items()},
          "mean": {k: float(np.mean(v)) for k, v in out.items()},
          "std": {k: float(np.std(v)) for k, v in out.items()},
          "tv_weight": tv_weight, "tv_tuning": tuning,
          "tv_tuning_images": tune_note if tv_denoise is not None else None,
          "sigma": sigma, "sparsity": sparsity,
          "num_examples": int(len(xf)),
          "noise": f"clip(x + {sigma} * N(0, 1), 0, 1), seed {seed}"}


def evaluate_accuracy(apply_fn, x, y, *, sparsity=None, smooth_kwargs=None, batch_size: int = 100) -> float:
  """Top-1 accuracy of ``apply_fn`` on ``x``, optionally behind test-time smoothing at ``sparsity``."""
  xf = as_float_images(x)
  y = _check_labels(y, len(xf))
  return float(np.mean(_Runner(apply_fn, batch_size, smooth_kwargs).predict_defended(xf, sparsity) == y))

