"""SPLIC training (``config.preprocess = "splic@8"``, the paper's rank for CIFAR-10); see
train/configs/preprocessed.py."""

import ml_collections

from train.configs import preprocessed


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The SPLIC config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  return preprocessed.get_config(preset, "splic@8")
