"""Iterative training (paper Eq. 7): the training images' sparsity rises from start to end over training.

Usage: python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8 [--preset=quick|cpu|paper]
  [--workdir=...] [--config.FIELD=VALUE] (e.g. --config.num_levels=6)
Default workdir: workdirs/iterative_s<start>-<end> (workdirs/iterative_s0.3-0.8), plus _cpu / _paper.
Commands, runtimes and accuracies of each preset: train/configs/iterative.py.
"""

from absl import app, flags

from train import _main


def main(argv):
  del argv
  _main.run("iterative")


if __name__ == "__main__":
  _main.define_flags("iterative", ["start_sparsity", "end_sparsity"])
  flags.adopt_module_key_flags(_main)
  app.run(main, flags_parser=_main.parse_flags)
