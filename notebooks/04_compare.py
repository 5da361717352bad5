# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Defenses side by side
#
# One row per (checkpoint, test-time defense), one column per evaluation: clean accuracy, CIFAR-10-C
# corruptions, low resolution, and FGSM / PGD, each both non-adaptive (attack the bare network, then
# defend: the paper's protocol) and adaptive (the per-example worst case of that and an attack through
# the defense). Every row is one call of `iss_jax.robustness.evaluate_defense`, the library function behind
# `python -m eval.compare`; a defense is one value (`iss_jax.baselines.make_defense("tv@0.05")`), so
# adding a competitor is adding one row.
#
# How each defense is attacked adaptively: ISS smoothing through BPDA (straight-through identity); TV
# (Chambolle, unrolled) and the Gaussian low-pass through their exact gradients; SPLIC (random low-rank
# completion) through BPDA averaged over random draws (EOT). Judge a random defense by its adaptive
# column only. As in notebook 03, on a GPU/TPU runtime the smoothing runs the pure-XLA scheduler and the
# evaluations run on the default device.

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
size = "quick"  # tiny (CI) | quick (a 2-core CPU, minutes) | full (GPU/TPU runtime)
work_dir = ""  # where notebook 02 wrote its workdirs; "" = notebooks/_work
progress = False  # tqdm progress bars
# Training sizes (the same table as notebook 02, used only when a checkpoint is missing).
TRAIN = {
    "tiny": dict(preset="quick", dataset="cifar10_sample", train_limit=256, test_limit=128, epochs=2,
                 batch_size=64, eval_batch_size=128),
    "quick": dict(preset="quick", dataset="cifar10_sample", batch_size=96, eval_batch_size=256),
    "full": dict(preset="paper", dataset="auto", eval_batch_size=512),  # "auto": TFDS CIFAR-10 if online
}
# Evaluation sizes: test images, PGD steps, EOT draws per step (SPLIC), corruptions at severity 3
# ("paper": the seven of the paper's table), low-resolution sizes, held-out images for the TV weight,
# SPLIC gradient steps per pass (70 = the paper's setting), the rows below to run (tiny: one per kind of
# gradient an adaptive attack gets: none, BPDA, exact; every row compiles its own attacks).
EVAL = {
    "tiny": dict(images=16, pgd_steps=1, eot_samples=1, corruptions=[], low_res=[], tv_select_images=32,
                 splic_maxiter=7, rows=["vanilla", "ISS fixed + ISS smoothing", "vanilla + TV"]),
    "quick": dict(images=200, pgd_steps=10, eot_samples=4, corruptions="paper", low_res=[16, 8],
                  tv_select_images=256, splic_maxiter=70, rows="all"),
    "full": dict(images=1000, pgd_steps=20, eot_samples=8, corruptions="paper", low_res=[16, 8],
                 tv_select_images=512, splic_maxiter=70, rows="all"),
}

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from iss_jax.baselines import make_defense, select_tv_weight
from iss_jax.robustness import PAPER_CORRUPTIONS, device_description, evaluate_defense, markdown_table
from iss_jax.training import DatasetNotFoundError, load_classifier, load_dataset, train_and_evaluate
from train.configs import fixed, vanilla

plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": "figure", "axes.titlesize": 10, "font.size": 9})
E = EVAL[size]
WORK = Path(work_dir or "_work")
PROCEDURES = {"vanilla": vanilla, "fixed": fixed}
EPS = 8 / 255


def trained(procedure):
  """The workdir of notebook 02's run of `procedure` at this size; trains it if it is not finished."""
  workdir = WORK / size / procedure
  if not (workdir / "summary.json").exists():
    print(f"{workdir}: no finished run; training it as notebook 02 does.")
    sizes = dict(TRAIN[size])
    config = PROCEDURES[procedure].get_config(sizes.pop("preset"))
    config.update(sizes)
    if config.dataset == "auto":
      try:
        load_dataset("cifar10", "test")
        config.dataset = "cifar10"
      except (DatasetNotFoundError, ImportError, OSError):
        config.dataset = "cifar10_sample"
    config.update(cache_dir=str(WORK / "cache"), progress=progress)
    train_and_evaluate(config, workdir)
  return workdir


classifiers = {name: load_classifier(trained(name)) for name in PROCEDURES}
config = classifiers["vanilla"][1]
x_test, y_test = load_dataset(config.dataset, "test", config.data_dir or None)
x_train, _ = load_dataset(config.dataset, "train", config.data_dir or None)
x, y = x_test[:E["images"]], y_test[:E["images"]]
print(f"{len(x)} {config.dataset} test images; {device_description()}")

# %% [markdown]
# ## The TV weight, chosen on held-out images
#
# `eval.compare`'s `tv@auto`: the weight with the best mean PSNR on held-out **training** images with
# Gaussian noise of std 8/255 (never the test images the defense is then scored on).

# %%
sel = select_tv_weight(x_train[:E["tv_select_images"]].astype(np.float32) / 255.0,
                       [0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12], noise_std=8 / 255, iters=50)
print(f"TV weight {sel['weight']:g}; mean PSNR per weight: "
      + ", ".join(f"{w:g}: {p:.2f} dB" for w, p in zip(sel["weights"], sel["psnr"], strict=True))
      + f" (noisy input {sel['psnr_noisy']:.2f} dB)")

# %% [markdown]
# ## One row per checkpoint and defense

# %%
ROWS = [  # (label, checkpoint, defense)
    ("vanilla", "vanilla", "none"),
    ("vanilla + ISS smoothing", "vanilla", "smooth@0.6"),
    ("ISS fixed + ISS smoothing", "fixed", "smooth@0.6"),
    ("vanilla + TV", "vanilla", f"tv@{sel['weight']:g}"),
    ("vanilla + Gaussian low-pass", "vanilla", "lowpass@1"),
    ("vanilla + SPLIC", "vanilla", "splic@8"),
]
ROWS = [row for row in ROWS if E["rows"] == "all" or row[0] in E["rows"]]
corruptions = list(PAPER_CORRUPTIONS) if E["corruptions"] == "paper" else E["corruptions"]
results = []
for label, ckpt, spec in ROWS:
  t0 = time.perf_counter()
  defense = make_defense(spec, tv_iters=50, splic_maxiter=E["splic_maxiter"])
  res = evaluate_defense(classifiers[ckpt][0], x, y, defense, eps=EPS,
                         pgd_steps=E["pgd_steps"], eot_samples=E["eot_samples"], corruptions=corruptions,
                         severities=(3,), low_res_sizes=E["low_res"], progress=progress)
  results.append({"label": label, "checkpoint": ckpt, **res})
  raised = [c["check"] for c in res["checks"] if not c["ok"]]  # gradient-masking flags and sanity checks
  print(f"{label:<28} {res['defense']:<12} {time.perf_counter() - t0:6.1f} s; "
        + (f"FLAGS RAISED: {'; '.join(raised)}" if raised else f"none of {len(res['checks'])} checks raised"))

# %%
TITLES = {"clean": "clean", "corruptions": "corrupt. (sev. 3)", "fgsm": "FGSM",
          "fgsm_adaptive": "FGSM adapt.", "pgd": "PGD", "pgd_adaptive": "PGD adapt."}
columns = [c for c in ("clean", "corruptions", *[f"lowres{s}" for s in E["low_res"]], "fgsm", "fgsm_adaptive",
                       "pgd", "pgd_adaptive") if c in results[0]["accuracy"]]
title = lambda c: TITLES.get(c, c.replace("lowres", "low-res "))
display(Markdown(
    f"Accuracy (%) on {len(x)} test images; attacks at L-inf ε = 8/255, PGD {E['pgd_steps']} steps; "
    f"corruptions: mean over {len(corruptions)} types at severity 3.\n\n" + markdown_table(
        ["row", "checkpoint", "defense", *map(title, columns)],
        [[r["label"], r["checkpoint"], r["defense"]] + [100 * r["accuracy"][c] for c in columns]
         for r in results])))
print(f"The attack behind each number of the last row ({results[-1]['label']}):")
for c in columns:
  print(f"  {title(c)}: {results[-1]['attacks'][c]}")

# %%
values = 100 * np.array([[r["accuracy"][c] for c in columns] for r in results])
fig, ax = plt.subplots(figsize=(1.05 * len(columns) + 3.5, 0.5 * len(results) + 1.6))
im = ax.imshow(values, cmap="viridis", vmin=0, vmax=max(values.max(), 1), aspect="auto")
for (i, j), v in np.ndenumerate(values):
  ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="white" if v < 0.6 * values.max() else "black")
ax.set_xticks(range(len(columns)), [title(c) for c in columns], rotation=25, ha="right")
ax.set_yticks(range(len(results)), [f"{r['label']} ({r['defense']})" for r in results])
ax.axvline(columns.index("fgsm") - 0.5, color="white", lw=3)  # clean, corruptions, low-res | attacks
fig.colorbar(im, ax=ax, label="accuracy (%)", fraction=0.03)
ax.set_title(f"Defenses x evaluations, {len(x)} test images, attacks at ε = 8/255 (adapt. = worst of "
             "gray-box and adaptive)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The same table from a shell, with the rows cached so that an interrupted run resumes:
#
# ```bash
# python -m eval.compare --row=vanilla=workdirs/vanilla --row=iss=workdirs/fixed_s0.6:smooth@0.6 \
#     --row=tv=workdirs/vanilla:tv@auto --row=lowpass=workdirs/vanilla:lowpass@1 \
#     --row=splic=workdirs/vanilla:splic@8
# ```
