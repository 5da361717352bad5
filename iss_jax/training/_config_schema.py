"""The one description of every training config field: what it may hold, what it changes, what it meant
before it existed, and its help line.

Validation (:func:`validate_config`), the workdir comparison (:func:`config_differences`,
:func:`check_workdir`), the key of the compiled training steps and the entry points' ``--help`` all read
:data:`CONFIG_SCHEMA`. The values themselves (the paper's defaults and the presets) live in the
repository's ``train/configs/`` (``default.py``), which this library never imports: adding a field is one
:class:`Field` here plus its value there.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from iss_jax import baselines
from iss_jax.training._data import NUM_CLASSES
from iss_jax.training._models import MODELS

PROCEDURES = ("vanilla", "fixed", "iterative", "finetune")
ADVERSARIAL = ("none", "pgd", "trades")
TV_LAYER_MODES = ("none", "smooth", "sharp")
TV_LAYER_POSITIONS = ("input", "first_conv")
PNI_MODES = ("none", "layerwise", "channelwise")
STEMS = ("cifar", "imagenet")
COMPUTE_DTYPES = ("float32", "bfloat16")
OPTIMIZERS = ("sgd", "adamw")


class ConfigError(ValueError):
  """A training config, its data or its workdir cannot be used as given: a user's mistake, not a bug.

  Raised before the workdir is touched. The message is one sentence that names each offending field as
  ``config.FIELD`` and what is allowed (an entry point may print the field as the flag that sets it).
  """


class TrainingDivergedError(FloatingPointError):
  """The training loss became NaN or infinite: the run stops at that epoch, without checkpointing it (the
  workdir keeps the last finite epoch). The message names the epoch and the config fields that usually
  cause it (the learning rate, the weights of added losses)."""


class WorkdirConfigMismatchError(ConfigError):
  """The workdir holds a run made with another config: resuming it would mix two runs.

  Attributes:
    differences: ``{field: (value in the workdir's config.json, value now)}`` of the fields that change
      the result (see ``RESULT_INDEPENDENT_FIELDS``).
  """

  def __init__(self, message: str, differences: dict[str, tuple[Any, Any]] | None = None):
    super().__init__(message)
    self.differences = dict(differences or {})


class _Required:
  def __repr__(self):
    return "REQUIRED"


REQUIRED = _Required()  # absent_means of a field that every stored config holds


class Field(NamedTuple):
  """One training config field.

  Attributes:
    name: the field, ``config.NAME``.
    check: ``check(value) -> bool``; it may raise :class:`ConfigError` itself with a sentence of its own.
    expected: what ``check`` accepts, as the end of "config.NAME must be ...".
    help: one line for ``--help``.
    changes_result: whether another value changes what a run computes (its checkpoints and metrics);
      a workdir may be resumed with another value of a field that does not.
    in_step: whether the field enters the compiled training / evaluation steps (their cache key).
    absent_means: the value a config stored before the field existed means; ``REQUIRED``: every stored
      config holds the field.
    read_if: ``read_if(config) -> bool``: whether the run reads the field (``sparsity`` in a vanilla run
      is not read, so it does not count in the workdir comparison); ``None``: always.
  """

  name: str
  check: Callable[[Any], bool]
  expected: str
  help: str
  changes_result: bool = True
  in_step: bool = True
  absent_means: Any = REQUIRED
  read_if: Callable[[Mapping], bool] | None = None


# --------------------------------------------------------------------------------------------------
# Kinds of values.


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _one_of(options: Iterable[str]) -> tuple[Callable, str]:
  options = tuple(options)
  return (lambda v: v in options), "one of " + ", ".join(options)


def _integer(low: int, note: str = "") -> tuple[Callable, str]:
  return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}{note}"


def _number(low: float, high: float | None = None, *, open_low: bool = False,
            open_high: bool = False) -> tuple[Callable, str]:
  def check(v):
    ok = _is_real(v) and (v > low if open_low else v >= low)
    return ok and (high is None or (v < high if open_high else v <= high))

  if high is None:
    return check, f"a number {'>' if open_low else '>='} {low:g}"
  return check, f"a number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


_BOOLEAN = (lambda v: isinstance(v, (bool, np.bool_))), "true or false"
_STRING = (lambda v: isinstance(v, str)), "a string"


def _dataset_ok(v) -> bool:
  return isinstance(v, str) and (v in NUM_CLASSES or (
      v.startswith(("npz:", "folder:")) and v.split(":", 1)[1].strip() != ""))


@functools.lru_cache(maxsize=16)
def parse_preprocess(spec: str):
  """The defense of a ``config.preprocess`` spec (``None`` for ``"none"``), parsed once per spec.

  Raises:
    ConfigError: an unknown spec, or ``smooth@S`` (ISS smoothing of the training set is cached once by
      the ``fixed`` / ``iterative`` procedures, not redone per batch).
  """
  if spec == "none":
    return None
  if spec.startswith("smooth@"):
    raise ConfigError(f"config.preprocess {spec!r}: train on ISS-smoothed images with config.procedure "
                      "'fixed' and config.sparsity S (smoothed once and cached), not per batch.")
  try:
    return baselines.make_defense(spec)
  except ValueError as e:
    raise ConfigError(f"config.preprocess: {e}") from None


def _preprocess_ok(v) -> bool:
  if not isinstance(v, str):
    return False
  parse_preprocess(v)  # raises its own sentence
  return True


# --------------------------------------------------------------------------------------------------
# When a field is read.


def _procedure_in(*names) -> Callable[[Mapping], bool]:
  return lambda c: c.get("procedure") in names


_SMOOTHING = _procedure_in("fixed", "finetune", "iterative")
_TV_LAYER = lambda c: c["tv_layer"] != "none"  # a stored config has it: with_absent_fields
_ADVERSARY = lambda c: c.get("adversarial") != "none"
_TRADES = lambda c: c.get("adversarial") not in ("none", "pgd")


def _field(name, kind, help_, **kw) -> Field:
  check, expected = kind
  return Field(name, check, expected, help_, **kw)


_NOT_RESULT = {"changes_result": False, "in_step": False}

_FIELDS = (
    _field("procedure", _one_of(PROCEDURES), "Training procedure: vanilla, fixed, iterative or finetune.",
           in_step=False),
    _field("preset", _STRING, "A label, printed and stored in the summary (quick, cpu, paper, ...).",
           **_NOT_RESULT),
    # Data.
    _field("dataset", (_dataset_ok, "one of " + ", ".join(sorted(NUM_CLASSES))
                       + ", npz:/path/file.npz or folder:/path"),
           "Dataset name: cifar10, cifar100 (official python pickles in the data folder, or TFDS), "
           "cifar10_sample, cifar10_exact, miniimagenet, imagenet100, npz:PATH or folder:PATH "
           "(see iss_jax.training.load_dataset).", in_step=False),
    _field("data_dir", _STRING, "Folder with the dataset files / TFDS data_dir.", **_NOT_RESULT),
    _field("image_size", _integer(0, " (0 = native size)"),
           "Image size; 0 = native (image folders / TFDS are resized when > 0).", in_step=False),
    _field("num_classes", _integer(0, " (0 = from the dataset)"), "Number of classes; 0 = from the dataset."),
    _field("train_limit", _integer(0, " (0 = all)"), "> 0: use only the first N training images.",
           in_step=False),
    _field("test_limit", _integer(0, " (0 = all)"), "> 0: evaluate on the first N test images only.",
           in_step=False),
    # Model.
    _field("model", _one_of(sorted(MODELS)),
           "resnet18 | resnet34 | resnet50 | resnet_small | vit_tiny (ViT-Tiny: patch 4 for 32x32 images, "
           "16 for 224x224)."),
    _field("stem", _one_of(STEMS), "cifar (3x3 conv, no max-pool) | imagenet (7x7/2 conv + max-pool).",
           absent_means="cifar"),
    _field("width", _integer(0, " (0 = the model's default)"), "Model width; 0 = the model's default.",
           absent_means=0),
    _field("dtype", _one_of(COMPUTE_DTYPES),
           "Computation dtype: float32 | bfloat16 (activations and matrix products in bfloat16; weights, "
           "optimiser state and BatchNorm statistics stay float32: float32 master weights).",
           absent_means="float32"),
    # Competitors' layers and training-time preprocessing.
    _field("tv_layer", _one_of(TV_LAYER_MODES),
           "TV layer: smooth (TV-smoothed input) or sharp (2x - TV(x)); learned weight.",
           absent_means="none"),
    _field("tv_layer_weight", _number(0, open_low=True),
           "Initial weight of the TV layer (learned as softplus(theta)).", read_if=_TV_LAYER),
    _field("tv_layer_position", _one_of(TV_LAYER_POSITIONS),
           "Where the TV layer sits: input (smooths the image) or first_conv (smooths each feature map of "
           "the first convolution).", absent_means="input", read_if=_TV_LAYER),
    _field("tv_layer_iters", _integer(1), "Chambolle iterations of the TV layer (the gradient unrolls them).",
           read_if=_TV_LAYER),
    _field("pni", _one_of(PNI_MODES),
           "PNI weight noise with learned scales: layerwise or channelwise (noise kept at test time).",
           absent_means="none"),
    _field("preprocess", (_preprocess_ok, "a defense spec such as menet@0.5 or splic@8"),
           "Defense applied to every training and test batch: menet@P (ME-Net, observation probability P) "
           "or splic@R (SPLIC, rank R).", absent_means="none"),
    # Smoothing (the Split LBI settings of iss_jax.smooth; part of the cache key).
    _field("sparsity", _number(0, 1), "Edge sparsity of the smoothed training images.", in_step=False,
           read_if=_procedure_in("fixed", "finetune")),
    _field("start_sparsity", _number(0, 1), "Sparsity of the first epochs (coarse structure).",
           in_step=False, read_if=_procedure_in("iterative")),
    _field("end_sparsity", _number(0, 1), "Sparsity of the last epochs.", in_step=False,
           read_if=_procedure_in("iterative")),
    _field("num_levels", _integer(1), "Iterative: number of sparsity levels, in equal blocks of epochs.",
           in_step=False, read_if=_procedure_in("iterative")),
    _field("kappa", _number(0, open_low=True), "Split LBI kappa of the smoothing.", in_step=False,
           read_if=_SMOOTHING),
    _field("nu", _number(0, open_low=True), "Split LBI nu of the smoothing.", in_step=False,
           read_if=_SMOOTHING),
    _field("step_factor", _number(0, 2, open_low=True, open_high=True),
           "Split LBI step factor of the smoothing.", in_step=False, read_if=_SMOOTHING),
    _field("maxiter", _integer(0, " (0 = the image-size default of iss_jax.smooth)"),
           "Split LBI step cap; 0 = iss_jax.smooth's cap for the image size.", in_step=False,
           read_if=_SMOOTHING),
    _field("smooth_batch_size", _integer(1), "Images per smoothing chunk (one file of the cache each).",
           **_NOT_RESULT),
    _field("cache_dir", ((lambda v: isinstance(v, str) and v != ""), "a folder"),
           "Folder of the smoothing cache.", **_NOT_RESULT),
    # Optimisation.
    _field("epochs", _integer(1), "Training epochs.", in_step=False),
    _field("batch_size", _integer(1), "Global batch size (a multiple of the device count)."),
    _field("eval_batch_size", _integer(1), "Global batch size of the test evaluation (rounded up to a "
           "multiple of the device count; the last batch is padded and masked).", changes_result=False),
    _field("optimizer", _one_of(OPTIMIZERS),
           "sgd (momentum, decoupled weight decay added to the gradient) | adamw (optax.adamw with "
           "weight_decay; with warmup_epochs, the usual ViT recipe).", absent_means="sgd"),
    _field("learning_rate", _number(0), "Peak learning rate (cosine schedule)."),
    _field("momentum", _number(0, 1, open_high=True), "SGD momentum."),
    _field("nesterov", _BOOLEAN, "Nesterov momentum."),
    _field("weight_decay", _number(0), "Weight decay (not on a TV layer's weight or PNI's scales)."),
    _field("warmup_epochs", _integer(0), "Epochs of linear learning-rate warm-up."),
    _field("label_smoothing", _number(0, 1, open_high=True), "Label smoothing of the cross-entropy."),
    _field("crop_padding", _integer(0, " (0 = no random crop)"),
           "Zero padding before the random crop; 0 = no crop."),
    _field("flip", _BOOLEAN, "Random horizontal flip."),
    # Loss terms owned by the baselines.
    _field("smooth_kernel_weight", _number(0),
           "Weight of iss_jax.baselines.smooth_kernel_penalty (0 = off)."),
    _field("adversarial", _one_of(ADVERSARIAL),
           "pgd: PGD-AT (Madry et al.); trades: TRADES (Zhang et al.); none: no adversary."),
    _field("adv_eps", _number(0), "L-inf radius of the inner PGD.", read_if=_ADVERSARY),
    _field("adv_step_size", _number(0), "Step of the inner PGD.", read_if=_ADVERSARY),
    _field("adv_steps", _integer(1), "Iterations of the inner PGD.", read_if=_ADVERSARY),
    _field("trades_beta", _number(0), "TRADES trade-off weight (paper: 6).", read_if=_TRADES),
    # Finetune.
    _field("init_checkpoint", _STRING, "Workdir of the trained model to start from.", in_step=False,
           read_if=_procedure_in("finetune")),
    # Bookkeeping.
    _field("seed", _integer(0), "Random seed (same seed, same result).", in_step=False),
    _field("checkpoint_every_epochs", _integer(1), "Epochs between checkpoints.", **_NOT_RESULT),
    _field("keep_checkpoints", _integer(1), "Checkpoints kept.", **_NOT_RESULT),
    _field("stop_after_steps", (_is_int, "an integer (<= 0 = never)"),
           "> 0: stop (without saving) after this global step: simulates a kill.", **_NOT_RESULT),
    _field("progress", _BOOLEAN, "Show progress bars.", **_NOT_RESULT),
    _field("tensorboard", _BOOLEAN, "Write TensorBoard summaries when a writer is importable.",
           **_NOT_RESULT),
    _field("distributed", _BOOLEAN, "Call jax.distributed.initialize() (multi-host pods).", **_NOT_RESULT),
)

CONFIG_SCHEMA: Mapping[str, Field] = types.MappingProxyType({f.name: f for f in _FIELDS})

# Fields that do not change what a run computes, so a workdir may be resumed with other values: a label
# (preset), where files are (data_dir: a moved data folder still holds the same data; cache_dir and
# smooth_batch_size: the cache is keyed on the data and solver settings), how progress is shown and
# checkpoints are kept, a simulated kill, the multi-host switch, and the evaluation batch (accuracies are
# counts of the same per-image predictions; the mean test loss may differ in the last float bits).
RESULT_INDEPENDENT_FIELDS = frozenset(f.name for f in _FIELDS if not f.changes_result)

# What a config stored before a field existed means by its absence.
ABSENT_MEANS = types.MappingProxyType({f.name: f.absent_means for f in _FIELDS
                                       if f.absent_means is not REQUIRED})


def with_absent_fields(stored: Mapping) -> dict:
  """``stored`` (a workdir's ``config.json``) with each absent field of ``ABSENT_MEANS`` at its value."""
  return {**ABSENT_MEANS, **stored}


# --------------------------------------------------------------------------------------------------
# Validation.


def check_field(name: str, value: Any, label: str | None = None) -> None:
  """Raises :class:`ConfigError` ``"{label} must be {expected}; got {value!r}."`` unless ``value`` is an
  allowed value of the field ``name`` (``label`` default ``config.NAME``)."""
  field = CONFIG_SCHEMA[name]
  if not field.check(value):
    raise ConfigError(f"{label or 'config.' + name} must be {field.expected}; got {value!r}.")


def check_fields(config: Mapping, names: Iterable[str]) -> None:
  """:func:`check_field` of ``config[name]`` for each of ``names``."""
  for name in names:
    check_field(name, config[name])


_last_accepted: str | None = None  # the fingerprint of the config validate_config accepted last


def _fingerprint(config) -> str:
  items = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return json.dumps(items, sort_keys=True, default=repr)


def validate_config(config) -> None:
  """Checks every field of a training config: present, of the right kind, in range.

  The checks are the fields of :data:`CONFIG_SCHEMA`, plus two relations: an iterative run's sparsity
  rises (``start_sparsity <= end_sparsity``) and a finetune run names its ``init_checkpoint``. A config
  equal to the one accepted last is not checked again (an entry point checks before it announces the run,
  :func:`train_and_evaluate` on entry: the checks run once).

  Args:
    config: a ``ConfigDict`` (or mapping) such as ``train/configs/fixed.py:get_config()`` returns.

  Raises:
    ConfigError: (a ``ValueError``) missing fields (all of them named), or the first bad value, in one
      sentence naming ``config.FIELD`` and the allowed values: sparsities in [0, 1] (iterative:
      start <= end), a known dataset (or ``npz:PATH`` / ``folder:PATH``), model, stem, procedure and
      adversarial loss, positive epochs and batch sizes, a learning rate >= 0, and so on.

  Examples:
    >>> import iss_jax  # doctest: +SKIP
    >>> from train.configs import fixed  # doctest: +SKIP
    >>> config = fixed.get_config("quick"); config.sparsity = 1.5  # doctest: +SKIP
    >>> iss_jax.training.validate_config(config)  # doctest: +SKIP
    ConfigError: config.sparsity must be a number in [0, 1]; got 1.5.
  """
  global _last_accepted
  missing = [k for k in CONFIG_SCHEMA if k not in config]
  if missing:
    raise ConfigError(f"the training config lacks the fields {', '.join(missing)}. Configs come from "
                      "train/configs/<procedure>.py:get_config() in the repository (e.g. "
                      "`from train.configs import fixed; config = fixed.get_config('quick')`), which set "
                      "every field.")
  fingerprint = _fingerprint(config)
  if fingerprint == _last_accepted:
    return
  check_fields(config, CONFIG_SCHEMA)
  if config["procedure"] == "iterative" and config["start_sparsity"] > config["end_sparsity"]:
    raise ConfigError(f"config.start_sparsity ({config['start_sparsity']:g}) must be <= "
                      f"config.end_sparsity ({config['end_sparsity']:g}): iterative training goes from "
                      "coarse (low sparsity) to fine.")
  if config["procedure"] == "finetune" and config["init_checkpoint"] == "":
    raise ConfigError("config.init_checkpoint must be the workdir of a trained model for procedure "
                      f"'finetune'; got {config['init_checkpoint']!r}.")
  _last_accepted = fingerprint


# --------------------------------------------------------------------------------------------------
# The workdir's config.


def _unread_fields(config: Mapping) -> set[str]:
  return {f.name for f in _FIELDS if f.read_if is not None and not f.read_if(config)}


def config_differences(stored: Mapping, config) -> dict[str, tuple[Any, Any]]:
  """``{field: (stored value, value in config)}`` of the fields that change the result of a run.

  Fields in ``RESULT_INDEPENDENT_FIELDS`` and fields neither run reads do not count; a field missing
  from ``stored`` (a workdir made before it existed) has the value of its ``absent_means``.
  """
  current = json.loads(config.to_json())
  stored = with_absent_fields(stored)
  ignore = RESULT_INDEPENDENT_FIELDS | (_unread_fields(stored) & _unread_fields(current))
  missing = "(absent)"
  return {k: (stored.get(k, missing), current.get(k, missing)) for k in CONFIG_SCHEMA
          if k not in ignore and stored.get(k, missing) != current.get(k, missing)}


def check_workdir(config, workdir: str | os.PathLike) -> None:
  """Checks that ``workdir`` is new, or holds a run of ``config`` (one that may be resumed); reads only.

  Args:
    config: the run's config.
    workdir: the training workdir.

  Raises:
    WorkdirConfigMismatchError: ``workdir/config.json`` differs from ``config`` in a field that changes
      the result (``RESULT_INDEPENDENT_FIELDS`` and fields neither run reads do not count), or the
      workdir holds checkpoints or metrics without a ``config.json``.
  """
  workdir = Path(workdir)
  ways_out = ("either train into another workdir (workdir=NEW_DIR) or delete that run and train afresh "
              "(overwrite=True).")
  path = workdir / "config.json"
  if not path.exists():
    ckpt = workdir / "checkpoints"
    if (workdir / "metrics.jsonl").exists() or (ckpt.is_dir() and any(ckpt.iterdir())):
      raise WorkdirConfigMismatchError(
          f"{workdir} holds training output (checkpoints/ or metrics.jsonl) but no config.json, so the "
          f"config that made it is unknown; {ways_out}")
    return
  try:
    stored = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise WorkdirConfigMismatchError(f"{path} cannot be read ({e}); {ways_out}") from e
  diffs = config_differences(stored, config)
  if diffs:
    named = "; ".join(f"config.{k} {json.dumps(a)} there, {json.dumps(b)} now" for k, (a, b) in diffs.items())
    raise WorkdirConfigMismatchError(
        f"{workdir} holds a run made with another config ({named}); resuming it would mix two runs, so "
        f"{ways_out}", diffs)
