"""Iterative training (Eq. 7): sparsity 0.3 -> 0.8 in 6 equal blocks of epochs.

Commands (from the repository root):
  quick (default, offline): ``python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8``
      shipped 1,000-image CIFAR-10 sample, ResNet-8 (78k params), 15 epochs; a few minutes on 2 CPU cores
      (the first smoothed run also fills ``cache/``). Expected accuracy: see EXPECTED below.
  cpu: ``python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8 --preset=cpu``
      cifar10_exact (5,085 real train images; test = official test images 0..1016), ResNet-8, 12 epochs;
      about 10 min of training on 2 CPU cores.
  full: ``python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8 --preset=full``
      (add ``--data_dir=...`` without TFDS)
      ResNet-18 on full CIFAR-10, SGD 0.1 / momentum 0.9 / wd 5e-4, cosine, 200 epochs, batch 128
      (finetune: 20 epochs at 0.01); hours on one GPU. Vanilla: about 95% clean test accuracy; the paper
      reports fixed / iterative training comparable to vanilla from sparsity 0.6 up (its App. Tab. 4).

Any field can be overridden: ``--config.FIELD=VALUE`` (e.g. ``--config.width=32``).
"""

import iss_jax

# Measured clean test accuracy on a shared 2-core CPU (seed 0, Split LBI kappa 10, nu 1, step factor
# 1.9, maxiter 20k); "full" needs a GPU and was not run here.
EXPECTED = {
    "quick": "not measured",
    "cpu": "50.5% (sparsity 0.3..0.8, 2 epochs per level)",
}


def get_config(preset: str = "quick"):
  """The iterative config in a preset: ``"quick"``, ``"cpu"`` or ``"full"``."""
  return iss_jax.training_config("iterative", preset)
