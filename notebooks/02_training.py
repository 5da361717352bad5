# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Training: vanilla, fixed and iterative
#
# `iss_jax.training.train_and_evaluate(config, workdir)` is the whole training program behind
# `python -m train.vanilla | fixed | iterative`: it loads the data, smooths the training images (once, into
# a disk cache), trains a Flax ResNet data-parallel over **every local device**, evaluates after each epoch,
# checkpoints with orbax and resumes from the workdir. The configs come from the repository
# (`train/configs/<procedure>.py:get_config(preset)`, `ml_collections.ConfigDict`s); change any field
# before the call.
#
# * **vanilla**: clean images (ERM).
# * **fixed**: images smoothed at sparsity 0.6 (paper Sec. 3.2).
# * **iterative**: the sparsity rises from 0.3 to 0.8 in equal blocks of epochs, coarse structure first
#   (Eq. 7); every level comes from one `smooth_path` run per image.
#
# Then: the curves, a checkpoint loaded as a classifier, and an interrupted run resumed. Notebooks 03 and
# 04 evaluate the checkpoints written here.

# %%
# Setup. On Colab: clone the repository (edit REPO_URL: your fork or the project's URL), install the
# package with its [train] extra and the JAX build for the runtime's TPU or GPU, and list the devices.
# Locally: installs nothing; only finds the repository root (train/configs, the data folder).
# ruff: noqa: E402 (a notebook imports after its setup cell)
REPO_URL = "https://github.com/OWNER/iss-jax"  # <- edit before running on Colab
import os
import shutil
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
  clone = Path("/content/iss-jax")
  if not clone.exists():
    subprocess.run(["git", "clone", "--depth=1", REPO_URL, str(clone)], check=True)
  tpu = bool(os.environ.get("TPU_ACCELERATOR_TYPE") or os.environ.get("COLAB_TPU_ADDR")
             or Path("/dev/accel0").exists())
  jax_build = ["jax[tpu]"] if tpu else ["jax[cuda]"] if shutil.which("nvidia-smi") else []
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{clone}[train]", *jax_build],
                 check=True)
  os.chdir(clone / "notebooks")
  import jax

  print("devices:", jax.devices())
ROOT = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "train" / "configs").is_dir()), None)
if ROOT is not None and str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

# %% tags=["parameters"]
size = "quick"  # tiny (CI) | quick (a 2-core CPU, minutes) | full (GPU/TPU runtime, hours)
work_dir = ""  # checkpoints and the smoothing cache; "" = notebooks/_work (or Google Drive, below)
save_to_drive = False  # Colab: keep the workdirs in Google Drive, so they outlive the runtime
progress = False  # tqdm progress bars
# Training sizes: overrides of a train/configs preset (the same table in notebooks 02-04, so that 03 and
# 04 find, or else train, the same checkpoints). Batch sizes are multiples of 8, so one table runs on 1,
# 2, 4 or 8 devices: train_and_evaluate splits every batch over all local devices and needs it divisible.
TRAIN = {
    "tiny": dict(preset="quick", dataset="cifar10_sample", train_limit=256, test_limit=128, epochs=2,
                 batch_size=64, eval_batch_size=128),
    "quick": dict(preset="quick", dataset="cifar10_sample", batch_size=96, eval_batch_size=256),
    "full": dict(preset="paper", dataset="auto", eval_batch_size=512),  # "auto": TFDS CIFAR-10 if online
}

# %%
import json
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from iss_jax.robustness import device_description, markdown_table
from iss_jax.training import DatasetNotFoundError, load_classifier, load_dataset, train_and_evaluate
from train.configs import fixed, iterative, vanilla

plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": "figure", "axes.titlesize": 10, "font.size": 9})
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
if save_to_drive and "google.colab" in sys.modules:
  from google.colab import drive

  drive.mount("/content/drive")
  work_dir = work_dir or "/content/drive/MyDrive/iss-jax-notebooks"
WORK = Path(work_dir or "_work")
print(f"size={size!r}: {TRAIN[size]}; workdirs under {WORK}/{size}/")
print(f"{device_description()}; jax.devices() = {jax.devices()}")

# %% [markdown]
# ## Devices and data
#
# Training is data parallel over `jax.devices()`: the library builds a one-axis `jax.sharding.Mesh`
# over all local devices, shards every batch along it and replicates the parameters, so the same call uses
# one CPU, one GPU, or the **8 cores of a Colab TPU** (each core then gets an eighth of the batch). On
# GPU/TPU the training images are smoothed by the pure-XLA scheduler instead of the CPU kernel (same
# images). The data: TFDS CIFAR-10 when `dataset="auto"` and it can be downloaded, else the 1,000 train /
# 500 test real CIFAR-10 images shipped with the package (`cifar10_sample`, offline).

# %%
DATASET = TRAIN[size]["dataset"]
if DATASET == "auto":
  try:
    load_dataset("cifar10", "test")
    DATASET = "cifar10"
  except (DatasetNotFoundError, ImportError, OSError) as e:  # offline, or no tensorflow-datasets
    print(f"TFDS CIFAR-10 is not available ({type(e).__name__}: {str(e)[:200]}); using the shipped sample.")
    DATASET = "cifar10_sample"
print("dataset:", DATASET)


def make_config(module, **changes):
  """A train/configs config at this notebook's size; `changes` override any field."""
  sizes = dict(TRAIN[size])
  config = module.get_config(sizes.pop("preset"))
  config.update(sizes)
  config.update(dataset=DATASET, cache_dir=str(WORK / "cache"), progress=progress, **changes)
  return config


config = make_config(fixed)
print("fixed config at this size:", {k: config[k] for k in (
    "dataset", "train_limit", "test_limit", "model", "epochs", "batch_size", "eval_batch_size",
    "learning_rate", "sparsity", "cache_dir")})

# %% [markdown]
# ## Vanilla, fixed and iterative training
#
# Each call prints one line per epoch and returns a summary (also in `<workdir>/summary.json`). A workdir
# that already holds the final checkpoint is not trained again: re-running the notebook resumes, or does
# nothing. The fixed run is first **interrupted** (`stop_after_steps` simulates a kill in the middle of
# an epoch) and then resumed from its last checkpoint by the same call without the stop.

# %%
summaries = {}
t0 = time.perf_counter()
summaries["vanilla"] = train_and_evaluate(make_config(vanilla), WORK / size / "vanilla")
print(f"vanilla: {time.perf_counter() - t0:.0f} s")

# %%
config = make_config(fixed)
steps_per_epoch = summaries["vanilla"]["num_train"] // config.batch_size
kill_at = steps_per_epoch * max(1, config.epochs // 2) + steps_per_epoch // 2
t0 = time.perf_counter()
interrupted = train_and_evaluate(make_config(fixed, stop_after_steps=kill_at), WORK / size / "fixed")
print(f"\ninterrupted at step {kill_at}: {interrupted['epochs_done']} of {config.epochs} epochs in "
      f"metrics.jsonl, completed={interrupted['completed']}")
print("checkpoints on disk (one per epoch, the last", config.keep_checkpoints, "kept):",
      sorted(p.name for p in (WORK / size / "fixed" / "checkpoints").iterdir() if p.name.isdigit()))
print("\nresuming with the same config, no stop:")
summaries["fixed"] = train_and_evaluate(config, WORK / size / "fixed")
print(f"fixed: {time.perf_counter() - t0:.0f} s (both calls)")

# %%
t0 = time.perf_counter()
summaries["iterative"] = train_and_evaluate(make_config(iterative), WORK / size / "iterative")
print(f"iterative: {time.perf_counter() - t0:.0f} s")

# %%
rows = [[name, ", ".join(f"{v:g}" for v in s["sparsity_schedule"]), f"{s['epochs_done']}/{s['epochs']}",
         100 * s["final_test_accuracy"], 100 * s["best_test_accuracy"], f"{s['wall_time_s']:.0f}",
         s["devices"]] for name, s in summaries.items()]
s = summaries["vanilla"]
display(Markdown(f"{s['model']} ({s['num_params']:,} parameters) on {s['dataset']} ({s['num_train']:,} train "
                 f"/ {s['num_test']:,} test images), {device_description()}:\n\n" + markdown_table(
                     ["procedure", "sparsities", "epochs", "final test acc. (%)", "best (%)",
                      "wall time of the call (s)", "devices"], rows)))
for name, s in summaries.items():
  if s.get("smoothing"):  # one smooth_path run per training image, cached under cache_dir
    info = s["smoothing"]
    print(f"{name}: training images smoothed at {info['sparsities']}; mean Split LBI steps "
          f"{[round(v) for v in info['mean_steps']]}; images capped at maxiter {info['capped']}")

# %% [markdown]
# ## Curves
#
# From each workdir's `metrics.jsonl` (one JSON object per epoch; TensorBoard summaries too when
# `tensorboardX` or PyTorch is installed). The resumed fixed run has one row per epoch, as if it had never
# been interrupted.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for name in summaries:
  rows = [json.loads(line) for line in (WORK / size / name / "metrics.jsonl").read_text().splitlines()]
  epoch = [r["epoch"] for r in rows]
  axes[0].plot(epoch, [r["train_loss"] for r in rows], marker=".", label=name)
  axes[1].plot(epoch, [100 * r["test_accuracy"] for r in rows], marker=".", label=name)
  axes[2].step(epoch, [r["sparsity"] for r in rows], where="mid", label=name)
axes[0].set(xlabel="epoch", ylabel="training loss", title="Training loss (on each run's training images)")
axes[1].set(xlabel="epoch", ylabel="test accuracy (%)", title="Clean test accuracy")
axes[2].set(xlabel="epoch", ylabel="sparsity (1 = clean)", title="Sparsity of the training images",
            ylim=(0, 1.05))
for ax in axes:
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A checkpoint as a classifier
#
# `load_classifier(workdir)` restores the latest checkpoint and returns `apply_fn`, a jittable,
# differentiable function from `(N, H, W, C)` images in `[0, 1]` to logits (BatchNorm in inference mode),
# and the config that trained it. This is what notebooks 03 and 04 attack and evaluate.

# %%
print(sorted(p.name for p in (WORK / size / "fixed").iterdir()))
apply_fn, trained_config = load_classifier(WORK / size / "fixed")
x_test, y_test = load_dataset(trained_config.dataset, "test")
x = x_test[:16]
pred = np.asarray(jax.jit(apply_fn)(x.astype(np.float32) / 255.0).argmax(-1))
fig, axes = plt.subplots(2, 8, figsize=(12, 4.0), layout="constrained")
for ax, img, p, t in zip(axes.ravel(), x, pred, y_test[:16], strict=True):
  ax.imshow(img, interpolation="nearest")
  ax.set_title(f"{CLASSES[p]}\n(true: {CLASSES[t]})", color="tab:green" if p == t else "tab:red", fontsize=8)
  ax.axis("off")
fig.suptitle(f"The fixed model (trained at sparsity {trained_config.sparsity:g}) on the first 16 test "
             f"images: {int((pred == y_test[:16]).sum())}/16 right")
plt.show()

# %% [markdown]
# ## Keeping the workdirs
#
# On Colab the runtime's disk is wiped when it ends. Set `save_to_drive = True` in the parameters cell:
# the workdirs (checkpoints, metrics, the smoothing cache) are then written to
# `MyDrive/iss-jax-notebooks` and a later session resumes from them; pass the same `work_dir` to
# notebooks 03 and 04. From a shell, the same runs are
# `python -m train.fixed --sparsity=0.6 --workdir=workdirs/fixed` (see the README's Training section).
