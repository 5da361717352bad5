"""Frequency analysis (paper Sec. 4.3: Tables 9-10, Figs. 4-6).

  python -m eval.frequency --workdir=workdirs/vanilla --radii=4,8,12,16

Accuracy on the low- and high-frequency components (centred per-channel FFT, radius-r disc), the
low-frequency fraction, the expected Fourier difference between smoothing levels and the originals
(Fig. 6) and the first-layer kernel spectra (Fig. 5).
"""

from __future__ import annotations

import numpy as np
from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "frequency"


def define_flags(flag_values: flags.FlagValues) -> None:
  cli.define("number_list", "radii", "4,8,12,16", "radii of the low-frequency disc", flag_values)
  cli.define("number_list", "fourier_sparsities", "0.6,0.8",
             "sparsities compared with each other and the originals (Fig. 6)", flag_values)
  cli.define("integer", "fourier_examples", 100, "images for the Fourier difference", flag_values)


def run(args, apply_fn=None, data=None, variables=None) -> dict:
  apply_fn = apply_fn or _common.load_model(args)[0]
  x, y = data if data is not None else _common.load_data(args)
  res = iss_jax.robustness.evaluate_frequency(apply_fn, x, y, radii=args.radii, batch_size=args.batch_size)
  # Expected Fourier difference between smoothing levels (and the originals).
  xf = np.asarray(x[: args.fourier_examples], np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
  sp = list(args.fourier_sparsities)
  levels = {"original": xf}
  if sp:
    path = np.asarray(iss_jax.smooth_path(xf, np.asarray(sp, np.float32),
                                          **_common.smooth_kwargs(args)))
    levels.update({f"{s:g}": path[i] for i, s in enumerate(sp)})
  names = list(levels)
  pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
  diffs = {f"{a} & {b}": np.asarray(iss_jax.robustness.fourier_difference(levels[b], levels[a]))
           for a, b in pairs}
  res["fourier_difference"] = {k: v.tolist() for k, v in diffs.items()}
  # Share of the difference energy inside radius 8 (a scalar summary of Fig. 6).
  h, w = xf.shape[1:3]
  mask = iss_jax.robustness.radial_mask(h, w, min(8, h // 4))
  res["fourier_difference_low_share"] = {k: float((v[mask] ** 2).sum() / max((v**2).sum(), 1e-30))
                                         for k, v in diffs.items()}
  spectra = None
  if variables is None:
    try:
      variables = iss_jax.training.load_variables(args.workdir)[1]
    except Exception as e:  # noqa: BLE001 - kernel spectra are optional for apply_fn-only models
      res["kernel_spectra_error"] = str(e)
  if variables is not None:
    kpath, kernel = iss_jax.robustness.first_conv_kernel(variables)
    spectra = iss_jax.robustness.kernel_spectra(kernel)
    res["kernel"] = kpath
    res["kernel_high_frequency_energy"] = iss_jax.robustness.high_frequency_energy(kernel).tolist()
  md = [_common.header(args, "Frequency analysis", len(x))]
  md.append("Per-channel centred FFT, disc of radius r kept (low) or removed (high); components are "
            "not clipped. Low-frequency fraction (the paper's, Tables 9-10) = low acc / (low acc + "
            "high acc); share of correct still correct on low = ours, the share of the correctly classified "
            "images still correct on their low-frequency part.\n")
  md.append(f"Clean accuracy: {_common.pct(res['clean'])}%\n")
  rk = [f"{r:g}" for r in args.radii]
  md.append(iss_jax.robustness.markdown_table(
      ["r", "low acc (%)", "high acc (%)", "low-frequency fraction, paper's (%)",
       "share of correct still correct on low (%)"],
      [[r, _common.pct(res["low"][r]), _common.pct(res["high"][r]),
        _common.pct(res["low_fraction_paper"][r]), _common.pct(res["low_fraction"][r])] for r in rk]))
  md.append(f"\nExpected Fourier difference E|F(a) - F(b)| on {len(xf)} images: share of its energy "
            f"within radius {min(8, h // 4)}:\n")
  md.append(iss_jax.robustness.markdown_table(["pair", "low-frequency share (%)"],
                                              [[k, _common.pct(v)] for k, v in
                                    res["fourier_difference_low_share"].items()]))
  if spectra is not None:
    hf = np.asarray(res["kernel_high_frequency_energy"])
    md.append(f"\nFirst-layer kernel `{res['kernel']}`: mean high-frequency energy share (outside radius "
              f"4 of a 16x16 FFT) {100 * hf.mean():.2f}% over {len(hf)} filters.")
  n = res["num_examples"]
  chance = 1.0 / max(int(np.max(y)) + 1, 2)
  near_chance = [r for r in rk if iss_jax.robustness.wilson_interval(res["high"][r], n)[0] <= chance]
  if near_chance:
    md.append("\nFinding: the high-frequency component alone is classified near chance "
              f"({100 * chance:.0f}%) at r = {', '.join(near_chance)} (clean accuracy "
              f"{_common.pct(res['clean'])}%). Removing the "
              "disc removes the mean colour (the DC term) too, and weak models rely on low frequencies; "
              "this is what the reference helper of Wang et al. gives on the same models, not a bug.")
  fig = _plot(res, rk, diffs, spectra, f"{args.dataset} {args.split}, n = {n}", chance)
  return _common.finish(args, NAME, md, res, fig)


def _plot(res, rk, diffs, spectra, data: str, chance: float):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  ncols = 1 + len(diffs) + (spectra is not None)
  fig, axes = plt.subplots(1, ncols, figsize=(4.3 * ncols, 4.0))
  axes = np.atleast_1d(axes)
  r = [float(v) for v in rk]
  axes[0].plot(r, [100 * res["low"][k] for k in rk], marker="o", label="accuracy on the low part")
  axes[0].plot(r, [100 * res["high"][k] for k in rk], marker="o", label="accuracy on the high part")
  axes[0].plot(r, [100 * res["low_fraction_paper"][k] for k in rk], marker="s",
               label="low-frequency fraction (paper's: low / (low + high))")
  axes[0].plot(r, [100 * res["low_fraction"][k] for k in rk], marker="^",
               label="share of the correct still correct on low")
  axes[0].axhline(100 * res["clean"], color="black", linestyle=":", linewidth=1, label="clean accuracy")
  axes[0].axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
  axes[0].set_xticks(r)
  axes[0].set_ylim(0, 100)
  axes[0].set_xlabel("radius r of the low-frequency disc (frequency samples)")
  axes[0].set_ylabel("%")
  axes[0].set_title(f"Frequency components: {data}", fontsize=9)
  axes[0].legend(fontsize=7)
  for ax, (k, v) in zip(axes[1:], diffs.items(), strict=False):
    im = ax.imshow(np.log1p(v), cmap="viridis")
    ax.set_title(f"E|F({k.split(' & ')[1]}) - F({k.split(' & ')[0]})|, log(1 + .)\n(centred spectrum; "
                 "0.6 = smoothed at 0.6)", fontsize=8)
    ax.set_xlabel("horizontal frequency")
    ax.set_ylabel("vertical frequency")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)
  if spectra is not None:
    n = int(np.ceil(np.sqrt(len(spectra))))
    size = spectra.shape[1]
    grid = np.zeros((n * size, n * size))
    for i, s in enumerate(spectra):
      grid[(i // n) * size:(i // n + 1) * size, (i % n) * size:(i % n + 1) * size] = s / max(s.max(), 1e-12)
    axes[-1].imshow(grid, cmap="magma")
    axes[-1].set_title(f"|FFT| of the {len(spectra)} first-layer kernels\n(each centred, scaled to its max)",
                       fontsize=8)
    axes[-1].axis("off")
  return fig


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
