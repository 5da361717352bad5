"""Smooths a training set into the cache that ``train_and_evaluate`` reads, on one process or many.

Usage: python -m train.smooth_dataset --procedure=fixed [the training command's flags] [--shard=I/N]

It takes the flags of the training entry point named by ``--procedure`` (fixed, iterative or finetune:
``--preset``, ``--dataset``, ``--data_dir``, ``--sparsity``, ``--config.FIELD=VALUE``...; ``--workdir`` and
``--overwrite`` are accepted and unused), so that the same flags given to ``python -m train.<procedure>``
find the finished cache entry in ``--config.cache_dir`` and train without smoothing again.

Many processes: every process runs this command with the same flags and a shared ``--config.cache_dir``.
With ``--config.distributed=true`` each calls ``jax.distributed.initialize()`` (SLURM, Open MPI, Cloud
TPU pods and Kubernetes are detected) and smooths the chunks of its process index; ``--shard=I/N`` sets
the share by hand instead (e.g. a SLURM array task: ``--shard=$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``).
Chunk files are written atomically, so a killed job is resumed by running it again (finished chunks are
skipped, with any number of processes). A process that finishes waits for the other shards and smooths
any that stall (``--nowait``: it exits; the last to find the entry whole completes it).
Prints a JSON summary: images, LBI steps, the share of images that hit ``maxiter``, wall time.
"""

from __future__ import annotations

import json
import sys
import time

import jax
from absl import app, flags, logging

import cli
import iss_jax
from train import _main

# The training entry points that smooth, with their key flags (as in train/<procedure>.py).
PROCEDURES = {"fixed": ["sparsity"], "iterative": ["start_sparsity", "end_sparsity"],
              "finetune": ["sparsity", "init_checkpoint"]}



def _define_flags(name: str) -> None:
  """This command's flags, then those of ``python -m train.<name>``."""
  flags.DEFINE_enum("procedure", "fixed", list(PROCEDURES),
                    "The training procedure whose cache to fill; its flags are accepted too.")
  flags.DEFINE_string("shard", None, "I/N: smooth only chunk shard I of N (0-based); default: the "
                      "jax.distributed process index and count (one process: every chunk).")
  flags.DEFINE_bool("wait", True, "After its shard, wait for the other shards (smoothing any that stall) "
                    "and complete the cache entry; --nowait exits after its own shard.")
  flags.DEFINE_float("stall_s", None, "Seconds without a new chunk after which a waiting process smooths "
                     "the missing chunks itself; default: 3x its slowest chunk, at least 60 s.")
  _main.define_flags(name, PROCEDURES[name])
  flags.adopt_module_key_flags(_main)


FLAGS = flags.FLAGS


def _parse_shard(text: str | None) -> tuple[int, int] | None:
  if text is None:
    return None
  try:
    index, count = (int(v) for v in text.split("/"))
  except ValueError:
    index, count = -1, 0
  if not 0 <= index < count:
    cli.fail(f"--shard must be I/N with 0 <= I < N, e.g. --shard=0/4; got {text!r}.")
  return index, count


def main(argv) -> None:
  del argv
  run()


def run() -> dict:
  """Smooths (this process's share of) the training set of the flags' config; prints and returns the
  summary."""
  logging.set_verbosity(logging.WARNING)
  procedure = FLAGS.procedure
  config = _main.build_config(procedure)
  with _main.user_errors():
    iss_jax.training.validate_config(config)
  shard = _parse_shard(FLAGS.shard)
  levels = sorted({s for s in iss_jax.training.sparsity_schedule(config) if s < 1.0})
  if not levels:
    cli.fail(f"--procedure={procedure} with these flags trains on clean images only; nothing to smooth.")
  if config.distributed:
    jax.distributed.initialize()
  with _main.user_errors():
    x_train = iss_jax.training.load_training_data(config, test=False).x_train
  index, count = shard or (jax.process_index(), jax.process_count())
  t0 = time.perf_counter()
  result = iss_jax.training.smooth_training_set(config, x_train, levels, shard=(index, count),
                                                wait=FLAGS.wait, stall_s=FLAGS.stall_s, load=False)
  summary = {"procedure": procedure, "dataset": config.dataset, "images": int(x_train.shape[0]),
             "image_shape": list(x_train.shape[1:]), "shard": f"{index}/{count}",
             "wall_s": round(time.perf_counter() - t0, 2), "complete": result is not None}
  if result is not None:
    info = result[1]
    summary |= {k: info[k] for k in ("sparsities", "mean_steps", "max_steps", "capped", "capped_share",
                                     "maxiter", "path", "reused")}
  print(json.dumps(summary, indent=1), file=sys.stdout, flush=True)
  return summary


def _procedure_from_argv(argv: list[str]) -> str:
  """``--procedure`` read ahead of flag parsing: it decides which training flags exist."""
  for i, arg in enumerate(argv):
    if arg.startswith("--procedure="):
      return arg.split("=", 1)[1]
    if arg == "--procedure" and i + 1 < len(argv):
      return argv[i + 1]
  return "fixed"


if __name__ == "__main__":
  _name = _procedure_from_argv(sys.argv)
  if _name not in PROCEDURES:
    cli.fail(f"--procedure must be one of {', '.join(PROCEDURES)}; got {_name!r}.")
  _define_flags(_name)
  app.run(main, flags_parser=cli.parse_flags)
