"""Common corruptions (paper Table 1): CIFAR-10-C types x severities, bare and with test-time smoothing.

  python -m eval.corruptions --workdir=workdirs/vanilla --smooth_sparsity=0.6 \
      --dataset=cifar10_exact --data_dir=../shared/data --corruptions=gaussian_noise

Sources: ``--source=generate`` (default; offline seeded generator, labelled "CIFAR-10-C-style"),
``--source=npy --cifar10c_dir=DIR`` (official files, rows of the dataset's official test indices) or
``--source=tfds``.
"""

from __future__ import annotations

from absl import flags

import cli
import iss_jax
from eval import _common

NAME = "corruptions"


def define_flags(flag_values: flags.FlagValues) -> None:
  _common.define_flags(flag_values, ("corruptions", "severities"), corruptions={
      "help": "comma-separated CIFAR-10-C names, or 'all' for every available type"})
  cli.define("enum", "source", "generate", "generate (offline seeded generator), npy (the official files "
             "in --cifar10c_dir) or tfds", flag_values, enum_values=["generate", "npy", "tfds"])
  cli.define("string", "cifar10c_dir", None, "folder of the official CIFAR-10-C .npy files", flag_values)
  cli.define("string", "tfds_data_dir", None, "TFDS data_dir of --source=tfds", flag_values)
  cli.define("string", "frost_dir", None, "folder of the official frost photographs (frost1.png ... "
             "frost6.jpg); default: $ISS_JAX_FROST_DIR or an installed imagecorruptions package", flag_values)


def run(args, apply_fn=None, data=None) -> dict:
  apply_fn = apply_fn or _common.load_model(args)[0]
  x, y = data if data is not None else _common.load_data(args)
  names = args.corruptions
  if names == ["all"]:
    names = list(iss_jax.robustness.AVAILABLE_CORRUPTIONS if args.source == "generate"
                 else iss_jax.robustness.CORRUPTIONS)
  indices = _common.official_test_indices(args, len(x)) if args.source == "npy" else None
  if args.source == "npy" and indices is None:
    raise ValueError(f"--source=npy needs the official test indices of {args.dataset!r}; use "
                     "cifar10, cifar10_exact, cifar10_sample or an npz with idx_test.")
  res = iss_jax.robustness.evaluate_corruptions(
      apply_fn, x, y, names=names, severities=args.severities, defenses=_common.defenses(args),
      source=args.source, seed=args.seed, cifar10c_dir=args.cifar10c_dir, indices=indices,
      tfds_data_dir=args.tfds_data_dir, frost_dir=args.frost_dir, batch_size=args.batch_size,
      progress=not args.no_progress)
  defenses = list(res["clean"])
  md = [_common.header(args, f"Common corruptions - {res['source']}", len(x))]
  md.append("Clean accuracy (%): " + ", ".join(f"{d} {_common.pct(a)}" for d, a in res["clean"].items())
            + "\n")
  md.append("Accuracy (%), mean over severities " + ",".join(map(str, res["severities"]))
            + " per type (paper Table 1 layout):\n")
  header = ["test-time"] + names + ["mean"]
  rows = [[d] + [_common.pct(res["mean_over_severities"][n][d]) for n in names]
          + [_common.pct(res["mean"][d])] for d in defenses]
  md.append(iss_jax.robustness.markdown_table(header, rows))
  md.append("\nMean over types per severity (%):\n")
  md.append(iss_jax.robustness.markdown_table(["test-time"] + [f"s={s}" for s in res["severities"]],
                                              [[d] + [_common.pct(res["mean_over_types"][str(s)][d])
                                           for s in res["severities"]] for d in defenses]))
  md.append("\nPer type and severity (%):\n")
  rows = [[n, d] + [_common.pct(res["accuracy"][n][str(s)][d]) for s in res["severities"]]
          for n in names for d in defenses]
  md.append(iss_jax.robustness.markdown_table(["type", "test-time"] + [f"s={s}" for s in res["severities"]],
                                              rows))
  fig = _plot(res, names, defenses, f"{args.dataset} {args.split}, n = {len(x)}")
  return _common.finish(args, NAME, md, res, fig)


def _plot(res, names, defenses, data: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  sev = res["severities"]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
  for i, d in enumerate(defenses):
    axes[0].plot(sev, [100 * res["mean_over_types"][str(s)][d] for s in sev], marker="o", color=f"C{i}",
                 label=d)
    axes[0].axhline(100 * res["clean"][d], color=f"C{i}", linestyle=":", linewidth=1,
                    label=f"{d}, clean")
  axes[0].set_xticks(sev)
  axes[0].set_ylim(0, 100)
  axes[0].set_xlabel("corruption severity")
  axes[0].set_ylabel("accuracy (%), mean over types")
  axes[0].grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  width = 0.8 / max(len(defenses), 1)
  for i, d in enumerate(defenses):
    axes[1].bar([j + i * width for j in range(len(names))],
                [100 * res["mean_over_severities"][n][d] for n in names], width, label=d)
  axes[1].set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
  axes[1].set_xticklabels(names, rotation=45, ha="right", fontsize=7)
  axes[1].set_ylim(0, 100)
  axes[1].set_ylabel(f"accuracy (%), mean over severities {', '.join(map(str, sev))}")
  axes[1].legend(fontsize=8, title="test-time defense", title_fontsize=8)
  source = res["source"].split(" (")[0]
  fig.suptitle(f"Common corruptions ({source}): {data}", fontsize=11)
  return fig


def main(argv=None):
  _common.main(__doc__, define_flags, run, argv)


if __name__ == "__main__":
  main()
