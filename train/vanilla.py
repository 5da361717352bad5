"""Vanilla (ERM) training on clean images.

Usage: python -m train.vanilla [--preset=quick|cpu|paper] [--workdir=...] [--config.FIELD=VALUE]
Default workdir: workdirs/vanilla (workdirs/vanilla_cpu, workdirs/vanilla_paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/vanilla.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("vanilla")
