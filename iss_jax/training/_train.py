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
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

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

from iss_jax import baselines
from iss_jax._src.io import atomic_write
from iss_jax.training._config_schema import (
  CONFIG_SCHEMA,
  ConfigError,
  TrainingDivergedError,
  check_fields,
  check_workdir,
  parse_preprocess,
  validate_config,
)
from iss_jax.training._data import load_dataset, num_classes_of
from iss_jax.training._defended_models import build_model, weight_decay_mask
from iss_jax.training._models import count_params
from iss_jax.training._smooth_cache import smooth_training_set


class TrainState(train_state.TrainState):
  """Flax ``TrainState`` plus the BatchNorm running statistics."""

  batch_stats: Any = None


# --------------------------------------------------------------------------------------------------
# Loss and steps.


def make_loss_fn(config, model) -> Callable:
  """The training loss, built in one place from the config.

  Args:
    config: a checked config (:func:`validate_config`); reads ``label_smoothing``, ``smooth_kernel_weight``
      (adds that times ``iss_jax.baselines.smooth_kernel_penalty(params)``) and ``adversarial``
      (``"pgd"``: Madry's loss on PGD examples, ``"trades"``: TRADES with ``trades_beta``; inner PGD
      ``adv_eps``, ``adv_step_size``, ``adv_steps``).
    model: the Flax model.

  Returns:
    ``loss_fn(params, batch_stats, x, y, key) -> (loss, (new_batch_stats, logits))`` with ``x`` float
    ``(B, H, W, C)`` in ``[0, 1]`` (already augmented), ``y`` int ``(B,)``.
  """
  adversarial = config.adversarial
  smooth_kernel_weight = float(config.smooth_kernel_weight)
  adv = {"eps": config.adv_eps, "step_size": config.adv_step_size, "steps": int(config.adv_steps)}
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
      loss, info = baselines.pgd_at_loss(train_logits, x, y, key=key, attack_logits_fn=attack_logits,
                               has_aux=True, **adv)
      return _with_penalty(loss, params), (info["aux"], info["logits_adv"])
    if adversarial == "trades":
      loss, info = baselines.trades_loss(train_logits, x, y, key=key, beta=float(config.trades_beta),
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
      loss = loss + smooth_kernel_weight * baselines.smooth_kernel_penalty(params)
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
  preprocess = parse_preprocess(config.preprocess)

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

  Raises:
    ConfigError: (a ``ValueError``) an unknown procedure or ``num_levels`` < 1.

  Examples:
    >>> import ml_collections, iss_jax
    >>> c = ml_collections.ConfigDict(dict(procedure="iterative", epochs=6, sparsity=0.6,
    ...     start_sparsity=0.3, end_sparsity=0.8, num_levels=3))
    >>> iss_jax.training.sparsity_schedule(c)
    [0.3, 0.3, 0.55, 0.55, 0.8, 0.8]
  """
  check_fields(config, ("procedure", "num_levels"))  # a partial config, as in the example, is checked too
  if config.procedure == "vanilla":
    return [1.0] * config.epochs
  if config.procedure in ("fixed", "finetune"):
    return [float(config.sparsity)] * config.epochs
  n = int(config.num_levels)
  levels = [round(float(v), 6) for v in np.linspace(config.start_sparsity, config.end_sparsity, n)]
  return [levels[min(n - 1, e * n // max(config.epochs, 1))] for e in range(config.epochs)]


class _Shardings(NamedTuple):
  """The device mesh of a run (every device on one ``data`` axis) and its two shardings."""

  mesh: Mesh
  data: NamedSharding  # a batch split over the devices
  replicated: NamedSharding  # the train state and keys

  @classmethod
  def all_devices(cls) -> _Shardings:
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    return cls(mesh, NamedSharding(mesh, P("data")), NamedSharding(mesh, P()))


def _global_batch(sharding, local: np.ndarray) -> jax.Array:
  return jax.make_array_from_process_local_data(sharding, local)


class _Raised(NamedTuple):
  error: BaseException


def prefetch(items: Iterable, size: int = 2) -> Iterator:
  """``items`` produced in a background thread, up to ``size`` ahead of the consumer (a double buffer
  for ``size=2``, as flax's ``jax_utils.prefetch_to_device``): the training loop's batches are gathered
  from the (memory-mapped) images and transferred to the devices while the previous steps run.

  The items come in order; an error raised while producing one is raised where it would have been
  consumed. Closing the iterator (or leaving a ``for`` loop over it early) stops the thread.

  Args:
    items: any iterable (e.g. a generator of device batches).
    size: items produced ahead, at least 1.

  Yields:
    The items of ``items``.
  """
  q: queue.Queue = queue.Queue(maxsize=max(1, size))
  stop = threading.Event()
  end = object()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        q.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def produce():
    try:
      for item in items:
        if not put(item):
          return
      put(end)
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
      put(_Raised(e))

  thread = threading.Thread(target=produce, name="iss_jax-prefetch", daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is end:
        return
      if isinstance(item, _Raised):
        raise item.error
      yield item
  finally:
    stop.set()
    thread.join()


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


def make_optimizer(config, schedule_fn, decay_mask=None) -> optax.GradientTransformation:
  """The optimiser of ``config.optimizer``: ``"sgd"`` (weight decay added to the gradient, then SGD with
  ``momentum`` / ``nesterov``) or ``"adamw"`` (``optax.adamw``: Adam with decoupled weight decay, the
  ViT's usual recipe together with ``warmup_epochs``; ``momentum`` is its ``b1``). Both follow
  ``schedule_fn`` (linear warm-up, cosine decay) and skip the weight decay where ``decay_mask`` is False."""
  if config.get("optimizer", "sgd") == "adamw":
    return optax.adamw(schedule_fn, b1=config.momentum, weight_decay=config.weight_decay, mask=decay_mask)
  return optax.chain(optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
                     optax.sgd(schedule_fn, momentum=config.momentum, nesterov=config.nesterov))


class _Steps:
  """The optimiser and the jitted steps, cached per hyperparameters so that repeated runs in one process
  (tests, notebooks, a resume) compile once."""

  _cache: dict = {}

  @classmethod
  def build(cls, config, model, steps_per_epoch, total_steps, shardings: _Shardings):
    # Every config field except those the schema says stay out of the steps, so that a field unknown to
    # the schema can never hit a stale compiled step.
    fields = {k: v for k, v in config.to_dict().items() if k not in CONFIG_SCHEMA or CONFIG_SCHEMA[k].in_step}
    key = (model, steps_per_epoch, total_steps, shardings.mesh.devices.size,
           json.dumps(fields, sort_keys=True, default=str))
    if key not in cls._cache:
      if len(cls._cache) >= 8:
        cls._cache.clear()
      cls._cache[key] = cls(config, model, steps_per_epoch, total_steps, shardings)
    return cls._cache[key]

  def __init__(self, config, model, steps_per_epoch, total_steps, shardings: _Shardings):
    data, replicated = shardings.data, shardings.replicated
    warmup = config.warmup_epochs * steps_per_epoch
    self.schedule_fn = optax.warmup_cosine_decay_schedule(
        0.0 if warmup else config.learning_rate, config.learning_rate, warmup,
        max(total_steps, warmup + 1), end_value=0.0)
    # No weight decay on a TV layer's weight or PNI's noise scales (it would drive the noise to 0).
    decay_mask = weight_decay_mask if config.tv_layer != "none" or config.pni != "none" else None
    self.tx = make_optimizer(config, self.schedule_fn, decay_mask)
    self.train_step = jax.jit(make_train_step(config, model, self.tx), donate_argnums=(0,),
                              in_shardings=(replicated, data, data, replicated),
                              out_shardings=(replicated, replicated))
    self.init = jax.jit(functools.partial(model.init, train=False))
    self.eval_step = jax.jit(make_eval_step(model, parse_preprocess(config.preprocess)),
                             in_shardings=(replicated, data, data, data, replicated))


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


class TrainingData(NamedTuple):
  """The images and labels of a training run (uint8 ``(N, H, W, C)`` images, int ``(N,)`` labels)."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray | None  # None when loaded with test=False
  y_test: np.ndarray | None
  num_classes: int


def load_training_data(config, *, test: bool = True) -> TrainingData:
  """The training (and test) set of a training config, as :func:`train_and_evaluate` trains on it.

  Args:
    config: a checked config (:func:`validate_config`); reads ``dataset``, ``data_dir``, ``image_size``,
      ``train_limit``, ``test_limit`` and ``num_classes``.
    test: also load the test split.

  Returns:
    A :class:`TrainingData`: the first ``train_limit`` / ``test_limit`` images (all for 0) and the class
    count (``config.num_classes``, or from the dataset for 0).

  Raises:
    DatasetNotFoundError: the dataset is not available.
    ConfigError: its files are malformed.
  """
  data_dir = config.data_dir or None
  image_size = config.image_size or None
  try:
    x_train, y_train = load_dataset(config.dataset, "train", data_dir, image_size=image_size)
    x_test, y_test = (load_dataset(config.dataset, "test", data_dir, image_size=image_size) if test
                      else (None, None))
  except ConfigError:
    raise
  except ValueError as e:  # malformed files: the user's data, not a bug here
    raise ConfigError(f"config.dataset {config.dataset!r}: {e}") from e
  if config.train_limit > 0:
    x_train, y_train = x_train[:config.train_limit], y_train[:config.train_limit]
  if test and config.test_limit > 0:
    x_test, y_test = x_test[:config.test_limit], y_test[:config.test_limit]
  num_classes = config.num_classes or num_classes_of(config.dataset, y_train)
  return TrainingData(x_train, y_train, x_test, y_test, num_classes)


class _Run(NamedTuple):
  """A prepared run: everything checked, the workdir bound to the config, the state restored."""

  config: ml_collections.ConfigDict
  workdir: Path
  data: TrainingData
  schedule: list[float]  # the sparsity of each epoch
  train_images: dict  # {sparsity: uint8 training images}
  smooth_info: dict
  shardings: _Shardings
  steps: _Steps
  state: TrainState
  steps_per_epoch: int
  k_train: jax.Array  # the key of the training steps (folded with the step number)
  start_epoch: int  # epochs already done (a resumed run)
  manager: ocp.CheckpointManager
  writer: _MetricsWriter
  t_start: float


def check_batch_size(batch_size: int, n_devices: int) -> None:
  """Raises :class:`ConfigError` (one sentence) unless the training batch splits evenly over the devices.

  The training batch is not rounded: another batch size is another run. (The evaluation batch is, by
  :func:`device_batch`.)
  """
  if batch_size % n_devices:
    lower = batch_size // n_devices * n_devices
    options = " or ".join(str(b) for b in (lower, lower + n_devices) if b > 0)
    raise ConfigError(f"config.batch_size must be a multiple of the device count {n_devices} (each device "
                      f"takes an equal share of every batch); got {batch_size}: use {options}.")


def device_batch(batch_size: int, n_devices: int) -> int:
  """``batch_size`` rounded up to a multiple of ``n_devices``: the evaluation batch (:func:`evaluate` pads
  and masks the last batch, so the accuracy and loss are those of the same images)."""
  return -(-batch_size // n_devices) * n_devices


def _prepare(config, workdir: Path, overwrite: bool) -> _Run:
  """Checks everything that can be checked without training before the workdir is created or changed,
  then binds the workdir to the config, smooths (or reads) the training images and restores the state."""
  validate_config(config)
  config = ml_collections.ConfigDict(config.to_dict())
  schedule = sparsity_schedule(config)
  if config.distributed:
    jax.distributed.initialize()
  if not overwrite:
    check_workdir(config, workdir)
  t_start = time.time()
  data = load_training_data(config)
  shardings = _Shardings.all_devices()
  n_dev = shardings.mesh.devices.size
  check_batch_size(config.batch_size, n_dev)
  steps_per_epoch = data.x_train.shape[0] // config.batch_size
  if steps_per_epoch < 1:
    raise ConfigError(f"config.batch_size must be at most the {data.x_train.shape[0]} training images; got "
                      f"{config.batch_size}.")

  # Model, optimiser, initial variables.
  model = build_model(config, data.num_classes)
  k_init, k_train = jax.random.split(jax.random.key(config.seed))
  steps = _Steps.build(config, model, steps_per_epoch, steps_per_epoch * config.epochs, shardings)
  variables = steps.init(k_init, jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32))
  if config.procedure == "finetune":
    variables = _init_checkpoint_variables(config)

  # The workdir: cleared on request, bound to the config (config.json before any checkpoint).
  if overwrite:
    _clear_workdir(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    atomic_write(workdir / "config.json", config.to_json(indent=1))
  train_images, smooth_info = _training_images(config, data.x_train, schedule)
  state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=steps.tx,
                            batch_stats=variables.get("batch_stats", {}))
  state = jax.device_put(state, shardings.replicated)

  # Checkpoints: resume.
  manager = ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, create=True))
  start_epoch = 0
  if manager.latest_step() is not None:
    start_epoch = manager.latest_step()
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    state = manager.restore(start_epoch, args=ocp.args.StandardRestore(abstract))
  writer = _MetricsWriter(workdir, config.tensorboard)
  writer.truncate(start_epoch)
  k_train = jax.device_put(k_train, shardings.replicated)
  return _Run(config, workdir, data, schedule, train_images, smooth_info, shardings, steps, state,
              steps_per_epoch, k_train, start_epoch, manager, writer, t_start)


def _init_checkpoint_variables(config) -> dict:
  """The variables of ``config.init_checkpoint``, checked to be of ``config``'s model."""
  from iss_jax.training._checkpoint import load_variables

  try:
    _, init_vars, init_cfg = load_variables(config.init_checkpoint)
  except FileNotFoundError as e:
    raise ConfigError(f"config.init_checkpoint must be the workdir of a trained model: {e}") from e
  if (init_cfg.model, init_cfg.width) != (config.model, config.width):
    raise ConfigError(f"config.init_checkpoint {config.init_checkpoint} holds a {init_cfg.model} "
                      f"(width {init_cfg.width}); set config.model / config.width to match.")
  return jax.tree_util.tree_map(jnp.asarray, dict(init_vars))


def _train_epochs(run: _Run) -> tuple[bool, TrainState]:
  """Trains from ``run.start_epoch`` to ``config.epochs``, evaluating, logging and checkpointing each
  epoch; returns whether ``config.stop_after_steps`` stopped it, and the last state."""
  config, data, steps_per_epoch = run.config, run.data, run.steps_per_epoch
  data_sharding = run.shardings.data
  proc = jax.process_index()
  local_bs = config.batch_size // jax.process_count()
  state = run.state
  stopped = False
  for epoch in range(run.start_epoch, config.epochs):
    t0 = time.time()
    sparsity = run.schedule[epoch]
    images = run.train_images[sparsity]
    perm = np.random.default_rng([config.seed, epoch]).permutation(data.x_train.shape[0])
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs} s={sparsity:g}",
               disable=not config.progress or proc != 0, leave=False)
    dev_metrics = []

    def batches(images=images, perm=perm):
      for i in range(steps_per_epoch):
        idx = perm[i * config.batch_size:(i + 1) * config.batch_size][proc * local_bs:(proc + 1) * local_bs]
        yield _global_batch(data_sharding, images[idx]), _global_batch(data_sharding, data.y_train[idx])

    feed = prefetch(batches())
    for i in bar:
      step = epoch * steps_per_epoch + i
      if 0 < config.stop_after_steps <= step:
        stopped = True
        break
      xb, yb = next(feed)
      state, metrics = run.steps.train_step(state, xb, yb, run.k_train)
      dev_metrics.append(metrics)
    feed.close()
    if stopped:
      bar.close()
      break
    sums = {"loss": 0.0, "accuracy": 0.0}
    for m in jax.device_get(dev_metrics):
      sums["loss"] += float(m["loss"]) / steps_per_epoch
      sums["accuracy"] += float(m["accuracy"]) / steps_per_epoch
    eval_batch = device_batch(config.eval_batch_size, run.shardings.mesh.devices.size)
    test = evaluate(run.steps.eval_step, {"params": state.params, "batch_stats": state.batch_stats},
                    data.x_test, data.y_test, eval_batch, data_sharding)
    row = {"epoch": epoch + 1, "step": int((epoch + 1) * steps_per_epoch), "sparsity": sparsity,
           "learning_rate": float(run.steps.schedule_fn((epoch + 1) * steps_per_epoch - 1)),
           "train_loss": sums["loss"], "train_accuracy": sums["accuracy"],
           "test_loss": test["loss"], "test_accuracy": test["accuracy"], "epoch_time_s": time.time() - t0}
    if not np.isfinite(row["train_loss"]):  # as big_vision: a NaN run is not trained on, nor checkpointed
      bar.close()
      run.manager.wait_until_finished()
      raise TrainingDivergedError(
          f"training diverged: the train loss of epoch {epoch + 1} is {row['train_loss']} (config."
          f"learning_rate={config.learning_rate}, config.smooth_kernel_weight={config.smooth_kernel_weight}"
          f", config.label_smoothing={config.label_smoothing}); lower the learning rate or the loss weights.")
    run.writer.write(row)
    if proc == 0:
      bar.write(f"[iss_jax] epoch {epoch + 1}/{config.epochs} sparsity {sparsity:g}: train loss "
                f"{row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | test acc "
                f"{row['test_accuracy']:.4f} ({row['epoch_time_s']:.1f}s)")
    bar.close()
    if (epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.epochs:
      run.manager.save(epoch + 1, args=ocp.args.StandardSave(state))
  run.manager.wait_until_finished()
  run.manager.close()
  run.writer.close()
  return stopped, state


def _summary(run: _Run, stopped: bool, state: TrainState) -> dict:
  """The run's summary from its ``metrics.jsonl``; written to ``summary.json`` unless it was stopped."""
  config, data, workdir = run.config, run.data, run.workdir
  rows = []
  if (workdir / "metrics.jsonl").exists():
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line]
  summary = {
      "procedure": config.procedure, "preset": config.preset, "dataset": config.dataset,
      "model": config.model, "num_params": count_params(state.params),
      "num_train": int(data.x_train.shape[0]), "num_test": int(data.x_test.shape[0]),
      "epochs": config.epochs, "epochs_done": len(rows),
      "completed": not stopped and len(rows) == config.epochs,
      "final_test_accuracy": rows[-1]["test_accuracy"] if rows else None,
      "best_test_accuracy": max((r["test_accuracy"] for r in rows), default=None),
      "final_train_loss": rows[-1]["train_loss"] if rows else None,
      "sparsity_schedule": sorted(set(run.schedule)),
      "devices": f"{run.shardings.mesh.devices.size} x {jax.devices()[0].platform}",
      "wall_time_s": time.time() - run.t_start, "smoothing": run.smooth_info, "config": _to_jsonable(config),
  }
  if jax.process_index() == 0 and not stopped:
    atomic_write(workdir / "summary.json", json.dumps(summary, indent=1))
  return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       overwrite: bool = False) -> dict:
  """Trains and evaluates one model; resumes from ``workdir`` if it holds checkpoints of the same config.

  A workdir belongs to the config that made it (its ``config.json``): a second call with the same config
  resumes from the last checkpoint (after a kill, with the result of an uninterrupted run); a config that
  differs in a field that changes the result is refused unless ``overwrite=True``. Everything that can be
  checked without training (the config's values, the workdir's config, the data, the init checkpoint,
  batch sizes) is checked before the workdir is created or changed.

  Args:
    config: a ``ConfigDict`` with every training field (those of ``iss_jax.training.CONFIG_SCHEMA``), as
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
    DatasetNotFoundError: the dataset is not available (the message says where it was looked for).

  Examples:
    >>> import iss_jax  # doctest: +SKIP
    >>> from train.configs import fixed  # doctest: +SKIP
    >>> cfg = fixed.get_config("quick")  # doctest: +SKIP
    >>> summary = iss_jax.training.train_and_evaluate(cfg, "workdirs/fixed_s0.6")  # doctest: +SKIP
  """
  run = _prepare(config, Path(workdir), overwrite)
  if jax.process_index() == 0:
    config, n_dev = run.config, run.shardings.mesh.devices.size
    print(f"[iss_jax] {config.procedure} ({config.preset} configuration): {config.model} "
          f"({count_params(run.state.params):,} params) on {config.dataset} ({run.data.x_train.shape[0]} "
          f"train / {run.data.x_test.shape[0]} test), {config.epochs} epochs x {run.steps_per_epoch} steps, "
          f"batch {config.batch_size}, {n_dev} {jax.devices()[0].platform} device(s); workdir {run.workdir}"
          + (f" (resumed after epoch {run.start_epoch})" if run.start_epoch else ""), flush=True)
  return _summary(run, *_train_epochs(run))
