"""Executes the notebooks top to bottom at one size, as CI does, and optionally keeps their outputs.

The committed outputs are a real ``quick`` run on a 2-core CPU, made by (from the repository root, with
``pip install -e ".[train,notebooks]"``)::

  python -m notebooks.run --size=quick --write --fresh

``--size`` is injected after each notebook's cell tagged ``parameters`` (the papermill convention); the
cells themselves are not changed, so the notebooks stay in sync with their jupytext ``.py`` pairs.
``--write`` stores the outputs in the ``.ipynb`` files; ``--fresh`` first deletes the size's workdirs
under ``--work_dir`` so that the training logs are those of a real run, not a resume. Without
``--write`` it is a check: a failing cell raises ``nbclient.exceptions.CellExecutionError``.

  python -m notebooks.run --size=tiny                        # what tests/test_notebooks.py runs
  python -m notebooks.run --size=quick --only=03 --write     # one notebook
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = tuple(sorted(HERE.glob("[0-9][0-9]_*.ipynb")))
DEFAULT_WORK_DIR = HERE / "_work"  # what the notebooks use when work_dir is "" (ignored by git)


def parameters_index(nb) -> int:
  """Index of the cell tagged ``parameters``."""
  for i, cell in enumerate(nb.cells):
    if "parameters" in cell.get("metadata", {}).get("tags", []):
      return i
  raise ValueError("the notebook has no cell tagged 'parameters'")


def execute(path: str | Path, parameters: dict, *, timeout: float = 3600, kernel_name: str = "python3"):
  """Runs a notebook with ``parameters`` injected after its ``parameters`` cell.

  Args:
    path: the ``.ipynb`` file.
    parameters: names and values (``repr``-able) assigned in the injected cell, e.g. ``{"size": "tiny"}``.
    timeout: seconds allowed for the whole notebook (each cell gets what is left).
    kernel_name: the Jupyter kernel (``python3``: the ipykernel of this environment).

  Returns:
    The executed notebook (``nbformat.NotebookNode``), without the injected cell, its outputs in place.

  Raises:
    nbclient.exceptions.CellExecutionError: a cell raised; the message holds the traceback.
    nbclient.exceptions.CellTimeoutError: the notebook ran past ``timeout``.
  """
  path = Path(path)
  nb = nbformat.read(path, as_version=4)
  i = parameters_index(nb) + 1
  source = "# Parameters (injected)\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
  nb.cells.insert(i, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
  deadline = time.monotonic() + timeout
  client = NotebookClient(nb, kernel_name=kernel_name, record_timing=False,
                          timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                          resources={"metadata": {"path": str(path.parent)}})
  client.execute()
  del nb.cells[i]
  return nb


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(prog="python -m notebooks.run", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--size", default="tiny", choices=("tiny", "quick", "full"))
  p.add_argument("--only", action="append", default=[], help="notebook name prefix, e.g. 03 (repeatable)")
  p.add_argument("--work_dir", default=str(DEFAULT_WORK_DIR), help="checkpoints and the smoothing cache")
  p.add_argument("--write", action="store_true", help="store the outputs in the .ipynb files")
  p.add_argument("--fresh", action="store_true", help="delete <work_dir>/<size> first")
  args = p.parse_args(argv)
  work_dir = Path(args.work_dir).resolve()
  if args.fresh:
    shutil.rmtree(work_dir / args.size, ignore_errors=True)
  # The notebooks' default work_dir ("") is notebooks/_work: pass the path only when it differs, so that
  # the committed outputs show the short relative paths a reader will see.
  params = {"size": args.size}
  if work_dir != DEFAULT_WORK_DIR.resolve():
    params["work_dir"] = str(work_dir)
  times = {}
  for path in NOTEBOOKS:
    if args.only and not any(path.name.startswith(o) for o in args.only):
      continue
    t0 = time.perf_counter()
    nb = execute(path, params)
    times[path.name] = time.perf_counter() - t0
    if args.write:
      nbformat.write(nb, path)
    print(f"{path.name}: {times[path.name]:.0f} s at size {args.size}" + (" (written)" if args.write else ""),
          file=sys.stderr, flush=True)
  print(f"total: {sum(times.values()):.0f} s", file=sys.stderr)
  return times


if __name__ == "__main__":
  main()
