"""The TV layer (Yeh et al., CVPR 2022): a TV-proximal layer with a learned weight at the model's input
or after its first convolution.

The procedure is vanilla with ``config.tv_layer = "smooth"`` (the input is TV-smoothed) or ``"sharp"``
(``2 x - TV(x)``), at ``config.tv_layer_position = "input"`` or ``"first_conv"`` (each feature map of the
first convolution is one TV problem); the weight starts at ``tv_layer_weight`` (0.05) and is learned with
the network (no weight decay on it); the layer runs ``tv_layer_iters`` (30) Chambolle iterations and its
gradient unrolls them (``iss_jax.baselines.tv_layer``). Each step costs the network's plus 30 small TV
iterations forward and backward (on ``width`` feature maps instead of 3 channels after the first
convolution: 2-5x the input layer's epoch on the cpu preset).

Commands (from the repository root):
  quick (default, offline): ``python -m train.tvlayer`` (``--mode=sharp`` for the sharp layer,
      ``--tv_layer_position=first_conv`` after the first convolution)
      shipped 1,000-image CIFAR-10 sample, ResNet-8, 15 epochs, batch 100; not measured.
  cpu: ``python -m train.tvlayer --preset=cpu --data_dir=../shared/data``
      cifar10_exact, ResNet-8, 12 epochs, batch 128; accuracy and time not recorded here.
  paper: ``python -m train.tvlayer --preset=paper`` (add ``--data_dir=...`` without TFDS)
      ResNet-18 on full CIFAR-10, 200 epochs; a GPU job (not run here).

Default workdirs: ``workdirs/tvlayer_smooth`` (quick), ``workdirs/tvlayer_smooth_cpu``, ...
"""

import ml_collections

from train.configs import default


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  """The TV-layer config in a preset: ``"quick"``, ``"cpu"`` or ``"paper"``."""
  config = default.apply_preset(default.get_config(), preset)
  config.procedure = "vanilla"
  config.tv_layer = "smooth"
  return config
