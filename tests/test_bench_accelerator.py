"""benchmarks/bench_accelerator.py: a dry run at tiny size on CPU writes every section with finite, positive
figures, the implementations stop every compared image at the CPU kernel's step, and the HLO copy count
reads a module the way it is written."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_accelerator as bench

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("smooth", "agreement", "lbi_step", "hlo", "projection", "train")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """The JSON of one ``--tiny`` run on CPU (a budget that skips nothing: the test is not timed)."""
  out = tmp_path_factory.mktemp("bench") / "bench_accelerator.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
  r = subprocess.run([sys.executable, "-m", "benchmarks.bench_accelerator", "--tiny", "--budget_s=100000",
                      f"--out={out}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, f"--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}"
  return json.loads(out.read_text())


def test_every_section_has_finite_positive_figures(tiny_run):
  assert tiny_run["device"] == "cpu (cpu)" and tiny_run["tiny"]
  for name in SECTIONS:
    section = tiny_run["sections"][name]
    assert not section["errors"], (name, section["errors"])
    if name == "hlo":
      continue  # counts, which may be 0
    assert section["figures"], name
    for key, value in section["figures"].items():
      assert math.isfinite(value) and value > 0, (name, key, value)
  env = tiny_run["environment"]
  smooth = tiny_run["sections"]["smooth"]["figures"]
  n_small, n_large = bench.TINY.n_small, bench.TINY.n_large
  assert {f"xla_{n_small}_images_per_s", f"xla_{n_large}_images_per_s", f"xla_{n_large}_vs_{n_small}"} <= \
      set(smooth)
  if "cpu" in env["implementations"]:
    assert {f"cpu_{n_small}_vs_xla", f"cpu_{n_large}_vs_xla"} <= set(smooth)
  steps = tiny_run["sections"]["lbi_step"]["figures"]
  for w in env["scheduler_widths"]:
    assert {f"w{w}_bytes_per_step", f"w{w}_us_per_step", f"w{w}_gb_per_s"} <= set(steps)
  train = tiny_run["sections"]["train"]["figures"]
  b0, b1 = bench.TINY.batches
  assert {f"fp32_b{b0}_images_per_s", f"fp32_b{b0}_host_fed_vs_device_resident", f"bf16_b{b0}_vs_fp32",
          f"fp32_b{b1}_vs_b{b0}"} <= set(train)
  assert set(tiny_run["sections"]["projection"]["figures"]) == {"images_per_s", "share_of_xla_smooth"}


def test_agreement_with_the_cpu_kernel_on_every_image(tiny_run):
  rows = tiny_run["sections"]["agreement"]["rows"]
  by = {(r["implementation"], r["baseline"]): r for r in rows}
  # The shipped steps are the kernel's on the first images of the sample: every implementation meets them.
  for impl in ("xla", "pallas"):
    row = by[(impl, "cpu_kernel_shipped")]
    assert row["images"] == bench.TINY.n_compare and row["same_steps"] == row["images"], row
  kernel_rows = [r for r in rows if r["baseline"] in ("cpu_kernel", "cpu_kernel_shipped")]
  assert kernel_rows
  for row in kernel_rows:
    assert row["same_steps"] == row["images"] and row["max_step_diff"] == 0, row
    if row["max_abs_image_diff"] is not None:
      assert row["max_abs_image_diff"] < 1e-5, row  # float32 rounding of the same operations
  for row in (r for r in rows if r["baseline"] == "definition_float64"):
    assert row["images"] == bench.TINY.n_definition and row["max_step_diff"] <= 1, row


def test_bytes_per_step_at_least_what_a_step_must_move(tiny_run):
  rows = [r for r in tiny_run["sections"]["lbi_step"]["rows"] if "bytes_per_step" in r]
  assert [r["width"] for r in rows] == tiny_run["environment"]["scheduler_widths"]
  for r in rows:
    assert r["bytes_per_image"] >= bench.MIN_STEP_BYTES, r
    assert r["bytes_per_image"] == pytest.approx(r["bytes_per_step"] / r["width"])
  # Inside the step loop: one step per iteration adds the copy of z (read and write, 2 x 24,576 bytes per
  # 32x32x3 float32 image) to what two steps per iteration move per step, which is one step's own bytes.
  (loop,) = [r for r in tiny_run["sections"]["lbi_step"]["rows"] if "unroll1_bytes_per_image" in r]
  assert loop["width"] == rows[0]["width"]
  assert loop["unroll2_bytes_per_image"] == pytest.approx(rows[0]["bytes_per_image"], rel=1e-3)
  assert loop["unroll1_bytes_per_image"] - loop["unroll2_bytes_per_image"] == pytest.approx(2 * 24_576,
                                                                                             rel=1e-3)


def test_hlo_finds_one_step_loop_per_width(tiny_run):
  rows = {r["program"]: r["step_loops"] for r in tiny_run["sections"]["hlo"]["rows"]}
  widths = tiny_run["environment"]["scheduler_widths"]
  assert len(rows[f"lbi_step loop at width {widths[0]}"]) == 1
  assert len(rows["XLA smooth program"]) == len(widths)  # the scheduler compacts into each width in turn
  for loops in rows.values():
    for loop in loops:
      assert loop["steps_in_body"] == bench.scheduler_unroll() and loop["z_copies"] == 0, loop


_HLO = """HloModule m, entry_computation_layout={(f32[2,4,4,3,8]{4,3,2,1,0})->f32[2,4,4,3,8]{4,3,2,1,0}}

%fused (p: f32[2,4,4,3,8]) -> f32[2,4,4,3,8] {
  %p = f32[2,4,4,3,8]{4,3,2,1,0} parameter(0)
  ROOT %r = f32[2,4,4,3,8]{4,3,2,1,0} rsqrt(%p)
}

%body (t: (s32[], f32[2,4,4,3,8])) -> (s32[], f32[2,4,4,3,8]) {
  %t = (s32[], f32[2,4,4,3,8]{4,3,2,1,0}) parameter(0)
  %z = f32[2,4,4,3,8]{4,3,2,1,0} get-tuple-element(%t), index=1
  %copy.1 = f32[2,4,4,3,8]{4,3,2,1,0} copy(%z)
  %copy.2 = f32[4,4,3,8]{3,2,1,0} copy(%b)
  %cs = (f32[2,4,4,3,8]{4,3,2,1,0}, f32[2,4,4,3,8]{4,3,2,1,0}, u32[]) copy-start(%z)
  %f = f32[2,4,4,3,8]{4,3,2,1,0} fusion(%copy.1), kind=kLoop, calls=%fused
  ROOT %o = (s32[], f32[2,4,4,3,8]{4,3,2,1,0}) tuple(%i, %f)
}

%cond (t: (s32[], f32[2,4,4,3,8])) -> pred[] {
  ROOT %c = pred[] constant(true)
}

%other_body (t: (s32[], f32[2,4,4,3,8])) -> (s32[], f32[2,4,4,3,8]) {
  %copy.3 = f32[2,4,4,3,8]{4,3,2,1,0} copy(%x), metadata={op_name="copy("}
  ROOT %o = (s32[], f32[2,4,4,3,8]{4,3,2,1,0}) tuple(%i, %copy.3)
}

ENTRY %main (a: f32[2,4,4,3,8]) -> f32[2,4,4,3,8] {
  %a = f32[2,4,4,3,8]{4,3,2,1,0} parameter(0)
  %w = (s32[], f32[2,4,4,3,8]{4,3,2,1,0}) while(%t0), condition=%cond, body=%body
  %w2 = (s32[], f32[2,4,4,3,8]{4,3,2,1,0}) while(%t1), condition=%cond, body=%other_body
  ROOT %copy.9 = f32[2,4,4,3,8]{4,3,2,1,0} copy(%a)
}
"""


def test_step_loop_copies_reads_a_hand_written_module():
  # One step loop (the body reaching an rsqrt through its fusion): z copied by copy.1 and copy-start; the
  # b-shaped copy.2 is not z; other_body (no rsqrt) is no step loop; the entry's copy is outside any loop.
  loops = bench.step_loop_copies(_HLO, (2, 4, 4, 3), step_rsqrt=1)
  assert [(lp["body"], lp["z_copies"], lp["steps_in_body"]) for lp in loops] == [("body", 2, 1.0)]
  assert sum(loops[0]["copies_by_shape"].values()) == 3
  assert bench.step_loop_copies(_HLO, (2, 4, 4, 3), step_rsqrt=0)[0]["steps_in_body"] is None


def test_shipped_reference_matches_only_its_images():
  x, _ = bench.load_images(bench.REFERENCE_IMAGES, None)
  steps, why = bench.load_reference(x[:10])
  with np.load(bench.REFERENCE) as d:
    np.testing.assert_array_equal(steps, d["steps"][:10])
  assert "10 images" in why
  other = x[:10].copy()
  other[3, 0, 0, 0] ^= 1
  steps, _ = bench.load_reference(other)
  assert len(steps) == 3  # the prefix before the first changed image
  other[0, 0, 0, 0] ^= 1
  assert bench.load_reference(other)[0] is None


def test_a_spent_budget_skips_every_measurement_with_a_line(tmp_path, capsys):
  out = tmp_path / "spent.json"
  data = bench.main(["--tiny", "--budget_s=0", f"--out={out}"])
  assert json.loads(out.read_text()) == json.loads(json.dumps(data))  # the file is the last state
  printed = capsys.readouterr().out
  for name in SECTIONS:
    section = data["sections"][name]
    assert not section["errors"] and not section["rows"] and section["skipped"], (name, section)
    for skip in section["skipped"]:
      assert f"skipped {skip['what']}: {skip['why']}" in printed
  with pytest.raises(SystemExit) as e:
    bench.main(["--tiny", "--sections=smooth,nothing", f"--out={out}"])
  assert e.value.code == 2
  with pytest.raises(SystemExit) as e:
    bench.main(["--help"])
  assert e.value.code == 0
