"""Finetuning a trained model with fixed training at sparsity 0.6 (paper: 20 epochs at learning rate 0.01).

The other presets finetune for a third of their epochs at a fifth of their learning rate.

Commands (from the repository root), with the clean test accuracy measured on a shared 2-core CPU (seed 0,
Split LBI kappa 10, nu 1, step factor 1.9, maxiter: the image-size default, 20k at 32x32):
  quick (default, offline): ``python -m train.finetune --init_checkpoint=workdirs/vanilla --sparsity=0.6``
      shipped 1,000-image CIFAR-10 sample (test: 500 real images), ResNet-8, 5 epochs at 0.02; a few minutes
      on the 2-core CPU (the first run also fills ``cache/``); accuracy not measured.
  cpu: ``python -m train.finetune --init_checkpoint=workdirs/vanilla_cpu --sparsity=0.6 --preset=cpu \\
      --data_dir=../shared/data``
      cifar10_exact (5,085 real train images; test = official test images 0..1016), ResNet-8, 4 epochs at
      0.02: 54.7% in 63 s on the 2-core CPU (from a cpu vanilla run at 54.1%).
  paper: ``python -m train.finetune --init_checkpoint=workdirs/vanilla_paper --sparsity=0.6 --preset=paper``
      (add ``--data_dir=...`` without TFDS)
      ResNet-18 on full CIFAR-10, 20 epochs at 0.01 (SGD, momentum 0.9, wd 5e-4, cosine), batch 128; on one
      GPU, not run here.

Default workdirs: ``workdirs/finetune_s0.6`` (quick), ``workdirs/finetune_s0.6_cpu``, ...; the vanilla runs
above write ``workdirs/vanilla``, ``workdirs/vanilla_cpu`` and ``workdirs/vanilla_paper``.

Any field can be overridden: ``--config.FIELD=VALUE`` (e.g. ``--config.width=32``).
"""

import ml_collections

from train.configs import datasets, default


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The finetune config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  config = default.apply_preset(default.get_config(), preset)
  config.procedure = "finetune"
  config.sparsity = datasets.SPARSITY.get(preset, 0.6)  # the later paper's choice per dataset
  if preset not in ("quick", "cpu"):  # the paper's finetune setting, for every full-data preset
    config.learning_rate = 0.01
    config.epochs = 20
  else:
    config.learning_rate = config.learning_rate / 5
    config.epochs = max(config.epochs // 3, 1)
  return config
