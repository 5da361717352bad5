"""The notebooks: each runs top to bottom at the tiny size, and each ``.ipynb`` matches its jupytext pair.

The execution tests start a Jupyter kernel (ipykernel, from the ``test`` extra) per notebook and fail on
any cell error, as ``python -m notebooks.run --size=tiny`` does. They share one work folder, so notebooks
03 and 04 evaluate the checkpoints that notebook 02 trains (each trains its own when run alone).
"""

import jupytext
import nbformat
import pytest

from notebooks import run

NOTEBOOKS = run.NOTEBOOKS
IDS = [p.stem for p in NOTEBOOKS]
TIMEOUT_S = 420  # per notebook, at the tiny size; about 30-90 s each on an idle 2-core CPU


def test_the_four_notebooks_are_there():
  assert [p.name for p in NOTEBOOKS] == ["01_smoothing.ipynb", "02_training.ipynb", "03_robustness.ipynb",
                                         "04_compare.ipynb"]


def _cells(nb):
  return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_matches_its_jupytext_pair(path):
  script = path.with_suffix(".py")
  assert script.exists(), f"{script.name} is missing: `jupytext --set-formats ipynb,py:percent {path}`"
  py, ipynb = _cells(jupytext.read(script)), _cells(nbformat.read(path, as_version=4))
  hint = f"{path.name} and {script.name} differ: run `jupytext --sync notebooks/{script.name}`"
  for i, (a, b) in enumerate(zip(py, ipynb, strict=False)):
    assert a == b, f"{hint} (cell {i}):\n--- .py\n{a[1][:400]}\n--- .ipynb\n{b[1][:400]}"
  assert len(py) == len(ipynb), f"{hint} ({len(py)} vs {len(ipynb)} cells)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell(path):
  nb = nbformat.read(path, as_version=4)
  ns = {}
  exec(nb.cells[run.parameters_index(nb)].source, ns)  # plain assignments, no imports
  assert ns["size"] == "quick", "the committed notebooks hold a quick run; keep the default at quick"
  for table in [v for k, v in ns.items() if k.isupper() and isinstance(v, dict)]:
    assert set(table) == {"tiny", "quick", "full"}


def test_training_sizes_agree():
  """Notebooks 03 and 04 train the checkpoints they need exactly as notebook 02 does."""
  tables = {}
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    ns = {}
    exec(nb.cells[run.parameters_index(nb)].source, ns)
    if "TRAIN" in ns:
      tables[path.name] = ns["TRAIN"]
  assert len(tables) == 3
  assert all(t == tables["02_training.ipynb"] for t in tables.values()), tables


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_are_small_and_clean(path):
  assert path.stat().st_size < 3_000_000, f"{path.name}: keep outputs small (PNG figures at 72 dpi)"
  nb = nbformat.read(path, as_version=4)
  errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors, f"{path.name} was committed with an error output"


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("notebooks")


# The smoothing and training notebooks run in the default suite; robustness and compare (about 50 s each
# here) with `pytest -m slow`.
_SLOW_NOTEBOOKS = ("03_robustness", "04_compare")


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if i in _SLOW_NOTEBOOKS else p
                                  for p, i in zip(NOTEBOOKS, IDS, strict=True)], ids=IDS)
def test_notebook_runs_at_tiny_size(path, work_dir):
  nb = run.execute(path, {"size": "tiny", "work_dir": str(work_dir)}, timeout=TIMEOUT_S)
  outputs = [o for c in nb.cells for o in c.get("outputs", [])]
  assert not [o for o in outputs if o.get("output_type") == "error"]
  assert any("image/png" in o.get("data", {}) for o in outputs), "every notebook draws at least one figure"
