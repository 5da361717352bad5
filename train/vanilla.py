"""Vanilla (ERM) training on clean images.

Usage: python -m train.vanilla [--preset=quick|cpu|paper] [--workdir=...] [--config.FIELD=VALUE]
Default workdir: workdirs/vanilla (workdirs/vanilla_cpu, workdirs/vanilla_paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/vanilla.py.
"""

from absl import app, flags

from train import _main


def main(argv):
  del argv
  _main.run("vanilla")


if __name__ == "__main__":
  _main.define_flags("vanilla")
  flags.adopt_module_key_flags(_main)
  app.run(main, flags_parser=_main.parse_flags)
