"""The TV layer (Yeh et al. 2022): a TV-proximal layer with a learned weight at the model's input
or after its first convolution.

Usage: python -m train.tvlayer [--mode=smooth|sharp] [--tv_layer_position=input|first_conv]
       [--tv_layer_weight=0.05] [--preset=quick|cpu|paper]
Default workdir: workdirs/tvlayer_<mode> (plus _cpu / _paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/tvlayer.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("tvlayer", ["tv_layer_weight", "tv_layer_position"], renamed={"mode": "tv_layer"})
