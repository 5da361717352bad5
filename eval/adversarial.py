"""Adversarial robustness (paper Tables 2, 7): FGSM / PGD, bare and behind test-time defenses.

  python -m eval.adversarial --workdir=workdirs/vanilla --smooth_sparsity=0.6 \
      --eps=2/255,4/255,8/255,16/255,32/255 --num_examples=200
  python -m eval.adversarial --workdir=workdirs/vanilla --defense=smooth@0.6 --defense=tv@auto

Reports, side by side for every defense: the paper's protocol ("transfer": attack the bare model, then
defend), the adaptive attack through the defense (BPDA through the real ``iss_jax.smooth``, the exact
gradient for TV and low-pass, BPDA + EOT for SPLIC) and their per-example worst case; sanity checks are
written into the table and violations are flagged. The same library function gives ``eval.compare`` its
attack columns.
"""

from __future__ import annotations

import argparse
import sys

import iss_jax
from eval import _common

NAME = "adversarial"


def add_args(parser: argparse.ArgumentParser) -> None:
  g = parser.add_argument_group("adversarial")
  g.add_argument("--eps", type=_common.number_list, default="2/255,4/255,8/255,16/255,32/255",
                 help="L-inf radii in [0, 1] pixel space, comma-separated (fractions allowed)")
  g.add_argument("--attacks", type=_common.str_list, default="fgsm,pgd")
  g.add_argument("--pgd_steps", type=int, default=10)
  g.add_argument("--pgd_step_factor", type=float, default=2.5, help="step size = factor * eps / steps")
  g.add_argument("--pgd_restarts", type=int, default=1)
  g.add_argument("--no_random_start", action="store_true")
  g.add_argument("--protocols", type=_common.str_list, default="transfer,adaptive")
  g.add_argument("--eot_samples", type=int, default=4, help="EOT draws per step (random defenses)")


def _values(v, parse):
  return parse(v) if isinstance(v, str) else v


def run(args, apply_fn=None, data=None) -> dict:
  apply_fn = apply_fn or _common.load_model(args)[0]
  x, y = data if data is not None else _common.load_data(args)
  eps = _values(args.eps, _common.number_list)
  res = iss_jax.robustness.evaluate_adversarial(
      apply_fn, x, y, eps_grid=eps, attacks_=_values(args.attacks, _common.str_list),
      steps=args.pgd_steps, step_size_factor=args.pgd_step_factor, restarts=args.pgd_restarts,
      random_start=not args.no_random_start, defenses=_common.make_defenses(args),
      protocols=_values(args.protocols, _common.str_list), eot_samples=args.eot_samples,
      batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress)
  md = [_common.header(args, "Adversarial robustness (L-inf, [0, 1] pixel space)", len(x))]
  s = res["settings"]
  md.append(f"PGD: {s['pgd_steps']} steps, step {s['pgd_step_size']}, {s['restarts']} restart(s), "
            f"random start {s['random_start']}. BatchNorm in inference mode. EOT: {s['eot']}.\n")
  md.append("Protocols: `none` = bare model; `transfer` = attack the bare model, then defend "
            "(paper protocol); `adaptive` = attack through the defense with the gradient it gives; "
            "`worst` = per example the stronger of transfer and adaptive.\n")
  md.append("Adaptive gradients: " + "; ".join(f"`{d}`: {how}" for d, how in res["defenses"].items()
                                               if d != "none") + "\n")
  md.append("Clean accuracy (%): " + ", ".join(f"{d} {_common.pct(a)}" for d, a in res["clean"].items())
            + "\n")
  header = ["attack", "defense", "protocol"] + [f"eps={e * 255:.3g}/255" for e in eps]
  acc = {(r["attack"], r["eps"], r["defense"], r["protocol"]): r["accuracy"] for r in res["rows"]}
  keys = sorted({(a, d, p) for a, _, d, p in acc}, key=lambda k: (k[0], k[1] != "none", k[1],
                                                                   ["none", "transfer", "adaptive",
                                                                    "worst"].index(k[2])))
  rows = [[a, d, p] + [_common.pct(acc[(a, e, d, p)]) for e in eps] for a, d, p in keys]
  md.append("Accuracy (%):\n")
  md.append(iss_jax.robustness.markdown_table(header, rows))
  md.append("\n## Sanity checks\n")
  if res["violations"]:
    md.append(f"**WARNING: {res['violations']} sanity check(s) FAILED - do not trust the affected "
              "numbers.**\n")
  else:
    md.append("All sanity checks passed.\n")
  md.append(iss_jax.robustness.markdown_table(["check", "result", "detail"],
                                              [[c["check"], "ok" if c["ok"] else "**VIOLATION**", c["detail"]]
                                    for c in res["checks"]]))
  for c in res["checks"]:
    if not c["ok"]:
      print(f"SANITY VIOLATION: {c['check']}: {c['detail']}", file=sys.stderr)
  fig = _plot(res, eps, keys, acc)
  return _common.finish(args, NAME, md, res, fig)


def _plot(res, eps, keys, acc):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
  for ax, attack in zip(axes, ("fgsm", "pgd"), strict=True):
    for a, d, p in keys:
      if a != attack:
        continue
      ax.plot([e * 255 for e in eps], [100 * acc[(a, e, d, p)] for e in eps], marker="o",
              linestyle="-" if p in ("none", "transfer") else "--", label=f"{d} / {p}")
    ax.set_title(attack.upper())
    ax.set_xlabel("eps (x 1/255)")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("accuracy (%)")
  axes[1].legend(fontsize=7)
  return fig


def main(argv=None):
  _common.main(__doc__, add_args, run, argv)


if __name__ == "__main__":
  main()
