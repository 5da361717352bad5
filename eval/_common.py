"""Shared command-line handling of the evaluation entry points (public ``iss_jax`` names only)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from fractions import Fraction

import numpy as np

import iss_jax


def number(text: str) -> float:
  """Parses ``0.03``, ``8/255`` or ``8/255.`` into a float."""
  text = text.strip()
  try:
    return float(Fraction(text)) if "/" in text else float(text)
  except (ValueError, ZeroDivisionError) as e:
    raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r}") from e


def number_list(text: str) -> list[float]:
  """Comma-separated numbers or fractions: ``"2/255,4/255,8/255"``."""
  return [number(t) for t in text.split(",") if t.strip()]


def int_list(text: str) -> list[int]:
  return [int(t) for t in text.split(",") if t.strip()]


def str_list(text: str) -> list[str]:
  return [t.strip() for t in text.split(",") if t.strip()]


def add_common_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", required=True, help="checkpoint folder written by train/")
  parser.add_argument("--defense", action="append", default=[], metavar="SPEC",
                      help="test-time defense, repeat for several: " + ", ".join(DEFENSE_FORMS)
                      + " (the bare model is always evaluated too)")
  parser.add_argument("--smooth_sparsity", type=number, action="append", default=[],
                      help="shorthand for --defense=smooth@S; repeat for several (e.g. 0.6 and 0.8)")
  parser.add_argument("--smooth_maxiter", type=int, default=None,
                      help="step cap of iss_jax.smooth (default: the library default)")
  parser.add_argument("--tv_weights", type=number_list, default=TV_WEIGHTS, help="candidates of tv@auto")
  parser.add_argument("--tv_noise_std", type=number, default=8 / 255,
                      help="Gaussian noise std of the held-out PSNR selection of tv@auto")
  parser.add_argument("--tv_select_images", type=int, default=256,
                      help="held-out images for tv@auto: the first N of the TRAIN split")
  parser.add_argument("--tv_iters", type=int, default=50, help="Chambolle iterations of tv@")
  parser.add_argument("--dataset", default="cifar10_sample",
                      help="iss_jax.training.load_dataset name (default: the shipped cifar10_sample)")
  parser.add_argument("--data_dir", default=None, help="folder holding the dataset files")
  parser.add_argument("--split", default="test", choices=("train", "test"))
  parser.add_argument("--num_examples", type=int, default=None, help="first N images of the split")
  parser.add_argument("--out", default=None, help="output folder (default: <workdir>/eval)")
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no_progress", action="store_true", help="hide progress bars")


DEFENSE_FORMS = (*iss_jax.baselines.DEFENSE_SPECS, "tv@auto")
TV_WEIGHTS = "0.003,0.005,0.0075,0.01,0.015,0.02,0.03,0.05,0.08,0.12"


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


# The project's user-facing errors: one line on stderr and exit status 2, no traceback (tracebacks are for
# bugs; ISS_JAX_DEBUG=1 shows them for these too).
USER_ERRORS = (ValueError, FileNotFoundError, iss_jax.KernelUnavailableError)


@contextlib.contextmanager
def user_errors():
  """Turns the project's user-facing errors into ``error: <message>`` on stderr and exit status 2."""
  try:
    yield
  except USER_ERRORS as e:
    if os.environ.get("ISS_JAX_DEBUG"):
      raise
    message = " ".join(str(e).split()) or type(e).__name__
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_workdir(workdir: str) -> None:
  """A checkpoint folder written by ``train/`` (its ``config.json``), checked before anything loads."""
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    raise FileNotFoundError(f"--workdir={workdir} is not a training workdir (no config.json); train one "
                            "first, e.g. python -m train.vanilla, or pass the folder a train.* run wrote.")


def prepare(args) -> None:
  """Validates the flags and builds the defenses before the model or data load (``args.defense_values``)."""
  if args.num_examples is not None and args.num_examples < 1:
    raise ValueError(f"--num_examples must be >= 1; got {args.num_examples}.")
  check_workdir(args.workdir)
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


def main(module_doc: str, add_args, run, argv=None):
  """The shared ``main`` of one evaluation: common flags, the evaluation's own flags, validation before
  anything loads, then ``run``; user errors end in one line (exit 2), sanity violations in exit 1."""
  parser = argparse.ArgumentParser(description=module_doc.split("\n")[0])
  add_common_args(parser)
  add_args(parser)
  args = parser.parse_args(argv)
  with user_errors():
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
