"""Denoising PSNR (paper App. K, Fig. 15): noisy vs ISS-smoothed vs TV (Chambolle) at a tuned weight.

  python -m eval.denoise --workdir=workdirs/vanilla --noise_std=0.1 --denoise_sparsity=0.6
"""

from __future__ import annotations

import numpy as np
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "denoise"


def define_flags(flag_values: flags.FlagValues) -> None:
  cli.define("number", "noise_std", 0.1, "std of the Gaussian noise added to the images", flag_values)
  cli.define("number", "denoise_sparsity", 0.6, "sparsity of the ISS smoothing column", flag_values)
  cli.define("number_list", "denoise_tv_weights", "0.02,0.05,0.08,0.12,0.2",
             "TV weights tried for the TV column (best mean PSNR on held-out images)", flag_values)
  cli.define("integer", "tune_examples", 64, "held-out training images used to tune the TV weight",
             flag_values)


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
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
