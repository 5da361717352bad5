"""ME-Net (Yang et al. 2019): training on images re-estimated from random pixel masks (USVT).

Usage: python -m train.menet [--preprocess=menet@0.5] [--preset=quick|cpu|paper] [--workdir=...]
Every training and test batch goes through the preprocessing with a fresh random mask.
Default workdir: workdirs/menet_0.5 (plus _cpu / _paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/preprocessed.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("menet", ["preprocess"])
