"""One training library for the four procedures of the paper (Sec. 3.2, Eq. 7; App. B).

* ``vanilla``: ERM on the clean images.
* ``fixed``: ERM on images smoothed at one sparsity (``config.sparsity``).
* ``iterative``: the sparsity rises over training from ``config.start_sparsity`` to
  ``config.end_sparsity`` in ``config.num_levels`` equal blocks of epochs, so the model sees coarse
  structure first (Eq. 7). Every level comes from ONE :func:`iss_jax.smooth_path` run per image, computed
  once and cached (Eq. 7a-7b are precomputed rather than interleaved with 7c: the smoothed image of a given
  sparsity does not depend on theta, so this is the same procedure at a fraction of the cost).
* ``finetune``: ``fixed`` started from the weights of a trained model (``config.init_checkpoint``).

:func:`train_and_evaluate` runs any of them from a ``ConfigDict`` (see ``train/configs/``); it is what the
``python -m train.<procedure>`` entry points call and what a notebook calls directly.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from iss_jax._src.io import atomic_write
from iss_jax.baselines._adversarial_training import pgd_at_loss, trades_loss
from iss_jax.baselines._catalogue import make_defense
from iss_jax.baselines._regularizers import smooth_kernel_penalty
from iss_jax.training._data import NUM_CLASSES, load_dataset, num_classes_of
from iss_jax.training._defended_models import (
  ABSENT_MEANS,
  PNI_MODES,
  TV_LAYER_MODES,
  TV_LAYER_POSITIONS,
  build_model,
  weight_decay_mask,
)
from iss_jax.training._models import MODELS, count_params
from iss_jax.training._smooth_cache import smooth_training_set

PROCEDURES = ("vanilla", "fixed", "iterative", "finetune")


class TrainState(train_state.TrainState):
  """Flax ``TrainState`` plus the BatchNorm running statistics."""

  batch_stats: Any = None


class ConfigError(ValueError):
  """A training config, its data or its workdir cannot be used as given: a user's mistake, not a bug.

  Raised before the workdir is touched. The message is one sentence that names each offending field as
  ``config.FIELD`` (the ``python -m train.<procedure>`` entry points print it with the flag that sets the
  field, e.g. ``--sparsity``) and what is allowed.
  """


class WorkdirConfigMismatchError(ConfigError):
  """The workdir holds a run made with another config: resuming it would mix two runs.

  Attributes:
    differences: ``{field: (value in the workdir's config.json, value now)}`` of the fields that change
      the result (see ``RESULT_INDEPENDENT_FIELDS``).
  """

  def __init__(self, message: str, differences: dict[str, tuple[Any, Any]] | None = None):
    super().__init__(message)
    self.differences = dict(differences or {})


# Every field train_and_evaluate reads. The values (the paper's defaults and the quick / cpu / paper
# presets) live in the repository's train/configs/ (default.py), which this library never imports.
CONFIG_FIELDS = (
    "procedure", "preset",
    "dataset", "data_dir", "image_size", "num_classes", "train_limit", "test_limit",
    "model", "stem", "width", "tv_layer", "tv_layer_weight", "tv_layer_position", "tv_layer_iters",
    "pni", "preprocess",
    "sparsity", "start_sparsity", "end_sparsity", "num_levels", "kappa", "nu", "step_factor", "maxiter",
    "smooth_batch_size", "cache_dir",
    "epochs", "batch_size", "eval_batch_size", "learning_rate", "momentum", "nesterov", "weight_decay",
    "warmup_epochs", "label_smoothing", "crop_padding", "flip",
    "smooth_kernel_weight", "adversarial", "adv_eps", "adv_step_size", "adv_steps", "trades_beta",
    "init_checkpoint",
    "seed", "checkpoint_every_epochs", "keep_checkpoints", "stop_after_steps", "progress", "tensorboard",
    "distributed",
)

# Fields that do not change what a run computes (its checkpoints and metrics), so a workdir may be resumed
# with other values: a label (preset), where files are (data_dir: a moved data folder still holds the
# same data; cache_dir and smooth_batch_size: the cache is keyed on the data and solver settings), how
# progress is shown and checkpoints are kept, a simulated kill, the multi-host switch, and the evaluation
# batch (accuracies are counts of the same per-image predictions; the mean test loss may differ in the
# last float bits).
RESULT_INDEPENDENT_FIELDS = frozenset({
    "preset", "data_dir", "cache_dir", "smooth_batch_size", "eval_batch_size", "checkpoint_every_epochs",
    "keep_checkpoints", "stop_after_steps", "progress", "tensorboard", "distributed"})

_ADVERSARIAL = ("none", "pgd", "trades")


def _unused_fields(config) -> set[str]:
  """Fields the procedure and loss of ``config`` never read (e.g. ``sparsity`` in a vanilla run)."""
  procedure, adversarial = config.get("procedure"), config.get("adversarial")
  used = {"vanilla": set(), "fixed": {"sparsity"}, "finetune": {"sparsity"},
          "iterative": {"start_sparsity", "end_sparsity", "num_levels"}}.get(procedure, set())
  unused = {"sparsity", "start_sparsity", "end_sparsity", "num_levels"} - used
  if not used:
    unused |= {"kappa", "nu", "step_factor", "maxiter"}
  if procedure != "finetune":
    unused.add("init_checkpoint")
  if config.get("tv_layer", ABSENT_MEANS["tv_layer"]) == "none":
    unused |= {"tv_layer_weight", "tv_layer_position", "tv_layer_iters"}
  if adversarial == "none":
    unused |= {"adv_eps", "adv_step_size", "adv_steps", "trades_beta"}
  elif adversarial == "pgd":
    unused.add("trades_beta")
  return unused


def config_differences(stored: dict, config) -> dict[str, tuple[Any, Any]]:
  """``{field: (stored value, value in config)}`` of the fields that change the result of a run.

  Fields in ``RESULT_INDEPENDENT_FIELDS`` and fields neither procedure reads do not count; a field of
  ``ABSENT_MEANS`` missing from ``stored`` (a workdir made before it existed) has the value it meant then.
  """
  current = json.loads(config.to_json())
  ignore = RESULT_INDEPENDENT_FIELDS | (_unused_fields(stored) & _unused_fields(current))
  missing = "(absent)"
  stored = {**ABSENT_MEANS, **stored}
  return {k: (stored.get(k, missing), current.get(k, missing)) for k in CONFIG_FIELDS
          if k not in ignore and stored.get(k, missing) != current.get(k, missing)}


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def validate_config(config) -> None:
  """Checks every field of a training config: present, of the right kind, in range.

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
  missing = [k for k in CONFIG_FIELDS if k not in config]
  if missing:
    raise ConfigError(f"the training config lacks the fields {', '.join(missing)}. Configs come from "
                      "train/configs/<procedure>.py:get_config() in the repository (e.g. "
                      "`from train.configs import fixed; config = fixed.get_config('quick')`), which set "
                      "every field.")

  def need(ok, field, allowed):
    if not ok:
      raise ConfigError(f"config.{field} must be {allowed}; got {config[field]!r}.")

  def one_of(field, options):
    need(config[field] in options, field, "one of " + ", ".join(options))

  def integer(field, low, note=""):
    need(_is_int(config[field]) and config[field] >= low, field, f"an integer >= {low}{note}")

  def number(field, low, high=None, *, open_high=False, open_low=False):
    v = config[field]
    ok = _is_real(v) and (v > low if open_low else v >= low)
    if high is not None:
      ok = ok and (v < high if open_high else v <= high)
    lo = f"({low:g}" if open_low else f"[{low:g}"
    need(ok, field, f"a number in {lo}, {high:g}{')' if open_high else ']'}" if high is not None
         else f"a number {'>' if open_low else '>='} {low:g}")

  def boolean(field):
    need(isinstance(config[field], (bool, np.bool_)), field, "true or false")

  def string(field):
    need(isinstance(config[field], str), field, "a string")

  one_of("procedure", PROCEDURES)
  string("preset")
  dataset = config["dataset"]
  need(isinstance(dataset, str) and (dataset in NUM_CLASSES or (
      dataset.startswith(("npz:", "folder:")) and dataset.split(":", 1)[1].strip() != "")), "dataset",
       "one of " + ", ".join(sorted(NUM_CLASSES)) + ", npz:/path/file.npz or folder:/path")
  string("data_dir")
  for field in ("image_size", "num_classes", "train_limit", "test_limit", "width"):
    integer(field, 0, " (0 = " + {"image_size": "native size", "num_classes": "from the dataset",
                                  "width": "the model's default"}.get(field, "all") + ")")
  one_of("model", tuple(sorted(MODELS)))
  one_of("stem", ("cifar", "imagenet"))
  one_of("tv_layer", TV_LAYER_MODES)
  number("tv_layer_weight", 0, open_low=True)
  one_of("tv_layer_position", TV_LAYER_POSITIONS)
  integer("tv_layer_iters", 1)
  one_of("pni", PNI_MODES)
  preprocess_defense(config)
  for field in ("sparsity", "start_sparsity", "end_sparsity"):
    number(field, 0, 1)
  if config["procedure"] == "iterative" and config["start_sparsity"] > config["end_sparsity"]:
    raise ConfigError(f"config.start_sparsity ({config['start_sparsity']:g}) must be <= "
                      f"config.end_sparsity ({config['end_sparsity']:g}): iterative training goes from "
                      "coarse (low sparsity) to fine.")
  integer("num_levels", 1)
  number("kappa", 0, open_low=True)
  number("nu", 0, open_low=True)
  number("step_factor", 0, 2, open_low=True, open_high=True)
  integer("maxiter", 0, " (0 = the image-size default of iss_jax.smooth)")
  integer("smooth_batch_size", 1)
  need(isinstance(config["cache_dir"], str) and config["cache_dir"] != "", "cache_dir", "a folder")
  integer("epochs", 1)
  integer("batch_size", 1)
  integer("eval_batch_size", 1)
  number("learning_rate", 0)
  number("momentum", 0, 1, open_high=True)
  boolean("nesterov")
  number("weight_decay", 0)
  integer("warmup_epochs", 0)
  number("label_smoothing", 0, 1, open_high=True)
  integer("crop_padding", 0, " (0 = no random crop)")
  boolean("flip")
  number("smooth_kernel_weight", 0)
  one_of("adversarial", _ADVERSARIAL)
  number("adv_eps", 0)
  number("adv_step_size", 0)
  integer("adv_steps", 1)
  number("trades_beta", 0)
  string("init_checkpoint")
  if config["procedure"] == "finetune":
    need(config["init_checkpoint"] != "", "init_checkpoint",
         "the workdir of a trained model for procedure 'finetune'")
  integer("seed", 0)
  integer("checkpoint_every_epochs", 1)
  integer("keep_checkpoints", 1)
  need(_is_int(config["stop_after_steps"]), "stop_after_steps", "an integer (<= 0 = never)")
  for field in ("progress", "tensorboard", "distributed"):
    boolean(field)


def preprocess_defense(config):
  """The defense applied to every training (and test) batch (``config.preprocess``), or None.

  Raises:
    ConfigError: an unknown spec, or ``smooth@S`` (ISS smoothing of the training set is cached once by
      the ``fixed`` / ``iterative`` procedures, not redone per batch).
  """
  spec = config["preprocess"]
  if not isinstance(spec, str):
    raise ConfigError(f"config.preprocess must be a defense spec such as menet@0.5 or splic@8; got {spec!r}.")
  if spec == "none":
    return None
  if spec.startswith("smooth@"):
    raise ConfigError(f"config.preprocess {spec!r}: train on ISS-smoothed images with python -m train.fixed "
                      "--sparsity=S (smoothed once and cached), not per batch.")
  try:
    return make_defense(spec)
  except ValueError as e:
    raise ConfigError(f"config.preprocess: {e}") from None


# --------------------------------------------------------------------------------------------------
# Loss and steps.


def make_loss_fn(config, model) -> Callable:
  """The training loss, built in one place from the config.

  Args:
    config: reads ``label_smoothing``, ``smooth_kernel_weight`` (adds that times
      ``iss_jax.baselines.smooth_kernel_penalty(params)``) and ``adversarial`` (``"pgd"``: Madry's loss on PGD
      examples, ``"trades"``: TRADES with ``trades_beta``; inner PGD ``adv_eps``, ``adv_step_size``,
      ``adv_steps``).
    model: the Flax model.

  Returns:
    ``loss_fn(params, batch_stats, x, y, key) -> (loss, (new_batch_stats, logits))`` with ``x`` float
    ``(B, H, W, C)`` in ``[0, 1]`` (already augmented), ``y`` int ``(B,)``.

  Raises:
    ValueError: an unknown ``config.adversarial``.
  """
  adversarial = config.get("adversarial", "none")
  if adversarial not in ("none", "pgd", "trades"):
    raise ValueError(f"config.adversarial must be 'none', 'pgd' or 'trades'; got {adversarial!r}.")
  smooth_kernel_weight = float(config.get("smooth_kernel_weight", 0.0))
  adv = {"eps": config.get("adv_eps", 8 / 255), "step_size": config.get("adv_step_size", 2 / 255),
         "steps": int(config.get("adv_steps", 10))}
  label_smoothing = float(config.label_smoothing)

  def loss_fn(params, batch_stats, x, y, key):
    variables = {"params": params, "batch_stats": batch_stats}
    # Weight noise of a PNI model (ignored by the others): one draw for the attack, one for the update.
    noise = {"noise": jax.random.fold_in(key, 1)}

    def train_logits(z):
      logits, updates = model.apply(variables, z, train=True, mutable=["batch_stats"], rngs=noise)
      return logits, updates.get("batch_stats", {})  # {}: a model without BatchNorm (the ViT)

    # The inner attack sees fixed weights and batch statistics (train-mode BatchNorm, as in Madry
    # et al.; running averages lag early in training); its updates are discarded.
    attack_logits = lambda z: train_logits_fixed(jax.lax.stop_gradient(variables), z,
                                                 jax.random.fold_in(key, 2))
    if adversarial == "pgd":
      loss, info = pgd_at_loss(train_logits, x, y, key=key, attack_logits_fn=attack_logits,
                               has_aux=True, **adv)
      return _with_penalty(loss, params), (info["aux"], info["logits_adv"])
    if adversarial == "trades":
      loss, info = trades_loss(train_logits, x, y, key=key, beta=float(config.trades_beta),
                               attack_logits_fn=attack_logits, has_aux=True, **adv)
      return _with_penalty(loss, params), (info["aux"], info["logits"])
    logits, new_batch_stats = train_logits(x)
    labels = jax.nn.one_hot(y, logits.shape[-1])
    if label_smoothing:
      labels = optax.smooth_labels(labels, label_smoothing)
    loss = jnp.mean(optax.softmax_cross_entropy(logits, labels))
    return _with_penalty(loss, params), (new_batch_stats, logits)

  def train_logits_fixed(variables, z, key):
    return model.apply(variables, z, train=True, mutable=["batch_stats"], rngs={"noise": key})[0]

  def _with_penalty(loss, params):
    if smooth_kernel_weight:
      loss = loss + smooth_kernel_weight * smooth_kernel_penalty(params)
    return loss

  return loss_fn


def augment(x: jax.Array, key: jax.Array, *, padding: int = 4, flip: bool = True) -> jax.Array:
  """Random crop after zero padding and random horizontal flip, on device, one draw per image.

  Args:
    x: ``(B, H, W, C)`` float images.
    key: a PRNG key.
    padding: pixels of zero padding before the crop (0 = no crop).
    flip: flip each image left-right with probability 1/2.

  Returns:
    Augmented images, same shape.
  """
  b, h, w, c = x.shape

  def one(img, k):
    kc, kf = jax.random.split(k)
    if padding:
      img = jnp.pad(img, ((padding, padding), (padding, padding), (0, 0)))
      off = jax.random.randint(kc, (2,), 0, 2 * padding + 1)
      img = jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
    if flip:
      img = jnp.where(jax.random.bernoulli(kf), img[:, ::-1], img)
    return img

  return jax.vmap(one)(x, jax.random.split(key, b))


def make_train_step(config, model, tx) -> Callable:
  """``train_step(state, x_uint8, y, key) -> (state, metrics)``: pure; jit it with ``donate_argnums=0``."""
  loss_fn = make_loss_fn(config, model)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  preprocess = preprocess_defense(config)

  def train_step(state, x, y, key):
    key = jax.random.fold_in(key, state.step)
    k_aug, k_loss = jax.random.split(key)
    x = augment(x.astype(jnp.float32) / 255.0, k_aug, padding=config.crop_padding, flip=config.flip)
    if preprocess is not None:  # e.g. ME-Net / SPLIC: train on the reconstructed images
      x = preprocess.transform(x, jax.random.fold_in(key, 2))
    (loss, (batch_stats, logits)), grads = grad_fn(state.params, state.batch_stats, x, y, k_loss)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}
    return state, metrics

  return train_step


def make_eval_step(model, preprocess=None) -> Callable:
  """``eval_step(variables, x_uint8, y, mask, key) -> (summed loss, correct count, count)``.

  ``preprocess``: the training preprocessing (a ``Defense``), applied at test time too; ``key`` draws
  its randomness and a PNI model's weight noise.
  """

  def eval_step(variables, x, y, mask, key):
    x = x.astype(jnp.float32) / 255.0
    if preprocess is not None:
      x = preprocess.transform(x, jax.random.fold_in(key, 0))
    logits = model.apply(variables, x, train=False, rngs={"noise": jax.random.fold_in(key, 1)})
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    correct = (jnp.argmax(logits, -1) == y) & mask
    return jnp.sum(jnp.where(mask, loss, 0.0)), jnp.sum(correct), jnp.sum(mask)

  return eval_step


# --------------------------------------------------------------------------------------------------
# Pieces of the loop.


def sparsity_schedule(config) -> list[float]:
  """The sparsity of each epoch (1.0 = clean images) for the configured procedure.

  Args:
    config: reads ``procedure``, ``epochs``, ``sparsity``, ``start_sparsity``, ``end_sparsity``,
      ``num_levels``.

  Returns:
    ``config.epochs`` floats. Iterative: ``num_levels`` evenly spaced levels from start to end, each used
    for an equal block of epochs (the last level gets the remainder).

  Examples:
    >>> import ml_collections, iss_jax
    >>> c = ml_collections.ConfigDict(dict(procedure="iterative", epochs=6, sparsity=0.6,
    ...     start_sparsity=0.3, end_sparsity=0.8, num_levels=3))
    >>> iss_jax.training.sparsity_schedule(c)
    [0.3, 0.3, 0.55, 0.55, 0.8, 0.8]
  """
  if config.procedure not in PROCEDURES:
    raise ValueError(f"config.procedure must be one of {PROCEDURES}; got {config.procedure!r}.")
  if config.procedure == "vanilla":
    return [1.0] * config.epochs
  if config.procedure in ("fixed", "finetune"):
    return [float(config.sparsity)] * config.epochs
  n = int(config.num_levels)
  if n < 1:
    raise ValueError(f"config.num_levels must be >= 1; got {n}.")
  levels = [round(float(v), 6) for v in np.linspace(config.start_sparsity, config.end_sparsity, n)]
  return [levels[min(n - 1, e * n // max(config.epochs, 1))] for e in range(config.epochs)]


def _mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def _global_batch(sharding, local: np.ndarray) -> jax.Array:
  return jax.make_array_from_process_local_data(sharding, local)


class _MetricsWriter:
  """JSON lines per epoch (rewritten atomically on resume) and TensorBoard when importable."""

  def __init__(self, workdir: Path, use_tb: bool):
    self.path = workdir / "metrics.jsonl"
    self.tb = None
    if use_tb and jax.process_index() == 0:
      try:
        from tensorboardX import SummaryWriter  # type: ignore

        self.tb = SummaryWriter(str(workdir / "tensorboard"))
      except Exception:  # noqa: BLE001 - optional
        try:
          from torch.utils.tensorboard import SummaryWriter  # type: ignore

          self.tb = SummaryWriter(str(workdir / "tensorboard"))
        except Exception:  # noqa: BLE001 - optional
          self.tb = None

  def truncate(self, epochs_done: int) -> None:
    if not self.path.exists() or jax.process_index() != 0:
      return
    rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["epoch"] <= epochs_done]
    atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in rows))

  def write(self, row: dict) -> None:
    if jax.process_index() != 0:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self.tb is not None:
      for k, v in row.items():
        if isinstance(v, (int, float)) and k != "epoch":
          self.tb.add_scalar(k, v, row["step"])
      self.tb.flush()

  def close(self):
    if self.tb is not None:
      self.tb.close()


def _to_jsonable(config) -> dict:
  return json.loads(config.to_json())


def _training_images(config, x_train: np.ndarray, schedule: list[float]) -> tuple[dict, dict]:
  """``{sparsity: uint8 images}`` for every sparsity in the schedule, from one cached path run."""
  levels = sorted({s for s in schedule if s < 1.0})
  images = {1.0: x_train} if 1.0 in schedule else {}
  info = {}
  if levels:
    smoothed, info = smooth_training_set(config, x_train, levels)
    images.update({s: smoothed[i] for i, s in enumerate(levels)})
  return images, info


_NOT_IN_STEP = frozenset({
    "procedure", "preset", "dataset", "data_dir", "image_size", "train_limit", "test_limit",
    "sparsity", "start_sparsity", "end_sparsity", "num_levels", "kappa", "nu", "step_factor",
    "maxiter", "smooth_batch_size", "cache_dir", "init_checkpoint", "seed", "checkpoint_every_epochs",
    "keep_checkpoints", "stop_after_steps", "progress", "tensorboard", "distributed", "epochs"})


class _Steps:
  """The optimiser and the jitted steps, cached per hyperparameters so that repeated runs in one process
  (tests, notebooks, a resume) compile once."""

  _cache: dict = {}

  @classmethod
  def build(cls, config, model, steps_per_epoch, total_steps, n_dev):
    # Every config field except those known not to enter the steps, so that a field added later
    # (e.g. a new loss term) can never hit a stale compiled step.
    fields = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_STEP}
    key = (model, steps_per_epoch, total_steps, n_dev, json.dumps(fields, sort_keys=True, default=str))
    if key not in cls._cache:
      if len(cls._cache) >= 8:
        cls._cache.clear()
      cls._cache[key] = cls(config, model, steps_per_epoch, total_steps)
    return cls._cache[key]

  def __init__(self, config, model, steps_per_epoch, total_steps):
    mesh = _mesh()
    data_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    warmup = config.warmup_epochs * steps_per_epoch
    self.schedule_fn = optax.warmup_cosine_decay_schedule(
        0.0 if warmup else config.learning_rate, config.learning_rate, warmup,
        max(total_steps, warmup + 1), end_value=0.0)
    # No weight decay on a TV layer's weight or PNI's noise scales (it would drive the noise to 0).
    decay_mask = weight_decay_mask if config.tv_layer != "none" or config.pni != "none" else None
    self.tx = optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
        optax.sgd(self.schedule_fn, momentum=config.momentum, nesterov=config.nesterov))
    self.train_step = jax.jit(make_train_step(config, model, self.tx), donate_argnums=(0,),
                              in_shardings=(replicated, data_sharding, data_sharding, replicated),
                              out_shardings=(replicated, replicated))
    self.init = jax.jit(functools.partial(model.init, train=False))
    self.eval_step = jax.jit(make_eval_step(model, preprocess_defense(config)),
                             in_shardings=(replicated, data_sharding, data_sharding, data_sharding,
                                           replicated))


def evaluate(eval_step, variables, x: np.ndarray, y: np.ndarray, batch_size: int, sharding,
             key: jax.Array | None = None) -> dict:
  """Clean accuracy and mean loss of ``variables`` on uint8 images, in fixed-size (padded) batches.

  Every process holds the whole test set and feeds its slice of each global batch; batch ``i`` draws
  its randomness (a random preprocessing, PNI noise) from ``fold_in(key, i)`` (default key 0).
  """
  key = jax.random.key(0) if key is None else key
  n = x.shape[0]
  n_proc, proc = jax.process_count(), jax.process_index()
  local = batch_size // n_proc
  cut = lambda a: a[proc * local:(proc + 1) * local]
  loss_sum, correct, count = 0.0, 0, 0
  for i in range(0, n, batch_size):
    xb, yb = x[i:i + batch_size], y[i:i + batch_size]
    m = xb.shape[0]
    mask = np.arange(batch_size) < m
    if m < batch_size:
      xb = np.concatenate([xb, np.zeros((batch_size - m,) + xb.shape[1:], xb.dtype)])
      yb = np.concatenate([yb, np.zeros((batch_size - m,), yb.dtype)])
    out = eval_step(variables, _global_batch(sharding, cut(xb)), _global_batch(sharding, cut(yb)),
                    _global_batch(sharding, cut(mask)), jax.random.fold_in(key, i))
    loss_sum += float(out[0])
    correct += int(out[1])
    count += int(out[2])
  return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


# --------------------------------------------------------------------------------------------------
# The entry point.


# Everything train_and_evaluate and the evaluations write into a workdir: what overwrite=True deletes.
WORKDIR_OUTPUTS = ("checkpoints", "config.json", "metrics.jsonl", "summary.json", "tensorboard", "eval")


def check_workdir(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
  """Checks that ``workdir`` is new, or holds a run of ``config`` (one that may be resumed); reads only.

  Args:
    config: the run's config.
    workdir: the training workdir.

  Raises:
    WorkdirConfigMismatchError: ``workdir/config.json`` differs from ``config`` in a field that changes
      the result (``RESULT_INDEPENDENT_FIELDS`` and fields neither procedure reads do not count), or the
      workdir holds checkpoints or metrics without a ``config.json``.
  """
  workdir = Path(workdir)
  ways_out = ("either train into another workdir (--workdir=NEW_DIR) or delete that run and train afresh "
              "(--overwrite; overwrite=True in Python).")
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


def _clear_workdir(workdir: Path) -> None:
  if jax.process_index() == 0:
    for name in WORKDIR_OUTPUTS:
      path = workdir / name
      if path.is_dir():
        shutil.rmtree(path)
      elif path.exists():
        path.unlink()
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("iss_jax_overwrite")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       overwrite: bool = False) -> dict:
  """Trains and evaluates one model; resumes from ``workdir`` if it holds checkpoints of the same config.

  A workdir belongs to the config that made it (its ``config.json``): a second call with the same config
  resumes from the last checkpoint (after a kill, with the result of an uninterrupted run); a config that
  differs in a field that changes the result is refused unless ``overwrite=True``. Everything that can be
  checked without training (the config's values, the workdir's config, the data, the init checkpoint,
  batch sizes) is checked before the workdir is created or changed.

  Args:
    config: a ``ConfigDict`` with every training field (``CONFIG_FIELDS`` above), as
      ``train/configs/<procedure>.py:get_config()`` in the repository returns.
    workdir: output folder: ``checkpoints/`` (orbax, one per epoch, atomic), ``config.json``,
      ``metrics.jsonl`` (one JSON object per epoch: epoch, step, sparsity, learning_rate, train_loss,
      train_accuracy, test_loss, test_accuracy, epoch_time_s), ``summary.json`` and ``tensorboard/``.
    overwrite: delete what an earlier run left in ``workdir`` (``WORKDIR_OUTPUTS``: checkpoints, config,
      metrics, summary, TensorBoard and evaluation outputs; other files stay) and train afresh, whatever
      config made it.

  Returns:
    The summary dict (also written to ``summary.json``): final and best clean test accuracy, parameter
    count, schedule, timings and the smoothing cache info.

  Raises:
    ConfigError: (a ``ValueError``) a config lacking fields or with a bad value, a malformed dataset, a
      missing or incompatible init checkpoint, batch sizes that do not fit the devices or the data.
    WorkdirConfigMismatchError: (a ``ConfigError``) ``workdir`` holds a run of another config (the
      message names the differing fields with both values; see :func:`check_workdir`).
    DatasetNotFoundError: the dataset is not available (the message names the flag to use).

  Examples:
    >>> import iss_jax  # doctest: +SKIP
    >>> from train.configs import fixed  # doctest: +SKIP
    >>> cfg = fixed.get_config("quick")  # doctest: +SKIP
    >>> summary = iss_jax.training.train_and_evaluate(cfg, "workdirs/fixed_s0.6")  # doctest: +SKIP
  """
  # Every check before the workdir is created or changed.
  validate_config(config)
  config = ml_collections.ConfigDict(config.to_dict())
  schedule = sparsity_schedule(config)
  if config.distributed:
    jax.distributed.initialize()
  workdir = Path(workdir)
  if not overwrite:
    check_workdir(config, workdir)
  t_start = time.time()

  # Data.
  data_dir = config.data_dir or None
  image_size = config.image_size or None
  try:
    x_train, y_train = load_dataset(config.dataset, "train", data_dir, image_size=image_size)
    x_test, y_test = load_dataset(config.dataset, "test", data_dir, image_size=image_size)
  except ConfigError:
    raise
  except ValueError as e:  # malformed files: the user's data, not a bug here
    raise ConfigError(f"config.dataset {config.dataset!r}: {e}") from e
  if config.train_limit > 0:
    x_train, y_train = x_train[:config.train_limit], y_train[:config.train_limit]
  if config.test_limit > 0:
    x_test, y_test = x_test[:config.test_limit], y_test[:config.test_limit]
  num_classes = config.num_classes or num_classes_of(config.dataset, y_train)

  # Devices.
  mesh = _mesh()
  n_dev = mesh.devices.size
  if config.batch_size % n_dev or config.eval_batch_size % n_dev:
    raise ConfigError(f"config.batch_size ({config.batch_size}) and config.eval_batch_size "
                      f"({config.eval_batch_size}) must be multiples of the device count {n_dev}.")
  n_proc, proc = jax.process_count(), jax.process_index()
  data_sharding = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  steps_per_epoch = x_train.shape[0] // config.batch_size
  if steps_per_epoch < 1:
    raise ConfigError(f"config.batch_size must be at most the {x_train.shape[0]} training images; got "
                      f"{config.batch_size}.")
  total_steps = steps_per_epoch * config.epochs

  # Model, optimiser, state.
  model = build_model(config, num_classes)
  key = jax.random.key(config.seed)
  k_init, k_train = jax.random.split(key)
  steps = _Steps.build(config, model, steps_per_epoch, total_steps, n_dev)
  variables = steps.init(k_init, jnp.zeros((1,) + x_train.shape[1:], jnp.float32))
  if config.procedure == "finetune":
    from iss_jax.training._checkpoint import load_variables

    try:
      _, init_vars, init_cfg = load_variables(config.init_checkpoint)
    except FileNotFoundError as e:
      raise ConfigError(f"config.init_checkpoint must be the workdir of a trained model: {e}") from e
    if (init_cfg.get("model"), init_cfg.get("width", 0)) != (config.model, config.width):
      raise ConfigError(f"config.init_checkpoint {config.init_checkpoint} holds a {init_cfg.get('model')} "
                        f"(width {init_cfg.get('width', 0)}); set config.model / config.width to match.")
    variables = jax.tree_util.tree_map(jnp.asarray, dict(init_vars))

  # The workdir: cleared on request, bound to the config (config.json before any checkpoint).
  if overwrite:
    _clear_workdir(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if proc == 0:
    atomic_write(workdir / "config.json", config.to_json(indent=1))
  train_images, smooth_info = _training_images(config, x_train, schedule)
  schedule_fn, tx = steps.schedule_fn, steps.tx
  state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                            batch_stats=variables.get("batch_stats", {}))
  state = jax.device_put(state, replicated)

  # Checkpoints: resume.
  ckpt_dir = (workdir / "checkpoints").absolute()
  manager = ocp.CheckpointManager(ckpt_dir, options=ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True))
  start_epoch = 0
  if manager.latest_step() is not None:
    start_epoch = manager.latest_step()
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    state = manager.restore(start_epoch, args=ocp.args.StandardRestore(abstract))
  writer = _MetricsWriter(workdir, config.tensorboard)
  writer.truncate(start_epoch)

  train_step, eval_step = steps.train_step, steps.eval_step
  k_train = jax.device_put(k_train, replicated)
  local_bs = config.batch_size // n_proc
  n_params = count_params(state.params)
  if proc == 0:
    print(f"[iss_jax] {config.procedure} ({config.preset} configuration): {config.model} "
          f"({n_params:,} params) on {config.dataset} ({x_train.shape[0]} train / {x_test.shape[0]} test), "
          f"{config.epochs} epochs x {steps_per_epoch} steps, batch {config.batch_size}, {n_dev} "
          f"{jax.devices()[0].platform} device(s); workdir {workdir}"
          + (f" (resumed after epoch {start_epoch})" if start_epoch else ""), flush=True)

  stopped = False
  for epoch in range(start_epoch, config.epochs):
    t0 = time.time()
    sparsity = schedule[epoch]
    images = train_images[sparsity]
    perm = np.random.default_rng([config.seed, epoch]).permutation(x_train.shape[0])
    sums = {"loss": 0.0, "accuracy": 0.0}
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs} s={sparsity:g}",
               disable=not config.progress or proc != 0, leave=False)
    dev_metrics = []
    for i in bar:
      step = epoch * steps_per_epoch + i
      if 0 < config.stop_after_steps <= step:
        stopped = True
        break
      idx = perm[i * config.batch_size:(i + 1) * config.batch_size][proc * local_bs:(proc + 1) * local_bs]
      xb = _global_batch(data_sharding, images[idx])
      yb = _global_batch(data_sharding, y_train[idx])
      state, metrics = train_step(state, xb, yb, k_train)
      dev_metrics.append(metrics)
    if stopped:
      bar.close()
      break
    for m in jax.device_get(dev_metrics):
      sums["loss"] += float(m["loss"]) / steps_per_epoch
      sums["accuracy"] += float(m["accuracy"]) / steps_per_epoch
    test = evaluate(eval_step, {"params": state.params, "batch_stats": state.batch_stats}, x_test,
                    y_test, config.eval_batch_size, data_sharding)
    row = {"epoch": epoch + 1, "step": int((epoch + 1) * steps_per_epoch), "sparsity": sparsity,
           "learning_rate": float(schedule_fn((epoch + 1) * steps_per_epoch - 1)),
           "train_loss": sums["loss"], "train_accuracy": sums["accuracy"],
           "test_loss": test["loss"], "test_accuracy": test["accuracy"], "epoch_time_s": time.time() - t0}
    writer.write(row)
    if proc == 0:
      bar.write(f"[iss_jax] epoch {epoch + 1}/{config.epochs} sparsity {sparsity:g}: train loss "
                f"{row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | test acc "
                f"{row['test_accuracy']:.4f} ({row['epoch_time_s']:.1f}s)")
    bar.close()
    if (epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.epochs:
      manager.save(epoch + 1, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()
  manager.close()
  writer.close()

  rows = []
  if (workdir / "metrics.jsonl").exists():
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line]
  summary = {
      "procedure": config.procedure, "preset": config.preset, "dataset": config.dataset,
      "model": config.model, "num_params": n_params, "num_train": int(x_train.shape[0]),
      "num_test": int(x_test.shape[0]), "epochs": config.epochs, "epochs_done": len(rows),
      "completed": not stopped and len(rows) == config.epochs,
      "final_test_accuracy": rows[-1]["test_accuracy"] if rows else None,
      "best_test_accuracy": max((r["test_accuracy"] for r in rows), default=None),
      "final_train_loss": rows[-1]["train_loss"] if rows else None,
      "sparsity_schedule": sorted(set(schedule)), "devices": f"{n_dev} x {jax.devices()[0].platform}",
      "wall_time_s": time.time() - t_start, "smoothing": smooth_info, "config": _to_jsonable(config),
  }
  if proc == 0 and not stopped:
    atomic_write(workdir / "summary.json", json.dumps(summary, indent=1))
  return summary
