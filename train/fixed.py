"""Fixed training: ERM on images smoothed by ``iss_jax.smooth`` at one sparsity (paper Sec. 3.2).

Usage: ``python -m train.fixed --sparsity=0.6 [--preset=quick|cpu|full] [--workdir=...]``.
"""

from absl import app

from train import _main


def main(argv):
  del argv
  _main.run("fixed", ["sparsity"])


if __name__ == "__main__":
  _main.define_flags("fixed", {"sparsity": ("float", "Edge sparsity of the smoothed training images.")})
  app.run(main)
