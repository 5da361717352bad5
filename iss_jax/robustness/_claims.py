"""RobustBench-style claim records: one JSON file per evaluation, saying what was claimed and how it was
measured (model, defense, data, threat model, accuracies with intervals, attacks, passes, code version)."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from iss_jax._src.io import atomic_write
from iss_jax.robustness._reporting import _jsonable, device_description
from iss_jax.robustness._stats import wilson_interval

CLAIM_SCHEMA = "iss-jax claim v1"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
  """``git describe --always --dirty --tags`` of the checkout holding ``iss_jax``, else the package version.

  Examples:
    >>> from iss_jax.robustness import code_version
    >>> isinstance(code_version(), str) and len(code_version()) > 0
    True
  """
  root = Path(__file__).resolve().parents[2]
  try:
    out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                         capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    if out:
      return f"git {out}"
  except (OSError, subprocess.SubprocessError):
    pass
  try:
    return f"iss-jax {importlib.metadata.version('iss-jax')}"
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def claim_record(*, model: str, defense: str, dataset: str, n: int, eps: float, clean_accuracy: float,
                 robust_accuracy: float, attacks: Sequence[dict], norm: str = "Linf",
                 forward_passes: int | None = None, backward_passes: int | None = None,
                 passes_counted: str = "", version: str = "custom", random: bool = False,
                 flags: Sequence[str] = (), extra: dict | None = None) -> dict:
  """A RobustBench-style claim record (JSON-ready dict) of one evaluation.

  Args:
    model: the model (a checkpoint folder or a name).
    defense: the defense's name (``"none"`` for the bare model).
    dataset: the data, e.g. ``"cifar10_exact test"``.
    n: images evaluated.
    eps: radius in ``[0, 1]`` pixel space.
    clean_accuracy, robust_accuracy: accuracies in ``[0, 1]`` on the ``n`` images (robust: per example the
      worst case of the attacks).
    attacks: one dict per attack, at least ``{"name", "budget"}`` (plus accuracy, passes, ...).
    norm: the threat model's norm.
    forward_passes, backward_passes: images passed through the classifier (None: not counted).
    passes_counted: how the passes were counted.
    version: the attack protocol (``"standard"``, ``"rand"``, ``"custom"``).
    random: whether the evaluated classifier is random.
    flags: names of the gradient-masking flags raised.
    extra: further fields.

  Returns:
    ``{"schema", "model", "defense", "dataset", "n", "threat_model", "eps", "eps_255", "clean_accuracy",
    "clean_interval95", "robust_accuracy", "robust_interval95", "version", "random", "attacks",
    "forward_passes", "backward_passes", "passes_counted", "flags_raised", "code_version", "device",
    "date", ...}``.
  """
  record = {
      "schema": CLAIM_SCHEMA, "model": str(model), "defense": str(defense), "dataset": str(dataset),
      "n": int(n), "threat_model": norm, "eps": float(eps), "eps_255": round(float(eps) * 255, 4),
      "clean_accuracy": float(clean_accuracy), "clean_interval95": list(wilson_interval(clean_accuracy, n)),
      "robust_accuracy": float(robust_accuracy),
      "robust_interval95": list(wilson_interval(robust_accuracy, n)), "version": version,
      "random": bool(random), "attacks": list(attacks), "forward_passes": forward_passes,
      "backward_passes": backward_passes, "passes_counted": passes_counted, "flags_raised": list(flags),
      "code_version": code_version(), "device": device_description(),
      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  record.update(extra or {})
  return _jsonable(record)


def write_claim(path: str | os.PathLike, record: dict) -> Path:
  """Writes a claim record as JSON, atomically (its folder is created); returns the path."""
  return atomic_write(path, (json.dumps(_jsonable(record), indent=1) + "\n").encode())


def read_claims(paths: Sequence[str | os.PathLike]) -> list[dict]:
  """The claim records of ``paths`` (for aggregation), refusing a file that is not one."""
  out = []
  for p in paths:
    with open(p) as f:
      record = json.load(f)
    if record.get("schema") != CLAIM_SCHEMA:
      raise ValueError(f"{p} is not an iss-jax claim record (schema {record.get('schema')!r}).")
    out.append(record)
  return out
