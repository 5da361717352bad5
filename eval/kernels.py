"""Total variation of the first-layer convolution kernels (paper App. F, Fig. 12).

  python -m eval.kernels --workdir=workdirs/vanilla
"""

from __future__ import annotations

import numpy as np
from absl import flags

import iss_jax
from eval import _common

NAME = "kernels"


def define_flags(flag_values: flags.FlagValues) -> None:
  del flag_values  # the common flags only


def run(args, apply_fn=None, data=None, variables=None) -> dict:
  if variables is None:
    variables = iss_jax.training.load_variables(args.workdir)[1]
  path, kernel = iss_jax.robustness.first_conv_kernel(variables)
  tv = iss_jax.robustness.kernel_tv(kernel)
  scale = np.abs(kernel).sum(axis=(0, 1, 2))
  res = {"kernel": path, "shape": list(kernel.shape), "tv": tv.tolist(),
         "tv_over_l1": (tv / np.maximum(scale, 1e-12)).tolist(),
         "mean_tv": float(tv.mean()), "median_tv": float(np.median(tv)),
         "mean_tv_over_l1": float(np.mean(tv / np.maximum(scale, 1e-12)))}
  md = [f"# First-layer kernel TV\n\n- checkpoint: `{args.workdir}`\n- kernel `{path}`, shape "
        f"{tuple(kernel.shape)}\n",
        "TV of output filter i: sum over input channels of the anisotropic ||D w||_1 (absolute "
        "differences of vertically and horizontally adjacent taps). TV / L1 removes the kernel scale.\n",
        iss_jax.robustness.markdown_table(["statistic", "TV", "TV / L1"],
                                          [["mean", f"{res['mean_tv']:.4f}", f"{res['mean_tv_over_l1']:.4f}"],
                                ["median", f"{res['median_tv']:.4f}",
                                 f"{np.median(res['tv_over_l1']):.4f}"]])]
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  axes[0].hist(tv, bins=30)
  axes[0].set_xlabel("total variation of a first-layer kernel")
  axes[1].hist(res["tv_over_l1"], bins=30, color="tab:orange")
  axes[1].set_xlabel("TV / L1 norm of a first-layer kernel")
  from matplotlib.ticker import MaxNLocator

  for ax in axes:
    ax.set_ylabel("number of filters")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
  fig.suptitle(f"Smoothness of the first-layer kernels of {args.workdir} ({len(tv)} filters)", fontsize=10)
  return _common.finish(args, NAME, md, res, fig)


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
