"""Tests for the evaluation library (frequency, low resolution, PSNR, kernels, Grad-CAM, adversarial and
corruption evaluations) and a smoke test of the ``eval/`` entry points."""

import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax


class TinyCNN(nn.Module):
  """conv -> relu -> conv -> relu -> global mean -> dense (the CAM architecture of Zhou et al.)."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Conv(8, (3, 3), name="stem_conv")(x))
    x = nn.relu(nn.Conv(8, (3, 3), name="conv2")(x))
    return nn.Dense(self.num_classes, name="head")(jnp.mean(x, axis=(1, 2)))


@functools.cache
def _tiny(hw=16, n=6, seed=0):
  model = TinyCNN()
  x = jax.random.uniform(jax.random.key(seed), (n, hw, hw, 3))
  variables = model.init(jax.random.key(1), x)
  y = jnp.arange(n) % 10
  return model, variables, x, y


# ----------------------------------------------------------------------------------------------- frequency


@pytest.mark.parametrize("radius", [0, 2, 4.5, 8, 100])
def test_low_plus_high_is_the_image(radius):
  x = jax.random.uniform(jax.random.key(0), (3, 16, 12, 3))
  low, high = iss_jax.robustness.frequency_split(x, radius)
  np.testing.assert_allclose(low + high, x, atol=1e-5)
  assert low.shape == x.shape and low.dtype == x.dtype


def test_frequency_split_closed_forms():
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
  low0, _ = iss_jax.robustness.frequency_split(x, 0.5)  # only the DC term: the per-channel mean
  np.testing.assert_allclose(low0, jnp.broadcast_to(x.mean((1, 2), keepdims=True), x.shape), atol=1e-5)
  low_all, high_all = iss_jax.robustness.frequency_split(x, 100)
  np.testing.assert_allclose(low_all, x, atol=1e-5)
  np.testing.assert_allclose(high_all, 0, atol=1e-5)
  # A pure cosine of frequency 3 along x is "high" for r <= 3 and "low" for r > 3 (dist < r is low, as in
  # Wang et al.'s mask_radial).
  cos = np.cos(2 * np.pi * 3 * np.arange(8) / 8)[None, None, :, None] * np.ones((1, 8, 1, 1))
  np.testing.assert_allclose(iss_jax.robustness.frequency_split(cos, 3.0)[1], cos, atol=1e-5)
  np.testing.assert_allclose(iss_jax.robustness.frequency_split(cos, 3.01)[0], cos, atol=1e-5)


def test_radial_mask_and_fourier_difference():
  assert iss_jax.robustness.radial_mask(8, 8, 1).sum() == 1  # the radius itself is excluded
  m = iss_jax.robustness.radial_mask(8, 8, 1.2)
  assert m.sum() == 5 and m[4, 4] and m[3, 4] and not m[3, 3]
  a = jax.random.uniform(jax.random.key(2), (4, 8, 8, 3))
  np.testing.assert_allclose(iss_jax.robustness.fourier_difference(a, a), 0, atol=1e-6)
  d = np.asarray(iss_jax.robustness.fourier_difference(a + 0.1, a))  # a constant offset lives in the DC term
  assert abs(d[4, 4] - 0.1 * 64) < 1e-3 and np.abs(np.delete(d.ravel(), 4 * 8 + 4)).max() < 1e-3


# ---------------------------------------------------------------------------------------- low resolution


def test_nearest_upsample_is_exact():
  x = jax.random.uniform(jax.random.key(3), (2, 4, 5, 3))
  up = np.asarray(iss_jax.robustness.nearest_upsample(x, (8, 10)))
  np.testing.assert_array_equal(up, np.repeat(np.repeat(np.asarray(x), 2, 1), 2, 2))
  up = np.asarray(iss_jax.robustness.nearest_upsample(x, (7, 13)))
  rows = np.floor(np.arange(7) * 4 / 7).astype(int)
  cols = np.floor(np.arange(13) * 5 / 13).astype(int)
  np.testing.assert_array_equal(up, np.asarray(x)[:, rows][:, :, cols])


def test_low_resolution_blocks_and_identity():
  x = jax.random.uniform(jax.random.key(4), (2, 8, 8, 3))
  np.testing.assert_allclose(iss_jax.robustness.low_resolution(x, 8), x, atol=1e-6)
  out = np.asarray(iss_jax.robustness.low_resolution(x, 4))
  np.testing.assert_array_equal(out[:, ::2, ::2], out[:, 1::2, 1::2])  # 2x2 constant blocks
  # Linear downsampling by 2 samples between the two pixels of a block: 2x2 blocks come back exactly.
  blocks = np.repeat(np.repeat(np.asarray(x[:, :4, :4]), 2, 1), 2, 2)
  np.testing.assert_allclose(iss_jax.robustness.low_resolution(blocks, 4, antialias=False), blocks, atol=1e-6)
  np.testing.assert_allclose(iss_jax.robustness.low_resolution(jnp.full((1, 8, 8, 3), 0.3), 3), 0.3,
                             atol=1e-6)
  with pytest.raises(ValueError, match="size"):
    iss_jax.robustness.low_resolution(x, 9)


def test_nonzero_edge_fraction_of_block_images():
  """8x8 images of 2x2 blocks: only the 3 block boundaries per row/column differ: 48 of 112 edges."""
  small = np.random.default_rng(0).random((3, 4, 4, 3))
  blocks = np.asarray(iss_jax.robustness.nearest_upsample(small, (8, 8)))
  assert abs(iss_jax.robustness.nonzero_edge_fraction(blocks) - 48 / 112) < 1e-12
  assert iss_jax.robustness.nonzero_edge_fraction(np.full((2, 5, 5, 3), 0.2)) == 0.0


# ----------------------------------------------------------------------------------- PSNR and kernels


def test_psnr_closed_form():
  a = jnp.zeros((2, 4, 4, 3))
  b = a.at[0].set(0.1).at[1].set(0.01)
  np.testing.assert_allclose(iss_jax.psnr(a, b), [20.0, 40.0], rtol=1e-5)


def test_kernel_tv_matches_loop_and_spectra_of_delta():
  k = np.random.default_rng(0).normal(size=(3, 3, 2, 4))
  ref = np.zeros(4)
  for o in range(4):
    for c in range(2):
      w = k[:, :, c, o]
      ref[o] += sum(abs(w[i + 1, j] - w[i, j]) for i in range(2) for j in range(3))
      ref[o] += sum(abs(w[i, j + 1] - w[i, j]) for i in range(3) for j in range(2))
  np.testing.assert_allclose(iss_jax.robustness.kernel_tv(k), ref, rtol=1e-12)
  np.testing.assert_allclose(iss_jax.robustness.kernel_tv(np.ones((3, 3, 3, 5))), 0)
  delta = np.zeros((3, 3, 1, 1))
  delta[0, 0] = 1
  np.testing.assert_allclose(iss_jax.robustness.kernel_spectra(delta, 8), 1.0, atol=1e-12)  # flat spectrum
  assert float(iss_jax.robustness.high_frequency_energy(np.ones((3, 3, 1, 1)))[0]) < float(
      iss_jax.robustness.high_frequency_energy(delta)[0])


def test_first_conv_kernel():
  _, variables, _, _ = _tiny()
  path, k = iss_jax.robustness.first_conv_kernel(variables)
  assert path == "stem_conv/kernel" and k.shape == (3, 3, 3, 8)
  path, k = iss_jax.robustness.first_conv_kernel({"params": {"a": {"kernel": np.zeros((3, 3, 1, 2))}}})
  assert k.shape == (3, 3, 1, 2)
  with pytest.raises(ValueError, match="kernel"):
    iss_jax.robustness.first_conv_kernel({"params": {"dense": {"kernel": np.zeros((3, 2))}}})


# ------------------------------------------------------------------------------------------------ Grad-CAM


def test_grad_cam_matches_closed_form_gradient():
  """conv2 -> relu -> global mean -> dense: d logit_c / d A = W[k, c] [A > 0] / (h w) in closed form."""
  model, variables, x, _ = _tiny(hw=8, n=3)
  cams, target, layer = iss_jax.analysis.grad_cam(model, variables, x)
  assert layer == "conv2" and cams.shape == (3, 8, 8)
  assert np.all(np.isfinite(cams)) and cams.min() >= 0 and cams.max() <= 1 + 1e-6
  _, inter = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
  a = np.asarray(inter["intermediates"]["conv2"]["__call__"][0], np.float64)  # pre-activation
  w = np.asarray(variables["params"]["head"]["kernel"], np.float64)[:, target].T  # (N, K)
  grads = w[:, None, None, :] * (a > 0) / (a.shape[1] * a.shape[2])
  ref = np.maximum(np.sum(grads.mean(axis=(1, 2), keepdims=True) * a, -1), 0)
  ref = ref - ref.min(axis=(1, 2), keepdims=True)
  ref = ref / np.maximum(ref.max(axis=(1, 2), keepdims=True), 1e-12)
  np.testing.assert_allclose(cams, ref, atol=1e-4)  # same spatial size: the resize is the identity


def test_grad_cam_bad_layer():
  model, variables, x, _ = _tiny(hw=8, n=1)
  with pytest.raises(ValueError, match="not found"):
    iss_jax.analysis.grad_cam(model, variables, x, layer="nope")


# ------------------------------------------------------------------------------------------- adversarial


def _toy_classifier():
  """Two-class toy task on 6x6 images that a linear model solves (fast to attack, smoothable)."""
  key = jax.random.key(0)
  n, hw = 40, 6
  y = (jnp.arange(n) % 2).astype(jnp.int32)
  x = 0.5 + 0.05 * jax.random.normal(key, (n, hw, hw, 3)) + 0.1 * (2 * y - 1)[:, None, None, None]
  x = jnp.clip(x, 0, 1)
  apply_fn = lambda z: jnp.stack([-jnp.mean(z, (1, 2, 3)), jnp.mean(z, (1, 2, 3))], -1) * 40 - jnp.array(
      [-20.0, 20.0])[None]
  return apply_fn, np.asarray(x), np.asarray(y)


def test_evaluate_adversarial_rows_and_checks():
  apply_fn, x, y = _toy_classifier()
  res = iss_jax.robustness.evaluate_adversarial(apply_fn, x, y, eps_grid=[0.0, 0.05, 0.2], steps=3,
                                                batch_size=16, progress=False)
  acc = {(r["attack"], r["eps"], r["defense"], r["protocol"]): r["accuracy"] for r in res["rows"]}
  assert res["clean"]["none"] == 1.0 and res["violations"] == 0
  assert acc[("pgd", 0.0, "none", "none")] == 1.0 and acc[("pgd", 0.2, "none", "none")] == 0.0
  smoothing = iss_jax.robustness.smoothing_defense(0.6, maxiter=30)
  res = iss_jax.robustness.evaluate_adversarial(apply_fn, x[:16], y[:16], eps_grid=[0.05], attacks_=["fgsm"],
                                                defenses=[smoothing], batch_size=16, progress=False)
  acc = {(r["attack"], r["eps"], r["defense"], r["protocol"]): r["accuracy"] for r in res["rows"]}
  assert {("fgsm", 0.05, "smooth@0.6", p) for p in ("gray-box", "adaptive", "worst")} <= set(acc)
  for k in acc:
    if k[3] == "worst":
      assert acc[k] <= min(acc[k[:3] + ("adaptive",)], acc[k[:3] + ("gray-box",)])
  assert isinstance(res["violations"], int) and len(res["checks"]) >= 5
  json.dumps(res)  # JSON-ready


def _checks(fgsm8, pgd8, fgsm32, pgd32, gray_box, adaptive, n):
  rows = [{"attack": a, "eps": e, "defense": "none", "protocol": "none", "accuracy": v}
          for a, e, v in [("fgsm", 8 / 255, fgsm8), ("pgd", 8 / 255, pgd8), ("fgsm", 32 / 255, fgsm32),
                          ("pgd", 32 / 255, pgd32)]]
  rows += [{"attack": "pgd", "eps": 8 / 255, "defense": "smooth@0.6", "protocol": p, "accuracy": v}
           for p, v in (("gray-box", gray_box), ("adaptive", adaptive))]
  checks = iss_jax.robustness.adversarial_sanity_checks({"rows": rows, "num_examples": n})
  return {c["check"].split(" (")[0] for c in checks if not c["ok"]}


def test_sanity_checks_flag_real_violations():
  failed = _checks(0.3, 0.6, 0.55, 0.5, 0.2, 0.45, n=200)
  assert "PGD drives the bare model to ~0 at the largest eps" in failed
  assert "PGD <= FGSM" in failed and "adaptive <= gray-box" in failed
  assert "accuracy non-increasing in eps" in failed


def test_sanity_checks_allow_sampling_noise():
  # The case: PGD 23% vs FGSM 21% on 100 images is 2 images, well inside the noise.
  assert not _checks(0.21, 0.23, 0.02, 0.03, 0.20, 0.22, n=100)
  assert _checks(0.21, 0.23, 0.02, 0.03, 0.20, 0.22, n=100_000)  # the same gaps on 100k images are real


def test_wilson_interval_closed_forms():
  lo, hi = iss_jax.robustness.wilson_interval(0.0, 10)
  z2 = 1.959963984540054**2
  assert lo == 0.0 and abs(hi - z2 / (10 + z2)) < 1e-12  # p = 0: [0, z^2 / (n + z^2)]
  for n in range(1, 200):  # exactly 0 and 1 at the ends, for every n (n = 24 once left 1.4e-17)
    assert iss_jax.robustness.wilson_interval(0.0, n)[0] == 0.0
    assert iss_jax.robustness.wilson_interval(1.0, n)[1] == 1.0
  lo, hi = iss_jax.robustness.wilson_interval(0.5, 100)
  assert abs((lo + hi) / 2 - 0.5) < 1e-12 and 0.09 < hi - lo < 0.2
  from scipy.stats import binomtest  # an independent implementation of the same interval
  ci = binomtest(37, 120).proportion_ci(0.95, method="wilson")
  np.testing.assert_allclose(iss_jax.robustness.wilson_interval(37 / 120, 120), (ci.low, ci.high), rtol=1e-6)


# ------------------------------------------------------------------------------------------- corruptions


def test_evaluate_corruptions_generate():
  model, variables, _, _ = _tiny(hw=32, n=1)
  apply_fn = lambda z: model.apply(variables, z)
  x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
  y = np.arange(8) % 10
  res = iss_jax.robustness.evaluate_corruptions(apply_fn, x, y, names=["gaussian_noise", "brightness"],
                                                severities=[1, 5], batch_size=8, progress=False)
  assert set(res["accuracy"]) == {"gaussian_noise", "brightness"}
  assert "CIFAR-10-C-style" in res["source"]
  m = np.mean([res["accuracy"][n]["5"]["none"] for n in res["names"]])
  assert abs(res["mean_over_types"]["5"]["none"] - m) < 1e-12
  with pytest.raises(ValueError, match="source"):
    iss_jax.robustness.evaluate_corruptions(apply_fn, x, y, source="web")


# ----------------------------------------------------------------------------------------- entry points


def test_eval_all_smoke(tmp_path, monkeypatch):
  model, variables, _, _ = _tiny(hw=32, n=1)
  rng = np.random.default_rng(0)
  data = {"test": (rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), np.arange(6, dtype=np.int32)),
          "train": (rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), np.arange(4, dtype=np.int32))}
  monkeypatch.setattr(iss_jax.training, "load_dataset", lambda name, split, data_dir=None: data[split])
  monkeypatch.setattr(iss_jax.training, "load_classifier",
                      lambda wd: (lambda z: model.apply(variables, z, train=False), {}))
  monkeypatch.setattr(iss_jax.training, "load_variables", lambda wd: (model, variables, {}))
  from eval import all as eval_all

  (tmp_path / "config.json").write_text("{}")  # a training workdir, as far as the entry point checks
  out = str(tmp_path / "out")
  eval_all.main(["--workdir", str(tmp_path), "--out", out, "--eps", "0,8/255", "--pgd_steps", "2",
                 "--severities", "1", "--corruptions", "gaussian_noise,motion_blur", "--sizes", "16",
                 "--radii", "4", "--fourier_sparsities", "", "--denoise_tv_weights", "0.1",
                 "--tune_examples", "2", "--saliency_indices", "0,1", "--batch_size", "4",
                 "--no_progress", "--skip", "denoise"])
  for name in ("adversarial", "corruptions", "low_resolution", "frequency", "kernels", "saliency"):
    for ext in ("md", "json", "png"):
      assert os.path.getsize(os.path.join(out, f"{name}.{ext}")) > 0, (name, ext)
  with open(os.path.join(out, "adversarial.md")) as f:
    md = f.read()
  assert "Sanity checks" in md and "eps=8/255" in md


def _run_entry(*args):
  import subprocess
  import sys

  return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, message", [
    (["eval.compare", "--row=a={fake}:smooth@1.5"], "smooth@1.5"),
    (["eval.compare", "--row=a={fake}:jpeg@75"], "unknown defense 'jpeg@75'"),
    (["eval.compare", "--row=a={missing}"], "is not a training workdir"),
    (["eval.compare", "--defense=a={fake}"], "--row=LABEL=WORKDIR[:TRANSFORM]"),  # the old form of a row
    (["eval.adversarial", "--workdir={missing}"], "is not a training workdir"),
    (["eval.adversarial", "--workdir={fake}", "--defense=tv@-1"], "tv@-1"),
    (["eval.corruptions", "--workdir={fake}", "--num_examples=0"], "--num_examples must be >= 1"),
])
def test_entry_points_end_user_errors_in_one_line_before_loading(tmp_path, argv, message):
  fake = tmp_path / "fake"  # has a config.json but no checkpoint: reaching the loader would fail otherwise
  fake.mkdir()
  (fake / "config.json").write_text("{}")
  argv = [a.format(fake=fake, missing=tmp_path / "nope") for a in argv]
  r = _run_entry(*argv, "--out", str(tmp_path / "out"))
  lines = r.stderr.strip().splitlines()
  assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
  assert message in lines[0]
  assert not (tmp_path / "out").exists()  # nothing written


def test_sanity_violations_exit_non_zero_unless_accepted(capsys):
  from types import SimpleNamespace

  from eval import _common

  bad = {"violations": 2}
  with pytest.raises(SystemExit) as e:
    _common.exit_on_violations(SimpleNamespace(out="o", accept_violations=False), [bad])
  assert e.value.code == 1 and "--accept_violations" in capsys.readouterr().err
  _common.exit_on_violations(SimpleNamespace(out="o", accept_violations=True), [bad])
  _common.exit_on_violations(SimpleNamespace(out="o", accept_violations=False), [{"violations": 0}])


EVAL_ENTRY_POINTS = ("adversarial", "all", "compare", "corruptions", "denoise", "frequency", "kernels",
                     "low_resolution", "lrp", "saliency", "tsne", "activation_max")


@pytest.mark.parametrize("module", EVAL_ENTRY_POINTS)
def test_eval_entry_point_help_exits_0_and_a_bad_flag_is_one_line_and_exit_2(module, capsys):
  entry = __import__(f"eval.{module}", fromlist=["main"])
  with pytest.raises(SystemExit) as e:
    entry.main(["--help"])
  out = capsys.readouterr().out
  assert e.value.code == 0
  assert entry.__doc__.split("\n")[0] in out and "--batch_size" in out and "--dataset" in out, out
  assert ("--row" if module == "compare" else "--workdir") in out
  for argv, message in ((["--nonsense=1"], "Unknown command line flag 'nonsense'"),
                        (["--batch_size=many"], "--batch_size"), (["stray"], "unexpected argument 'stray'")):
    with pytest.raises(SystemExit) as e:
      entry.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_number_flags_take_fractions_and_lists():
  from absl import flags

  import cli

  fv = flags.FlagValues()
  cli.define("number", "eps", 0.5, "", fv)
  cli.define("number_list", "grid", "1/2,0.25", "", fv)
  cli.define("int_list", "sizes", "", "", fv)
  cli.define("multi_number", "s", [], "", fv)
  args = cli.parse(fv, ["--eps=8/255", "--s=0.6", "--s", "3/5"], "")
  assert args.eps == 8 / 255 and args.grid == [0.5, 0.25] and args.sizes == [] and args.s == [0.6, 0.6]
  with pytest.raises(SystemExit) as e:
    cli.parse(fv, ["--eps=8/0"], "")
  assert e.value.code == 2


def test_a_library_message_names_its_arguments_as_flags_on_the_command_line(capsys):
  import cli

  assert cli.as_flags("pass data_dir=DIR or dataset=npz:/p; not my_data_dir=1 or config.dataset=x") == (
      "pass --data_dir=DIR or --dataset=npz:/p; not my_data_dir=1 or config.dataset=x")
  with pytest.raises(SystemExit) as e, cli.user_errors():
    iss_jax.training.load_dataset("npz:/nonexistent/file.npz")
  err = capsys.readouterr().err.strip()
  assert e.value.code == 2 and err.startswith("error: ") and "pass --dataset=npz:" in err, err


def test_workdir_config_is_the_one_training_workdir_check(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"is not a training workdir: it holds no config\.json\.$") as e:
    iss_jax.training.workdir_config(tmp_path)
  assert "--" not in str(e.value)  # library text names no flag; the entry points add it
  (tmp_path / "config.json").write_text('{"preprocess": "menet@0.5", "seed": 3}')
  config = iss_jax.training.workdir_config(tmp_path).to_dict()
  assert config["preprocess"] == "menet@0.5" and config["seed"] == 3
  # A field the old workdir lacks means what its absence meant then.
  schema = iss_jax.training.CONFIG_SCHEMA
  assert config["pni"] == schema["pni"].absent_means == "none"
  assert config["tv_layer_position"] == schema["tv_layer_position"].absent_means == "input"
  from eval import _common, compare

  assert compare.own_transform(str(tmp_path)) == "menet@0.5"
  with pytest.raises(FileNotFoundError, match=r"^--substitute=.*nope is not a training workdir"):
    _common.workdir_config(str(tmp_path / "nope"), "--substitute")
