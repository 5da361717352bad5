"""Training configurations: one per procedure, in three presets (quick / cpu / full)."""

from __future__ import annotations

import ml_collections

from iss_jax._src.training import PROCEDURES, base_config

PRESETS = ("quick", "cpu", "full", "paper")  # "paper" is an alias of "full"


def training_config(procedure: str, preset: str = "quick") -> ml_collections.ConfigDict:
  """The ``ConfigDict`` of a procedure in a preset (see ``train/configs/`` for commands and figures).

  Presets:
    * ``"quick"`` (the offline default): the 1,000-image real CIFAR-10 sample shipped in the repo
      (``cifar10_sample``, test: 500 real test images), ``resnet_small`` (ResNet-8, 78k params),
      15 epochs, batch 100; a few minutes on 2 CPU cores once the smoothing cache exists.
    * ``"cpu"``: the evidence setting on ``cifar10_exact`` (5,085 real train images; test = official test
      images 0..1016), ``resnet_small``, 12 epochs, batch 128; about 10 min per run on 2 CPU cores.
    * ``"full"``: the paper's CIFAR-10 setting: full CIFAR-10 (TFDS or ``--data_dir``), ResNet-18,
      SGD 0.1 / momentum 0.9 / weight decay 5e-4, cosine schedule, 200 epochs, batch 128 (finetune: 20
      epochs at 0.01). Vanilla reaches about 95% clean test accuracy on a GPU.

  Args:
    procedure: ``"vanilla"``, ``"fixed"``, ``"iterative"`` or ``"finetune"``.
    preset: ``"quick"``, ``"cpu"`` or ``"full"`` (alias ``"paper"``).

  Returns:
    A ``ConfigDict`` with every field of the training library.

  Raises:
    ValueError: unknown procedure or preset.

  Examples:
    >>> import iss_jax
    >>> cfg = iss_jax.training_config("fixed", "quick")
    >>> cfg.dataset, cfg.model, cfg.sparsity
    ('cifar10_sample', 'resnet_small', 0.6)
  """
  if procedure not in PROCEDURES:
    raise ValueError(f"procedure must be one of {PROCEDURES}; got {procedure!r}.")
  if preset not in PRESETS:
    raise ValueError(f"preset must be one of {PRESETS}; got {preset!r}.")
  preset = "full" if preset == "paper" else preset
  c = base_config()
  c.procedure = procedure
  c.preset = preset
  if preset == "quick":
    c.dataset = "cifar10_sample"
    c.model = "resnet_small"
    c.epochs = 15
    c.batch_size = 100
    c.eval_batch_size = 500
  elif preset == "cpu":
    c.dataset = "cifar10_exact"
    c.model = "resnet_small"
    c.epochs = 12
    c.batch_size = 128
    c.eval_batch_size = 339
  if procedure == "finetune":
    c.learning_rate = 0.01 if preset == "full" else c.learning_rate / 5
    c.epochs = 20 if preset == "full" else max(c.epochs // 3, 1)
  return c
