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
# # 01 · ISS smoothing: what it does and how to call it
#
# `iss_jax.smooth(x, sparsity)` runs the Split Linearized Bregman Iteration (Split LBI) of *Visual semantic
# learning via inverse scale space* on each image, from a constant image towards the input, and stops it
# at the first step where a fraction `sparsity` of the 4-neighbour edges is active. The active edges cut
# the image into connected components; each component is replaced by its mean (Prop. 3.1). Small
# sparsity keeps only large-scale structure; sparsity 1 returns the input.
#
# This notebook shows:
#
# 1. the image path at several sparsities from **one** run (the paper's Fig. 10), on a Kodak photograph
#    and on CIFAR-10 test images;
# 2. edge sparsity and the number of components along the iterations;
# 3. ISS beside total-variation denoising (Chambolle) and a Gaussian low-pass **at the same PSNR**;
# 4. the denoising PSNR histogram of App. K;
# 5. `jit`, `vmap` and `grad` (BPDA and unrolled) usage;
# 6. the speed on the device this runtime has, with the device named.
#
# Sizes: the `parameters` cell below holds a table; `size = "tiny"` is what CI runs, `"quick"` made the
# outputs you see (2-core CPU), `"full"` is for a GPU/TPU runtime.

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
SIZES = {
    # kodak_side: the photograph is resized to this many pixels square (the originals are 500x500).
    # cifar_images: CIFAR-10 test images in the path figures; trajectory_steps: LBI steps traced in section 2.
    # denoise_images: test images in the App. K histogram; bench_images / reference_images: speed section.
    # unrolled_maxiter: step cap (= steps run) of the exact gradient in section 5.
    # xla_on_cpu: also time the XLA scheduler when running on CPU (its compile takes ~10 s).
    "tiny": dict(kodak_side=64, cifar_images=3, trajectory_steps=2000, denoise_images=24, bench_images=64,
                 reference_images=1, unrolled_maxiter=400, xla_on_cpu=False),
    "quick": dict(kodak_side=256, cifar_images=5, trajectory_steps=12000, denoise_images=500,
                  bench_images=500, reference_images=4, unrolled_maxiter=3000, xla_on_cpu=True),
    "full": dict(kodak_side=500, cifar_images=8, trajectory_steps=20000, denoise_images=500,
                 bench_images=4096, reference_images=8, unrolled_maxiter=8000, xla_on_cpu=True),
}

# %%
import functools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from PIL import Image

import iss_jax
from iss_jax.baselines import gaussian_lowpass, tv_denoise
from iss_jax.robustness import device_description, evaluate_denoise, markdown_table
from iss_jax.training import load_dataset

S = SIZES[size]
plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": "figure", "axes.titlesize": 10, "font.size": 9})
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
print(f"size={size!r}: {S}")
print("device:", device_description())

# %% [markdown]
# ## Images
#
# A Kodak photograph (kodim23, from the Kodak24 set in the project's shared data folder; `$ISS_JAX_DATA_DIR`
# or `data/` beside the repository work too). A fresh clone or Colab does not have it: the notebook then
# uses a CIFAR-10 test image instead. CIFAR-10: the 500 real test images shipped with the package.

# %%
x_test, y_test = load_dataset("cifar10_sample", "test")
x_train, _ = load_dataset("cifar10_sample", "train")
folders = [Path(os.environ["ISS_JAX_DATA_DIR"])] if "ISS_JAX_DATA_DIR" in os.environ else []
if ROOT is not None:
  folders += [ROOT.parent / "shared" / "data", ROOT / "data"]
kodak = next((f / "Kodak24" / "kodim23.png" for f in folders if (f / "Kodak24" / "kodim23.png").exists()),
             None)
if kodak is not None:
  side = S["kodak_side"]
  photo = np.asarray(Image.open(kodak).convert("RGB").resize((side, side), Image.LANCZOS))
  photo_name = f"Kodak kodim23, resized to {side}x{side}"
else:
  photo, photo_name = x_test[3], f"CIFAR-10 test image 3 ({CLASSES[y_test[3]]}; no Kodak images here)"
photo = jnp.asarray(photo, jnp.float32) / 255.0
cifar = jnp.asarray(x_test[:S["cifar_images"]], jnp.float32) / 255.0
print(photo_name, photo.shape, "| CIFAR-10:", cifar.shape)

# %% [markdown]
# ## 1. The image path from one run (Fig. 10)
#
# `smooth_path(x, sparsities)` runs Split LBI **once** per image and projects the iterate at the first
# step reaching each target: `out[j] == smooth(x, sparsities[j])`, for the cost of the largest target.
# `return_info=True` adds the step at which each target was reached (and whether `maxiter` capped it).

# %%
levels = [0.05, 0.1, 0.2, 0.4, 0.6, 0.8]
t0 = time.perf_counter()
path, info = iss_jax.smooth_path(photo, levels, return_info=True)
path.block_until_ready()
print(f"{photo_name}: one run to sparsity {levels[-1]} in {time.perf_counter() - t0:.1f} s; steps "
      f"{info.steps.tolist()}, capped {info.capped.tolist()}")

fig, axes = plt.subplots(1, len(levels) + 1, figsize=(2.1 * (len(levels) + 1), 2.5), dpi=100)
titles = ["input"] + [f"sparsity {s:g}\n({int(k):,} steps)" for s, k in zip(levels, info.steps, strict=True)]
for ax, img, title in zip(axes, [photo, *path], titles, strict=True):
  ax.imshow(np.clip(np.asarray(img), 0, 1), interpolation="nearest")
  ax.set_title(title)
  ax.axis("off")
fig.suptitle(f"ISS image path, one Split LBI run: {photo_name}", y=1.02)
plt.show()

# %%
cifar_path = iss_jax.smooth_path(cifar, levels)  # (P, N, 32, 32, 3)
n = cifar.shape[0]
fig, axes = plt.subplots(n, len(levels) + 1, figsize=(1.45 * (len(levels) + 1), 1.5 * n), squeeze=False)
for i in range(n):
  for j, img in enumerate([cifar[i], *cifar_path[:, i]]):
    axes[i, j].imshow(np.clip(np.asarray(img), 0, 1), interpolation="nearest")
    axes[i, j].set_xticks([])
    axes[i, j].set_yticks([])
    if i == 0:
      axes[i, j].set_title("input" if j == 0 else f"s = {levels[j - 1]:g}")
  axes[i, 0].set_ylabel(CLASSES[y_test[i]])
fig.suptitle("CIFAR-10 test images along the path (32x32)", y=1.0)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Sparsity and components along the iterations
#
# The solver pieces are public: `lbi_params`, `lbi_init`, `lbi_step` (one step of Eq. 3), `lbi_support`
# (the active edges, where `g != 0`) and `connected_components`. Below, a `lax.scan` records the edge
# sparsity and the number of components of the inactive-edge graph every few steps, for each CIFAR image.
# Nothing happens for the first few hundred steps (the dual variables `z` grow until the strongest edges
# cross the threshold); then sparsity rises over a few thousand steps, strong edges first (inverse scale
# space), and slowly after that. The number of components leaves one as soon as active edges close into a
# cut, and approaches the 1,024 pixels as the image returns.

# %%
@functools.partial(jax.jit, static_argnames=("steps", "every"))
def trajectory(img, *, steps, every=20):
  """Edge sparsity and component count every `every` Split LBI steps of one (H, W, C) image."""
  h, w, _ = img.shape
  params = iss_jax.lbi_params(h, w)

  def chunk(state, _):
    state = jax.lax.fori_loop(0, every, lambda _, s: iss_jax.lbi_step(s, img, params), state)
    labels, _ = iss_jax.connected_components(~iss_jax.lbi_support(state.z))
    components = jnp.sum(labels.ravel() == jnp.arange(h * w))  # one root label per component
    return state, (state.k, state.sparsity, components)

  return jax.lax.scan(chunk, iss_jax.lbi_init(img), length=steps // every)[1]


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
for i in range(n):
  k, sparsity, components = trajectory(cifar[i], steps=S["trajectory_steps"])
  ax1.plot(k, sparsity, label=CLASSES[y_test[i]])
  ax2.plot(k, components, label=CLASSES[y_test[i]])
for s in levels:
  ax1.axhline(s, color="0.85", lw=0.8, zorder=0)
ax1.set(xlabel="Split LBI step k", ylabel="edge sparsity", title="Active edges (fraction of 1,984)",
        ylim=(0, 1), xscale="log")
ax2.set(xlabel="Split LBI step k", ylabel="connected components", xscale="log", yscale="log",
        title="Components of the inactive-edge graph (1,024 pixels)")
ax1.legend(fontsize=8)
ax1.grid(alpha=0.3)
ax2.grid(alpha=0.3, which="both")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. ISS beside TV and a Gaussian low-pass, at matched PSNR
#
# Each competitor is tuned per image (bisection on its strength) to the PSNR that ISS smoothing at
# sparsity 0.4 reaches, so the pictures compare **how** the methods lose detail, not **how much**.
# TV (`iss_jax.baselines.tv_denoise`, Chambolle's algorithm) shrinks contrast and rounds corners; the
# Gaussian blurs every edge; ISS keeps the strong edges sharp and flattens the regions between them.

# %%
def match_psnr(transform, x, target, lo, hi, iters=25):
  """Per-image strength (bisection in log space) at which `transform(img, strength)` hits `target` dB."""

  def one(img, t):
    def body(_, bounds):
      a, b = bounds
      mid = jnp.sqrt(a * b)
      above = iss_jax.psnr(transform(img, mid), img) > t  # still too close to the input: go stronger
      return jnp.where(above, mid, a), jnp.where(above, b, mid)

    a, b = jax.lax.fori_loop(0, iters, body, (jnp.float32(lo), jnp.float32(hi)))
    return jnp.sqrt(a * b)

  return jax.jit(jax.vmap(one))(x, target)


tv = lambda img, w: tv_denoise(img, w, iters=100)
lowpass = lambda img, sigma: gaussian_lowpass(img, sigma, radius=12)  # traced sigma: static radius
MATCH_SPARSITY = 0.4


def compare(x):
  iss = iss_jax.smooth(x, MATCH_SPARSITY)
  target = iss_jax.psnr(iss, x)
  w = match_psnr(tv, x, target, 1e-3, 2.0)
  sigma = match_psnr(lowpass, x, target, 0.05, 3.0)
  tvs, lps = jax.vmap(tv)(x, w), jax.vmap(lowpass)(x, sigma)
  return [(x, "input", None), (iss, f"ISS s={MATCH_SPARSITY:g}", target),
          (tvs, "TV", iss_jax.psnr(tvs, x)), (lps, "Gaussian", iss_jax.psnr(lps, x))], w, sigma


panels, w, sigma = compare(photo[None])
c = photo.shape[0] // 2
crop = np.s_[c - c // 2:c, c - c // 4:c + c // 4]  # a zoomed window
fig, axes = plt.subplots(2, 4, figsize=(11, 5.6), dpi=80)
for j, (img, name, p) in enumerate(panels):
  img = np.clip(np.asarray(img[0]), 0, 1)
  extra = {"TV": f", weight {float(w[0]):.3f}", "Gaussian": f", sigma {float(sigma[0]):.2f} px"}.get(name, "")
  axes[0, j].imshow(img)
  axes[0, j].set_title(name if p is None else f"{name}: {float(p[0]):.1f} dB{extra}")
  axes[1, j].imshow(img[crop], interpolation="nearest")
  axes[1, j].set_title("zoom")
  for ax in axes[:, j]:
    ax.axis("off")
fig.suptitle(f"Matched PSNR on {photo_name}", y=1.0)
fig.tight_layout()
plt.show()

# %%
panels, w, sigma = compare(cifar)
fig, axes = plt.subplots(n, 4, figsize=(6.4, 1.65 * n), squeeze=False)
for j, (imgs, name, p) in enumerate(panels):
  for i in range(n):
    axes[i, j].imshow(np.clip(np.asarray(imgs[i]), 0, 1), interpolation="nearest")
    axes[i, j].set_xticks([])
    axes[i, j].set_yticks([])
    axes[i, j].set_xlabel("" if p is None else f"{float(p[i]):.1f} dB", labelpad=1)
    if i == 0:
      axes[i, j].set_title(name)
fig.suptitle("Matched PSNR on CIFAR-10 test images (PSNR against the input below each)", y=1.0)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Denoising (App. K)
#
# Gaussian noise of standard deviation 0.1 is added to CIFAR-10 test images; ISS smoothing at sparsity 0.6
# and TV (weight chosen on held-out training images by mean PSNR) are applied to the noisy images.
# `iss_jax.robustness.evaluate_denoise` returns the per-image PSNR; `python -m eval.denoise` is the
# command-line version.

# %%
res = evaluate_denoise(x_test[:S["denoise_images"]], sigma=0.1, sparsity=0.6, tv_denoise=tv_denoise,
                       x_tune=x_train[:64], tune_examples=64, progress=False)
labels = {"noisy": "noisy input", "smoothed": "ISS smoothing s=0.6",
          "tv": f"TV (weight {res['tv_weight']:g})"}
fig, ax = plt.subplots(figsize=(7, 3.4))
values = np.concatenate([res["psnr"][k] for k in labels])
bins = np.linspace(values.min(), values.max(), 40)
for k, label in labels.items():
  ax.hist(res["psnr"][k], bins=bins, alpha=0.55, label=f"{label}: mean {res['mean'][k]:.2f} dB")
ax.set(xlabel="PSNR against the clean image (dB)", ylabel="images",
       title=f"Denoising Gaussian noise (std 0.1) on {len(res['psnr']['noisy'])} CIFAR-10 test images")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 5. `jit`, `vmap` and `grad`
#
# * **jit**: `sparsity` is traced, so a sweep over sparsities compiles once (only shapes are static).
# * **vmap**: `smooth` is written for one image; a batch, or `vmap` with a different sparsity per image,
#   gives the same images as a Python loop, and every image stops at its own step.
# * **grad**: the forward pass is a `while_loop` plus a projection, with no useful derivative. The
#   default `gradient="bpda"` makes `jax.grad` see the identity (straight-through, BPDA, Athalye et al.
#   2018), which is what an adaptive attacker uses; `gradient="unrolled"` differentiates a bounded
#   `lax.scan` of exactly `maxiter` steps (slower; it runs all of them).

# %%
smooth_jit = jax.jit(iss_jax.smooth)
for s in (0.3, 0.5, 0.7):
  t0 = time.perf_counter()
  smooth_jit(cifar, s).block_until_ready()
  print(f"jit(smooth)(x, {s}): {time.perf_counter() - t0:.3f} s" + ("  (compiles)" if s == 0.3 else ""))

per_image = jnp.linspace(0.3, 0.8, n)
batched = jax.vmap(iss_jax.smooth)(cifar, per_image)
looped = jnp.stack([iss_jax.smooth(cifar[i], per_image[i]) for i in range(n)])
print("vmap with one sparsity per image vs a loop: max |difference| =",
      float(jnp.max(jnp.abs(batched - looped))))

# %%
img, pixel = cifar[0], (16, 16)
f_bpda = lambda v: iss_jax.smooth(v, MATCH_SPARSITY)[pixel].sum()
f_unrolled = lambda v: iss_jax.smooth(v, MATCH_SPARSITY, gradient="unrolled",
                                      maxiter=S["unrolled_maxiter"])[pixel].sum()
g_bpda = jax.grad(f_bpda)(img)
t0 = time.perf_counter()
g_unrolled = jax.jit(jax.grad(f_unrolled))(img)
g_unrolled.block_until_ready()
_, info = iss_jax.smooth(img, MATCH_SPARSITY, maxiter=S["unrolled_maxiter"], return_info=True)
print(f"unrolled gradient through {S['unrolled_maxiter']:,} steps: {time.perf_counter() - t0:.1f} s "
      f"(compile included); the run stops at step {int(info.steps)} (capped: {bool(info.capped)})")

smoothed = iss_jax.smooth(img, MATCH_SPARSITY, maxiter=S["unrolled_maxiter"])
component = np.all(np.abs(np.asarray(smoothed - smoothed[pixel])) < 1e-6, -1)  # pixels sharing its value
g_map = np.asarray(g_unrolled).sum(-1)
print(f"pixel {pixel} lies in a component of {component.sum()} pixels; the unrolled gradient sums to "
      f"{g_map.sum():.2f} over the image (3 channels), {g_map[component].sum():.2f} of it on that "
      f"component; largest |value| {np.abs(g_map).max():.2f}")
fig, axes = plt.subplots(1, 4, figsize=(12, 3.6))
axes[0].imshow(np.asarray(img), interpolation="nearest")
axes[1].imshow(np.clip(np.asarray(smoothed), 0, 1), interpolation="nearest")
for ax, g, name in ((axes[2], g_bpda, "BPDA (default)"), (axes[3], g_unrolled, "unrolled (exact)")):
  m = np.asarray(g).sum(-1)
  lim = np.abs(m).max() or 1.0
  im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
  ax.set_title(f"gradient: {name}")
  fig.colorbar(im, ax=ax, fraction=0.046)
axes[0].set_title("input")
axes[1].set_title(f"smooth(x, {MATCH_SPARSITY:g})")
for ax in axes:
  ax.plot(pixel[1], pixel[0], "k+", ms=10)
  ax.contour(component, levels=[0.5], colors="k", linewidths=0.8)
  ax.set_xticks([])
  ax.set_yticks([])
fig.suptitle("d smooth(x)[16, 16] / dx, summed over colour (outline: the component of the marked pixel)\n"
             "BPDA: the identity, one pixel. Unrolled: spread over the component, strongest at its boundary",
             y=1.04)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Speed on this runtime
#
# Where the call runs on **CPU**, `smooth` uses a fused C++ kernel (an XLA FFI call, built with the system
# compiler on first use and cached): each image runs to its own stopping step with its state in cache,
# images shared out over the CPU's threads. On **GPU and TPU** it uses the pure-XLA scheduler: a batch runs
# in 32 slots, and a slot whose image has reached its target is refilled with the next image. Both stop
# every image at the same step. With several devices (a Colab TPU has 8 cores), `mesh=` splits the batch
# over all of them, one scheduler per device. The baseline is the readable float64 NumPy/SciPy definition
# `iss_jax.smooth_reference`, timed in the same run.

# %%
xb = jnp.asarray(x_test[np.arange(S["bench_images"]) % len(x_test)], jnp.float32) / 255.0
mesh = jax.make_mesh((jax.device_count(),), ("data",)) if jax.device_count() > 1 else None
variants = {"default": {}}
if jax.default_backend() == "cpu" and S["xla_on_cpu"]:
  variants["xla scheduler"] = {"implementation": "xla"}
rows = []
for name, kwargs in variants.items():
  fn = jax.jit(functools.partial(iss_jax.smooth, mesh=mesh, return_info=True, **kwargs))
  fn(xb, 0.6)[0].block_until_ready()  # compile (and, the first time on a machine, build the CPU kernel)
  t0 = time.perf_counter()
  y, info = fn(xb, 0.6)
  y.block_until_ready()
  seconds = time.perf_counter() - t0
  rows.append([name, len(xb), seconds, len(xb) / seconds, float(np.mean(info.steps))])
t0 = time.perf_counter()
for i in range(S["reference_images"]):
  iss_jax.smooth_reference(np.asarray(xb[i], np.float64), 0.6, step_factor=iss_jax.DEFAULT_STEP_FACTOR)
ref = S["reference_images"] / (time.perf_counter() - t0)
rows.append(["smooth_reference (NumPy/SciPy, float64)", S["reference_images"],
             S["reference_images"] / ref, ref, float("nan")])
table = [[r[0], r[1], f"{r[2]:.2f}", f"{r[3]:.1f}", f"{r[3] / ref:.0f}x",
          "" if np.isnan(r[4]) else f"{r[4]:.0f}"] for r in rows]
display(Markdown(f"**{device_description()}**, {jax.device_count()} device(s), sparsity 0.6, CIFAR-10 "
                 f"32x32 test images:\n\n" + markdown_table(
                     ["implementation", "images", "seconds", "images/s", "vs reference", "mean steps"],
                     table)))
