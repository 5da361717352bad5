r"""One table of defenses x evaluations: clean, corruptions, low resolution, gray-box and adaptive PGD,
APGD-CE, APGD-DLR, Square, a black-box transfer attack and the per-example worst case; Markdown + JSON + PNG.

  python -m eval.compare --dataset=cifar10_exact --num_examples=500 \
      --row=vanilla=workdirs/vanilla \
      --row=iss_fixed=workdirs/fixed_s0.6_cpu:smooth@0.6 \
      --row=pgd_at=workdirs/pgd_at_cpu \
      --row=vanilla+tv=workdirs/vanilla:tv@auto \
      --row=tvlayer=workdirs/tvlayer_smooth_cpu --row=pni=workdirs/pni_layerwise_cpu \
      --row=menet=workdirs/menet_0.5_cpu --substitute=workdirs/vanilla_seed1 \
      --out=results/compare

Each ``--row`` is ``LABEL=WORKDIR[:TRANSFORM]``: a model trained by ``train/`` (vanilla, ISS
fixed / iterative / finetune, PGD-AT, TRADES, smooth kernels, ``tvlayer``, ``pni``, ``menet``, ``splic``)
and a test-time TRANSFORM: ``none``, ``smooth@S`` (ISS smoothing at sparsity S), ``tv@W`` or ``tv@auto``
(Chambolle TV; ``auto`` picks the weight with the best PSNR on held-out noisy training images),
``lowpass@SIGMA``, ``splic@R``, ``menet@P``. Without ``:TRANSFORM`` a model trained on preprocessed
images (``train.menet``, ``train.splic``) keeps its preprocessing at test time; others run bare.
Gray-box attacks (``pgd``) hit the bare classifier and are then transformed (the main paper's protocol);
adaptive ones go through the transform (exact gradient for TV and low-pass, BPDA for ISS smoothing, BPDA +
EOT for SPLIC and ME-Net, EOT over PNI's weight noise); ``transfer`` (with ``--substitute``) is black-box:
PGD on an independently trained model. Every row runs ``iss_jax.robustness.evaluate_defense``, whose attack
columns are ``iss_jax.robustness.evaluate_adversarial`` (``python -m eval.adversarial``) at one eps, and whose
checks are the gradient-masking flags of ``iss_jax.robustness.evaluate`` (printed per row, bold when raised).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "compare"
DEFAULT_ATTACKS = "pgd,apgd-ce,apgd-dlr,square"


def title(column: str) -> str:
  return _common.TITLES.get(column, column.replace("lowres", "low-res "))


def parse_row(text: str) -> tuple[str, str, str]:
  """``LABEL=WORKDIR[:TRANSFORM]`` -> ``(label, workdir, transform)``; transform ``""``: the workdir's own."""
  label, sep, rest = text.partition("=")
  if not sep or not label or not rest:
    raise ValueError(f"--row must be LABEL=WORKDIR[:TRANSFORM]; got {text!r}.")
  workdir, _, transform = rest.partition(":")
  return label, workdir, transform


def own_transform(workdir: str) -> str:
  """The test-time transform of a model trained on preprocessed images (its ``preprocess``), else none."""
  return _common.workdir_config(workdir, "--row").get("preprocess", "none")


def define_flags(flag_values: flags.FlagValues) -> None:
  cli.define("multi_string", "row", None, "LABEL=WORKDIR[:TRANSFORM], one table row: a model trained by "
             "train/ and a test-time transform (default: the workdir's own preprocessing, else none); "
             "repeat for each row (required)", flag_values)
  attacks_help = (_common.SHARED_FLAGS["attacks"][2] + "; fgsm and pgd give a gray-box and an adaptive "
                  "column, the others attack through the defense; the worst case over all of them (and "
                  "transfer) is a column of its own")
  _common.define_flags(flag_values, (
      "dataset", "data_dir", "num_examples", "smooth_maxiter", "tv_weights", "tv_noise_std",
      "tv_select_images", "tv_iters", "batch_size", "seed", "out", "no_progress", "attacks", "pgd_steps",
      "square_queries", "substitute", "eot_samples", "accept_violations", "corruptions", "severities"),
      num_examples={"help": "first N test images"},
      out={"default": "results/compare", "help": "output folder"},
      attacks={"default": DEFAULT_ATTACKS, "help": attacks_help},
      substitute={"help": "an independently trained model (e.g. python -m train.vanilla --seed=1): the "
                  "black-box 'transfer' column feeds its PGD examples to every row"},
      corruptions={"help": "comma-separated CIFAR-10-C names ('' = skip)"}, severities={"default": "3"})
  cli.define("number", "eps", 8 / 255, "L-inf radius of the attack columns in [0, 1] pixel space",
             flag_values)
  cli.define("int_list", "low_res", "16,8", "sizes of the low-resolution columns", flag_values)
  cli.define("bool", "recompute", False, "ignore the per-row cache in <out>/rows/ (a row is reused when its "
             "settings match: an interrupted run resumes, rows can be added later)", flag_values)


def _figure(rows, columns, subtitle: str):
  """A heat map: one row per defense, one column per evaluation, each cell its accuracy +- half its 95%
  Wilson interval (reads at a glance with a dozen rows, where grouped bars do not)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  vals = np.array([[r["accuracy"].get(c, np.nan) for c in columns] for r in rows]) * 100
  fig, ax = plt.subplots(figsize=(1.05 * len(columns) + 3.5, 0.5 * len(rows) + 2.2))
  im = ax.imshow(vals, cmap="viridis", vmin=0, vmax=100, aspect="auto")
  for i, r in enumerate(rows):
    for j, c in enumerate(columns):
      v = r["accuracy"].get(c)
      if v is None:
        continue
      lo, hi = iss_jax.robustness.wilson_interval(v, r["num_examples"])
      ax.text(j, i, f"{100 * v:.1f}\n\u00b1{50 * (hi - lo):.1f}", ha="center", va="center", fontsize=7,
              color="white" if 100 * v < 55 else "black")
  ax.set_xticks(np.arange(len(columns)))
  ax.set_xticklabels([title(c) for c in columns], rotation=30, ha="right", fontsize=8)
  ax.set_yticks(np.arange(len(rows)))
  ax.set_yticklabels([f"{r['label']} ({r['defense']})" for r in rows], fontsize=8)
  ax.set_xlabel("evaluation")
  ax.set_ylabel("defense (checkpoint + test-time transform)")
  ax.set_title(f"Accuracy (%) \u00b1 half the 95% Wilson interval: {subtitle}", fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="accuracy (%)")
  fig.tight_layout()
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


def _claim(row: dict, args, n: int) -> dict:
  """The claim record of one row: robust accuracy is its per-example worst case over every attack column."""
  acc = row["accuracy"]
  attack_columns = [c for c in acc if c in row["attacks"] and c not in ("clean", "corruptions", "worst")
                    and not c.startswith("lowres")]
  return iss_jax.robustness.claim_record(
      model=row["workdir"], defense=row["defense"], dataset=f"{args.dataset} test, first {n}", n=n,
      eps=args.eps, clean_accuracy=acc["clean"], robust_accuracy=acc.get("worst", acc["clean"]),
      attacks=[{"name": c, "budget": row["attacks"][c], "accuracy": acc[c]} for c in attack_columns],
      forward_passes=row.get("forward_passes"), backward_passes=row.get("backward_passes"),
      passes_counted="every evaluation of the row (clean, corruptions, low resolution, attacks), counted "
      "per execution by iss_jax.robustness.PassCounter", version="eval.compare",
      random=row.get("random", False),
      flags=[c["check"] for c in row.get("checks", []) if not c["ok"]], extra={"label": row["label"]})


def main(argv=None) -> dict:
  argv = sys.argv[1:] if argv is None else list(argv)
  old = [a for a in argv if a.split("=")[0] == "--defense"]
  if old:
    cli.fail(f"eval.compare takes each row as --row=LABEL=WORKDIR[:TRANSFORM] (got {old[0]}); --defense "
             "names a test-time defense in the other evaluations, so pass --row instead.")
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  args = cli.parse(flag_values, argv, __doc__)
  with cli.user_errors():
    data = _compare(args)
  _common.exit_on_violations(args, data["rows"])
  return data


def _compare(args) -> dict:
  if not args.row:
    raise ValueError("--row is required: one LABEL=WORKDIR[:TRANSFORM] per table row, e.g. "
                     "--row=vanilla=workdirs/vanilla.")
  args.row = [parse_row(r) for r in args.row]
  labels = [label for label, _, _ in args.row]
  if len(set(labels)) != len(labels):
    raise ValueError(f"--row labels must be unique; got {labels}.")
  if args.num_examples is not None and args.num_examples < 1:
    raise ValueError(f"--num_examples must be >= 1; got {args.num_examples}.")
  unknown = [a for a in args.attacks if a not in iss_jax.robustness.ATTACKS]
  if unknown:
    hint = (" (the black-box transfer attack runs when --substitute=WORKDIR is given)"
            if "transfer" in unknown else "")
    raise ValueError(f"--attacks must be among {', '.join(iss_jax.robustness.ATTACKS)}; got {unknown}{hint}.")
  for _, workdir, _ in args.row:  # every row is checked before anything loads
    _common.workdir_config(workdir, "--row")
  if args.substitute:
    _common.workdir_config(args.substitute, "--substitute")
  args.row = [(label, w, t or own_transform(w)) for label, w, t in args.row]
  for _, _, transform in args.row:
    if transform != "tv@auto":
      _common.make_defenses(args, [transform])
  x, y = iss_jax.training.load_dataset(args.dataset, "test", args.data_dir)
  if args.num_examples:
    x, y = x[: args.num_examples], y[: args.num_examples]
  rows, selections = [], {}
  substitute_fn = iss_jax.training.load_classifier(args.substitute)[0] if args.substitute else None
  for label, workdir, transform in args.row:
    defense = _common.make_defenses(args, [transform], selections)[0]
    transform = defense.name
    key = {"workdir": os.path.abspath(workdir), "transform": transform,
           "checkpoint_mtime": os.path.getmtime(os.path.join(workdir, "config.json")),
           "substitute_mtime": (os.path.getmtime(os.path.join(args.substitute, "config.json"))
                                if args.substitute else None),
           **{k: v for k, v in vars(args).items()
              if k not in ("row", "out", "no_progress", "recompute", "batch_size")}}
    row_path = os.path.join(args.out, "rows", f"{label}.json")
    row = None if args.recompute else _cached_row(row_path, key)
    if row is not None:
      print(f"[compare] {label}: reusing {row_path}", file=sys.stderr)
      rows.append(row)
      continue
    apply_fn, _ = iss_jax.training.load_classifier(workdir)
    counter = iss_jax.robustness.PassCounter()  # the row's forward / backward passes, for its claim record
    apply_fn = counter.wrap(apply_fn)
    print(f"[compare] {label}: {workdir} + {defense.name}", file=sys.stderr)
    t0 = time.time()
    res = iss_jax.robustness.evaluate_defense(
        apply_fn, x, y, defense, eps=args.eps, pgd_steps=args.pgd_steps, attacks_=args.attacks,
        square_queries=args.square_queries, substitute_fn=substitute_fn,
        eot_samples=args.eot_samples, corruptions=args.corruptions, severities=args.severities,
        low_res_sizes=args.low_res, batch_size=args.batch_size, seed=args.seed,
        progress=not args.no_progress)
    forward, backward = counter.read()
    rows.append({"label": label, "workdir": workdir, **res, "wall_time_s": time.time() - t0,
                 "forward_passes": forward, "backward_passes": backward, "cache_key": key})
    _save_row(row_path, rows[-1])
    iss_jax.robustness.write_claim(os.path.join(args.out, "rows", f"{label}.claim.json"),
                                   _claim(rows[-1], args, len(x)))
  attack_columns = [c for a in args.attacks for c in iss_jax.robustness.ATTACKS[a].titles()]
  columns = [c for c in ("clean", "corruptions", *[f"lowres{s}" for s in args.low_res], "lowres",
                         *attack_columns, "transfer", "worst") if c in rows[0]["accuracy"]]
  md = [f"# Defenses x evaluations ({args.dataset} test, first {len(x)} images)", "",
        f"Accuracy (%) on n = {len(x)} images, \u00b1 half the 95% Wilson interval. "
        "Gray-box attacks hit the bare classifier, then the test-time transform "
        "is applied; adaptive attacks go through the transform; the worst case counts an image as robust "
        "only if no attack broke it. BatchNorm in inference mode. "
        f"L-inf eps = {args.eps * 255:.3g}/255 in [0, 1] pixel space; {args.pgd_steps} steps for PGD / "
        f"APGD / CW, Square {args.square_queries} queries, EOT {args.eot_samples} draws per step against "
        f"random defenses; device: {iss_jax.robustness.device_description()}.", ""]
  header = ["defense", "checkpoint", "transform"] + [title(c) for c in columns] + ["wall time"]
  table = [[r["label"], r["workdir"], r["defense"]]
           + [_common.pct_ci(r["accuracy"][c], len(x)) for c in columns]
           + [f"{r['wall_time_s'] / 60:.1f} min" if "wall_time_s" in r else "?"] for r in rows]
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
  claims = []
  for r in rows:  # one claim record per row (rows cached before claim records existed get one now)
    path = os.path.join(args.out, "rows", f"{r['label']}.claim.json")
    if not os.path.exists(path):
      iss_jax.robustness.write_claim(path, _claim(r, args, len(x)))
    claims += iss_jax.robustness.read_claims([path])
  md += ["", "## Claim records", "",
         f"One per row in `{os.path.join(args.out, 'rows')}/<label>.claim.json`:", ""]
  md.append(iss_jax.robustness.markdown_table(
      ["defense", "model", "transform", "n", "eps", "clean (%)", "robust, worst case (%)", "forward passes",
       "backward passes", "code"],
      [[c["label"], c["model"], c["defense"], c["n"], f"{c['eps_255']:g}/255",
        _common.pct_ci(c["clean_accuracy"], c["n"]), _common.pct_ci(c["robust_accuracy"], c["n"]),
        f"{c['forward_passes']:,}" if c["forward_passes"] is not None else "?",
        f"{c['backward_passes']:,}" if c["backward_passes"] is not None else "?", c["code_version"]]
       for c in claims]))
  data = {"rows": rows, "columns": columns, "tv_selection": selections.get("tv"), "claims": claims,
          "settings": {k: v for k, v in vars(args).items() if k != "row"},
          "defenses": [list(d) for d in args.row]}
  md += ["", "## Gradient-masking flags and sanity checks", "",
         "Per row: the model checks (logits, determinism, a gradient at the clean images), the eps sweep and "
         "the unbounded attack of `iss_jax.robustness.evaluate` on the first images, Square against the "
         "gradient attacks, and the attack columns' sanity checks (each comparison beyond sampling noise). "
         "A raised flag is a reason to distrust the row.", ""]
  for r in rows:
    checks = r.get("checks", [])
    raised = [c for c in checks if not c["ok"]]
    md.append(f"- **{r['label']}**: " + (f"**{len(raised)} of {len(checks)} raised**" if raised
                                        else f"none of {len(checks)} raised"))
    md += [f"  - **{c['check']}**: {c['detail']}" for c in raised]
  fig = _figure(rows, columns, f"{args.dataset} test, n = {len(x)}, eps = {args.eps * 255:.3g}/255, "
                f"{args.pgd_steps} steps, Square {args.square_queries} queries")
  paths = iss_jax.robustness.write_report(args.out, NAME, "\n".join(md), data, fig)
  print("\n".join(md))
  print(f"[compare] wrote {paths}", file=sys.stderr)
  return data


if __name__ == "__main__":
  main()
