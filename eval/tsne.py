"""t-SNE of penultimate features, clean vs PGD-attacked, with silhouette scores (SPLIC Fig. 10).

  python -m eval.tsne --workdir=workdirs/vanilla --tsne_examples=500

Features are the input of the classifier head (``--tsne_layer``): the globally pooled features of a
ResNet, the final class token of a ViT. Each set (clean, attacked) gets its own exact t-SNE
(``iss_jax.analysis.tsne``); the silhouette score by true label is computed on the features themselves
(Euclidean) and on the 2-D embedding.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "tsne"


def define_flags(flag_values: flags.FlagValues) -> None:
  define = functools.partial(cli.define, flag_values=flag_values)
  define("string", "tsne_layer", "head", "module whose INPUT is the feature vector")
  define("number", "attack_eps", 8 / 255, "PGD L-inf radius")
  define("integer", "attack_steps", 10, "PGD steps")
  define("number", "perplexity", 30.0, "t-SNE perplexity")
  define("integer", "tsne_iterations", 1000, "t-SNE iterations")
  define("integer", "tsne_examples", 1000,
         "embed at most the first N images (exact t-SNE is O(N^2) in time and memory)")


def check_args(args, n: int) -> None:
  if args.tsne_examples < 2:
    raise ValueError(f"--tsne_examples must be >= 2; got {args.tsne_examples}.")
  if not 0 <= args.attack_eps <= 1:
    raise ValueError(f"--attack_eps must be in [0, 1]; got {args.attack_eps}.")
  if args.attack_steps < 1:
    raise ValueError(f"--attack_steps must be >= 1; got {args.attack_steps}.")
  if args.tsne_iterations < 1:
    raise ValueError(f"--tsne_iterations must be >= 1; got {args.tsne_iterations}.")
  if not 1 <= args.perplexity < n:
    raise ValueError(f"--perplexity must be in [1, number of images = {n}); got {args.perplexity:g} "
                     "(lower it or embed more images with --tsne_examples).")


def features(model, variables, x, layer: str, runner) -> np.ndarray:
  """``(N, D)`` inputs of module ``layer`` (flattened per image) for float images ``x``."""
  fn = jax.jit(lambda xb, k: iss_jax.analysis.module_activation(model, variables, xb, layer,
                                                                  which="input").reshape(xb.shape[0], -1))
  return runner.map(fn, x)


def run(args, data=None, model_and_variables=None) -> dict:
  x, y = data if data is not None else _common.load_data(args)
  x, y = x[: args.tsne_examples], y[: args.tsne_examples]
  check_args(args, min(len(x), args.tsne_examples))
  model, variables = model_and_variables or iss_jax.training.load_variables(args.workdir)[:2]
  apply_fn = lambda z: model.apply(variables, z, train=False)  # noqa: E731
  runner = iss_jax.robustness.Runner(apply_fn, batch_size=args.batch_size, seed=args.seed,
                                     progress=not args.no_progress)
  xf = np.asarray(x, np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
  y = np.asarray(y, np.int32)
  step = 2.5 * args.attack_eps / args.attack_steps
  attack = jax.jit(lambda xb, yb, k: iss_jax.robustness.pgd(apply_fn, xb, yb, eps=args.attack_eps,
                                                            step_size=step, steps=args.attack_steps, key=k))
  sets = {"clean": xf, f"PGD-{args.attack_steps} \u03b5={args.attack_eps * 255:.3g}/255":
          runner.map(attack, xf, y, desc="PGD")}
  res = {"layer": args.tsne_layer, "attack_eps": args.attack_eps, "attack_steps": args.attack_steps,
         "perplexity": args.perplexity, "iterations": args.tsne_iterations, "labels": y.tolist(), "sets": {}}
  rows, panels = [], []
  for name, images in sets.items():
    feats = features(model, variables, images, args.tsne_layer, runner)
    acc = float(np.mean(runner.predict(images) == y))
    emb = iss_jax.analysis.tsne(feats, perplexity=args.perplexity, iterations=args.tsne_iterations,
                                  seed=args.seed)
    s_feat = iss_jax.analysis.silhouette_score(feats, y)
    s_emb = iss_jax.analysis.silhouette_score(emb.embedding, y)
    res["sets"][name] = {"accuracy": acc, "silhouette_features": s_feat, "silhouette_embedding": s_emb,
                         "kl": float(emb.kl[-1]), "embedding": emb.embedding.tolist(),
                         "feature_dim": int(feats.shape[1])}
    rows.append([name, _common.pct_ci(acc, len(y)), f"{s_feat:.3f}", f"{s_emb:.3f}", f"{emb.kl[-1]:.3f}"])
    panels.append((name, emb.embedding, s_feat, s_emb, acc))
  md = [_common.header(args, "t-SNE of penultimate features", len(x)),
        f"Features: input of `{args.tsne_layer}` ({res['sets']['clean']['feature_dim']}-D). Exact t-SNE, "
        f"perplexity {args.perplexity:g}, {args.tsne_iterations} iterations, each set embedded separately. "
        "Silhouette by true label (Euclidean; 1 = compact separated classes, 0 = overlapping).\n",
        iss_jax.robustness.markdown_table(["images", "accuracy (%)", "silhouette (features)",
                                           "silhouette (t-SNE)", "final KL"], rows)]
  fig = _plot(args, panels, y)
  return _common.finish(args, NAME, md, res, fig)


def _plot(args, panels, y):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = _common.class_names(args.dataset)
  classes = np.unique(y)
  cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
  fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 1.6, 5.2), squeeze=False)
  for ax, (name, emb, s_feat, s_emb, acc) in zip(axes[0], panels, strict=True):
    for c in classes:
      sel = y == c
      ax.scatter(emb[sel, 0], emb[sel, 1], s=7, color=cmap(int(c) % cmap.N), label=names(int(c)))
    ax.set_title(f"{name}: accuracy {100 * acc:.1f}%\nsilhouette: features {s_feat:.3f}, t-SNE {s_emb:.3f}",
                 fontsize=9)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
  axes[0, -1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5),
                     title="true class", title_fontsize=8)
  fig.suptitle(f"t-SNE of the input of `{args.tsne_layer}` (perplexity {args.perplexity:g}); "
               f"{args.dataset} {args.split}, {len(y)} images", fontsize=10)
  return fig


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
