"""Low-resolution robustness (paper Sec. 4.4, Table 11): downsample, nearest-upsample back, classify.

  python -m eval.low_resolution --workdir=workdirs/vanilla --sizes=28,24,20,16,12,8
"""

from __future__ import annotations

from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "low_resolution"


def define_flags(flag_values: flags.FlagValues) -> None:
  cli.define("int_list", "sizes", "28,24,20,16,12,8", "intermediate sizes (pixels)", flag_values)
  cli.define("enum", "resize_method", "linear", "downsampling filter", flag_values,
             enum_values=["linear", "cubic", "lanczos3", "nearest"])
  cli.define("bool", "no_antialias", False, "downsample without antialiasing", flag_values)


def run(args, apply_fn=None, data=None) -> dict:
  apply_fn = apply_fn or _common.load_model(args)[0]
  x, y = data if data is not None else _common.load_data(args)
  res = iss_jax.robustness.evaluate_low_resolution(
      apply_fn, x, y, sizes=args.sizes, defenses=_common.defenses(args), method=args.resize_method,
      antialias=not args.no_antialias, batch_size=args.batch_size, seed=args.seed,
      progress=not args.no_progress)
  defenses = list(res["clean"])
  md = [_common.header(args, "Low-resolution images", len(x))]
  md.append(f"Downsampling filter: {res['filter']}.\n")
  header = ["test-time", f"original ({x.shape[1]})"] + [f"s={s}" for s in res["sizes"]]
  rows = [[d, _common.pct(res["clean"][d])] + [_common.pct(res["accuracy"][str(s)][d])
                                               for s in res["sizes"]] for d in defenses]
  md.append("Accuracy (%):\n")
  md.append(iss_jax.robustness.markdown_table(header, rows))
  ef = res["nonzero_edge_fraction"]
  md.append("\nShare of 4-neighbour edges with a non-zero difference (a smoothing sparsity above it "
            "cannot be reached: `smooth` then stops at maxiter and returns nearly the input):\n")
  md.append(iss_jax.robustness.markdown_table(["original"] + [f"s={s}" for s in res["sizes"]],
                                              [[f"{ef['original']:.3f}"] + [f"{ef[str(s)]:.3f}"
                                                                  for s in res["sizes"]]]))
  fig = _plot(res, x, defenses, f"{args.dataset} {args.split}, n = {len(x)}")
  return _common.finish(args, NAME, md, res, fig)


def _plot(res, x, defenses, data: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  full = int(x.shape[1])
  sizes = [full] + [s for s in res["sizes"] if s != full]  # high to low resolution, left to right
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
  for d in defenses:
    vals = [res["clean"][d] if s == full else res["accuracy"][str(s)][d] for s in sizes]
    axes[0].plot(sizes, [100 * v for v in vals], marker="o", label=d)
  axes[0].invert_xaxis()
  axes[0].set_xticks(sizes)
  axes[0].set_ylim(0, 100)
  axes[0].set_xlabel(f"intermediate size (pixels; {full} = original)")
  axes[0].set_ylabel("accuracy (%)")
  axes[0].set_title(f"Low resolution: {data}", fontsize=10)
  axes[0].grid(alpha=0.3)
  axes[0].legend(title="test-time defense", fontsize=8, title_fontsize=8)
  img = np.asarray(x[:1], np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
  strip = [img[0]] + [np.asarray(iss_jax.robustness.low_resolution(img, s))[0] for s in sizes[1:]]
  axes[1].imshow(np.clip(np.concatenate(strip, axis=1), 0, 1))
  axes[1].set_title("the first test image at " + ", ".join(f"{s} px" for s in sizes), fontsize=9)
  axes[1].axis("off")
  return fig


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
