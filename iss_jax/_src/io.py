"""The one atomic file write: nothing is ever left half-written over a good file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
  """Writes ``path`` atomically: a temporary file in the same folder, flushed to disk, then renamed.

  A reader sees the old file or the new one, never a partial one; an interrupted write leaves the old
  file and no temporary behind. The folder is created if missing.

  Args:
    path: the destination.
    data: bytes, text (UTF-8), or a function that writes into the open binary file (e.g.
      ``lambda f: np.save(f, array)``).

  Returns:
    ``path`` as a ``Path``.
  """
  path = Path(path)
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    if callable(data):
      data(f)
    else:
      f.write(data.encode() if isinstance(data, str) else data)
  return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
  """A temporary file beside ``path`` to write by any means (e.g. ``np.lib.format.open_memmap``); when the
  block ends it is flushed to disk and renamed to ``path``, or removed if the block raised.

  Args:
    path: the destination (its folder is created if missing).

  Yields:
    The temporary file's path (it exists, empty).
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  os.close(fd)
  try:
    yield Path(tmp)
    with open(tmp, "rb+") as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
