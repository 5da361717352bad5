"""Shared command-line handling of the evaluation entry points (public ``iss_jax`` names only)."""

from __future__ import annotations

import argparse
import os
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
    if args.num_examples < 1:
      raise ValueError(f"--num_examples must be >= 1; got {args.num_examples}.")
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


def pct(v: float) -> str:
  return f"{100 * v:.2f}"


def main(module_doc: str, add_args, run, argv=None):
  """The shared ``main`` of one evaluation: common flags, the evaluation's own flags, then ``run``."""
  parser = argparse.ArgumentParser(description=module_doc.split("\n")[0])
  add_common_args(parser)
  add_args(parser)
  return run(parser.parse_args(argv))


def finish(args, name: str, md: list, res: dict, fig) -> dict:
  """Writes ``<out>/<name>.md/.json/.png``, prints the table and the paths, and returns ``res``."""
  if fig is not None:
    fig.tight_layout()
  paths = iss_jax.robustness.write_report(out_dir(args), name, "\n".join(md), res, fig)
  print("\n".join(md))
  print(f"wrote {paths}")
  return res
