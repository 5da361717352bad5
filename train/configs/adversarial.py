"""Adversarial training: PGD-AT (Madry et al.; the default) or TRADES (Zhang et al.), vanilla settings.

The procedure is vanilla with ``config.adversarial = "pgd" | "trades"``; inner PGD: ``adv_eps`` 8/255,
``adv_step_size`` 2/255, ``adv_steps`` 10. Each step costs about ``adv_steps + 1`` forward/backward passes,
so training takes about 11 times as long as vanilla's in the same preset.

Commands (from the repository root):
  quick (default, offline): ``python -m train.adversarial --method=pgd`` (or ``--method=trades``)
      shipped 1,000-image CIFAR-10 sample (test: 500 real images), ResNet-8, 15 epochs, batch 100; on a
      2-core CPU about 11 times vanilla's quick run (36.4% in 151 s); neither runtime nor accuracy
      measured. Faster: ``--config.adv_steps=3``.
  cpu: ``python -m train.adversarial --method=pgd --preset=cpu --data_dir=../shared/data``
      cifar10_exact, ResNet-8, 12 epochs; about 11 times vanilla's 10 min of training on a 2-core CPU;
      not measured.
  paper: ``python -m train.adversarial --method=pgd --preset=paper`` (add ``--data_dir=...`` without TFDS)
      ResNet-18 on full CIFAR-10, 200 epochs; a GPU job (not run here). Madry et al. report about 87%
      clean accuracy for PGD-AT with a wider ResNet.

Options: ``--trades_beta=6`` (TRADES weight), ``--smooth_kernel_weight=0.01`` (adds the smooth-kernel
penalty of Wang et al., "AR"), and ``--config.FIELD=VALUE`` for any field.
"""

import ml_collections

from train.configs import default


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The PGD-AT config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"`` (TRADES: set ``adversarial``)."""
  config = default.apply_preset(default.get_config(), preset)
  config.procedure = "vanilla"
  config.adversarial = "pgd"
  return config
