r"""One table of defenses x evaluations (clean, corruptions, low resolution, FGSM/PGD non-adaptive
and adaptive), Markdown + JSON + PNG.

  python -m eval.compare --dataset=cifar10_exact --num_examples=500 \
      --defense=vanilla=workdirs/vanilla \
      --defense=iss_fixed=workdirs/fixed_s0.6_cpu:smooth@0.6 \
      --defense=pgd_at=workdirs/pgd_at_cpu \
      --defense=vanilla+tv=workdirs/vanilla:tv@auto \
      --out=results/compare

Each ``--defense`` is ``LABEL=WORKDIR[:TRANSFORM]`` with TRANSFORM one of ``none``, ``smooth@S``
(ISS smoothing at sparsity S), ``tv@W`` or ``tv@auto`` (Chambolle TV; ``auto`` picks the weight with
the best PSNR on held-out noisy training images), ``lowpass@SIGMA``, ``splic@R``. Non-adaptive
attacks hit the bare classifier and are then transformed; adaptive ones go through the transform
(exact gradient for TV and low-pass, BPDA for ISS smoothing, BPDA + EOT for SPLIC, which is random).
Every row runs ``iss_jax.robustness.evaluate_defense``, whose attack columns are
``iss_jax.robustness.evaluate_adversarial`` (``python -m eval.adversarial``) at one eps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import iss_jax
from eval import _common

NAME = "compare"
TITLES = {"clean": "clean", "corruptions": "corrupt.", "fgsm": "FGSM",
          "fgsm_adaptive": "FGSM adapt.", "pgd": "PGD", "pgd_adaptive": "PGD adapt."}


def title(column: str) -> str:
  return TITLES.get(column, column.replace("lowres", "low-res "))


def parse_defense(text: str) -> tuple[str, str, str]:
  """``LABEL=WORKDIR[:TRANSFORM]`` -> ``(label, workdir, transform)``."""
  label, sep, rest = text.partition("=")
  if not sep or not label or not rest:
    raise argparse.ArgumentTypeError(f"--defense must be LABEL=WORKDIR[:TRANSFORM]; got {text!r}.")
  workdir, _, transform = rest.partition(":")
  return label, workdir, transform or "none"


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m eval.compare", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--defense", type=parse_defense, action="append", required=True,
                 help="LABEL=WORKDIR[:TRANSFORM]; repeat for each row")
  p.add_argument("--dataset", default="cifar10_sample")
  p.add_argument("--data_dir", default=None)
  p.add_argument("--num_examples", type=int, default=None, help="first N test images")
  p.add_argument("--eps", type=_common.number, default=8 / 255)
  p.add_argument("--pgd_steps", type=int, default=10)
  p.add_argument("--eot_samples", type=int, default=4, help="EOT draws per step (random defenses)")
  p.add_argument("--corruptions", type=_common.str_list,
                 default=",".join(iss_jax.robustness.PAPER_CORRUPTIONS), help="comma-separated ('' = skip)")
  p.add_argument("--severities", type=_common.int_list, default="3")
  p.add_argument("--low_res", type=_common.int_list, default="16,8")
  p.add_argument("--tv_weights", type=_common.number_list, default=_common.TV_WEIGHTS,
                 help="candidates of tv@auto")
  p.add_argument("--tv_noise_std", type=_common.number, default=8 / 255,
                 help="Gaussian noise std of the held-out PSNR selection of tv@auto")
  p.add_argument("--tv_select_images", type=int, default=256,
                 help="held-out images for tv@auto: the first N of the TRAIN split")
  p.add_argument("--tv_iters", type=int, default=50)
  p.add_argument("--smooth_maxiter", type=int, default=None)
  p.add_argument("--batch_size", type=int, default=100)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="results/compare")
  p.add_argument("--no_progress", action="store_true")
  p.add_argument("--accept_violations", action="store_true",
                 help="exit 0 even when a sanity check of the attacks fails beyond sampling noise")
  p.add_argument("--recompute", action="store_true",
                 help="ignore the per-row cache in <out>/rows/ (a row is reused when its settings "
                      "match: an interrupted run resumes, rows can be added later)")
  return p


def _figure(rows, columns, subtitle: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 2, 4.3))
  width = 0.8 / max(len(rows), 1)
  for i, r in enumerate(rows):
    vals = np.array([r["accuracy"].get(c, np.nan) for c in columns])
    ci = np.array([iss_jax.robustness.wilson_interval(v, r["num_examples"]) for v in vals])
    err = 100 * np.abs(ci - vals[:, None]).T
    ax.bar(np.arange(len(columns)) + i * width, 100 * vals, width, yerr=err, capsize=2,
           error_kw={"elinewidth": 0.8}, label=f"{r['label']} ({r['defense']})")
  ax.set_xticks(np.arange(len(columns)) + width * (len(rows) - 1) / 2)
  ax.set_xticklabels([title(c) for c in columns], rotation=20)
  ax.set_ylabel("accuracy (%), 95% Wilson interval")
  ax.set_ylim(0, 100)
  ax.set_title(f"Defenses x evaluations: {subtitle}", fontsize=10)
  ax.legend(fontsize=8, title="defense (checkpoint + test-time transform)", title_fontsize=8)
  ax.grid(axis="y", alpha=0.3)
  return fig


def _cached_row(path: str, key: dict):
  if os.path.exists(path):
    with open(path) as f:
      row = json.load(f)
    if row.get("cache_key") == key:
      return row
  return None


def _save_row(path: str, row: dict) -> None:
  iss_jax.atomic_write(path, json.dumps(row, indent=1))


def main(argv=None) -> dict:
  args = build_parser().parse_args(argv)
  with _common.user_errors():
    data = _compare(args)
  _common.exit_on_violations(args, data["rows"])
  return data


def _compare(args) -> dict:
  labels = [label for label, _, _ in args.defense]
  if len(set(labels)) != len(labels):
    raise ValueError(f"--defense labels must be unique; got {labels}.")
  if args.num_examples is not None and args.num_examples < 1:
    raise ValueError(f"--num_examples must be >= 1; got {args.num_examples}.")
  for _, workdir, _ in args.defense:  # every row is checked before anything loads
    _common.check_workdir(workdir)
  for _, _, transform in args.defense:
    if transform != "tv@auto":
      _common.make_defenses(args, [transform])
  x, y = iss_jax.training.load_dataset(args.dataset, "test", args.data_dir)
  if args.num_examples:
    x, y = x[: args.num_examples], y[: args.num_examples]
  rows, selections = [], {}
  for label, workdir, transform in args.defense:
    defense = _common.make_defenses(args, [transform], selections)[0]
    transform = defense.name
    key = {"workdir": os.path.abspath(workdir), "transform": transform,
           "checkpoint_mtime": os.path.getmtime(os.path.join(workdir, "config.json")),
           **{k: v for k, v in vars(args).items()
              if k not in ("defense", "out", "no_progress", "recompute", "batch_size")}}
    row_path = os.path.join(args.out, "rows", f"{label}.json")
    row = None if args.recompute else _cached_row(row_path, key)
    if row is not None:
      print(f"[compare] {label}: reusing {row_path}", file=sys.stderr)
      rows.append(row)
      continue
    apply_fn, _ = iss_jax.training.load_classifier(workdir)
    print(f"[compare] {label}: {workdir} + {defense.name}", file=sys.stderr)
    res = iss_jax.robustness.evaluate_defense(
        apply_fn, x, y, defense, eps=args.eps, pgd_steps=args.pgd_steps,
        eot_samples=args.eot_samples, corruptions=args.corruptions, severities=args.severities,
        low_res_sizes=args.low_res, batch_size=args.batch_size, seed=args.seed,
        progress=not args.no_progress)
    rows.append({"label": label, "workdir": workdir, **res, "cache_key": key})
    _save_row(row_path, rows[-1])
  columns = [c for c in ("clean", "corruptions", *[f"lowres{s}" for s in args.low_res], "fgsm",
                         "fgsm_adaptive", "pgd", "pgd_adaptive") if c in rows[0]["accuracy"]]
  md = [f"# Defenses x evaluations ({args.dataset} test, first {len(x)} images)", "",
        f"Accuracy (%) on n = {len(x)} images, \u00b1 half the 95% Wilson interval. "
        "Non-adaptive attacks hit the bare classifier, then the test-time transform "
        "is applied; adaptive attacks go through the transform. BatchNorm in inference mode. "
        f"L-inf eps = {args.eps * 255:.3g}/255 in [0, 1] pixel space.", ""]
  header = ["defense", "checkpoint", "transform"] + [title(c) for c in columns]
  table = [[r["label"], r["workdir"], r["defense"]]
           + [_common.pct_ci(r["accuracy"][c], len(x)) for c in columns] for r in rows]
  md.append(iss_jax.robustness.markdown_table(header, table))
  md += ["", "## Attack and evaluation used for each number", ""]
  for r in rows:
    md.append(f"**{r['label']}** (`{r['defense']}`):")
    md += [f"- {title(c)}: {r['attacks'][c]}" for c in columns]
    md.append("")
  if selections:
    s = selections["tv"]
    scores = zip(s["weights"], s["psnr"], strict=True)
    md.append(f"tv@auto: weight {s['weight']:g} chosen on the first {args.tv_select_images} "
              f"training images with Gaussian noise std {args.tv_noise_std * 255:.3g}/255 by mean "
              "PSNR: " + ", ".join(f"{w:g}: {p:.2f} dB" for w, p in scores)
              + f" (noisy input {s['psnr_noisy']:.2f} dB).")
  data = {"rows": rows, "columns": columns, "tv_selection": selections.get("tv"),
          "settings": {k: v for k, v in vars(args).items() if k != "defense"},
          "defenses": [list(d) for d in args.defense]}
  violations = [(r["label"], c) for r in rows for c in r.get("checks", []) if not c["ok"]]
  if violations:
    md += ["", "## Sanity check violations", ""] + [f"- **{label}**: {c['check']}: {c['detail']}"
                                                     for label, c in violations]
  fig = _figure(rows, columns, f"{args.dataset} test, n = {len(x)}, eps = {args.eps * 255:.3g}/255, "
                f"PGD-{args.pgd_steps}")
  paths = iss_jax.robustness.write_report(args.out, NAME, "\n".join(md), data, fig)
  print("\n".join(md))
  print(f"[compare] wrote {paths}", file=sys.stderr)
  return data


if __name__ == "__main__":
  main()
