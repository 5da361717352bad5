"""SPLIC (Zhao et al.): training on low-rank completed images.

Usage: python -m train.splic [--preprocess=splic@8] [--preset=quick|cpu|paper] [--workdir=...]
Every training and test batch goes through the preprocessing with a fresh random mask.
Default workdir: workdirs/splic_8 (plus _cpu / _paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/preprocessed.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("splic", ["preprocess"])
