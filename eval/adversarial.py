"""Adversarial robustness (paper Tables 2, 7): FGSM / PGD, bare and behind test-time defenses.

  python -m eval.adversarial --workdir=workdirs/vanilla --smooth_sparsity=0.6 \
      --eps=2/255,4/255,8/255,16/255,32/255 --num_examples=200
  python -m eval.adversarial --workdir=workdirs/vanilla --defense=smooth@0.6 --defense=tv@auto

Reports, side by side for every defense: the paper's protocol ("gray-box": attack the bare model, then
defend), the adaptive attack through the defense (BPDA through the real ``iss_jax.smooth``, the exact
gradient for TV and low-pass, BPDA + EOT for SPLIC) and their per-example worst case; sanity checks are
written into the table and violations are flagged. The same library function gives ``eval.compare`` its
attack columns.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "adversarial"


def define_flags(flag_values: flags.FlagValues) -> None:
  _common.define_flags(flag_values, ("attacks", "pgd_steps", "square_queries", "substitute", "eot_samples",
                                     "accept_violations"))
  define = functools.partial(cli.define, flag_values=flag_values)
  define("number_list", "eps", "2/255,4/255,8/255,16/255,32/255",
         "L-inf radii in --eps_space, comma-separated (fractions allowed)")
  define("enum", "eps_space", "pixel", "pixel: eps in [0, 1] pixels (the field's convention); normalized: "
         "eps on normalised inputs (the main paper's Sec. 4.2), i.e. the per-channel pixel radius "
         "eps * std_c with CIFAR-10's std", enum_values=list(iss_jax.robustness.EPS_SPACES))
  define("number", "pgd_step_factor", 2.5, "step size = factor * eps / steps")
  define("integer", "pgd_restarts", 1, "random restarts of PGD")
  define("bool", "no_random_start", False, "start PGD at the image rather than a random point of the ball")
  define("str_list", "protocols", "gray-box,adaptive",
         "gray-box (attack the bare model, then defend: the paper's protocol), adaptive (attack through the "
         "defense)")


def run(args, apply_fn=None, data=None) -> dict:
  apply_fn = apply_fn or _common.load_model(args)[0]
  substitute = args.substitute
  if substitute:
    _common.workdir_config(substitute, "--substitute")
  x, y = data if data is not None else _common.load_data(args)
  eps = args.eps
  res = iss_jax.robustness.evaluate_adversarial(
      apply_fn, x, y, eps_grid=eps, attacks_=args.attacks, steps=args.pgd_steps,
      step_size_factor=args.pgd_step_factor, restarts=args.pgd_restarts,
      random_start=not args.no_random_start, defenses=_common.defenses(args), protocols=args.protocols,
      eot_samples=args.eot_samples, batch_size=args.batch_size, seed=args.seed,
      progress=not args.no_progress, square_queries=args.square_queries, eps_space=args.eps_space,
      substitute_fn=iss_jax.training.load_classifier(substitute)[0] if substitute else None)
  s = res["settings"]
  md = [_common.header(args, f"Adversarial robustness ({s['norm']})", len(x))]
  md.append(f"PGD: {s['pgd_steps']} steps, step {s['pgd_step_size']}, {s['restarts']} restart(s), "
            f"random start {s['random_start']}. BatchNorm in inference mode. EOT: {s['eot']}.\n")
  md.append("Protocols: `none` = bare model; `gray-box` = attack the bare model, then defend "
            "(paper protocol); `adaptive` = attack through the defense with the gradient it gives; "
            "`worst` = per example the stronger of gray-box and adaptive; `black-box` = attack "
            "`transfer`: PGD examples of an independently trained substitute model.\n")
  md.append("Adaptive gradients: " + "; ".join(f"`{d}`: {how}" for d, how in res["defenses"].items()
                                               if d != "none") + "\n")
  n = res["num_examples"]
  md.append("Clean accuracy (%): " + ", ".join(f"{d} {_common.pct_ci(a, n)}" for d, a in res["clean"].items())
            + "\n")
  for a in res["settings"]["attacks"]:
    if iss_jax.robustness.ATTACKS[a].minimal_norms is None:
      continue
    fmt = lambda v, scale: "failed" if v is None else f"{v * scale:.3g}"
    md.append(f"{iss_jax.robustness.ATTACKS[a].label} perturbation, median over correctly classified "
              "images (a failure counts as infinite): " + "; ".join(
                  f"`{d}` L-inf {fmt(v['median_linf'], 255)}/255, L2 {fmt(v['median_l2'], 1)} "
                  f"(n = {v['num_images']}, success {fmt(v['success_rate'], 100)}%)"
                  for d, v in res[a].items()) + "\n")
  header = ["attack", "defense", "protocol"] + [f"eps={e * 255:.3g}/255" for e in eps]
  acc = {(r["attack"], r["eps"], r["defense"], r["protocol"]): r["accuracy"] for r in res["rows"]}
  keys = sorted({(a, d, p) for a, _, d, p in acc}, key=lambda k: (k[0], k[1] != "none", k[1],
                                                                   ["none", "gray-box", "adaptive",
                                                                    "worst", "black-box"].index(k[2])))
  rows = [[a, d, p] + [_common.pct_ci(acc[(a, e, d, p)], n) for e in eps] for a, d, p in keys]
  md.append(f"Accuracy (%) on n = {n} images, \u00b1 half the 95% Wilson interval (a sanity check fails only "
            "where two intervals do not overlap):\n")
  md.append(iss_jax.robustness.markdown_table(header, rows))
  md.append("\n## Sanity checks\n")
  if res["violations"]:
    md.append(f"**WARNING: {res['violations']} sanity check(s) FAILED - do not trust the affected "
              "numbers.**\n")
  else:
    md.append("All sanity checks passed.\n")
  md.append(iss_jax.robustness.markdown_table(["check", "result", "detail"],
                                              [[c["check"], "ok" if c["ok"] else "**VIOLATION**",
                                                c["detail"]] for c in res["checks"]]))
  for c in res["checks"]:
    if not c["ok"]:
      print(f"SANITY VIOLATION: {c['check']}: {c['detail']}", file=sys.stderr)
  fig = _plot(res, eps, keys, acc, f"{args.dataset} {args.split}, n = {n}")
  return _common.finish(args, NAME, md, res, fig)


LINESTYLES = {"none": "-", "gray-box": "-", "adaptive": "--", "worst": ":", "black-box": "-."}
PROTOCOL_NAMES = {"none": "bare model (no defense)", "gray-box": "gray-box (attack bare, then defend)",
                  "adaptive": "adaptive (attack through the defense)", "worst": "worst case of the two",
                  "black-box": "black-box (PGD on a substitute model)"}


def _plot(res, eps, keys, acc, data: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  attacks = sorted({a for a, _, _ in keys})
  ncols = min(len(attacks), 4)  # many attacks (apgd-ce, square, ...): wrap into rows of four panels
  nrows = -(-len(attacks) // ncols)
  fig, grid = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), sharey=True, squeeze=False)
  axes = grid.reshape(1, -1)
  for ax in axes[0, len(attacks):]:
    ax.set_visible(False)
  colours = {d: f"C{i}" for i, d in enumerate(dict.fromkeys(d for _, d, _ in keys))}
  failed = {tuple(r) for c in res["checks"] if not c["ok"] for r in c["rows"]}
  n = res["num_examples"]
  for ax, attack in zip(axes[0, :len(attacks)], attacks, strict=True):
    for a, d, p in keys:
      if a != attack:
        continue
      vals = [acc[(a, e, d, p)] for e in eps]
      ci = np.array([iss_jax.robustness.wilson_interval(v, n) for v in vals])
      xs = [e * 255 for e in eps]
      ax.plot(xs, [100 * v for v in vals], marker="o", color=colours[d], linestyle=LINESTYLES[p],
              label=f"{d}: {PROTOCOL_NAMES[p]}" if d != "none" else PROTOCOL_NAMES[p])
      ax.fill_between(xs, 100 * ci[:, 0], 100 * ci[:, 1], color=colours[d], alpha=0.08)
      bad = [e for e in eps if (a, e, d, p) in failed]
      ax.plot([e * 255 for e in bad], [100 * acc[(a, e, d, p)] for e in bad], "x", color="red",
              markersize=11, mew=2)
    ax.set_title(f"{attack.upper()} ({data})", fontsize=10)
    ax.set_xlabel(f"eps (x 1/255, L-inf, {res['settings']['eps_space']} space)")
    ax.set_xticks([e * 255 for e in eps])
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
  for ax in grid[:, 0]:
    ax.set_ylabel("accuracy (%), shaded: 95% Wilson interval")
  title = "defense: protocol" + ("; red x: sanity violation" if failed else "")
  axes[0, len(attacks) - 1].legend(fontsize=7, title=title, title_fontsize=7)
  return fig


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
