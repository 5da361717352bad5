"""Finetuning: fixed training started from a trained model (paper: 20 epochs at learning rate 0.01).

Usage: python -m train.finetune --init_checkpoint=workdirs/vanilla --sparsity=0.6 [--preset=quick|cpu|paper]
  [--workdir=...] [--config.FIELD=VALUE]
Default workdir: workdirs/finetune_s<sparsity> (workdirs/finetune_s0.6), plus _cpu / _paper.
Commands, runtimes and accuracies of each preset: train/configs/finetune.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("finetune", ["sparsity", "init_checkpoint"])
