"""Adversarial robustness (paper Tables 2, 7): FGSM / PGD, bare and behind test-time defenses.

  python -m eval.adversarial --workdir=workdirs/vanilla --smooth_sparsity=0.6 \
      --eps=2/255,4/255,8/255,16/255,32/255 --num_examples=200
  python -m eval.adversarial --workdir=workdirs/vanilla --defense=smooth@0.6 --defense=tv@auto
  python -m eval.adversarial --workdir=workdirs/vanilla --defense=smooth@0.6 --eps=8/255 --version=standard
  python -m eval.adversarial --workdir=workdirs/pni_layerwise --eps=8/255 --version=rand \
      --eot_sweep=1,2,5,10,20

Reports, side by side for every defense: the paper's protocol ("gray-box": attack the bare model, then
defend), the adaptive attack through the defense (BPDA through the real ``iss_jax.smooth``, the exact
gradient for TV and low-pass, BPDA + EOT for SPLIC) and their per-example worst case; sanity checks are
written into the table and violations are flagged. The same library function gives ``eval.compare`` its
attack columns.

With ``--version=standard|rand``, each defense (and the bare model) at each eps runs
``iss_jax.robustness.evaluate`` instead (AutoAttack-shaped: APGD-CE, APGD-T, DeepFool in FAB-T's place and
Square at 5,000 queries, or the rand protocol with EOT over 20 draws), whose report holds the gradient-masking
flags; each writes a claim record ``<out>/claims/<defense>_eps<k>.json``. ``--eot_sweep=1,2,5,10,20`` adds
accuracy vs EOT draws per step (APGD-CE) and a plot of where it plateaus.
"""

from __future__ import annotations

import functools
import os
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
  define("enum", "version", "", "run iss_jax.robustness.evaluate: standard (APGD-CE, APGD-T, DeepFool for "
         "FAB-T, Square) or rand (APGD-CE, APGD-DLR with EOT, repeated final evaluation); '' = the table of "
         "--attacks", enum_values=["", "standard", "rand"])
  define("integer", "aa_steps", 100, "APGD iterations of --version and --eot_sweep (AutoAttack: 100)")
  define("integer", "aa_queries", 5000, "Square's queries in --version=standard (AutoAttack: 5,000)")
  define("integer", "aa_eot_samples", 20, "EOT draws per step in --version=rand (AutoAttack: 20)")
  define("integer", "aa_repeats", 5, "final evaluations of a random classifier in --version=rand and "
         "--eot_sweep (an image counts as robust only if it survives all)")
  define("int_list", "eot_sweep", "", "EOT draws per step to sweep, e.g. 1,2,5,10,20 (APGD-CE at each eps, "
         "each defense; '' = none)")
  define("str_list", "protocols", "gray-box,adaptive",
         "gray-box (attack the bare model, then defend: the paper's protocol), adaptive (attack through the "
         "defense)")


def run(args, apply_fn=None, data=None) -> dict:
  if args.version or args.eot_sweep:
    return run_versions(args, apply_fn, data)
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
  for g in res["gray_box_stronger"]:
    md.append(f"\nGray-box beats adaptive: {g['attack']} on `{g['defense']}` at "
              f"eps={g['eps'] * 255:.3g}/255, gray-box {100 * g['gray_box']:.1f}% < adaptive "
              f"{100 * g['adaptive']:.1f}% "
              f"({g['only_gray_box']} image(s) broken only by the gray-box point, {g['only_adaptive']} only "
              "by the adaptive one); the `worst` row takes both.")
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


def run_versions(args, apply_fn=None, data=None) -> dict:
  """``--version`` / ``--eot_sweep``: :func:`iss_jax.robustness.evaluate` (and ``eot_sweep``) for the bare
  model and each defense at each eps, a claim record per evaluation."""
  for name in ("aa_steps", "aa_queries", "aa_eot_samples", "aa_repeats"):
    if getattr(args, name) < 1:
      raise ValueError(f"--{name} must be >= 1; got {getattr(args, name)}.")
  if any(s < 1 for s in args.eot_sweep) or list(args.eot_sweep) != sorted(set(args.eot_sweep)):
    raise ValueError(f"--eot_sweep must be increasing ints >= 1; got {args.eot_sweep}.")
  apply_fn = apply_fn or _common.load_model(args)[0]
  x, y = data if data is not None else _common.load_data(args)
  everyone = [iss_jax.robustness.no_defense(), *_common.defenses(args)]
  md = [_common.header(args, "Adversarial robustness: iss_jax.robustness.evaluate", len(x))]
  out = {"evaluations": [], "eot_sweeps": [], "claims": []}
  dataset = f"{args.dataset} {args.split}" + (f", first {len(x)}" if args.num_examples else "")
  for d in everyone:
    for eps in args.eps:
      if args.version:
        res = iss_jax.robustness.evaluate(
            apply_fn, x, y, eps=eps, version=args.version, defense=d, steps=args.aa_steps,
            square_queries=args.aa_queries,
            eot_samples=args.aa_eot_samples if args.version == "rand" else None,
            repeats=args.aa_repeats if args.version == "rand" else None, batch_size=args.batch_size,
            seed=args.seed, progress=not args.no_progress)
        md.append(res.report())
        claim = res.claim(model=args.workdir, dataset=dataset)
        path = os.path.join(_common.out_dir(args), "claims", f"{d.name}_eps{eps * 255:.3g}.json")
        iss_jax.robustness.write_claim(path, claim)
        out["evaluations"].append({"defense": d.name, "eps": eps, **res.summary()})
        out["claims"].append(path)
        for flag in res.raised:
          print(f"MASKING FLAG ({d.name}, eps={eps * 255:.3g}/255): {flag}", file=sys.stderr)
      if args.eot_sweep:
        sweep = iss_jax.robustness.eot_sweep(
            apply_fn, x, y, eps=eps, samples=args.eot_sweep, defense=d, steps=args.aa_steps,
            repeats=args.aa_repeats, batch_size=args.batch_size, seed=args.seed,
            progress=not args.no_progress)
        out["eot_sweeps"].append({"defense": d.name, **sweep})
        md.append(f"EOT sweep (`{d.name}`, eps = {eps * 255:.3g}/255, APGD-CE {args.aa_steps} steps"
                  f"{'' if sweep['random'] else '; the classifier is deterministic: EOT changes nothing'}): "
                  + ", ".join(f"{s} draws {_common.pct_ci(a, sweep['n'])}%"
                              for s, a in zip(sweep["samples"], sweep["accuracy"], strict=True))
                  + f"; plateau from {sweep['plateau']} draws.\n")
  if out["claims"]:
    md.append("Claim records: " + ", ".join(f"`{p}`" for p in out["claims"]) + "\n")
  fig = _plot_versions(out, f"{args.dataset} {args.split}, n = {len(x)}")
  name = NAME + (f"_{args.version}" if args.version else "_eot_sweep")
  return _common.finish(args, name, md, out, fig)


def _plot_versions(out: dict, data: str):
  """Left: accuracy after each attack of every evaluation; right (with a sweep): accuracy vs EOT draws."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [p for p in ("evaluations", "eot_sweeps") if out[p]]
  fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
  for ax, panel in zip(axes[0], panels, strict=True):
    if panel == "evaluations":
      for ev in out["evaluations"]:
        rows = [a for a in ev["attacks"] if a["role"] in ("clean", "ensemble")]
        ax.plot(range(len(rows)), [100 * a["accuracy"] for a in rows], marker="o",
                label=f"{ev['defense']}, eps={ev['eps'] * 255:.3g}/255 (all attacks: "
                      f"{100 * ev['robust_accuracy']:.1f}%)")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([a["name"] for a in rows], rotation=20)
      ax.set_xlabel("after attack (each on the images still robust)")
      ax.set_title(f"Robust accuracy through the ensemble ({data})", fontsize=10)
    else:
      for sw in out["eot_sweeps"]:
        ci = np.array(sw["interval95"]) * 100
        line = ax.plot(sw["samples"], [100 * a for a in sw["accuracy"]], marker="o",
                       label=f"{sw['defense']}, eps={sw['eps'] * 255:.3g}/255 (plateau {sw['plateau']})")
        ax.fill_between(sw["samples"], ci[:, 0], ci[:, 1], color=line[0].get_color(), alpha=0.12)
      ax.set_xscale("log")
      ticks = sorted({s for sw in out["eot_sweeps"] for s in sw["samples"]})
      ax.set_xticks(ticks)
      ax.set_xticklabels([str(t) for t in ticks])
      ax.set_xlabel("EOT draws per gradient step")
      ax.set_title(f"APGD-CE accuracy vs EOT draws ({data})", fontsize=10)
    ax.set_ylabel("accuracy (%), shaded: 95% Wilson interval" if panel == "eot_sweeps" else "accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return fig


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
