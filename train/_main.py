"""Shared flag handling of the ``python -m train.<name>`` entry points (absl + ml_collections, as in flax).

The config is ``train/configs/<name>.py:get_config(preset)``. Flags: ``--preset`` (quick | cpu | paper),
``--workdir``, the entry point's key fields (e.g. ``--sparsity``), the common short flags (``--dataset
--data_dir --model --epochs --batch_size --learning_rate --seed``), and ``--config.FIELD=VALUE`` for every
field. The key and common flags are generated from the config: a flag ``--FIELD`` has the field's type and
the help text of ``train.configs.default.FLAG_HELP``, and sets ``config.FIELD``.
Precedence: preset < ``--config.FIELD`` < the named flags.

An entry point defines the flags, adopts them as its own key flags (so that ``--help`` lists them) and runs
through :func:`parse_flags` (so that ``--help`` exits 0)::

  _main.define_flags("fixed", ["sparsity"])
  flags.adopt_module_key_flags(_main)
  app.run(main, flags_parser=_main.parse_flags)
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

import iss_jax
from train.configs import default

FLAGS = flags.FLAGS

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}

# {flag name: config field} of the named flags defined by define_flags.
_NAMED: dict[str, str] = {}


def get_config(name: str, preset: str = "quick") -> ml_collections.ConfigDict:
  """``train/configs/<name>.py:get_config(preset)``."""
  return importlib.import_module(f"train.configs.{name}").get_config(preset)


def define_flags(name: str, key_fields: Sequence[str] = (), *, renamed: dict[str, str] | None = None,
                 workdir_help: str | None = None) -> None:
  """Defines ``--preset``, ``--workdir``, the key and common fields as flags, and ``--config``.

  Args:
    name: the config in ``train/configs/``: vanilla, fixed, iterative, finetune or adversarial.
    key_fields: the procedure's own config fields offered as flags (e.g. ``["sparsity"]``).
    renamed: ``{flag name: config field}`` for key flags named otherwise than their field
      (``{"method": "adversarial"}``).
    workdir_help: help of ``--workdir`` (default: ``workdirs/<name>``).
  """
  quick = get_config(name, "quick")
  flags.DEFINE_enum("preset", "quick", default.PRESETS, default.PRESET_HELP)
  flags.DEFINE_string("workdir", None, workdir_help or f"Output folder (default workdirs/{name}).")
  named = {f: f for f in key_fields} | dict(renamed or {})
  named |= {f: f for f in default.COMMON_FLAGS if f not in named.values()}
  for flag_name, field in named.items():
    value = quick[field]
    help_ = f"{default.FLAG_HELP[field]} Default: the preset's (quick: {value!r})."
    if flag_name != field:
      help_ += f" Sets config.{field}."
    # Default None: a flag sets its field only when given, so the preset's value stays otherwise.
    _DEFINE[type(value)](flag_name, None, help_)
    _NAMED[flag_name] = field
  config_flags.DEFINE_config_dict(
      "config", quick,
      f"--config.FIELD=VALUE sets any field of train/configs/{name}.py:get_config(preset), e.g. "
      "--config.width=32; fields: " + ", ".join(sorted(quick)) + ".")
  FLAGS["config"].default_as_str = None  # --help lists the fields above rather than the whole quick config


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parser, except that ``--help`` (``-h``, ``--helpshort``) and ``--helpfull`` exit 0."""
  args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  if any(a in ("--help", "-h", "-?", "--helpshort") for a in args):
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
  if "--helpfull" in args:
    app.usage(writeto_stdout=True, exitcode=0)
  return app.parse_flags_with_usage(argv)  # a bad flag: the usage and the error, exit 1


def build_config(name: str) -> ml_collections.ConfigDict:
  """The config: the preset, then the ``--config.*`` overrides, then the named flags."""
  config = get_config(name, FLAGS.preset)
  for key, value in config_flags.get_override_values(FLAGS["config"]).items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  for flag_name, field in _NAMED.items():
    value = FLAGS[flag_name].value
    if value is not None:
      config[field] = value
  return config


def run(name: str, workdir_fn: Callable[[ml_collections.ConfigDict], str] | None = None) -> dict:
  """Builds the config, announces the preset, trains, prints the summary.

  Args:
    name: the config in ``train/configs/``.
    workdir_fn: the default workdir of a config (default ``workdirs/<name>``), used without ``--workdir``.

  Returns:
    The summary of :func:`iss_jax.training.train_and_evaluate`.
  """
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  config = build_config(name)
  workdir = FLAGS.workdir or (workdir_fn(config) if workdir_fn else f"workdirs/{name}")
  if config.preset == "quick":
    print("[iss_jax] QUICK configuration (offline CPU demo: shipped 1,000-image CIFAR-10 sample, "
          "ResNet-8, few epochs). The paper's setting is one flag away: --preset=paper "
          "(ResNet-18, full CIFAR-10 via TFDS or --data_dir, 200 epochs).", flush=True)
  else:
    print(f"[iss_jax] {config.preset.upper()} configuration.", flush=True)
  try:
    summary = iss_jax.training.train_and_evaluate(config, workdir)
  except iss_jax.training.DatasetNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  short = {k: v for k, v in summary.items() if k not in ("config", "smoothing")}
  print(json.dumps(short, indent=1), file=sys.stdout, flush=True)
  return summary
