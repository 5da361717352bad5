"""PNI (Rakin et al., CVPR 2019): learned-scale Gaussian noise on every weight, adversarial training.

The procedure is vanilla with ``config.pni = "layerwise"`` (one scale per layer, initialised at 0.25;
``"channelwise"``: one per output channel) and ``config.adversarial = "pgd"``: every forward pass, training
and test, uses ``W + alpha * N(0, std(W)^2)``; the scales are learned (no weight decay on them). The model is
random, so the evaluations attack it with EOT.

Adversary: the paper's PGD-AT (eps 8/255, step 2/255, 10 steps) in the ``paper`` and dataset presets; the
``quick`` and ``cpu`` presets use the CPU-affordable FGSM with random start of Wong et al. 2020 (one step of
10/255 from a uniform start in the 8/255 ball), about twice vanilla's cost.

Commands (from the repository root):
  quick (default, offline): ``python -m train.pni``
      shipped 1,000-image CIFAR-10 sample, ResNet-8, 15 epochs, batch 100, FGSM-RS; not measured.
  cpu: ``python -m train.pni --preset=cpu --data_dir=../shared/data``
      cifar10_exact, ResNet-8, 12 epochs, batch 128, FGSM-RS; accuracy and time not recorded here.
  paper: ``python -m train.pni --preset=paper`` (add ``--data_dir=...`` without TFDS)
      ResNet-18 on full CIFAR-10, 200 epochs, PGD-10; a GPU job (not run here).

Default workdirs: ``workdirs/pni_layerwise`` (quick), ``workdirs/pni_layerwise_cpu``, ...
"""

import ml_collections

from train.configs import default


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The PNI config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  config = default.apply_preset(default.get_config(), preset)
  config.procedure = "vanilla"
  config.pni = "layerwise"
  config.adversarial = "pgd"
  if preset in ("quick", "cpu"):
    config.update(default.FGSM_RS)
  return config
