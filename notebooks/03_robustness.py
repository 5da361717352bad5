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
# # 03 · Robustness of a trained checkpoint
#
# A model trained on ISS-smoothed images (notebook 02's `fixed` run), with ISS smoothing in front of it at
# test time, under:
#
# 1. **FGSM and PGD**: the paper's protocol, an adaptive attack, and the per-example worst case of the two;
# 2. **CIFAR-10-C** corruptions;
# 3. **low resolution** (down-sampled, then up-sampled);
# 4. the **frequency analysis**: accuracy on the low- and high-frequency parts of the images, and where in
#    the spectrum smoothing and PGD change an image.
#
# Every evaluation is one `iss_jax.robustness` function of `(apply_fn, x, y)` and a list of defenses; the
# `python -m eval.<name>` commands print the same tables from a shell. The checkpoint comes from notebook
# 02's workdir; if it is missing, this notebook trains it (same sizes table).
#
# On a GPU or TPU runtime the smoothing inside the defense runs the pure-XLA scheduler (on CPU: the C++
# kernel; same images), and the evaluations run in jitted batches on the default device: one of the 8
# cores of a Colab TPU (the runner does not shard over devices).

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
checkpoint = "fixed"  # the model to evaluate: vanilla | fixed | iterative (a workdir of notebook 02)
defense_sparsity = 0.6  # ISS smoothing in front of the model at test time
progress = False  # tqdm progress bars
# Training sizes (the same table as notebook 02, used only when a checkpoint is missing).
TRAIN = {
    "tiny": dict(preset="quick", dataset="cifar10_sample", train_limit=256, test_limit=128, epochs=2,
                 batch_size=64, eval_batch_size=128),
    "quick": dict(preset="quick", dataset="cifar10_sample", batch_size=96, eval_batch_size=256),
    "full": dict(preset="paper", dataset="auto", eval_batch_size=512),  # "auto": TFDS CIFAR-10 if online
}
# Evaluation sizes: test images, L-inf radii (in 1/255), PGD steps, corruptions ("paper": the seven of the
# paper's table) and severities, low-resolution sizes, frequency cut-off radii.
EVAL = {
    "tiny": dict(images=32, eps=[8], pgd_steps=3, corruptions=["gaussian_noise"], severities=[3],
                 low_res=[8], radii=[4, 8]),
    "quick": dict(images=200, eps=[1, 2, 4, 8, 16], pgd_steps=10, corruptions="paper",
                  severities=[1, 2, 3, 4, 5], low_res=[28, 24, 20, 16, 12, 8], radii=[2, 4, 8, 12, 16]),
    "full": dict(images=2000, eps=[1, 2, 4, 8, 16], pgd_steps=20, corruptions="paper",
                 severities=[1, 2, 3, 4, 5], low_res=[28, 24, 20, 16, 12, 8], radii=[2, 4, 8, 12, 16]),
}

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import iss_jax
from iss_jax.robustness import (
  PAPER_CORRUPTIONS,
  device_description,
  evaluate_adversarial,
  evaluate_corruptions,
  evaluate_frequency,
  evaluate_low_resolution,
  fourier_difference,
  markdown_table,
  pgd,
  smoothing_defense,
)
from iss_jax.training import DatasetNotFoundError, load_classifier, load_dataset, train_and_evaluate
from train.configs import fixed, iterative, vanilla

plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": "figure", "axes.titlesize": 10, "font.size": 9})
E = EVAL[size]
WORK = Path(work_dir or "_work")
PROCEDURES = {"vanilla": vanilla, "fixed": fixed, "iterative": iterative}


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


apply_fn, config = load_classifier(trained(checkpoint))
x_test, y_test = load_dataset(config.dataset, "test", config.data_dir or None)
x, y = x_test[:E["images"]], y_test[:E["images"]]
defense = smoothing_defense(defense_sparsity)
eps_grid = [e / 255 for e in E["eps"]]
print(f"{checkpoint} model ({config.model}, {config.procedure} training on {config.dataset}); "
      f"{len(x)} test images; defense {defense.name}; {device_description()}")

# %% [markdown]
# ## 1. FGSM and PGD
#
# Three numbers per attack and radius for the defended model:
#
# * **gray-box** (the paper's protocol): attack the bare network, then smooth the adversarial image;
# * **adaptive**: attack the whole pipeline `model(smooth(x))`; smoothing has no useful gradient, so the
#   attacker uses BPDA (the straight-through identity, `Defense.gradient == "bpda"`);
# * **worst**: per image, broken if either attack breaks it: the number to quote.
#
# The bare network (no defense) is attacked white-box. `adversarial_sanity_checks` runs on the result:
# PGD must drive the bare model to ~0 at large radius, never be weaker than FGSM, and the adaptive
# attack never weaker than the gray-box one; a failed check is a reason to distrust the table.
#
# **Caveat (obfuscated gradients).** Smoothing is a piecewise-constant, non-differentiable projection, so a
# gradient attack on the bare network overstates robustness, which is the false sense of security that
# Athalye et al. (2018) call obfuscated gradients. The adaptive BPDA attack is the minimum check, and the
# per-example worst case is a lower bound on the attack's success, not a certificate of robustness.

# %%
adv = evaluate_adversarial(apply_fn, x, y, eps_grid=eps_grid, defenses=[defense], steps=E["pgd_steps"],
                           progress=progress)
acc = {(r["attack"], round(r["eps"] * 255), r["protocol"]): r["accuracy"] for r in adv["rows"]}
protocols = ["none", "gray-box", "adaptive", "worst"]
table = [[attack.upper(), f"{e}/255"] + [100 * acc[(attack, e, p)] for p in protocols]
         for attack in ("fgsm", "pgd") for e in E["eps"]]
display(Markdown(
    f"Accuracy (%) on {len(x)} test images; clean: bare {100 * adv['clean']['none']:.1f}%, "
    f"{defense.name} {100 * adv['clean'][defense.name]:.1f}%. PGD: {E['pgd_steps']} steps of "
    f"2.5·ε/{E['pgd_steps']}, random start.\n\n" + markdown_table(
        ["attack", "ε", "bare model", f"{defense.name}: gray-box (paper)", "adaptive (BPDA)", "worst case"],
        table)))
failed = [c for c in adv["checks"] if not c["ok"]]
print(f"sanity checks: {len(adv['checks']) - len(failed)} of {len(adv['checks'])} passed")
for c in failed:
  print("FAILED:", c["check"], "-", c["detail"])

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
styles = {"none": ("bare model", "k", "-"), "gray-box": ("gray-box (paper)", "tab:blue", "--"),
          "adaptive": ("adaptive (BPDA)", "tab:orange", "-."), "worst": ("worst case", "tab:red", "-")}
for ax, attack in zip(axes, ("fgsm", "pgd"), strict=True):
  for p, (label, color, ls) in styles.items():
    clean = adv["clean"]["none" if p == "none" else defense.name]
    ax.plot([0, *E["eps"]], [100 * clean] + [100 * acc[(attack, e, p)] for e in E["eps"]], ls, color=color,
            marker="o", ms=4, label=label if p == "none" else f"{defense.name}, {label}")
  ax.set(xlabel="L-inf radius ε (/255)", title=f"{attack.upper()} on the {checkpoint} model", ylim=(0, None))
  ax.grid(alpha=0.3)
axes[0].set_ylabel("accuracy (%)")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. CIFAR-10-C corruptions
#
# By default an offline, seeded generator with the CIFAR parameters of Hendrycks' `make_cifar_c.py`
# ("CIFAR-10-C-style"); `source="npy"` with `cifar10c_dir=` reads the official files, `source="tfds"` reads
# TFDS's `cifar10_corrupted`.

# %%
names = list(PAPER_CORRUPTIONS) if E["corruptions"] == "paper" else E["corruptions"]
corr = evaluate_corruptions(apply_fn, x, y, names=names, severities=E["severities"], defenses=[defense],
                            progress=progress)
models = {"none": "bare model", defense.name: defense.name}
table = [[n] + [100 * corr["mean_over_severities"][n][d] for d in models] for n in names]
table.append(["**mean**"] + [100 * corr["mean"][d] for d in models])
display(Markdown(f"Accuracy (%), {corr['source']}, mean over severities {E['severities']}:\n\n"
                 + markdown_table(["corruption", *models.values()], table)))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1.6]})
for d, label in models.items():
  ax1.plot([0, *E["severities"]], [100 * corr["clean"][d]] + [100 * corr["mean_over_types"][str(s)][d]
                                                              for s in E["severities"]], "o-", label=label)
top = 1.3 * 100 * max(corr["clean"].values())  # head room for the legends
ax1.set(xlabel="severity (0 = clean)", ylabel="accuracy (%)", title=f"Mean over {len(names)} corruption(s)",
        ylim=(0, top))
ax1.legend(fontsize=8, loc="upper right")
ax1.grid(alpha=0.3)
width = 0.38
for i, (d, label) in enumerate(models.items()):
  ax2.bar(np.arange(len(names)) + (i - 0.5) * width,
          [100 * corr["mean_over_severities"][n][d] for n in names], width, label=label)
ax2.set_xticks(np.arange(len(names)))
ax2.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=8)
ax2.set(ylabel="accuracy (%)", title="Per corruption, mean over severities", ylim=(0, top))
ax2.grid(axis="y", alpha=0.3)
ax2.legend(fontsize=8, loc="upper center", ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Low resolution
#
# Each image is down-sampled to `size x size` (linear, anti-aliased) and up-sampled back to 32x32 by
# nearest neighbour, which leaves blocky, piecewise-constant images, close to what smoothing produces
# (paper Sec. 4.4).

# %%
low = evaluate_low_resolution(apply_fn, x, y, sizes=E["low_res"], defenses=[defense], progress=progress)
fig, ax = plt.subplots(figsize=(6, 3.4))
sizes = [32, *E["low_res"]]
for d, label in models.items():
  ax.plot(sizes, [100 * low["clean"][d]] + [100 * low["accuracy"][str(s)][d] for s in E["low_res"]], "o-",
          label=label)
ax.set(xlabel="resolution (pixels; 32 = original)", ylabel="accuracy (%)",
       title=f"Low-resolution test images, {checkpoint} model", ylim=(0, None))
ax.invert_xaxis()
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 4. Frequency analysis
#
# `frequency_split(x, r)` keeps the Fourier coefficients within radius `r` of the centre (low) or outside
# it (high). The paper's claim (Sec. 4.3, Tables 9-10): a model trained on smoothed images relies more on
# the low-frequency part, which is where natural-image content is and where small perturbations are not.
# The *low-frequency fraction* is the share of correctly classified images that stay correct from their
# low-frequency part alone. Both notebook 02 models are compared, bare.

# %%
compare = ["vanilla", checkpoint] if checkpoint != "vanilla" else ["vanilla", "fixed"]
freq = {}
for name in compare:
  fn, _ = load_classifier(trained(name))
  freq[name] = evaluate_frequency(fn, x, y, radii=E["radii"])
display(Markdown(markdown_table(
    ["model", "clean"] + [f"low r={r}" for r in E["radii"]] + [f"high r={r}" for r in E["radii"]],
    [[n, 100 * f["clean"]] + [100 * f["low"][str(r)] for r in E["radii"]]
     + [100 * f["high"][str(r)] for r in E["radii"]] for n, f in freq.items()])))

# Where in the spectrum smoothing and a PGD attack change the images (Yin et al. 2019; the paper's Fig. 6).
xf = jnp.asarray(x, jnp.float32) / 255.0
x_adv = jax.jit(lambda v, t, k: pgd(apply_fn, v, t, eps=8 / 255, step_size=2.5 * (8 / 255) / E["pgd_steps"],
                                    steps=E["pgd_steps"], key=k))(xf, jnp.asarray(y), jax.random.key(0))
maps = {f"smoothing at {defense_sparsity:g}": fourier_difference(iss_jax.smooth(xf, defense_sparsity), xf),
        "PGD perturbation, 8/255": fourier_difference(x_adv, xf)}

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1.3, 1, 1]},
                         layout="constrained")
for name, f in freq.items():
  line, = axes[0].plot(E["radii"], [100 * f["low"][str(r)] for r in E["radii"]], "o-",
                       label=f"{name}: low part")
  axes[0].plot(E["radii"], [100 * f["high"][str(r)] for r in E["radii"]], "s--", color=line.get_color(),
               label=f"{name}: high part")
axes[0].set(xlabel="cut-off radius r (frequency samples)", ylabel="accuracy (%)",
            title="Accuracy on the low / high-frequency part", ylim=(0, None))
axes[0].grid(alpha=0.3)
axes[0].legend(fontsize=7)
logs = {name: np.log10(np.asarray(m) + 1e-6) for name, m in maps.items()}
lo, hi = np.percentile(np.concatenate([v.ravel() for v in logs.values()]), [1, 99.5])  # one shared scale
for ax, (name, m) in zip(axes[1:], logs.items(), strict=True):
  im = ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi)
  ax.set_title(f"{name}\nlog10 E|F(x') - F(x)|")
  ax.set_xticks([0, 16, 31], ["-16", "0", "15"])
  ax.set_yticks([0, 16, 31], ["-16", "0", "15"])
  ax.set_xlabel("horizontal frequency")
axes[1].set_ylabel("vertical frequency")
fig.colorbar(im, ax=axes[1:], fraction=0.03, label="log10 magnitude (shared scale)")
plt.show()
