"""``python -m eval.paper``: every table's command at ``--scale=tiny``, the paper's low-frequency fraction,
resuming from cached rows, and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import iss_jax
from eval import _paper_numbers, _paper_tables, paper

REPO = Path(__file__).resolve().parents[1]


def _run(*args, cwd=REPO):
  """``python -m eval.paper ARGS`` in a fresh process (the slow tables: training, fresh JAX flags)."""
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  return subprocess.run([sys.executable, "-m", "eval.paper", *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=3000)


def test_low_frequency_fraction_is_the_papers_closed_form():
  # Table 9, vanilla, r = 10: 46.19 / (46.19 + 27.77) = 62.45% (printed 62.46%).
  assert iss_jax.robustness.low_frequency_fraction(46.19, 27.77) == pytest.approx(46.19 / 73.96, abs=1e-12)
  assert round(100 * iss_jax.robustness.low_frequency_fraction(46.19, 27.77), 2) == 62.45
  # Every fraction the paper prints in Table 9 is low / (low + high) to its rounding.
  t = _paper_numbers.table("main/table9")
  for model in ("Vanilla", "Finetune", "Fixed", "Iterative"):
    for col in t.columns:
      lo, hi = t.value(("Low", model), col), t.value(("High", model), col)
      frac = iss_jax.robustness.low_frequency_fraction(lo, hi)
      assert 100 * frac == pytest.approx(t.value(("Fraction", model), col), abs=0.02)
  # Arrays, and no accuracy at all -> NaN, not a division error.
  out = iss_jax.robustness.low_frequency_fraction(np.array([1.0, 0.0]), np.array([3.0, 0.0]))
  assert out[0] == 0.25 and np.isnan(out[1])


def test_evaluate_frequency_reports_both_fractions():
  x = np.random.default_rng(0).uniform(size=(12, 16, 16, 3)).astype(np.float32)
  y = np.arange(12) % 3
  w = np.random.default_rng(1).normal(size=(16 * 16 * 3, 3)).astype(np.float32)
  apply_fn = lambda z: z.reshape(z.shape[0], -1) @ w
  r = iss_jax.robustness.evaluate_frequency(apply_fn, x, y, radii=[3])
  lo, hi = r["low"]["3"], r["high"]["3"]
  expected = lo / (lo + hi) if lo + hi > 0 else np.nan
  np.testing.assert_allclose(r["low_fraction_paper"]["3"], expected)
  assert 0.0 <= r["low_fraction"]["3"] <= 1.0


def test_table_specs_use_the_papers_sparsities():
  t = _paper_tables.TABLES
  fields = lambda key, label: dict(dict(t[key].rows)[label].fields)
  assert fields("table1", "Ours (Fixed Training)")["sparsity"] == 0.8
  assert fields("table9", "Finetune")["sparsity"] == 0.8
  assert fields("table2", "Ours fix")["sparsity"] == 0.6
  assert fields("table7", "Finetune")["sparsity"] == 0.6
  it = fields("table2", "Ours iterative")
  assert (it["start_sparsity"], it["end_sparsity"], it["num_levels"]) == (0.3, 0.6, 4)
  it = fields("table1", "Ours (Iterative Training)")
  assert (it["start_sparsity"], it["end_sparsity"], it["num_levels"]) == (0.3, 0.8, 6)
  # The paper's tables each have their numbers, and every row label we fill is one of the paper's.
  for spec in t.values():
    if spec.paper and not spec.unavailable and spec.kind in ("adversarial", "corruptions", "frequency"):
      labels = {lab[0] for lab in _paper_numbers.table(spec.paper).row_labels} | {
          lab[1] for lab in _paper_numbers.table(spec.paper).row_labels}
      assert {label for label, _ in spec.rows} <= labels, spec.key


def test_normalised_eps_is_a_radius_in_pixels():
  radius, how = paper._radius(8, "normalized", _paper_tables.CIFAR10_STD)
  assert np.all(np.asarray(radius) * 255 < 2.2) and np.all(np.asarray(radius) * 255 > 1.9), how
  assert paper._radius(8, "pixel", None)[0] == 8 / 255


def test_bad_table_is_one_sentence(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    paper.main(["--table=99", f"--out={tmp_path}"])
  assert e.value.code == 2
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and "--table" in lines[0], lines
  assert all(k in lines[0] for k in _paper_tables.ORDER), lines
  assert not any(tmp_path.iterdir())


def test_tiny_table_and_resume(tmp_path, capsys):
  """One representative table end to end at tiny size (appK: no training), then again from its cached row."""
  argv = ["--table=appK", "--scale=tiny", f"--out={tmp_path}", "--no_progress"]
  paper.main(argv)
  data = json.loads((tmp_path / "appK.json").read_text())
  assert (tmp_path / "appK.md").exists() and (tmp_path / "appK.png").exists()
  noisy = data["rows"][0]["cells"][0]
  assert noisy["paper"] == 19.78 and noisy["n"] == 16
  # MAX = max X gives at most the PSNR at MAX = 1 (max X <= 1), per the closed form 20 log10(max X).
  assert noisy["ours"] <= data["rows"][0]["extra"]["MAX = 1 (the field's convention)"][0]["ours"] + 1e-9
  row = tmp_path / "rows" / "appK" / "denoise.json"
  cached = json.loads(row.read_text())
  cached["result"]["psnr_max_x"]["noisy"] = [99.0] * 16  # a cached row is reused, not recomputed
  row.write_text(json.dumps(cached))
  capsys.readouterr()
  paper.main(argv)
  assert "cached row" in capsys.readouterr().err
  again = json.loads((tmp_path / "appK.json").read_text())
  assert again["rows"][0]["cells"][0]["ours"] == pytest.approx(99.0)
  # A changed protocol (another n) is another key: recomputed.
  cached["cache_key"] = dict(cached["cache_key"], n=15)
  row.write_text(json.dumps(cached))
  paper.main(argv)
  assert "cached row" not in capsys.readouterr().err
  assert json.loads((tmp_path / "appK.json").read_text())["rows"][0]["cells"][0]["ours"] < 90


def test_unavailable_table_says_so_and_results_md_lists_every_table(tmp_path):
  paper.main(["--table=table12", "--scale=tiny", f"--out={tmp_path}"])
  md = (tmp_path / "table12.md").read_text()
  assert "**Not produced here:** needs an ImageNet-pretrained ResNet-50" in md
  target = tmp_path / "RESULTS.md"
  paper.main(["--results_md", f"--out={tmp_path}", f"--results_path={target}"])
  text = target.read_text()
  for key in _paper_tables.ORDER:
    assert f"| {key} |" in text
  assert "not produced: needs an ImageNet-pretrained ResNet-50" in text


def test_replot_redraws_a_table_from_its_json_and_marks_zero_cells(tmp_path, monkeypatch):
  """--results_md --replot draws the figure from the cells alone; a cell of exactly 0 (no bar) is labelled
  "0" in its panel, a missing cell is not, and the Markdown and JSON stay as they were."""
  cell = lambda paper_v, ours: paper._cell(ours, 20, paper=paper_v)
  data = {"kind": "adversarial", "unit": "%", "title": "A table", "scale": "tiny", "command": "x",
          "scale_note": "tiny", "device": "cpu", "wall_time_s": 1.0, "finished": 0.0,
          "columns": ["FGSM", "PGD"],
          "rows": [{"label": ["A"], "cells": [cell(30.0, 0.0), cell(None, 0.25)]},
                   {"label": ["B"], "cells": [cell(0.0, 0.5), cell(20.0, None)]}]}
  fig = paper._figure(data)
  zeros = [sorted(float(round(t.xy[1], 6)) for t in ax.texts if t.get_text() == "0") for ax in fig.axes]
  assert zeros == [[0.2, 0.8], []]  # ours of A (y 0 + 0.2) and the paper's B (y 1 - 0.2); none in PGD
  (tmp_path / "table7.json").write_text(json.dumps(data))
  paper._write(SimpleNamespace(out=str(tmp_path)), "table7", data, fig=False)
  images = {**data, "kind": "paths", "title": "Image paths"}  # Fig. 10: its figure is images, not the cells
  (tmp_path / "fig10.json").write_text(json.dumps(images))
  paper._write(SimpleNamespace(out=str(tmp_path)), "fig10", images, fig=False)
  (tmp_path / "fig10.png").write_bytes(b"images")
  drawn = []
  monkeypatch.setattr(paper, "_figure", lambda d: drawn.append(d["title"]) or fig)
  paper.main(["--results_md", f"--out={tmp_path}", f"--results_path={tmp_path / 'R.md'}"])
  assert drawn == [] and not (tmp_path / "table7.png").exists()  # without --replot the figure stays
  before = {p: (tmp_path / p).read_bytes() for p in ("table7.md", "table7.json")}  # claims checked there
  paper.main(["--results_md", "--replot", f"--out={tmp_path}", f"--results_path={tmp_path / 'R.md'}"])
  assert drawn == ["A table"] and (tmp_path / "table7.png").stat().st_size > 0
  assert (tmp_path / "fig10.png").read_bytes() == b"images"  # an image figure is kept
  with pytest.raises(SystemExit) as exit_:
    paper.main(["--replot", f"--out={tmp_path}"])
  assert exit_.value.code == 2
  assert {p: (tmp_path / p).read_bytes() for p in before} == before


def test_transfer_attacks_from_the_model_itself_equal_the_white_box_attack():
  """FGSM is deterministic: its black-box transfer from the attacked model itself is white-box FGSM."""
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(8, 8, 8, 3)).astype(np.float32)
  y = np.arange(8) % 3
  w = rng.normal(size=(192, 3)).astype(np.float32)
  f = lambda z: z.reshape(z.shape[0], -1) @ w
  r = iss_jax.robustness.evaluate_adversarial(f, x, y, eps_grid=[8 / 255], eps_space="normalized",
                                              attacks_=["fgsm"], protocols=(), substitute_fn=f,
                                              transfer_attacks=("fgsm", "pgd"), progress=False)
  acc = {row["attack"]: row["accuracy"] for row in r["rows"]}
  assert acc["transfer-fgsm"] == acc["fgsm"] and "transfer" in acc
  with pytest.raises(ValueError, match="transfer_attacks"):
    iss_jax.robustness.evaluate_adversarial(f, x, y, eps_grid=[8 / 255], substitute_fn=f,
                                            transfer_attacks=("nope",), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k in _paper_tables.ORDER if not _paper_tables.TABLES[k].unavailable])
def test_every_table_at_tiny_scale(key, tmp_path_factory):
  out = tmp_path_factory.getbasetemp() / "paper_tiny"  # shared: later tables reuse the models
  r = _run(f"--table={key}", "--scale=tiny", f"--out={out}", "--no_progress")
  assert r.returncode == 0, r.stderr[-4000:]
  data = json.loads((out / f"{key}.json").read_text())
  assert data["rows"] and all(len(row["cells"]) == len(data["columns"]) for row in data["rows"])
  assert any(c["ours"] is not None for row in data["rows"] for c in row["cells"])
  assert (out / f"{key}.png").exists()


def test_table6_projection_baselines_agree_with_the_graph_projection():
  """The paper's SVD and LSQR projections (Table 6's baselines) give iss_jax.project's image."""
  rng = np.random.default_rng(0)
  b = rng.uniform(size=(9, 7, 2)).astype(np.float32)
  active = rng.uniform(size=(2, 9, 7)) < 0.5
  r = paper._projection_baselines(b, active)
  assert r["max_diff_svd_graph"] < 1e-5 and r["max_diff_lsqr_graph"] < 1e-5
  assert r["inactive_edges"] == int((~active[0][:, :-1]).sum() + (~active[1][:-1, :]).sum())


def test_presets_use_the_later_papers_sparsity_choice():
  """Zhou et al. (arXiv 2409.18419) smooth at 0.6 on CIFAR and 0.3 on ImageNet."""
  from train.configs import finetune, fixed

  assert fixed.get_config("imagenet100").sparsity == 0.3 == finetune.get_config("imagenet100").sparsity
  assert fixed.get_config("cifar100").sparsity == 0.6 == fixed.get_config("cpu").sparsity


def test_a_diverged_model_is_a_note_not_a_row_and_is_not_retrained(tmp_path, monkeypatch, capsys):
  """A model whose training diverges (a real NaN loss: learning rate 1e30) leaves its row out with a note
  naming the cause; a second run reads the recorded divergence instead of training again."""
  import dataclasses

  bad = _paper_tables.Model("vanilla_lr1e30", "vanilla", (("learning_rate", 1e30),), label="lr 1e30")
  table = dataclasses.replace(_paper_tables.TABLES["table4"],
                              rows=(("1.0 (Vanilla)", _paper_tables.VANILLA), ("Diverges", bad)))
  monkeypatch.setitem(_paper_tables.TABLES, "table4", table)
  argv = ["--table=table4", "--scale=tiny", f"--out={tmp_path}", "--no_progress"]
  paper.main(argv)
  data = json.loads((tmp_path / "table4.json").read_text())
  assert data["columns"] == ["1.0 (Vanilla)"]
  note = [n for n in data["notes"] if n.startswith("Row 'Diverges' is missing")]
  assert len(note) == 1 and "training diverged" in note[0] and "learning_rate=1e+30" in note[0]
  assert "Row 'Diverges' is missing" in (tmp_path / "table4.md").read_text()
  capsys.readouterr()
  paper.main(argv)
  assert "training vanilla_lr1e30" not in capsys.readouterr().err  # recorded, not retrained
  assert json.loads((tmp_path / "table4.json").read_text())["notes"] == data["notes"]


def _smoothing_table(n, none, smooth):
  """A Table 1-shaped result: one model, 'None' and 'Sparsity 0.6' rows, accuracies with Wilson intervals."""
  cell = lambda a: {"ours": a, "n": n, "paper": None, "ci95": list(iss_jax.robustness.wilson_interval(a, n))}
  return {"columns": ["A", "B"], "unit": "%",
          "rows": [{"label": ["M", "None"], "cells": [cell(a) for a in none]},
                   {"label": ["M", "Sparsity 0.6"], "cells": [cell(a) for a in smooth]}]}


def test_a_failing_claim_says_whether_its_shortfall_exceeds_the_noise():
  # One column against the claim by 2 points: within the intervals at n = 200, beyond them at n = 100,000.
  small = paper._claims("table1", _smoothing_table(200, [0.40, 0.30], [0.38, 0.35]))
  assert small[0]["holds"] is False
  why = small[0]["why"]
  assert why.startswith("1 of 2 comparisons go against it") and "M, A, by 2.0 points" in why
  assert "within the 95% intervals" in small[0]["why"]
  big = paper._claims("table1", _smoothing_table(100_000, [0.40, 0.30], [0.38, 0.35]))
  assert "1 of them exceed the 95% intervals" in big[0]["why"]
  assert "why" not in paper._claims("table1", _smoothing_table(200, [0.30, 0.30], [0.38, 0.35]))[0]
