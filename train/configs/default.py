"""The one source of the training configuration: every field with the paper's defaults, and the presets.

``get_config()`` holds every field :func:`iss_jax.training.train_and_evaluate` reads, set to the paper's
CIFAR-10 ResNet-18 setting; ``apply_preset`` turns it into one of the presets; the per-procedure configs
(``vanilla.py``, ``fixed.py``, ``iterative.py``, ``finetune.py``, ``adversarial.py``) start from both and
carry the commands, runtimes and accuracies. What each field may hold, whether it changes a run's result,
what its absence in an old workdir means and its help line are the library's
``iss_jax.training.CONFIG_SCHEMA``; ``FLAG_HELP`` is those help lines, which the
``python -m train.<procedure>`` entry points show for their short flags (``--epochs`` for
``--config.epochs``). A new field is one ``Field`` there and its value here.

Presets:
  * ``"quick"`` (the offline default): the 1,000-image real CIFAR-10 sample shipped with the package
    (``cifar10_sample``; test: 500 real test images), ``resnet_small`` (ResNet-8, 78k params), 15 epochs,
    batch 100.
  * ``"cpu"``: ``cifar10_exact`` (5,085 real train images; test = official test images 0..1016),
    ``resnet_small``, 12 epochs, batch 128. ``cifar10_exact.npz`` is found through ``--data_dir``; build it
    from the official CIFAR-10 python pickles with ``python -m train.make_cifar10_exact``.
  * ``"paper"``: the paper's CIFAR-10 setting, i.e. ``get_config()`` unchanged: full CIFAR-10 (TFDS or
    ``--data_dir``), ResNet-18, SGD 0.1 / momentum 0.9 / weight decay 5e-4, cosine schedule, 200 epochs,
    batch 128.
  * ``"cifar100"``, ``"miniimagenet"``, ``"imagenet100"``: the paper's model and schedule on that dataset,
    data through ``--data_dir``; their fields, commands and expected figures are in ``datasets.py``.
"""

import ml_collections

import iss_jax.training
from train.configs import datasets

PRESETS = ("quick", "cpu", "paper", *datasets.PRESET_FIELDS)

PRESET_HELP = ("quick: offline CPU demo on the shipped 1,000-image CIFAR-10 sample (ResNet-8, 15 epochs); "
               "cpu: the 5,085-image real subset cifar10_exact (ResNet-8, 12 epochs; cifar10_exact.npz in "
               "--data_dir, made by python -m train.make_cifar10_exact); paper: the paper's "
               "ResNet-18 / full CIFAR-10 / 200-epoch run; " + datasets.PRESET_HELP)


def get_config() -> ml_collections.ConfigDict:
  """Every training field, with the paper's CIFAR-10 ResNet-18 defaults (the ``"paper"`` preset)."""
  c = ml_collections.ConfigDict()
  c.procedure = "vanilla"        # vanilla | fixed | iterative | finetune (iss_jax.training.PROCEDURES)
  c.preset = "paper"             # a label, printed and stored in the summary: quick | cpu | paper
  # Data.
  c.dataset = "cifar10"          # see iss_jax.training.load_dataset
  c.data_dir = ""                # "" = default location / TFDS
  c.image_size = 0               # 0 = native size (image folders / TFDS are resized when > 0)
  c.num_classes = 0              # 0 = from the dataset
  c.train_limit = 0              # > 0: use only the first N training images (smoke tests)
  c.test_limit = 0               # > 0: evaluate on the first N test images only
  # Model.
  c.model = "resnet18"           # resnet18 | resnet34 | resnet50 | resnet_small | vit_tiny
  c.stem = "cifar"               # cifar (3x3 conv, no max-pool) | imagenet (7x7/2 + max-pool)
  c.width = 0                    # 0 = the model's default width
  c.dtype = "float32"            # float32 | bfloat16 computation (weights stay float32)
  # Competitors' layers (iss_jax.training.DefendedModel) and training-time preprocessing.
  c.tv_layer = "none"            # none | smooth | sharp: TV layer with a learned weight at the input
  c.tv_layer_weight = 0.05       # its initial weight (learned as softplus(theta))
  c.tv_layer_position = "input"  # input | first_conv (on the feature maps of the first convolution)
  c.tv_layer_iters = 30          # Chambolle iterations (the gradient unrolls them)
  c.pni = "none"                 # none | layerwise | channelwise: PNI weight noise with learned scales
  c.preprocess = "none"          # a defense spec applied to every batch, e.g. menet@0.5 or splic@8
  # Smoothing (Split LBI settings of iss_jax.smooth, whose defaults these are; part of the cache key).
  c.sparsity = 0.6               # fixed / finetune
  c.start_sparsity = 0.3         # iterative
  c.end_sparsity = 0.8           # iterative
  c.num_levels = 6               # iterative: 0.3, 0.4, ..., 0.8
  c.kappa = 10.0
  c.nu = 1.0
  c.step_factor = 1.9
  c.maxiter = 0                  # 0 = iss_jax.smooth's cap for the image size (20,000 at 32x32 colour)
  c.smooth_batch_size = 256
  c.cache_dir = "cache"
  # Optimisation (paper CIFAR setting: SGD 0.1, momentum 0.9, wd 5e-4, cosine, 200 epochs, batch 128).
  c.epochs = 200
  c.batch_size = 128
  c.eval_batch_size = 500
  c.optimizer = "sgd"            # sgd | adamw (the ViT's usual recipe, with warmup_epochs)
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 5e-4
  c.warmup_epochs = 0
  c.label_smoothing = 0.0
  c.crop_padding = 4             # random crop after zero padding (0 = off)
  c.flip = True                  # random horizontal flip
  # Loss terms owned by the baselines (default off).
  c.smooth_kernel_weight = 0.0   # weight of iss_jax.baselines.smooth_kernel_penalty (0 = off)
  c.adversarial = "none"         # none | pgd | trades
  c.adv_eps = 8 / 255            # L-inf radius of the inner PGD (Madry, CIFAR-10)
  c.adv_step_size = 2 / 255      # inner PGD step
  c.adv_steps = 10               # inner PGD iterations
  c.trades_beta = 6.0            # TRADES trade-off weight
  # Finetune.
  c.init_checkpoint = ""         # workdir of a trained model
  # Bookkeeping.
  c.seed = 0
  c.checkpoint_every_epochs = 1
  c.keep_checkpoints = 2
  c.stop_after_steps = -1        # > 0: stop (without saving) after this global step: simulates a kill
  c.progress = True
  c.tensorboard = True           # write TensorBoard summaries when a writer is importable
  c.distributed = False          # call jax.distributed.initialize() (multi-host pods)
  return c


# The help line of every field (the entry points' --FIELD flags show it), from the library's one table of
# fields: what a field may hold and means is said there, its value here.
FLAG_HELP = {name: field.help for name, field in iss_jax.training.CONFIG_SCHEMA.items()}

# What the small presets change; "paper" keeps the defaults above.
_PRESET_FIELDS = {
    "quick": {"dataset": "cifar10_sample", "model": "resnet_small", "epochs": 15, "batch_size": 100,
              "eval_batch_size": 500},
    "cpu": {"dataset": "cifar10_exact", "model": "resnet_small", "epochs": 12, "batch_size": 128,
            "eval_batch_size": 339},
    **datasets.PRESET_FIELDS,
}

# The CPU-affordable adversary of the small presets of PNI (FGSM with random start, Wong et al. 2020:
# one step of 1.25 eps from a uniform start in the eps ball).
FGSM_RS = {"adv_steps": 1, "adv_step_size": 10 / 255}

# The short flags every entry point offers.
COMMON_FLAGS = ("dataset", "data_dir", "model", "epochs", "batch_size", "learning_rate", "seed")


def apply_preset(config: ml_collections.ConfigDict, preset: str) -> ml_collections.ConfigDict:
  """Sets the data, model and schedule of a preset on ``config`` (in place) and returns it.

  Args:
    config: a config from :func:`get_config`.
    preset: ``"quick"``, ``"cpu"``, ``"paper"``, ``"cifar100"``, ``"miniimagenet"`` or ``"imagenet100"``
      (see the module docstring).

  Returns:
    ``config``, with ``config.preset = preset``.

  Raises:
    ValueError: an unknown preset.
  """
  if preset not in PRESETS:
    raise ValueError(f"preset must be one of {PRESETS}; got {preset!r}.")
  config.preset = preset
  config.update(_PRESET_FIELDS.get(preset, {}))  # "paper" is get_config() itself
  return config
