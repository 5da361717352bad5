"""Shared command-line handling of the evaluation entry points (public ``iss_jax`` names only)."""

from __future__ import annotations

import argparse
import os
import time
from fractions import Fraction
from pathlib import Path

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
  parser.add_argument("--smooth_sparsity", type=number, action="append", default=[],
                      help="test-time smoothing sparsity; repeat for several (e.g. 0.6 and 0.8)")
  parser.add_argument("--smooth_maxiter", type=int, default=None,
                      help="step cap of iss_jax.smooth (default: the library default)")
  parser.add_argument("--dataset", default="cifar10_sample",
                      help="iss_jax.load_dataset name (default: the shipped cifar10_sample)")
  parser.add_argument("--data_dir", default=None, help="folder holding the dataset files")
  parser.add_argument("--split", default="test", choices=("train", "test"))
  parser.add_argument("--num_examples", type=int, default=None, help="first N images of the split")
  parser.add_argument("--out", default=None, help="output folder (default: <workdir>/eval)")
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no_progress", action="store_true", help="hide progress bars")


def out_dir(args) -> str:
  return args.out or os.path.join(args.workdir, "eval")


def smooth_kwargs(args) -> dict:
  return {} if args.smooth_maxiter is None else {"maxiter": int(args.smooth_maxiter)}


def load_data(args):
  """``(x uint8 (N, H, W, C), y int32 (N,))``: the first ``--num_examples`` images of the split."""
  x, y = iss_jax.load_dataset(args.dataset, args.split, args.data_dir)
  if args.num_examples is not None:
    if args.num_examples < 1:
      raise ValueError(f"--num_examples must be >= 1; got {args.num_examples}.")
    x, y = x[: args.num_examples], y[: args.num_examples]
  return x, y


def official_test_indices(args, n: int):
  """Official CIFAR-10 test indices of the first ``n`` images of the dataset's test split, or None."""
  if args.split != "test":
    return None
  if args.dataset in ("cifar10", "cifar10_exact"):
    return np.arange(n)  # both are in official order from image 0 (cifar10_exact: images 0..1016)
  path = None
  if args.dataset == "cifar10_sample":
    root = Path(args.data_dir) if args.data_dir else Path(iss_jax.__file__).resolve().parents[1] / "data"
    path = root / "cifar10_sample.npz"
  elif args.dataset.startswith("npz:"):
    path = Path(args.dataset[4:])
  if path is not None and path.exists():
    with np.load(path) as d:
      if "idx_test" in d:
        return np.asarray(d["idx_test"])[:n]
  return None


def load_model(args):
  """``(apply_fn, config)`` from ``iss_jax.load_classifier``."""
  return iss_jax.load_classifier(args.workdir)


def header(args, title: str, n: int) -> str:
  lines = [f"# {title}", "",
           f"- checkpoint: `{args.workdir}`",
           f"- data: `{args.dataset}` {args.split} split, {n} images"
           + (f" (first {args.num_examples})" if args.num_examples else ""),
           f"- device: {iss_jax.device_description()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
  if args.smooth_sparsity:
    lines.append("- test-time smoothing: `iss_jax.smooth` at sparsity "
                 + ", ".join(f"{s:g}" for s in args.smooth_sparsity)
                 + (f" (maxiter {args.smooth_maxiter})" if args.smooth_maxiter else ""))
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
  paths = iss_jax.write_report(out_dir(args), name, "\n".join(md), res, fig)
  print("\n".join(md))
  print(f"wrote {paths}")
  return res
