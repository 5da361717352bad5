"""SPLIC (Zhao et al.): training on low-rank completed images.

Usage: python -m train.splic [--preprocess=splic@8] [--preset=quick|cpu|paper] [--workdir=...]
Every training and test batch goes through the preprocessing with a fresh random mask.
Default workdir: workdirs/splic_8 (plus _cpu / _paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/preprocessed.py.
"""

from absl import app, flags

from train import _main


def main(argv):
  del argv
  _main.run("splic")


if __name__ == "__main__":
  _main.define_flags("splic", ["preprocess"])
  flags.adopt_module_key_flags(_main)
  app.run(main, flags_parser=_main.parse_flags)
