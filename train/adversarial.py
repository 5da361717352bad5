"""Adversarial training: PGD-AT (Madry et al.) or TRADES (Zhang et al.), optionally with the
smooth-kernel penalty (Wang et al.), on clean images with the vanilla procedure's settings.

Usage:
  python -m train.adversarial --method=pgd [--preset=quick|cpu|paper] [--workdir=...]
  python -m train.adversarial --method=trades --trades_beta=6
  python -m train.adversarial --method=pgd --smooth_kernel_weight=0.01   (AR in Wang et al.)
Inner PGD: --config.adv_eps (8/255), --config.adv_step_size (2/255), --config.adv_steps (10). Each step
costs about adv_steps + 1 forward/backward passes, so on CPU use --preset=quick or fewer
--config.adv_steps. The smooth-kernel penalty without adversary:
python -m train.vanilla --config.smooth_kernel_weight=0.01.
Default workdir: workdirs/pgd_at or workdirs/trades (plus _cpu / _paper for those presets).
Commands, runtimes and accuracies of each preset: train/configs/adversarial.py.
"""

from train import _main

if __name__ == "__main__":
  _main.entry("adversarial", ["trades_beta", "smooth_kernel_weight"], renamed={"method": "adversarial"})
