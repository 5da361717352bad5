"""Vanilla (ERM) training on clean images.

Usage: ``python -m train.vanilla [--preset=quick|cpu|full] [--workdir=...] [--config.FIELD=VALUE]``.
"""

from absl import app

from train import _main


def main(argv):
  del argv
  _main.run("vanilla")


if __name__ == "__main__":
  _main.define_flags("vanilla")
  app.run(main)
