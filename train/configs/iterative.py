"""Iterative training (Eq. 7): sparsity 0.3 -> 0.8 in 6 equal blocks of epochs.

Commands (from the repository root), with the clean test accuracy measured on a shared 2-core CPU (seed 0,
Split LBI kappa 10, nu 1, step factor 1.9, maxiter: the image-size default, 20k at 32x32):
  quick (default, offline): ``python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8``
      shipped 1,000-image CIFAR-10 sample (test: 500 real images), ResNet-8 (78k params), 15 epochs,
      batch 100; a few minutes on the 2-core CPU (the first run also fills ``cache/``); accuracy not
      measured.
  cpu: ``python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8 --preset=cpu \\
      --data_dir=../shared/data``
      cifar10_exact (5,085 real train images; test = official test images 0..1016), ResNet-8, 12 epochs
      (2 per level), batch 128: 50.5%, about 10 min of training on the 2-core CPU.
  paper: ``python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8 --preset=paper``
      (add ``--data_dir=...`` without TFDS)
      ResNet-18 on full CIFAR-10, SGD 0.1 / momentum 0.9 / wd 5e-4, cosine, 200 epochs, batch 128; hours
      on one GPU (not run here). The paper reports iterative training comparable to vanilla (about 95%)
      (its App. Tab. 4).

Default workdirs: ``workdirs/iterative_s0.3-0.8`` (quick), ``workdirs/iterative_s0.3-0.8_cpu``,
``workdirs/iterative_s0.3-0.8_paper``.

Any field can be overridden: ``--config.FIELD=VALUE`` (e.g. ``--config.num_levels=3``).
"""

import ml_collections

from train.configs import default


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The iterative-training config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  config = default.apply_preset(default.get_config(), preset)
  config.procedure = "iterative"
  config.start_sparsity = 0.3
  config.end_sparsity = 0.8
  config.num_levels = 6
  return config
