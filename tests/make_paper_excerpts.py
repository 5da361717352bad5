"""Writes ``tests/data/paper_excerpts/``: the parts of the papers' text that ``tests/test_paper_numbers.py``
checks the typed-in tables against (each table's region, and the lines holding each quoted sentence), so
that the checks run in a fresh clone, which has no ``../shared/papers``.

  python -m tests.make_paper_excerpts            # from the repository root, with ../shared/papers beside it

Every excerpt is cut from the paper's text as it is (whole lines, in the paper's order); a region or
sentence that is not in the paper stops the script.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import iss_jax
from eval import _paper_numbers as pn
from tests import test_paper_numbers as t

OUT = Path(__file__).resolve().parent / "data" / "paper_excerpts"


def _lines_holding(lines: list[str], sentence: str) -> range:
  """The shortest run of whole lines whose joined text (whitespace squashed) holds ``sentence``."""
  want = t._squash(sentence)
  for i in range(len(lines)):
    for j in range(i + 1, len(lines) + 1):
      if want in t._squash(" ".join(lines[i:j])):
        return range(i, j)
      if len(" ".join(lines[i:j])) > len(sentence) + 4000:
        break
  raise SystemExit(f"not in the paper: {sentence!r}")


def main() -> None:
  source = Path(os.environ.get("ISS_JAX_PAPERS_DIR") or Path.cwd().parent / "shared" / "papers")
  OUT.mkdir(parents=True, exist_ok=True)
  for paper, info in pn.PAPERS.items():
    text = (source / info.file).read_text(encoding="utf-8")
    lines = text.split("\n")
    keep: set[int] = set()
    for key, table in pn.TABLES.items():
      if table.paper != paper:
        continue
      start, end = t.REGIONS[key]
      i = text.index(start)
      j = text.index(end, i + len(start)) + len(end)
      keep.update(range(text.count("\n", 0, i), text.count("\n", 0, j) + 1))
      for sentence in table.sources.values():
        keep.update(_lines_holding(lines, sentence))
    if paper == "viss":  # its check reads the whole summary (it prints no table numbers)
      keep = set(range(len(lines)))
    out, dropped = [], False
    for k, line in enumerate(lines):
      if k in keep:
        out.append(line)
      elif not dropped:
        out.append("[...]")  # one marker for each run of lines left out
      dropped = k not in keep
    iss_jax.atomic_write(OUT / info.file, "\n".join(out))
    print(f"{info.file}: {len(keep)} of {len(lines)} lines", file=sys.stderr)


if __name__ == "__main__":
  main()
