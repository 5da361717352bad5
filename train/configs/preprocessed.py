"""Training on preprocessed images: ME-Net (Yang et al., ICML 2019) and SPLIC (Zhao et al.).

The procedure is vanilla with ``config.preprocess`` a defense spec: every training batch (after the random
crop and flip) and every test batch goes through it with a fresh random mask, as the papers train:
``menet@P`` (ME-Net: keep a pixel with probability P, re-estimate each channel by USVT) or ``splic@R``
(SPLIC low-rank completion at rank R). At test time the same preprocessing stands in front of the model
(``python -m eval.compare --defense=menet=workdirs/menet_0.5`` picks it up from the workdir's config).

Commands (from the repository root):
  quick (default, offline): ``python -m train.menet`` / ``python -m train.splic``
      shipped 1,000-image CIFAR-10 sample, ResNet-8, 15 epochs, batch 100; not measured.
  cpu: ``python -m train.menet --preset=cpu --data_dir=../shared/data`` (``train.splic`` likewise)
      cifar10_exact, ResNet-8, 12 epochs, batch 128; accuracy and time not recorded here.
  paper: ``python -m train.menet --preset=paper`` (add ``--data_dir=...`` without TFDS); a GPU job.

Default workdirs: ``workdirs/menet_0.5``, ``workdirs/splic_8`` (plus ``_cpu`` / ``_paper``).
"""

import ml_collections

from train.configs import default


def get_config(preset: str = "quick", preprocess: str = "menet@0.5") -> ml_collections.ConfigDict:
  """The config of training on ``preprocess``-ed images in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  config = default.apply_preset(default.get_config(), preset)
  config.procedure = "vanilla"
  config.preprocess = preprocess
  return config
