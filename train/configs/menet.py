"""ME-Net training (``config.preprocess = "menet@0.5"``); see train/configs/preprocessed.py."""

import ml_collections

from train.configs import preprocessed


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The ME-Net config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  return preprocessed.get_config(preset, "menet@0.5")
