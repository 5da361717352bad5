"""Adversarial training: PGD-AT (Madry et al.) or TRADES (Zhang et al.), optionally with the
smooth-kernel penalty (Wang et al.), on clean images with the vanilla procedure's settings.

Usage:
  ``python -m train.adversarial --method=pgd [--preset=quick|cpu|full] [--workdir=workdirs/pgd_at]``
  ``python -m train.adversarial --method=trades --trades_beta=6``
  ``python -m train.adversarial --method=pgd --smooth_kernel_weight=0.01``  (AR in Wang et al.)
Inner PGD: ``--config.adv_eps`` (8/255), ``--config.adv_step_size`` (2/255), ``--config.adv_steps``
(10). Each step costs about ``adv_steps + 1`` forward/backward passes, so on CPU use
``--preset=quick`` or fewer ``--config.adv_steps``. The smooth-kernel penalty without adversary:
``python -m train.vanilla --config.smooth_kernel_weight=0.01``.
"""

from absl import app, flags

from train import _main

FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.adversarial is None:
    FLAGS.adversarial = FLAGS.method
  if FLAGS.workdir is None:
    FLAGS.workdir = f"workdirs/{'pgd_at' if FLAGS.adversarial == 'pgd' else FLAGS.adversarial}"
  _main.run("vanilla", ["adversarial", "trades_beta", "smooth_kernel_weight"])


if __name__ == "__main__":
  flags.DEFINE_enum("method", "pgd", ["pgd", "trades"], "pgd: Madry et al.; trades: Zhang et al.")
  _main.define_flags("vanilla", {
      "adversarial": ("string", "Same as --method (kept for --config symmetry)."),
      "trades_beta": ("float", "TRADES trade-off weight (paper: 6)."),
      "smooth_kernel_weight": ("float", "Weight of iss_jax.smooth_kernel_penalty (0 = off)."),
  })
  app.run(main)
