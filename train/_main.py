"""Shared flag handling of the ``python -m train.<name>`` entry points (absl + ml_collections, as in flax).

The config is ``train/configs/<name>.py:get_config(preset)``. Flags: ``--preset`` (quick | cpu | paper),
``--workdir``, the entry point's key fields (e.g. ``--sparsity``), the common short flags (``--dataset
--data_dir --model --epochs --batch_size --learning_rate --seed``), and ``--config.FIELD=VALUE`` for every
field. The key and common flags are generated from the config: a flag ``--FIELD`` has the field's type and
the help text of ``train.configs.default.FLAG_HELP``, and sets ``config.FIELD``.
Precedence: preset < ``--config.FIELD`` < the named flags.

The default ``--workdir`` names the procedure, its key settings and a preset other than quick
(:func:`default_workdir`: ``workdirs/fixed_s0.6``, ``workdirs/iterative_s0.3-0.8``,
``workdirs/fixed_s0.8_cpu``). A workdir belongs to the config that made it: the same command again resumes
it, another config is refused unless ``--overwrite``. A user's mistake (a bad flag or value, a missing
dataset, a workdir of another config) prints one line ``error: ...`` naming the flag on stderr and exits
with status 2, before the workdir is touched; a bug still shows its traceback.

An entry point is one line, :func:`entry` (it defines the flags, lists them in ``--help`` and runs through
the shared command-line stack, ``cli``)::

  if __name__ == "__main__":
    _main.entry("fixed", ["sparsity"])
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Sequence

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

import cli
import iss_jax
from train.configs import default

FLAGS = flags.FLAGS

# The kind of a field's flag (cli.define): a float flag takes fractions (--adv_eps=8/255) as well.
_KIND = {bool: "bool", int: "integer", float: "number", str: "string"}

# {flag name: config field} of the named flags defined by define_flags.
_NAMED: dict[str, str] = {}
# The config fields (of the quick config defined by define_flags).
_FIELDS: set[str] = set()

# The default workdir of each entry point, from its key settings (see default_workdir), and its --help.
_WORKDIR = {
    "vanilla": lambda c: "vanilla",
    "fixed": lambda c: f"fixed_s{c.sparsity:g}",
    "iterative": lambda c: f"iterative_s{c.start_sparsity:g}-{c.end_sparsity:g}",
    "finetune": lambda c: f"finetune_s{c.sparsity:g}",
    "adversarial": lambda c: "pgd_at" if c.adversarial == "pgd" else str(c.adversarial),
    "tvlayer": lambda c: f"tvlayer_{c.tv_layer}" + ("_conv1" if c.tv_layer_position == "first_conv" else ""),
    "pni": lambda c: f"pni_{c.pni}",
    "menet": lambda c: c.preprocess.replace("@", "_"),
    "splic": lambda c: c.preprocess.replace("@", "_"),
}
_WORKDIR_HELP = {
    "vanilla": "workdirs/vanilla",
    "fixed": "workdirs/fixed_s<sparsity>, e.g. workdirs/fixed_s0.6",
    "iterative": "workdirs/iterative_s<start>-<end>, e.g. workdirs/iterative_s0.3-0.8",
    "finetune": "workdirs/finetune_s<sparsity>, e.g. workdirs/finetune_s0.6",
    "adversarial": "workdirs/pgd_at or workdirs/trades",
    "tvlayer": "workdirs/tvlayer_<mode>, e.g. workdirs/tvlayer_smooth",
    "pni": "workdirs/pni_<layerwise|channelwise>",
    "menet": "workdirs/<preprocess with _ for @>, e.g. workdirs/menet_0.5",
    "splic": "workdirs/<preprocess with _ for @>, e.g. workdirs/splic_8",
}


def get_config(name: str, preset: str = "quick") -> ml_collections.ConfigDict:
  """``train/configs/<name>.py:get_config(preset)``."""
  return importlib.import_module(f"train.configs.{name}").get_config(preset)


def default_workdir(name: str, config: ml_collections.ConfigDict) -> str:
  """The workdir of a run without ``--workdir``: the procedure, its key settings, and a preset other than
  quick, so that runs with other settings do not meet in one folder.

  Examples:
    >>> from train import _main
    >>> _main.default_workdir("fixed", _main.get_config("fixed"))
    'workdirs/fixed_s0.6'
    >>> _main.default_workdir("iterative", _main.get_config("iterative", "cpu"))
    'workdirs/iterative_s0.3-0.8_cpu'
  """
  suffix = "" if config.preset == "quick" else f"_{config.preset}"
  return f"workdirs/{_WORKDIR[name](config)}{suffix}"


def define_flags(name: str, key_fields: Sequence[str] = (), *,
                 renamed: dict[str, str] | None = None) -> None:
  """Defines ``--preset``, ``--workdir``, ``--overwrite``, the key and common fields as flags, and
  ``--config``.

  Args:
    name: the config in ``train/configs/``: vanilla, fixed, iterative, finetune or adversarial.
    key_fields: the procedure's own config fields offered as flags (e.g. ``["sparsity"]``).
    renamed: ``{flag name: config field}`` for key flags named otherwise than their field
      (``{"method": "adversarial"}``).
  """
  quick = get_config(name, "quick")
  _FIELDS.update(quick.keys())
  flags.DEFINE_enum("preset", "quick", default.PRESETS, default.PRESET_HELP)
  flags.DEFINE_string(
      "workdir", None,
      f"Output folder. Default: {_WORKDIR_HELP[name]}, plus _<preset> for a preset other than quick "
      "(e.g. _cpu). A workdir belongs to the config that made it: the same command again resumes it, "
      "another config is refused (see --overwrite).")
  flags.DEFINE_bool(
      "overwrite", False,
      "Delete the run already in --workdir (checkpoints/, config.json, metrics.jsonl, summary.json, "
      "tensorboard/, eval/) and train afresh; without it a workdir holding a run of another config is "
      "refused.")
  flags.DEFINE_bool(
      "fast_cpu", True,
      "Faster CPU training, on by default (iss_jax.training.use_fast_cpu_training: XLA:CPU convolutions "
      "through Eigen and a transpose-light weight gradient; 1.3-1.5x for ResNet-18 on 2 cores; it changes "
      "nothing on GPU/TPU). Results match XLA's plain CPU path to float32 rounding; --nofast_cpu: that "
      "path.")
  named = {f: f for f in key_fields} | dict(renamed or {})
  named |= {f: f for f in default.COMMON_FLAGS if f not in named.values()}
  for flag_name, field in named.items():
    value = quick[field]
    help_ = f"{default.FLAG_HELP[field]} Default: the preset's (quick: {value!r})."
    if flag_name != field:
      help_ += f" Sets config.{field}."
    # Default None: a flag sets its field only when given, so the preset's value stays otherwise.
    cli.define(_KIND[type(value)], flag_name, None, help_)
    _NAMED[flag_name] = field
  config_flags.DEFINE_config_dict(
      "config", quick,
      f"--config.FIELD=VALUE sets any field of train/configs/{name}.py:get_config(preset), e.g. "
      "--config.width=32; fields: " + ", ".join(sorted(quick)) + ".")
  FLAGS["config"].default_as_str = None  # --help lists the fields above rather than the whole quick config


def flag_message(message: str) -> str:
  """``message`` with each ``config.FIELD`` named as the flag that sets it: ``--sparsity`` for a named
  flag, else ``--config.FIELD``."""
  flag_of = {field: flag for flag, field in _NAMED.items()}

  def sub(m):
    field = m.group(1)
    if field not in _FIELDS:
      return m.group(0)  # e.g. config.json
    return f"--{flag_of.get(field, 'config.' + field)}"

  return cli.as_flags(re.sub(r"\bconfig\.([A-Za-z_]\w*)", sub, message))



def user_errors():
  """``cli.user_errors`` of the training's user errors (a bad config, a missing dataset, a workdir of
  another config), each ``config.FIELD`` named as its flag."""
  return cli.user_errors((iss_jax.training.ConfigError, iss_jax.training.DatasetNotFoundError,
                          iss_jax.training.TrainingDivergedError), flag_message)


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


def run(name: str) -> dict:
  """Builds and checks the config, announces the preset, trains, prints the summary.

  Args:
    name: the config in ``train/configs/``.

  Returns:
    The summary of :func:`iss_jax.training.train_and_evaluate`.
  """
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  if FLAGS.fast_cpu:  # the default (--nofast_cpu opts out); a no-op for computations on GPU/TPU
    iss_jax.training.use_fast_cpu_training()  # before JAX starts: nothing above creates an array
  config = build_config(name)
  with user_errors():
    iss_jax.training.validate_config(config)  # before the announcement and any file
  workdir = FLAGS.workdir or default_workdir(name, config)
  if config.preset == "quick":
    print("[iss_jax] QUICK configuration (offline CPU demo: shipped 1,000-image CIFAR-10 sample, "
          "ResNet-8, few epochs). The paper's setting is one flag away: --preset=paper "
          "(ResNet-18, full CIFAR-10 via TFDS or --data_dir, 200 epochs).", flush=True)
  else:
    print(f"[iss_jax] {config.preset.upper()} configuration.", flush=True)
  with user_errors():
    summary = iss_jax.training.train_and_evaluate(config, workdir, overwrite=FLAGS.overwrite)
  short = {k: v for k, v in summary.items() if k not in ("config", "smoothing")}
  print(json.dumps(short, indent=1), file=sys.stdout, flush=True)
  return summary


def entry(name: str, key_fields: Sequence[str] = (), *, renamed: dict[str, str] | None = None) -> None:
  """``python -m train.<name>``: defines the flags (:func:`define_flags`), lists them in ``--help``, parses
  them and trains (:func:`run`)."""
  define_flags(name, key_fields, renamed=renamed)
  for flag in FLAGS.get_key_flags_for_module(__name__):  # --help lists the main module's key flags
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def main(argv):
    del argv
    run(name)

  app.run(main, flags_parser=cli.parse_flags)
