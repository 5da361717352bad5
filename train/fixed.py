"""Fixed training: ERM on images smoothed by ``iss_jax.smooth`` at one sparsity (paper Sec. 3.2).

Usage: python -m train.fixed --sparsity=0.6 [--preset=quick|cpu|paper] [--workdir=...] [--config.FIELD=VALUE]
Default workdir: workdirs/fixed_s<sparsity> (workdirs/fixed_s0.6), plus _cpu / _paper for those presets.
Commands, runtimes and accuracies of each preset: train/configs/fixed.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("fixed", ["sparsity"])
