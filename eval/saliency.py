"""Grad-CAM saliency maps for chosen test images (paper App. C, Figs. 1b and 9).

  python -m eval.saliency --workdir=workdirs/vanilla --saliency_indices=0,1,2,3,4,5,6,7
"""

from __future__ import annotations

import numpy as np
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "saliency"


def define_flags(flag_values: flags.FlagValues) -> None:
  cli.define("int_list", "saliency_indices", "0,1,2,3,4,5,6,7", "test images to explain", flag_values)
  cli.define("string", "saliency_layer", None,
             "module path ('a/b') of the Grad-CAM layer; default: the last 4-D activation", flag_values)


def run(args, apply_fn=None, data=None, model_and_variables=None) -> dict:
  x, y = data if data is not None else _common.load_data(args)
  model, variables = model_and_variables or iss_jax.training.load_variables(args.workdir)[:2]
  idx = [i for i in args.saliency_indices if i < len(x)]
  imgs = np.asarray(x[idx], np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
  cams, pred, layer = iss_jax.analysis.grad_cam(model, variables, imgs, layer=args.saliency_layer)
  rows = [[i, int(y[i]), int(p)] for i, p in zip(idx, pred, strict=True)]
  extra = {}
  for s in args.smooth_sparsity:
    sm = np.asarray(iss_jax.smooth(imgs, s, **_common.smooth_kwargs(args)))
    extra[f"{s:g}"] = (sm,) + iss_jax.analysis.grad_cam(model, variables, sm, layer=layer)[:2]
  res = {"indices": idx, "labels": [int(y[i]) for i in idx], "predicted": pred.tolist(), "layer": layer,
         "cams": cams.tolist(),
         "smoothed": {k: {"predicted": v[2].tolist(), "cams": v[1].tolist()} for k, v in extra.items()}}
  md = [_common.header(args, "Grad-CAM saliency", len(idx)),
        f"Layer: `{layer}`; maps for the predicted class, bilinearly resized, scaled to [0, 1].\n",
        iss_jax.robustness.markdown_table(["test index", "label", "predicted"], rows)]
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = _common.class_names(args.dataset)
  preds = {"original": pred, **{f"smooth@{k}": v[2] for k, v in extra.items()}}
  sets = [("original", imgs, cams)] + [(f"smooth@{k}", v[0], v[1]) for k, v in extra.items()]
  fig, axes = plt.subplots(2 * len(sets), len(idx), figsize=(1.7 * len(idx) + 0.6, 3.9 * len(sets)),
                           squeeze=False)
  for r, (name, im, cm) in enumerate(sets):
    for j, i in enumerate(idx):
      axes[2 * r, j].imshow(np.clip(im[j], 0, 1))
      axes[2 * r + 1, j].imshow(np.clip(im[j], 0, 1))
      axes[2 * r + 1, j].imshow(cm[j], cmap="jet", alpha=0.5, vmin=0, vmax=1)
      ok = int(preds[name][j]) == int(y[i])
      axes[2 * r, j].set_title(f"#{i} {names(int(y[i]))}\npred: {names(int(preds[name][j]))}", fontsize=7,
                               color="black" if ok else "red")
      for ax in axes[2 * r:2 * r + 2, j]:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[2 * r, 0].set_ylabel(f"{name}\nimage", fontsize=8)
    axes[2 * r + 1, 0].set_ylabel(f"{name}\nGrad-CAM", fontsize=8)
  fig.suptitle(f"Grad-CAM of the predicted class ({layer}); {args.dataset} {args.split}; red: wrong "
               "prediction", fontsize=10)
  return _common.finish(args, NAME, md, res, fig)


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
