"""LRP relevance maps of original, Gaussian-blurred and ISS-smoothed images (later paper Fig. 3, App. L).

  python -m eval.lrp --workdir=workdirs/vanilla --lrp_indices=0,1,2,3 --smooth_sparsity=0.3

Rows: the originals, their Gaussian blur (``--blur_sigma``, ``iss_jax.baselines.gaussian_lowpass``) and
their ISS smoothing at each ``--smooth_sparsity`` (repeatable; default 0.6).

Rule: LRP-epsilon on every affine layer (convolution + BatchNorm folded, Dense; LayerNorm with its std held
constant), relevance passed through ReLU, pooling and residual sums, and for a ViT attention weights held
constant and GELU passing relevance unchanged (``iss_jax.analysis.lrp``, CP-LRP of Ali et al. 2022). The
explained class is the true label, so the rows explain the same logit; relevance is summed over colour
channels and shown signed.
"""

from __future__ import annotations

import numpy as np
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "lrp"


def define_flags(flag_values: flags.FlagValues) -> None:
  cli.define("int_list", "lrp_indices", "0,1,2,3", "test images to explain", flag_values)
  cli.define("number", "lrp_epsilon", 0.1,
             "epsilon of the LRP-epsilon rule (0: LRP-0); absolute, in pre-activation units", flag_values)
  cli.define("number", "blur_sigma", 1.5,
             "std (pixels) of the Gaussian blur row (iss_jax.baselines.gaussian_lowpass)", flag_values)
  cli.define("enum", "lrp_target", "label", "explain the true label's logit (default) or each row's "
             "predicted class", flag_values, enum_values=["label", "predicted"])


def check_args(args, n: int) -> list[int]:
  if args.lrp_epsilon < 0:
    raise ValueError(f"--lrp_epsilon must be >= 0; got {args.lrp_epsilon}.")
  if args.blur_sigma < 0:
    raise ValueError(f"--blur_sigma must be >= 0; got {args.blur_sigma}.")
  idx = [i for i in args.lrp_indices if 0 <= i < n]
  if not idx:
    raise ValueError(f"--lrp_indices must name test images in [0, {n}); got {args.lrp_indices}.")
  return idx


def run(args, data=None, model_and_variables=None) -> dict:
  x, y = data if data is not None else _common.load_data(args)
  idx = check_args(args, len(x))
  model, variables = model_and_variables or iss_jax.training.load_variables(args.workdir)[:2]
  imgs = np.asarray(x[idx], np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
  sparsities = list(args.smooth_sparsity) or [0.6]
  blurred = np.asarray(iss_jax.baselines.gaussian_lowpass(imgs, args.blur_sigma))
  rows = {"original": imgs, f"blur \u03c3={args.blur_sigma:g}": blurred}
  for s in sparsities:
    rows[f"ISS smooth@{s:g}"] = np.asarray(iss_jax.smooth(imgs, s, **_common.smooth_kwargs(args)))
  labels = np.asarray(y[idx], np.int32)
  k = len(idx)
  batch = np.concatenate(list(rows.values()))
  target = None if args.lrp_target == "predicted" else np.tile(labels, len(rows))
  res_all = iss_jax.analysis.lrp(model, variables, batch, target=target, epsilon=args.lrp_epsilon)
  logits = np.asarray(model.apply(variables, batch, train=False))
  maps = res_all.relevance.sum(-1)  # (rows * k, H, W)
  res = {"indices": idx, "labels": labels.tolist(), "epsilon": args.lrp_epsilon,
         "blur_sigma": args.blur_sigma, "sparsities": sparsities, "rows": {}}
  table = []
  for r, name in enumerate(rows):
    sl = slice(r * k, (r + 1) * k)
    pos_share = [float(np.clip(m, 0, None).sum() / max(np.abs(m).sum(), 1e-30)) for m in maps[sl]]
    res["rows"][name] = {
        "predicted": logits[sl].argmax(-1).tolist(), "target": res_all.target[sl].tolist(),
        "logit": res_all.logit[sl].tolist(), "relevance_sum": res_all.relevance[sl].sum((1, 2, 3)).tolist(),
        "absorbed": res_all.absorbed[sl].tolist(), "residual": res_all.residual[sl].tolist(),
        "positive_share": pos_share, "relevance": maps[sl].tolist()}
    for j, i in enumerate(idx):
      table.append([name, i, int(labels[j]), int(logits[sl][j].argmax()), f"{res_all.logit[sl][j]:.3f}",
                    f"{res_all.relevance[sl][j].sum():.3f}", f"{res_all.absorbed[sl][j]:.3f}",
                    f"{res_all.residual[sl][j]:.1e}"])
  worst = float(np.max(np.abs(res_all.residual) / np.maximum(np.abs(res_all.logit), 1e-6)))
  res["max_relative_residual"] = worst
  md = [_common.header(args, "LRP relevance maps", k),
        f"Rule: LRP-\u03b5 (\u03b5 = {args.lrp_epsilon:g}) on every affine layer (convolution and its "
        "BatchNorm folded into one layer, Dense; LayerNorm with its std held constant), relevance passed "
        "through ReLU, pooling and residual sums (a ViT: attention weights held constant, GELU passes "
        "relevance unchanged); "
        "input relevance at the normalised image (the input of the first convolution). Explained class: "
        f"{'the true label' if args.lrp_target == 'label' else 'the predicted class of each row'}. "
        "Conservation: relevance sum + absorbed (biases and \u03b5) = logit; residual = the gap "
        f"(max relative residual {worst:.1e}).\n",
        iss_jax.robustness.markdown_table(["row", "test index", "label", "predicted", "logit",
                                           "relevance sum", "absorbed", "residual"], table)]
  if worst > 1e-3:
    md.append("\nNot all relevance reaches the input or the layers' biases (residual beyond round-off): "
              "the model adds constants outside its layers (a ViT's position embeddings and class token "
              "keep the residual) or has nonlinearities the rules above do not cover.")
  fig = _plot(args, rows, maps, idx, labels, res)
  return _common.finish(args, NAME, md, res, fig)


def _plot(args, rows, maps, idx, labels, res):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = _common.class_names(args.dataset)
  k = len(idx)
  fig, axes = plt.subplots(len(rows), 2 * k, figsize=(1.9 * 2 * k + 0.8, 2.1 * len(rows) + 0.8),
                           squeeze=False)
  for r, (name, im) in enumerate(rows.items()):
    info = res["rows"][name]
    for j, i in enumerate(idx):
      m = maps[r * k + j]
      lim = max(float(np.percentile(np.abs(m), 99.5)), 1e-12)
      ax_im, ax_r = axes[r, 2 * j], axes[r, 2 * j + 1]
      ax_im.imshow(np.clip(im[j], 0, 1), interpolation="nearest")
      ok = info["predicted"][j] == int(labels[j])
      ax_im.set_title(f"#{i} {names(int(labels[j]))}\npred: {names(info['predicted'][j])}", fontsize=7,
                      color="black" if ok else "red")
      ax_r.imshow(m, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
      ax_r.set_title(f"relevance, sum {info['relevance_sum'][j]:.2f}\nlogit {info['logit'][j]:.2f}",
                     fontsize=7)
      for ax in (ax_im, ax_r):
        ax.set_xticks([])
        ax.set_yticks([])
    axes[r, 0].set_ylabel(name, fontsize=9)
  fig.suptitle(f"LRP-\u03b5 (\u03b5 = {args.lrp_epsilon:g}) relevance of the "
               f"{'true class' if args.lrp_target == 'label' else 'predicted class'}: red for, blue against "
               f"(each map scaled to its 99.5th |R| percentile); {args.dataset} {args.split}; red title: "
               "wrong prediction", fontsize=9)
  return fig


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
