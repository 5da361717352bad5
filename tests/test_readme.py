"""Every shell command the README shows runs as written, shortened only by flags appended at the end.

The commands run in order in one fresh working directory (training before evaluation), with the
repository on PYTHONPATH, as a user following the README would run them. A README command without a
shortening rule below fails the test, so a new command cannot be added without being run here.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_TRAIN = ["--config.epochs=1", "--config.train_limit=64", "--config.test_limit=32", "--config.batch_size=32",
          "--config.eval_batch_size=32", "--config.adv_steps=1"]
_EVAL = ["--num_examples=8", "--batch_size=8", "--no_progress"]
_ATTACK = ["--eps=8/255", "--pgd_steps=1", "--tv_select_images=8", "--square_queries=20"]
# Flags appended to each module's README command: the same command at a tiny size.
SHORTEN = {
    "train.vanilla": _TRAIN, "train.fixed": _TRAIN, "train.iterative": _TRAIN, "train.finetune": _TRAIN,
    "train.adversarial": _TRAIN, "train.report": [],
    "train.tvlayer": _TRAIN + ["--config.tv_layer_iters=3"], "train.pni": _TRAIN, "train.menet": _TRAIN,
    "train.splic": _TRAIN + ["--config.train_limit=32", "--config.test_limit=8",
                             "--config.eval_batch_size=8"],
    "eval.adversarial": _EVAL + _ATTACK + ["--aa_steps=1", "--aa_queries=20"],
    "eval.corruptions": _EVAL + ["--corruptions=gaussian_noise", "--severities=1"],
    "eval.low_resolution": _EVAL + ["--sizes=16"],
    "eval.all": _EVAL + _ATTACK + ["--corruptions=gaussian_noise", "--severities=1", "--sizes=16",
                                   "--radii=4", "--fourier_examples=4", "--fourier_sparsities=0.6",
                                   "--tune_examples=4", "--saliency_indices=0,1"],
    "eval.lrp": _EVAL + ["--lrp_indices=0,1"],
    "eval.tsne": _EVAL + ["--perplexity=3", "--tsne_iterations=50", "--attack_steps=1"],
    "eval.activation_max": _EVAL + ["--am_steps=2", "--first_units=0", "--penultimate_units=0",
                                    "--am_classes=0"],
    "eval.saliency": _EVAL + ["--saliency_indices=0,1"],
    "eval.compare": _EVAL + ["--pgd_steps=1", "--corruptions=gaussian_noise", "--low_res=16",
                             "--tv_select_images=8", "--square_queries=5", "--eot_samples=1",
                             "--attacks=pgd,square"],
    "benchmarks.bench_smooth": ["--n=16", "--numpy_images=1", "--xla_images=16"],
    "benchmarks.bench_step_factor": ["--n=2"],
    "benchmarks.bench_psnr": ["--n=16"],
    "benchmarks.bench_train_step": ["--batch_size=8", "--steps=1", "--warmup=1"],
    "benchmarks.bench_attacks": ["--n=8", "--steps=2", "--queries=20"],
    "benchmarks.bench_attack_throughput": ["--n=8", "--steps=2", "--queries=20"],
    "benchmarks.bench_scheduler": ["--n=4", "--sparsity=0.2", "--slots=2,4", "--chunks=8"],
    "benchmarks.bench_large_images": ["--n=1", "--n224=1", "--xla_n=1", "--numpy_steps=10",
                                      "--table6_steps=100", "--sizes=84"],
    "train.smooth_dataset": _TRAIN,
    "eval.paper": ["--scale=tiny", "--no_progress", "--out=results_tiny", "--results_path=RESULTS_tiny.md"],
    # A copy of notebooks/ in the working directory is what runs (and is written): one notebook, tiny.
    "notebooks.run": ["--size=tiny", "--only=02"],
}
# Commands that are the setup or the test suite itself, and jupytext's pair sync, which
# tests/test_notebooks.py checks for every pair.
NOT_RUN = ("pip install", "python -m pytest", "jupytext --sync")


def readme_commands() -> list[str]:
  """The README's shell commands: ``bash`` blocks, continuation lines joined, comments and ``&&`` split."""
  text = (REPO / "README.md").read_text()
  commands = []
  for block in re.findall(r"```bash\n(.*?)```", text, re.S):
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
      line = line.split(" # ")[0].strip()
      commands += [c.strip() for c in line.split("&&") if c.strip()]
  return commands


COMMANDS = [c for c in readme_commands() if not c.startswith(NOT_RUN)]
# The default suite runs the quick start, every training procedure and evaluation at a tiny size; these run
# with `pytest -m slow` (every README command then runs): the benchmarks, the notebooks (executed by
# tests/test_notebooks.py too), the eight-row eval.compare and the trainings only it or the ViT needs.
SLOW_MODULES = ("benchmarks.", "notebooks.run", "eval.compare", "eval.saliency", "eval.all", "train.pni",
                "train.splic", "train.vanilla --model=vit_tiny", "eval.paper --table")


def _param(command: str):
  slow = command.startswith(tuple(f"python -m {m}" for m in SLOW_MODULES))
  return pytest.param(command, marks=pytest.mark.slow) if slow else command


def test_the_readme_shows_commands():
  assert len(COMMANDS) >= 15 and any(c.startswith("python -m train.fixed") for c in COMMANDS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A fresh working directory holding a copy of notebooks/ (so `python -m notebooks.run --write` writes
  the copy), the rest of the repository reached through PYTHONPATH."""
  path = tmp_path_factory.mktemp("readme")
  shutil.copytree(REPO / "notebooks", path / "notebooks", ignore=shutil.ignore_patterns("_work", "*.pyc"))
  return path


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS])
def test_readme_command_runs(command, workdir):
  argv = shlex.split(command)
  assert argv[:2] == ["python", "-m"], f"README command is not `python -m ...`: {command}"
  module = argv[2]
  assert module in SHORTEN, f"no tiny-size rule for the README command {command!r}: add one to SHORTEN"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
  r = subprocess.run([sys.executable, *argv[1:], *SHORTEN[module]], cwd=workdir, env=env,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, f"{command}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
