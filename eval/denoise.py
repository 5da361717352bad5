"""Denoising PSNR (paper App. K, Fig. 15): noisy vs ISS-smoothed vs TV (Chambolle) at a tuned weight.

  python -m eval.denoise --workdir=workdirs/vanilla --noise_std=0.1 --denoise_sparsity=0.6
"""

from __future__ import annotations

import argparse

import numpy as np

import iss_jax
from eval import _common

NAME = "denoise"


def add_args(parser: argparse.ArgumentParser) -> None:
  g = parser.add_argument_group("denoise")
  g.add_argument("--noise_std", type=float, default=0.1)
  g.add_argument("--denoise_sparsity", type=float, default=0.6)
  g.add_argument("--denoise_tv_weights", type=_common.number_list, default="0.02,0.05,0.08,0.12,0.2",
                 help="TV weights tried for the TV column (best mean PSNR on held-out images)")
  g.add_argument("--tune_examples", type=int, default=64,
                 help="held-out training images used to tune the TV weight")


def run(args, apply_fn=None, data=None) -> dict:
  x, _ = data if data is not None else _common.load_data(args)
  tv = iss_jax.baselines.tv_denoise
  try:
    x_tune = iss_jax.training.load_dataset(args.dataset, "train", args.data_dir)[0][: args.tune_examples]
  except iss_jax.training.DatasetNotFoundError:  # the first evaluation images instead (said in the output)
    x_tune = None
  res = iss_jax.robustness.evaluate_denoise(
      x, sigma=args.noise_std, sparsity=args.denoise_sparsity, tv_denoise=tv,
      tv_weights=args.denoise_tv_weights,
      tune_examples=args.tune_examples, x_tune=x_tune, seed=args.seed,
      smooth_kwargs=_common.smooth_kwargs(args), batch_size=args.batch_size,
      progress=not args.no_progress)
  md = [_common.header(args, "Denoising PSNR", len(x))]
  md.append(f"Noise: {res['noise']}. ISS smoothing at sparsity {res['sparsity']:g}.")
  md.append(f"TV: `iss_jax.baselines.tv_denoise` (Chambolle) at weight {res['tv_weight']:g}, the best of "
            f"{list(res['tv_tuning'])} by mean PSNR on {res['tv_tuning_images']}.")
  md.append("")
  md.append(iss_jax.robustness.markdown_table(["images", "mean PSNR (dB)", "std (dB)"],
                                              [[k, f"{res['mean'][k]:.2f}", f"{res['std'][k]:.2f}"]
                                    for k in res["mean"]]))
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for k, v in res["psnr"].items():
    ax.hist(np.asarray(v), bins=40, alpha=0.55, label=f"{k} (mean {res['mean'][k]:.2f} dB)")
  ax.set_xlabel("PSNR against the clean image (dB)")
  ax.set_ylabel("number of images")
  ax.yaxis.get_major_locator().set_params(integer=True)
  ax.set_title(f"Denoising (App. K): Gaussian noise std {res['sigma']:g}, {args.dataset} {args.split}, "
               f"n = {len(x)}", fontsize=9)
  ax.legend(fontsize=8)
  return _common.finish(args, NAME, md, res, fig)


def main(argv=None):
  _common.main(__doc__, add_args, run, argv)


if __name__ == "__main__":
  main()
