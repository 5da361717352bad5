"""Iterative training (paper Eq. 7): the training images' sparsity rises from start to end over training.

Usage: ``python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8 [--preset=...]``.
"""

from absl import app

from train import _main


def main(argv):
  del argv
  _main.run("iterative", ["start_sparsity", "end_sparsity"])


if __name__ == "__main__":
  _main.define_flags("iterative", {
      "start_sparsity": ("float", "Sparsity of the first epochs (coarse structure)."),
      "end_sparsity": ("float", "Sparsity of the last epochs."),
  })
  app.run(main)
