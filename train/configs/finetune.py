"""Finetuning a trained model with fixed training at sparsity 0.6 (paper: 20 epochs).

Commands (from the repository root):
  quick (default, offline): ``python -m train.finetune --init_checkpoint=workdirs/vanilla --sparsity=0.6``
      shipped 1,000-image CIFAR-10 sample, ResNet-8 (78k params), 15 epochs; a few minutes on 2 CPU cores
      (the first smoothed run also fills ``cache/``). Expected accuracy: see EXPECTED below.
  cpu: ``python -m train.finetune --init_checkpoint=workdirs/vanilla --sparsity=0.6 --preset=cpu``
      cifar10_exact (5,085 real train images; test = official test images 0..1016), ResNet-8, 12 epochs;
      about 10 min of training on 2 CPU cores.
  full: ``python -m train.finetune --init_checkpoint=workdirs/vanilla --sparsity=0.6 --preset=full``
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
    "cpu": "54.7% (from workdirs/vanilla at 54.1%, 4 epochs at sparsity 0.6, lr 0.02; 63 s)",
}


def get_config(preset: str = "quick"):
  """The finetune config in a preset: ``"quick"``, ``"cpu"`` or ``"full"``."""
  return iss_jax.training_config("finetune", preset)
