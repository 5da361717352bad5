"""Iterative training (paper Eq. 7): the training images' sparsity rises from start to end over training.

Usage: python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8 [--preset=quick|cpu|paper]
  [--workdir=...] [--config.FIELD=VALUE] (e.g. --config.num_levels=6)
Default workdir: workdirs/iterative_s<start>-<end> (workdirs/iterative_s0.3-0.8), plus _cpu / _paper.
Commands, runtimes and accuracies of each preset: train/configs/iterative.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("iterative", ["start_sparsity", "end_sparsity"])
