"""Compares finished training runs: a Markdown/JSON table of clean test accuracy and a PNG of the curves.

Usage:
  python -m train.report    # the runs of the README's commands: workdirs/vanilla, workdirs/fixed_s0.6,
                            # workdirs/iterative_s0.3-0.8 -> results/training_report.{md,json,png}
  python -m train.report --workdirs=workdirs/vanilla_cpu,workdirs/fixed_s0.6_cpu --out=results/cpu
Reads each workdir's ``summary.json`` and ``metrics.jsonl``; writes ``<out>.md``, ``<out>.json`` and
``<out>.png``. A workdir without a finished run is one line on stderr (with the command that makes it) and
exit status 2.
"""

import json
from pathlib import Path

from absl import app, flags

import cli
import iss_jax

FLAGS = flags.FLAGS

# The default workdirs: those of the README's training commands (train/_main.py:default_workdir).
_COMMANDS = {
    "workdirs/vanilla": "python -m train.vanilla",
    "workdirs/fixed_s0.6": "python -m train.fixed --sparsity=0.6",
    "workdirs/iterative_s0.3-0.8": "python -m train.iterative --start_sparsity=0.3 --end_sparsity=0.8",
}
flags.DEFINE_list("workdirs", list(_COMMANDS), "Training workdirs to compare.")
flags.DEFINE_string("out", "results/training_report", "Output path without extension.")


def _check_finished(workdirs) -> None:
  missing = [w for w in workdirs if not (Path(w) / "summary.json").exists()]
  if missing:
    how = ", ".join(dict.fromkeys(f"`{_COMMANDS.get(w, 'python -m train.<procedure> --workdir=' + w)}`"
                                  for w in missing))
    cli.fail(f"no finished training run in {', '.join(missing)} (no summary.json); train "
               f"{'it' if len(missing) == 1 else 'them'} first ({how}) or pass --workdirs=DIR,DIR,... "
               "with finished runs.")


def main(argv):
  del argv
  _check_finished(FLAGS.workdirs)
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
  app.run(main, flags_parser=cli.parse_flags)
