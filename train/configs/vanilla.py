"""Vanilla (ERM) training on clean images.

Commands (from the repository root), with the clean test accuracy measured on a shared 2-core CPU (seed 0):
  quick (default, offline): ``python -m train.vanilla``
      shipped 1,000-image CIFAR-10 sample (test: 500 real images), ResNet-8 (78k params), 15 epochs,
      batch 100: 36.4% in 151 s wall on the 2-core CPU.
  cpu: ``python -m train.vanilla --preset=cpu --data_dir=../shared/data``
      cifar10_exact (5,085 real train images; test = official test images 0..1016), ResNet-8, 12 epochs,
      batch 128: 54.1%, about 10 min of training on the 2-core CPU.
  paper: ``python -m train.vanilla --preset=paper`` (add ``--data_dir=...`` without TFDS)
      ResNet-18 on full CIFAR-10, SGD 0.1 / momentum 0.9 / wd 5e-4, cosine, 200 epochs, batch 128; hours
      on one GPU, about 95% clean test accuracy expected (not run here).

Default workdirs: ``workdirs/vanilla`` (quick), ``workdirs/vanilla_cpu``, ``workdirs/vanilla_paper``.

Any field can be overridden: ``--config.FIELD=VALUE`` (e.g. ``--config.width=32``).
"""

import ml_collections

from train.configs import default


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The vanilla config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  config = default.apply_preset(default.get_config(), preset)
  config.procedure = "vanilla"
  return config
