"""Shared flag handling of the ``train.*`` entry points (absl + ml_collections, as in flax/examples).

Every entry point accepts ``--preset`` (quick | cpu | full), the common flags (``--workdir``,
``--dataset``, ``--data_dir``, ``--model``, ``--epochs``, ``--batch_size``, ``--learning_rate``,
``--seed``), its own procedure flags, and ``--config.FIELD=VALUE`` overrides of any config field.
Precedence: preset < ``--config.FIELD`` < the named flags.
"""

from __future__ import annotations

import json
import sys

from absl import flags, logging
from ml_collections import config_flags

import iss_jax

FLAGS = flags.FLAGS


def define_flags(procedure: str, extra: dict[str, tuple] | None = None) -> None:
  """Defines the common flags, the procedure's extra flags and ``--config``."""
  flags.DEFINE_enum("preset", "quick", ["quick", "cpu", "full", "paper"],
                    "quick: offline CPU demo on the shipped 1,000-image CIFAR-10 sample; cpu: the "
                    "5,085-image real subset (cifar10_exact); full (= paper): the paper's ResNet-18 / "
                    "CIFAR-10 run.")
  flags.DEFINE_string("workdir", None, f"Output folder (default workdirs/{procedure}).")
  flags.DEFINE_string("dataset", None, "Dataset name (see iss_jax.load_dataset).")
  flags.DEFINE_string("data_dir", None, "Folder with the dataset files / TFDS data_dir.")
  flags.DEFINE_string("model", None, "resnet18 | resnet34 | resnet50 | resnet_small.")
  flags.DEFINE_integer("epochs", None, "Training epochs.")
  flags.DEFINE_integer("batch_size", None, "Global batch size.")
  flags.DEFINE_float("learning_rate", None, "Peak learning rate (cosine schedule).")
  flags.DEFINE_integer("seed", None, "Random seed (same seed, same result).")
  for name, (kind, help_) in (extra or {}).items():
    {"float": flags.DEFINE_float, "string": flags.DEFINE_string}[kind](name, None, help_)
  config_flags.DEFINE_config_dict("config", iss_jax.training_config(procedure, "quick"),
                                  "Override any config field: --config.FIELD=VALUE.")


def build_config(procedure: str, extra_names=()):
  """The config: preset, then ``--config.*`` overrides, then the named flags."""
  config = iss_jax.training_config(procedure, FLAGS.preset)
  for key, value in config_flags.get_override_values(FLAGS["config"]).items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  names = ("dataset", "data_dir", "model", "epochs", "batch_size", "learning_rate", "seed")
  for name in names + tuple(extra_names):
    value = getattr(FLAGS, name)
    if value is not None:
      config[name] = value
  return config


def run(procedure: str, extra_names=()) -> dict:
  """Builds the config, announces the preset, trains, prints the summary."""
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  config = build_config(procedure, extra_names)
  workdir = FLAGS.workdir or f"workdirs/{procedure}"
  if config.preset == "quick":
    print("[iss_jax] QUICK configuration (offline CPU demo: shipped 1,000-image CIFAR-10 sample, "
          "ResNet-8, few epochs). The paper's setting is one flag away: --preset=paper "
          "(ResNet-18, full CIFAR-10 via TFDS or --data_dir, 200 epochs).", flush=True)
  else:
    print(f"[iss_jax] {config.preset.upper()} configuration.", flush=True)
  try:
    summary = iss_jax.train_and_evaluate(config, workdir)
  except iss_jax.DatasetNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  short = {k: v for k, v in summary.items() if k not in ("config", "smoothing")}
  print(json.dumps(short, indent=1), file=sys.stdout, flush=True)
  return summary
