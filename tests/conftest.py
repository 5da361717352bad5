"""Test configuration: strict rank promotion, float32 by default, the NumPy oracle and train/ importable, and
every test in its own temporary working directory."""

import os
import sys

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(__file__))
# The repository root, so that `pytest` (not only `python -m pytest`) imports train.configs and train._main,
# and so that a subprocess `python -m train.fixed` started from a test's temporary directory finds them too.
sys.path.insert(1, REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch):
  """Runs every test in a fresh empty directory, so that nothing a user ran in the clone (``workdirs/``,
  ``cache/``, ``results/``) changes a result, and no test writes into the clone."""
  monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
