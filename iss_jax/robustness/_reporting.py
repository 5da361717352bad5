"""Writing evaluation results: Markdown table, JSON and PNG, each written atomically."""

from __future__ import annotations

import json
import os
import platform

import numpy as np

from iss_jax._src.io import atomic_write


def markdown_table(header, rows) -> str:
  """A GitHub Markdown table from a header list and rows of cells (floats shown with 2 decimals)."""
  def cell(v):
    if isinstance(v, float):
      return f"{v:.2f}"
    return str(v)

  lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def _jsonable(obj):
  if isinstance(obj, dict):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, (np.floating, np.integer, np.bool_)):
    return obj.item()
  return obj


def write_report(out_dir: str, name: str, markdown: str, data: dict, figure=None) -> dict:
  """Writes ``<out_dir>/<name>.md``, ``.json`` and (given a matplotlib figure) ``.png`` atomically.

  Args:
    out_dir: output folder (created if missing).
    name: file stem, e.g. ``"adversarial"``.
    markdown: the Markdown text.
    data: JSON-serialisable results (NumPy values are converted).
    figure: a ``matplotlib.figure.Figure`` or None.

  Returns:
    ``{"md": path, "json": path, "png": path or None}``.
  """
  import io

  paths = {"md": os.path.join(out_dir, f"{name}.md"), "json": os.path.join(out_dir, f"{name}.json"),
           "png": None}
  atomic_write(paths["md"], (markdown.rstrip() + "\n").encode())
  atomic_write(paths["json"], (json.dumps(_jsonable(data), indent=2) + "\n").encode())
  if figure is not None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    paths["png"] = os.path.join(out_dir, f"{name}.png")
    atomic_write(paths["png"], buf.getvalue())
  return paths


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def device_description() -> str:
  """The device results were measured on, for reports and benchmarks.

  Examples:
    >>> import iss_jax
    >>> iss_jax.robustness.device_description().startswith(("CPU", "GPU", "TPU"))
    True
  """
  import jax

  dev = jax.devices()[0]
  if dev.platform == "cpu":
    return f"CPU: {_cpu_model()}, {os.cpu_count()} cores, {jax.device_count()} JAX device(s)"
  return f"{dev.platform.upper()}: {dev.device_kind} x{jax.device_count()}"
