"""Compares finished training runs: a Markdown/JSON table of clean test accuracy and a PNG of the curves.

Usage:
  python -m train.report --workdirs=workdirs/vanilla,workdirs/fixed,workdirs/iterative \
      --out=results/training_cpu
Reads each workdir's ``summary.json`` and ``metrics.jsonl``; writes ``<out>.md``, ``<out>.json`` and
``<out>.png``.
"""

import json
from pathlib import Path

from absl import app, flags

import iss_jax

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", ["workdirs/vanilla", "workdirs/fixed", "workdirs/iterative"],
                  "Training workdirs to compare.")
flags.DEFINE_string("out", "results/training_cpu", "Output path without extension.")


def main(argv):
  del argv
  runs = []
  for w in FLAGS.workdirs:
    w = Path(w)
    summary = json.loads((w / "summary.json").read_text())
    rows = [json.loads(line) for line in (w / "metrics.jsonl").read_text().splitlines() if line]
    runs.append((w, summary, rows))
  out = Path(FLAGS.out)
  lines = ["| run | procedure | sparsity | model | train / test images | epochs | clean test acc. | "
           "best | train time (s) |", "|---|---|---|---|---|---|---|---|---|"]
  table = []
  for w, s, rows in runs:
    sched = s["sparsity_schedule"]
    sp = "clean" if sched == [1.0] else "→".join(f"{v:g}" for v in (sched if len(sched) < 3 else
                                                                      (sched[0], sched[-1])))
    train_s = sum(r["epoch_time_s"] for r in rows)
    lines.append(f"| {w.name} | {s['procedure']} | {sp} | {s['model']} ({s['num_params']:,}) | "
                 f"{s['num_train']} / {s['num_test']} | {s['epochs_done']} | "
                 f"{100 * s['final_test_accuracy']:.1f}% | {100 * s['best_test_accuracy']:.1f}% | "
                 f"{train_s:.0f} |")
    table.append({"workdir": str(w), "procedure": s["procedure"], "sparsity": sched,
                  "final_test_accuracy": s["final_test_accuracy"],
                  "best_test_accuracy": s["best_test_accuracy"], "epochs": s["epochs_done"],
                  "train_time_s": train_s, "dataset": s["dataset"], "model": s["model"]})
  datasets = sorted({s["dataset"] for _, s, _ in runs})
  header = f"Clean test accuracy, dataset {', '.join(datasets)}, same model and epochs for every run.\n\n"
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 3.5))
  for w, _, rows in runs:
    ax.plot([r["epoch"] for r in rows], [100 * r["test_accuracy"] for r in rows], marker="o", ms=3,
            label=w.name)
  ax.set_xlabel("epoch")
  ax.set_ylabel("clean test accuracy (%)")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  iss_jax.robustness.write_report(str(out.parent), out.name, header + "\n".join(lines), table, fig)
  print("\n".join(lines))
  print(f"wrote {out}.md/.json/.png")


if __name__ == "__main__":
  app.run(main)
