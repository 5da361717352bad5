"""The command-line stack of the ``python -m train.*`` and ``python -m eval.*`` entry points: absl flags.

One stack for both folders (absl, as the flax examples and big_vision; ``train/`` adds ml_collections'
``--config.FIELD``) and one error exit: a user's mistake (a bad flag or value, a missing file, a workdir of
another config) is one line ``error: <message>`` on stderr and exit status 2, before any file is written;
a bug keeps its traceback, and ``ISS_JAX_DEBUG=1`` shows the traceback of a user error too. ``--help``
(``-h``) prints the entry point's docstring and its flags and exits 0.

``train/`` parses the process-wide ``absl.flags.FLAGS`` through ``absl.app.run`` (one training run per
process). Every ``eval/`` entry point defines its flags in a ``flags.FlagValues`` of its own, so that its
``main(argv)`` can be called many times in one process (the tests, ``eval.all``) and two evaluations may
give one flag name other defaults. Number flags take fractions: ``--eps=8/255``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import types
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import NoReturn

from absl import app, flags

import iss_jax

# The project's user errors: one line and exit 2, no traceback (ISS_JAX_DEBUG=1 shows it).
USER_ERRORS = (ValueError, FileNotFoundError, iss_jax.KernelUnavailableError)
_HELP = ("--help", "-h", "-?", "--helpshort")


# Library arguments that every entry point offers as a flag of the same name: a library message saying
# ``pass data_dir=DIR`` reads ``pass --data_dir=DIR`` on the command line.
ARGUMENT_FLAGS = ("data_dir", "dataset", "workdir", "overwrite")
_ARGUMENT = re.compile(r"(?<![\w.-])(" + "|".join(ARGUMENT_FLAGS) + r")(?==)")


def as_flags(message: str) -> str:
  """``message`` with each library argument of :data:`ARGUMENT_FLAGS` written as its flag."""
  return _ARGUMENT.sub(r"--\1", message)


def fail(message: str) -> NoReturn:
  """Prints ``error: <message>`` as one line on stderr and exits with status 2 (a usage error)."""
  print("error: " + (" ".join(str(message).split()) or "unknown error"), file=sys.stderr, flush=True)
  sys.exit(2)


@contextlib.contextmanager
def user_errors(errors: tuple[type[BaseException], ...] = USER_ERRORS,
                message: Callable[[str], str] = as_flags):
  """Turns ``errors`` raised inside into :func:`fail` with ``message(str(error))`` (by default the library
  arguments named as flags, :func:`as_flags`), unless ``ISS_JAX_DEBUG`` is set (then the traceback
  shows)."""
  try:
    yield
  except errors as e:
    if os.environ.get("ISS_JAX_DEBUG"):
      raise
    fail(message(str(e)) or type(e).__name__)


def parse_flags(argv: Sequence[str], flag_values: flags.FlagValues | None = None, *,
                doc: str | None = None) -> list[str]:
  """Parses ``argv`` (program name first) into ``flag_values`` (default: absl's ``FLAGS``).

  ``--help`` prints ``doc`` and every flag of ``flag_values`` (for ``FLAGS``: ``__main__``'s docstring and
  its key flags; ``--helpfull``: all flags) and exits 0. A bad flag or value, or an argument that is not a
  flag, is one line on stderr and exit status 2.

  Returns:
    ``argv[:1]``, as ``absl.app.run`` expects of a flags parser.
  """
  argv = list(argv)
  args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  if any(a in _HELP for a in args) or "--helpfull" in args:
    if flag_values is None:
      app.usage(shorthelp="--helpfull" not in args, writeto_stdout=True, exitcode=0)
    print((doc or "").rstrip() + "\n\nflags:\n" + flag_values.get_help(), flush=True)
    sys.exit(0)
  try:
    rest = (flags.FLAGS if flag_values is None else flag_values)(argv)
  except flags.Error as e:
    fail(f"{e} (--help lists the flags)")
  if len(rest) > 1:
    fail(f"unexpected argument {rest[1]!r}: every setting is a flag, --NAME=VALUE (--help lists them).")
  return rest[:1]


def parse(flag_values: flags.FlagValues, argv: Sequence[str] | None, doc: str) -> types.SimpleNamespace:
  """:func:`parse_flags` of ``argv`` (without the program name; default ``sys.argv[1:]``) into a fresh
  ``flag_values``; returns the values as attributes (a namespace the caller may extend)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  parse_flags([sys.argv[0], *argv], flag_values, doc=doc)
  return types.SimpleNamespace(**flag_values.flag_values_dict())


# ------------------------------------------------------------------------------------------- value types


def number(text: str | float) -> float:
  """``0.03``, ``8/255`` or ``8/255.`` as a float."""
  if isinstance(text, (int, float)):
    return float(text)
  text = text.strip()
  try:
    return float(Fraction(text)) if "/" in text else float(text)
  except (ValueError, ZeroDivisionError) as e:
    raise ValueError(f"not a number or fraction: {text!r}") from e


class _Parser(flags.ArgumentParser):
  """An absl parser from a function ``text -> value``; of a list of such values for ``separator``."""

  def __init__(self, parse: Callable, kind: str, kinds: str, separator: str | None = None):
    self._parse, self._separator = parse, separator
    self.syntactic_help = kind if separator is None else f"a comma-separated list of {kinds}"

  def parse(self, argument):
    if self._separator is None:
      return self._parse(argument)
    if not isinstance(argument, str):
      return [self._parse(v) for v in argument]
    return [self._parse(t) for t in argument.split(self._separator) if t.strip()]

  def flag_type(self) -> str:
    return "list" if self._separator else "number"


def _int(text) -> int:
  return int(text.strip()) if isinstance(text, str) else int(text)


def _str(text) -> str:
  return text.strip()


_KINDS = {"number": (number, "a number or a fraction such as 8/255", "numbers or fractions"),
          "int": (_int, "an integer", "integers"), "str": (_str, "a string", "names")}


def _calling_module() -> str:
  """The module calling :func:`define`'s caller, named as absl names it (``__main__`` by ``sys.argv[0]``)."""
  name = sys._getframe(2).f_globals.get("__name__", "")  # noqa: SLF001 - as absl's own _helpers
  return sys.argv[0] if name == "__main__" else name


def define(kind: str, name: str, default, help_: str, flag_values: flags.FlagValues = flags.FLAGS,
           **kw) -> None:
  """Defines ``--name`` of one ``kind`` in ``flag_values``.

  Args:
    kind: ``string``, ``integer``, ``bool``, ``enum`` (with ``enum_values=``), ``number`` (a float that may
      be a fraction, ``8/255``), ``number_list`` / ``int_list`` / ``str_list`` (comma-separated; ``""``
      is the empty list), ``multi_string`` / ``multi_number`` (repeat the flag for several values).
    name, default, help_: as absl's ``DEFINE_*`` (a string default is parsed as a command-line value).
    flag_values: the ``FlagValues`` to define it in.
    **kw: passed to absl (``enum_values``).
  """
  kw.setdefault("module_name", _calling_module())  # --help groups the flag under its caller, not cli
  if kind == "enum":
    flags.DEFINE_enum(name, default, kw.pop("enum_values"), help_, flag_values=flag_values, **kw)
  elif kind in ("string", "integer", "bool", "multi_string"):
    getattr(flags, f"DEFINE_{kind}")(name, default, help_, flag_values=flag_values, **kw)
  elif kind.startswith("multi_"):
    flags.DEFINE_multi(_Parser(*_KINDS[kind[6:]]), flags.ArgumentSerializer(), name, default, help_,
                       flag_values=flag_values, **kw)
  elif kind.endswith("_list"):
    flags.DEFINE(_Parser(*_KINDS[kind[:-5]], separator=","), name, default, help_, flag_values,
                 flags.CsvListSerializer(","), **kw)
  else:
    flags.DEFINE(_Parser(*_KINDS[kind]), name, default, help_, flag_values, **kw)
