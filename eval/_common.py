"""What the evaluation entry points share (public ``iss_jax`` names only): their common flags, defined once
here, and the steps every evaluation of one checkpoint takes (check the flags and the workdir, build the
defenses, load, write the report). Flags and error exits go through the shared ``cli`` stack (absl)."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from absl import flags

import cli
import iss_jax

DEFENSE_FORMS = (*iss_jax.baselines.DEFENSE_SPECS, "tv@auto")
TV_WEIGHTS = "0.003,0.005,0.0075,0.01,0.015,0.02,0.03,0.05,0.08,0.12"

# Every flag that more than one evaluation takes: name -> (cli.define kind, default, help). An entry point
# defines those it takes with define_flags (with its own default or help where it needs one).
SHARED_FLAGS = {
    "workdir": ("string", None, "checkpoint folder written by train/ (required)"),
    "defense": ("multi_string", [], "test-time defense, repeat for several: " + ", ".join(DEFENSE_FORMS)
                + " (the bare model is always evaluated too)"),
    "smooth_sparsity": ("multi_number", [], "shorthand for --defense=smooth@S; repeat for several "
                        "(e.g. 0.6 and 0.8)"),
    "smooth_maxiter": ("integer", None, "step cap of iss_jax.smooth (default: the library default)"),
    "tv_weights": ("number_list", TV_WEIGHTS, "candidates of tv@auto"),
    "tv_noise_std": ("number", 8 / 255, "Gaussian noise std of the held-out PSNR selection of tv@auto"),
    "tv_select_images": ("integer", 256, "held-out images for tv@auto: the first N of the TRAIN split"),
    "tv_iters": ("integer", 50, "Chambolle iterations of tv@"),
    "dataset": ("string", "cifar10_sample",
                "iss_jax.training.load_dataset name (default: the shipped cifar10_sample)"),
    "data_dir": ("string", None, "folder holding the dataset files"),
    "split": ("enum", "test", "the split evaluated", {"enum_values": ["train", "test"]}),
    "num_examples": ("integer", None, "first N images of the split"),
    "out": ("string", None, "output folder (default: <workdir>/eval)"),
    "batch_size": ("integer", 100, "images per batch"),
    "seed": ("integer", 0, "seed of the random parts (attacks' starts, noise, EOT draws)"),
    "no_progress": ("bool", False, "hide progress bars"),
    # The attacks of eval.adversarial and eval.compare.
    "attacks": ("str_list", "fgsm,pgd", "comma-separated, from: " + "; ".join(
        f"{a.name} ({a.help})" for a in iss_jax.robustness.ATTACKS.values())
        + ". transfer (black-box PGD from an independent model) runs when --substitute is given"),
    "pgd_steps": ("integer", 10, "iterations of PGD, APGD and CW-Linf"),
    "square_queries": ("integer", iss_jax.robustness.SQUARE_QUERIES, "Square's queries per image"),
    "substitute": ("string", None, "an independently trained model (e.g. python -m train.vanilla --seed=1 "
                   "--workdir=workdirs/vanilla_seed1): PGD examples made on it are fed to the bare model "
                   "and every defense (attack 'transfer', protocol 'black-box')"),
    "eot_samples": ("integer", 4, "EOT draws per step (random defenses)"),
    "accept_violations": ("bool", False, "exit 0 even when a sanity check of the attacks fails beyond "
                          "sampling noise (the report flags it)"),
    # The corruptions of eval.corruptions and eval.compare.
    "corruptions": ("str_list", ",".join(iss_jax.robustness.PAPER_CORRUPTIONS),
                    "comma-separated CIFAR-10-C names ('' = none)"),
    "severities": ("int_list", "1,2,3,4,5", "corruption severities, comma-separated"),
}
# The flags of every evaluation of one checkpoint (eval.compare takes its rows instead of --workdir).
COMMON = ("workdir", "defense", "smooth_sparsity", "smooth_maxiter", "tv_weights", "tv_noise_std",
          "tv_select_images", "tv_iters", "dataset", "data_dir", "split", "num_examples", "out", "batch_size",
          "seed", "no_progress")


# Result column -> table title of every attack (from the attack table) and of the other columns.
TITLES = {"clean": "clean", "corruptions": "corrupt.", "lowres": "low-res mean",
          **{c: t for a in iss_jax.robustness.ATTACKS.values() for c, t in a.titles().items()},
          "transfer": "transfer (black-box)", "worst": "worst case"}


def define_flags(flag_values: flags.FlagValues, names=COMMON, **changed) -> None:
  """Defines the flags ``names`` of :data:`SHARED_FLAGS` in ``flag_values``; ``changed``: ``{name: {"default":
  ..., "help": ...}}`` for an entry point that gives one of them its own default or help."""
  for name in names:
    kind, default, help_, *kw = SHARED_FLAGS[name]
    spec = {"default": default, "help": help_} | changed.get(name, {})
    cli.define(kind, name, spec["default"], spec["help"], flag_values, **(kw[0] if kw else {}))


def defense_specs(args) -> list[str]:
  """The defense specs of ``--defense`` and ``--smooth_sparsity``, in order, without duplicates."""
  specs = list(args.defense) + [f"smooth@{s:g}" for s in args.smooth_sparsity]
  return [s for i, s in enumerate(specs) if s not in specs[:i] and s != "none"]


def defenses(args) -> list:
  """The defenses :func:`prepare` built (built now if it did not run)."""
  if getattr(args, "defense_values", None) is None:
    args.defense_values = make_defenses(args)
  return args.defense_values


def make_defenses(args, specs=None, selections: dict | None = None) -> list:
  """``iss_jax.robustness.Defense`` values for ``specs`` (default: :func:`defense_specs`).

  ``tv@auto`` becomes ``tv@W`` with the weight of best PSNR on held-out noisy training images; the
  selection is stored in ``selections["tv"]`` (computed once per run).
  """
  selections = {} if selections is None else selections
  out = []
  for spec in defense_specs(args) if specs is None else specs:
    if spec == "tv@auto":
      if "tv" not in selections:
        xt, _ = iss_jax.training.load_dataset(args.dataset, "train", args.data_dir)
        held_out = xt[: args.tv_select_images].astype(np.float32) / 255
        selections["tv"] = iss_jax.baselines.select_tv_weight(
            held_out, args.tv_weights, noise_std=args.tv_noise_std, iters=args.tv_iters)
      spec = f"tv@{selections['tv']['weight']:g}"
    out.append(iss_jax.baselines.make_defense(spec, tv_iters=args.tv_iters,
                                              smooth_kwargs=smooth_kwargs(args)))
  return out


def out_dir(args) -> str:
  return args.out or os.path.join(args.workdir, "eval")


def smooth_kwargs(args) -> dict:
  return {} if args.smooth_maxiter is None else {"maxiter": int(args.smooth_maxiter)}


def load_data(args):
  """``(x uint8 (N, H, W, C), y int32 (N,))``: the first ``--num_examples`` images of the split."""
  x, y = iss_jax.training.load_dataset(args.dataset, args.split, args.data_dir)
  if args.num_examples is not None:
    x, y = x[: args.num_examples], y[: args.num_examples]
  return x, y


def official_test_indices(args, n: int):
  """Official CIFAR-10 test indices of the first ``n`` images of the dataset's test split, or None."""
  if args.split != "test":
    return None
  idx = iss_jax.training.official_test_indices(args.dataset, args.data_dir)
  return None if idx is None else idx[:n]


def load_model(args):
  """``(apply_fn, config)`` from ``iss_jax.training.load_classifier``."""
  return iss_jax.training.load_classifier(args.workdir)


def header(args, title: str, n: int) -> str:
  lines = [f"# {title}", "",
           f"- checkpoint: `{args.workdir}`",
           f"- data: `{args.dataset}` {args.split} split, {n} images"
           + (f" (first {args.num_examples})" if args.num_examples else ""),
           f"- device: {iss_jax.robustness.device_description()}, "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
  specs = defense_specs(args)
  if specs:
    lines.append("- test-time defenses: " + ", ".join(f"`{s}`" for s in specs)
                 + (f" (smoothing maxiter {args.smooth_maxiter})" if args.smooth_maxiter else ""))
  lines.append("")
  return "\n".join(lines)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_names(dataset: str):
  """``label -> name`` for the CIFAR-10 datasets; the label number otherwise."""
  if dataset.startswith("cifar10") and not dataset.startswith("cifar100"):
    return lambda k: CIFAR10_CLASSES[k]
  return str


def pct(v: float) -> str:
  return f"{100 * v:.2f}"


def pct_ci(v: float, n: int) -> str:
  """An accuracy in % with half the width of its 95% Wilson interval on ``n`` images."""
  lo, hi = iss_jax.robustness.wilson_interval(v, n)
  return f"{100 * v:.1f} \u00b1 {50 * (hi - lo):.1f}"


def workdir_config(workdir: str, flag: str = "--workdir"):
  """``iss_jax.training.workdir_config``, with the flag that named the folder in its error: a folder that
  is not a training workdir is refused before anything loads."""
  try:
    return iss_jax.training.workdir_config(workdir)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"{flag}={workdir}: {e} Train one first (e.g. python -m train.vanilla) or pass "
                            "the folder a train.* run wrote.") from None


def prepare(args) -> None:
  """Validates the flags and builds the defenses before the model or data load (``args.defense_values``)."""
  if args.workdir is None:
    raise ValueError("--workdir is required: the folder a train.* run wrote (e.g. workdirs/vanilla).")
  if args.num_examples is not None and args.num_examples < 1:
    raise ValueError(f"--num_examples must be >= 1; got {args.num_examples}.")
  workdir_config(args.workdir)
  args.defense_values = make_defenses(args)


def exit_on_violations(args, results) -> None:
  """Exit status 1 when an adversarial table failed a sanity check beyond sampling noise, unless
  ``--accept_violations``; the report is written first."""
  count = sum(int(r.get("violations", 0)) for r in results if isinstance(r, dict))
  if count and not getattr(args, "accept_violations", False):
    print(f"error: {count} sanity check(s) of the adversarial evaluation failed beyond sampling noise "
          f"(see the report in {getattr(args, 'out', None) or out_dir(args)}); pass --accept_violations "
          "to accept them.", file=sys.stderr)
    sys.exit(1)


def main(module_doc: str, define_own, run, argv=None):
  """The shared ``main`` of one evaluation: the common flags and ``define_own(flag_values)``'s, validation
  before anything loads, then ``run(args)``; user errors end in one line (exit 2), sanity violations in
  exit 1."""
  flag_values = flags.FlagValues()
  define_flags(flag_values)
  define_own(flag_values)
  args = cli.parse(flag_values, argv, module_doc)
  with cli.user_errors():
    prepare(args)
    res = run(args)
  exit_on_violations(args, [res])
  return res


def finish(args, name: str, md: list, res: dict, fig) -> dict:
  """Writes ``<out>/<name>.md/.json/.png``, prints the table and the paths, and returns ``res``."""
  if fig is not None:
    fig.tight_layout()
  paths = iss_jax.robustness.write_report(out_dir(args), name, "\n".join(md), res, fig)
  print("\n".join(md))
  print(f"wrote {paths}")
  return res
