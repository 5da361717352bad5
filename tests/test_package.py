"""The package layout: a light core, four rooms with public namespaces, and imports only downwards."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import iss_jax

PACKAGE = Path(iss_jax.__file__).resolve().parent
# Each room may import the rooms before it, never after.
ROOMS = ("analysis", "robustness", "baselines", "training")
BLOCKED = ("flax", "optax", "orbax", "ml_collections", "absl", "chex", "scipy", "tqdm", "matplotlib", "PIL")

_BLOCK = f"""
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in {BLOCKED!r}:
      raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", _BLOCK + code], capture_output=True, text=True,
                        timeout=300, env={"ISS_JAX_CPU_KERNEL": "0", "PATH": "/usr/bin:/bin",
                                          "JAX_PLATFORMS": "cpu"})


def test_core_imports_and_smooths_without_the_training_stack():
  r = _run("import numpy as np, iss_jax\n"
           "x = np.random.default_rng(0).random((2, 8, 8, 3)).astype('float32')\n"
           "y, info = iss_jax.smooth(x, 0.5, return_info=True)\n"
           "assert y.shape == x.shape and bool((info.sparsity >= 0.5).all())\n"
           "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
           f"{BLOCKED!r}))\n")
  assert r.returncode == 0, r.stderr
  assert r.stdout.strip() == "[]"


def test_training_room_names_the_extra_when_it_is_missing():
  r = _run("import iss_jax.training\n")
  assert r.returncode != 0
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("ImportError: iss_jax.training needs the [train] extra") and 'iss-jax[train]' in last


def test_moved_names_say_where_they_went():
  with pytest.raises(AttributeError, match=r"iss_jax\.pgd moved to iss_jax\.robustness\.pgd"):
    iss_jax.pgd  # noqa: B018
  with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
    iss_jax.nonsense  # noqa: B018
  assert iss_jax.robustness.pgd is __import__("iss_jax.robustness").robustness.pgd


@pytest.mark.parametrize("room", ("", *ROOMS))
def test_each_namespace_reexports_only_and_its_modules_are_private(room):
  module = __import__(f"iss_jax.{room}".rstrip("."), fromlist=["__all__"])
  folder = PACKAGE / room if room else PACKAGE
  for name in module.__all__:
    assert hasattr(module, name), name
  tree = ast.parse((folder / "__init__.py").read_text())
  for node in tree.body:  # only imports, __all__ / __version__, the docstring and (core) the lazy rooms
    assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.Expr, ast.Try, ast.FunctionDef)), (
        ast.dump(node)[:80])
  modules = [p.stem for p in folder.glob("*.py") if p.name != "__init__.py"]
  assert all(m.startswith("_") for m in modules), modules


def _imported_rooms(path: Path) -> set[str]:
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
        [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
    for name in names:
      parts = name.split(".")
      if parts[0] == "iss_jax" and len(parts) > 1 and parts[1] in ROOMS:
        found.add(parts[1])
  return found


def test_rooms_import_only_downwards():
  core = [p for p in PACKAGE.glob("_src/*.py")]
  assert core and all(not _imported_rooms(p) for p in core), "the core imports no room"
  for i, room in enumerate(ROOMS):
    for path in (PACKAGE / room).glob("*.py"):
      above = _imported_rooms(path) - set(ROOMS[: i + 1])
      assert not above, f"{path.relative_to(PACKAGE)} imports {above}, a room above {room}"


def _private_imports_of_other_rooms(path: Path, room: str) -> list[str]:
  """``iss_jax.<other room>._module`` names imported by ``path`` (a module of ``room``), in any form:
  ``from iss_jax.r._m import f``, ``import iss_jax.r._m`` and ``from iss_jax.r import _m``."""
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    for name in names:
      parts = name.split(".")
      if (len(parts) > 2 and parts[0] == "iss_jax" and parts[1] in ROOMS and parts[1] != room
          and parts[2].startswith("_")):
        found.append(name)
  return found


def test_rooms_use_each_others_public_namespaces_only():
  """A room reaches another room through its public namespace (``iss_jax.robustness.Defense``), never
  through that room's private modules; ``iss_jax._src`` is the core's implementation, shared by every room
  as ``jax._src`` is by jax's namespaces."""
  offenders = {}
  for room in ROOMS:
    for path in (PACKAGE / room).glob("*.py"):
      found = _private_imports_of_other_rooms(path, room)
      if found:
        offenders[str(path.relative_to(PACKAGE))] = found
  assert not offenders, offenders


def test_the_private_import_check_sees_every_form(tmp_path):
  module = tmp_path / "m.py"
  module.write_text("from iss_jax.robustness._attacks import pgd\nimport iss_jax.baselines._tv\n"
                    "from iss_jax.robustness import _runner\nfrom iss_jax.training._data import x\n"
                    "from iss_jax.robustness import Defense\nfrom iss_jax._src.checks import check_image\n")
  assert _private_imports_of_other_rooms(module, "training") == [
      "iss_jax.robustness._attacks", "iss_jax.robustness._attacks.pgd", "iss_jax.baselines._tv",
      "iss_jax.robustness._runner"]
