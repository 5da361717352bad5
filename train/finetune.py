"""Finetuning: fixed training started from a trained model (paper: 20 epochs).

Usage: ``python -m train.finetune --init_checkpoint=workdirs/vanilla --sparsity=0.6 [--preset=...]``.
"""

from absl import app

from train import _main


def main(argv):
  del argv
  _main.run("finetune", ["sparsity", "init_checkpoint"])


if __name__ == "__main__":
  _main.define_flags("finetune", {
      "sparsity": ("float", "Edge sparsity of the smoothed training images."),
      "init_checkpoint": ("string", "Workdir of the trained model to start from."),
  })
  app.run(main)
