"""Training library: smoothing cache, schedules, augmentation, one-step runs of every procedure, resume."""

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax
from iss_jax.training import _smooth_cache as smooth_cache
from iss_jax.training._train import augment, make_train_step
from train.configs import adversarial, default, finetune, fixed, iterative, vanilla

CONFIGS = {"vanilla": vanilla, "fixed": fixed, "iterative": iterative, "finetune": finetune,
           "adversarial": adversarial}
REPO = Path(__file__).parents[1]


def _images(n, size=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


_SMOOTH_FN = []


class _Counting:
  """The default smoothing function (compiled once for the module), counting its calls."""

  def __init__(self):
    if not _SMOOTH_FN:
      _SMOOTH_FN.append(smooth_cache._default_smooth_fn(10.0, 1.0, 1.0, 100_000))
    self.fn = _SMOOTH_FN[0]
    self.calls = 0

  def __call__(self, x, sparsities):
    self.calls += 1
    return self.fn(x, sparsities)


# --------------------------------------------------------------------------------------------------
# Smoothing cache.


def test_cache_matches_smooth_path_rounded(tmp_path):
  x = _images(5)
  out = iss_jax.training.smooth_dataset(x, [0.4, 0.7], cache_dir=tmp_path, batch_size=2, progress=False,
                                        smooth_fn=_Counting())
  ref = iss_jax.smooth_path(jnp.asarray(x, jnp.float32) / 255.0, jnp.asarray([0.4, 0.7]))
  ref = np.round(np.clip(np.asarray(ref), 0, 1) * 255).astype(np.uint8)
  assert out.shape == (2, 5, 8, 8, 3) and out.dtype == np.uint8
  assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1  # float noise across batch sizes


def test_cache_resume_and_reuse(tmp_path):
  x = _images(5, seed=1)
  fn = _Counting()
  kw = dict(cache_dir=tmp_path / "a", batch_size=2, progress=False, smooth_fn=fn)
  assert iss_jax.training.smooth_dataset(x, [0.5], max_chunks=1, **kw) is None  # "killed" after one chunk
  assert fn.calls == 1
  resumed, info = iss_jax.training.smooth_dataset(x, [0.5], return_info=True, **kw)
  assert fn.calls == 3 and not info["reused"]  # only the two missing chunks
  fresh = iss_jax.training.smooth_dataset(x, [0.5], cache_dir=tmp_path / "b", batch_size=2, progress=False,
                                          smooth_fn=_Counting())
  np.testing.assert_array_equal(resumed, fresh)
  again, info = iss_jax.training.smooth_dataset(x, [0.5], return_info=True, **kw)
  assert fn.calls == 3 and info["reused"]  # nothing recomputed
  np.testing.assert_array_equal(again, resumed)
  leftovers = [p.name for p in (tmp_path / "a").rglob("*") if p.name.endswith(".tmp")]
  assert not leftovers


def test_cache_path_serves_a_subset_and_keys_on_data_and_settings(tmp_path):
  x = _images(3, seed=2)
  fn = _Counting()
  kw = dict(cache_dir=tmp_path, batch_size=4, progress=False, smooth_fn=fn)
  path = iss_jax.training.smooth_dataset(x, [0.3, 0.6, 0.8], **kw)
  one = iss_jax.training.smooth_dataset(x, [0.6], **kw)
  assert fn.calls == 1
  np.testing.assert_array_equal(one[0], path[1])
  iss_jax.training.smooth_dataset(x[::-1].copy(), [0.6], **kw)  # other data: recomputed
  assert fn.calls == 2
  iss_jax.training.smooth_dataset(x, [0.6], maxiter=50, **kw)  # other solver settings: recomputed
  assert fn.calls == 3


def test_cache_bad_input(tmp_path):
  with pytest.raises(ValueError, match="uint8"):
    iss_jax.training.smooth_dataset(np.zeros((2, 4, 4, 3)), [0.5], cache_dir=tmp_path)
  with pytest.raises(ValueError, match="sparsities"):
    iss_jax.training.smooth_dataset(_images(2), [1.5], cache_dir=tmp_path)


# --------------------------------------------------------------------------------------------------
# Schedules, augmentation, configs.


def test_sparsity_schedules():
  c = iterative.get_config("quick")
  c.epochs, c.num_levels, c.start_sparsity, c.end_sparsity = 7, 3, 0.3, 0.8
  assert iss_jax.training.sparsity_schedule(c) == [0.3, 0.3, 0.3, 0.55, 0.55, 0.8, 0.8]
  c.procedure = "fixed"
  assert iss_jax.training.sparsity_schedule(c) == [c.sparsity] * 7
  c.procedure = "vanilla"
  assert iss_jax.training.sparsity_schedule(c) == [1.0] * 7
  c.procedure = "other"
  with pytest.raises(ValueError, match="procedure"):
    iss_jax.training.sparsity_schedule(c)


def test_presets():
  quick = fixed.get_config()
  assert (quick.preset, quick.dataset, quick.model, quick.sparsity) == (
      "quick", "cifar10_sample", "resnet_small", 0.6)
  paper = vanilla.get_config("paper")
  assert (paper.dataset, paper.model, paper.epochs, paper.learning_rate) == ("cifar10", "resnet18", 200, 0.1)
  assert dict(paper) == dict(default.get_config())  # the paper preset is the defaults
  assert (finetune.get_config("paper").epochs, finetune.get_config("paper").learning_rate) == (20, 0.01)
  for name in ("vanilla", "fixed", "iterative", "finetune"):
    c = CONFIGS[name].get_config("cpu")
    assert (c.procedure, c.preset, c.dataset) == (name, "cpu", "cifar10_exact")
    assert c.smooth_kernel_weight == 0.0 and c.adversarial == "none"
  adv = adversarial.get_config("cpu")
  assert (adv.procedure, adv.adversarial) == ("vanilla", "pgd")
  for name, config in CONFIGS.items():
    with pytest.raises(ValueError, match="paper"):  # the message lists the presets
      config.get_config("full")
    assert f"python -m train.{name}" in config.__doc__ and "2-core CPU" in config.__doc__


def test_configs_hold_every_library_field():
  """train/configs/default.py sets exactly the fields the library reads, with iss_jax.smooth's defaults."""
  import inspect

  c = default.get_config()
  assert sorted(c) == sorted(iss_jax.training.CONFIG_SCHEMA)  # one schema entry per field, and no other
  params = inspect.signature(iss_jax.smooth).parameters
  solver = ("kappa", "nu", "step_factor")
  assert {k: c[k] for k in solver} == {k: params[k].default for k in solver}
  assert c.maxiter == 0 and params["maxiter"].default is None  # 0 in a config: smooth's size-aware cap
  assert set(default.FLAG_HELP) <= set(c) and set(default.COMMON_FLAGS) <= set(default.FLAG_HELP)
  assert not hasattr(iss_jax.training, "training_config")


def test_augment_crop_and_flip():
  x = jax.random.uniform(jax.random.key(0), (16, 6, 6, 3))
  np.testing.assert_array_equal(augment(x, jax.random.key(1), padding=0, flip=False), x)
  flipped = augment(x, jax.random.key(1), padding=0, flip=True)
  same = jnp.all(flipped == x, axis=(1, 2, 3))
  mirrored = jnp.all(flipped == x[:, :, ::-1], axis=(1, 2, 3))
  assert bool(jnp.all(same | mirrored)) and 0 < int(jnp.sum(mirrored)) < 16
  cropped = np.asarray(augment(x, jax.random.key(2), padding=2, flip=False))
  padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)))
  for i in range(16):  # every output is some 6x6 window of the zero-padded image
    assert any(np.array_equal(cropped[i], padded[i, a:a + 6, b:b + 6])
               for a in range(5) for b in range(5))


@pytest.mark.slow  # the end-to-end determinism / resume tests cover the step too
def test_train_step_is_pure_and_reduces_loss():
  model = iss_jax.training.resnet_small(width=4)
  c = vanilla.get_config()
  x = jnp.asarray(_images(8))
  y = jnp.arange(8) % 10
  import optax

  tx = optax.sgd(0.05, 0.9)
  v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  make = lambda: iss_jax.training.TrainState.create(  # fresh buffers: the step donates its input state
      apply_fn=model.apply, params=jax.tree_util.tree_map(jnp.copy, v["params"]), tx=tx,
      batch_stats=jax.tree_util.tree_map(jnp.copy, v["batch_stats"]))
  step = jax.jit(make_train_step(c, model, tx), donate_argnums=0)
  s1, m1 = step(make(), x, y, jax.random.key(3))
  s2, m2 = step(make(), x, y, jax.random.key(3))
  assert float(m1["loss"]) == float(m2["loss"])
  jax.tree_util.tree_map(np.testing.assert_array_equal, s1.params, s2.params)
  losses = []
  s = make()
  for _ in range(8):
    s, m = step(s, x, y, jax.random.key(3))
    losses.append(float(m["loss"]))
  assert losses[-1] < losses[0]


# --------------------------------------------------------------------------------------------------
# End to end on tiny data.


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("tiny")
  path = root / "tiny.npz"
  rng = np.random.default_rng(0)
  np.savez(path, x_train=_images(16, seed=3), y_train=rng.integers(0, 3, 16),
           x_test=_images(8, seed=4), y_test=rng.integers(0, 3, 8))
  return root, path


def _config(procedure, tiny, **kw):
  root, path = tiny
  c = CONFIGS[procedure].get_config("quick")
  c.dataset = f"npz:{path}"
  c.width = 4
  c.epochs = 2
  c.batch_size = 8
  c.eval_batch_size = 8
  c.num_levels = 2
  c.cache_dir = str(root / "cache")
  c.progress = False
  c.tensorboard = False
  for k, v in kw.items():
    c[k] = v
  return c


def _rows(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  for r in rows:
    r.pop("epoch_time_s")
  return rows


@pytest.fixture(scope="module")
def vanilla_run(tiny, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("vanilla")
  return workdir, iss_jax.training.train_and_evaluate(_config("vanilla", tiny), workdir)


def test_vanilla_smoke_outputs(vanilla_run):
  workdir, summary = vanilla_run
  assert summary["completed"] and summary["epochs_done"] == 2 and summary["num_train"] == 16
  rows = _rows(workdir)
  assert [r["epoch"] for r in rows] == [1, 2] and [r["sparsity"] for r in rows] == [1.0, 1.0]
  assert 0.0 <= summary["final_test_accuracy"] <= 1.0
  assert json.loads((workdir / "summary.json").read_text())["final_test_accuracy"] == (
      summary["final_test_accuracy"])
  apply_fn, config = iss_jax.training.load_classifier(workdir)
  assert config.procedure == "vanilla"
  x_test, y_test = iss_jax.training.load_dataset(config.dataset, "test")
  x = jnp.asarray(x_test, jnp.float32) / 255.0
  logits = jax.jit(apply_fn)(x)
  assert logits.shape == (8, 3)
  acc = float(jnp.mean(jnp.argmax(logits, -1) == y_test))
  assert acc == pytest.approx(rows[-1]["test_accuracy"])  # the checkpoint is the evaluated model
  g = jax.grad(lambda x: jnp.sum(apply_fn(x)[:, 0]))(x)
  assert g.shape == x.shape and float(jnp.abs(g).sum()) > 0


def test_same_seed_same_result(vanilla_run, tiny, tmp_path):
  workdir, _ = vanilla_run
  iss_jax.training.train_and_evaluate(_config("vanilla", tiny), tmp_path)
  assert _rows(tmp_path) == _rows(workdir)
  _, a, _ = iss_jax.training.load_variables(workdir)
  _, b, _ = iss_jax.training.load_variables(tmp_path)
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_resume_after_kill_equals_uninterrupted(vanilla_run, tiny, tmp_path):
  workdir, _ = vanilla_run
  # Killed in epoch 2 (step 3 of 4): the epoch-1 checkpoint survives, epoch 2's steps are lost.
  partial = iss_jax.training.train_and_evaluate(_config("vanilla", tiny, stop_after_steps=3), tmp_path)
  assert not partial["completed"] and partial["epochs_done"] == 1
  assert not (tmp_path / "summary.json").exists()
  resumed = iss_jax.training.train_and_evaluate(_config("vanilla", tiny), tmp_path)
  assert resumed["completed"]
  assert _rows(tmp_path) == _rows(workdir)
  _, a, _ = iss_jax.training.load_variables(workdir)
  _, b, _ = iss_jax.training.load_variables(tmp_path)
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("procedure", ["fixed", "iterative"])
def test_smoothed_procedures_smoke(procedure, tiny, tmp_path):
  summary = iss_jax.training.train_and_evaluate(_config(procedure, tiny, epochs=2), tmp_path)
  rows = _rows(tmp_path)
  expected = [0.6, 0.6] if procedure == "fixed" else [0.3, 0.8]
  assert [r["sparsity"] for r in rows] == expected
  assert summary["completed"] and summary["smoothing"]["capped"] == [0] * len(set(expected))


def test_finetune_starts_from_checkpoint(vanilla_run, tiny, tmp_path):
  workdir, _ = vanilla_run
  c = _config("finetune", tiny, epochs=1, init_checkpoint=str(workdir), learning_rate=0.0,
              weight_decay=0.0)
  summary = iss_jax.training.train_and_evaluate(c, tmp_path)
  _, before, _ = iss_jax.training.load_variables(workdir)
  _, after, _ = iss_jax.training.load_variables(tmp_path)
  # Zero learning rate: the weights are the initial checkpoint's (only BatchNorm statistics move).
  jax.tree_util.tree_map(np.testing.assert_array_equal, before["params"], after["params"])
  assert summary["completed"]
  with pytest.raises(ValueError, match="init_checkpoint"):
    iss_jax.training.train_and_evaluate(_config("finetune", tiny), tmp_path / "other")


def test_config_missing_a_field_is_refused_before_the_workdir(tiny, tmp_path):
  c = _config("fixed", tiny)
  del c["sparsity"]
  del c["seed"]
  with pytest.raises(ValueError, match=r"sparsity, seed.*train/configs/<procedure>\.py:get_config\(\)"):
    iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()
  c = _config("fixed", tiny)
  c.procedure = "other"
  with pytest.raises(ValueError, match="procedure"):
    iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field, value, message", [
    ("sparsity", 1.5, r"config\.sparsity must be a number in \[0, 1\]; got 1\.5\."),
    ("sparsity", float("nan"), r"config\.sparsity must be a number in \[0, 1\]"),
    ("dataset", "cifar11", r"config\.dataset must be one of cifar10, .*npz:/path/file\.npz or folder:/path; "
                           r"got 'cifar11'"),
    ("dataset", "npz:", r"config\.dataset must be one of"),
    ("model", "resnet19", r"config\.model must be one of resnet18, .*resnet_small.*; got 'resnet19'"),
    ("epochs", 0, r"config\.epochs must be an integer >= 1; got 0"),
    ("batch_size", -8, r"config\.batch_size must be an integer >= 1"),
    ("learning_rate", -0.1, r"config\.learning_rate must be a number >= 0; got -0\.1"),
    ("step_factor", 2.0, r"config\.step_factor must be a number in \(0, 2\)"),
    ("adversarial", "fgsm", r"config\.adversarial must be one of none, pgd, trades; got 'fgsm'"),
    ("train_limit", -1, r"config\.train_limit must be an integer >= 0"),
])
def test_config_values_are_refused_before_the_workdir(tiny, tmp_path, field, value, message):
  c = _config("fixed", tiny)
  c[field] = value
  with pytest.raises(iss_jax.training.ConfigError, match=message):
    iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()
  assert issubclass(iss_jax.training.ConfigError, ValueError)


def test_iterative_sparsities_must_rise(tiny, tmp_path):
  c = _config("iterative", tiny, start_sparsity=0.8, end_sparsity=0.3)
  with pytest.raises(ValueError, match=r"config\.start_sparsity \(0\.8\) must be <= config\.end_sparsity"):
    iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()
  iss_jax.training.validate_config(_config("fixed", tiny, start_sparsity=0.8, end_sparsity=0.3))  # unused


def test_missing_or_malformed_data_is_refused_before_the_workdir(tiny, tmp_path):
  c = _config("fixed", tiny, dataset=f"npz:{tmp_path / 'missing.npz'}")
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="dataset=npz"):
    iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  bad = tmp_path / "bad.npz"
  np.savez(bad, images=_images(4))
  c = _config("fixed", tiny, dataset=f"npz:{bad}")
  with pytest.raises(iss_jax.training.ConfigError, match=r"config\.dataset .*expected arrays"):
    iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  c = _config("fixed", tiny, batch_size=32)  # more than the 16 training images
  with pytest.raises(iss_jax.training.ConfigError, match=r"config\.batch_size must be at most the 16"):
    iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_workdir_is_bound_to_its_config(tiny, tmp_path):
  """Another sparsity in the same workdir is refused and changes nothing; overwrite=True starts afresh."""
  first = iss_jax.training.train_and_evaluate(_config("fixed", tiny), tmp_path)
  files = {name: (tmp_path / name).read_bytes() for name in ("config.json", "metrics.jsonl", "summary.json")}
  with pytest.raises(iss_jax.training.WorkdirConfigMismatchError,
                     match=r"config\.sparsity 0\.6 there, 0\.8 now.*another workdir"
                           r".*\(overwrite=True\)\.$") as e:
    iss_jax.training.train_and_evaluate(_config("fixed", tiny, sparsity=0.8), tmp_path)
  assert e.value.differences == {"sparsity": (0.6, 0.8)} and "\n" not in str(e.value)
  assert "--" not in str(e.value)  # library text: the entry points name their flags
  with pytest.raises(iss_jax.training.WorkdirConfigMismatchError, match=r"config\.epochs 2 there, 3 now; "
                     r"config\.seed 0 there, 1 now"):  # every differing field is named
    iss_jax.training.train_and_evaluate(_config("fixed", tiny, seed=1, epochs=3), tmp_path)
  assert {name: (tmp_path / name).read_bytes() for name in files} == files
  # Fields that do not change the result (and fields the procedure never reads) do not count.
  assert set(iss_jax.training.RESULT_INDEPENDENT_FIELDS) >= {"progress", "stop_after_steps", "cache_dir"}
  c = _config("fixed", tiny, eval_batch_size=4, keep_checkpoints=3, start_sparsity=0.1, adv_steps=3)
  again = iss_jax.training.train_and_evaluate(c, tmp_path)
  assert again["final_test_accuracy"] == first["final_test_accuracy"]
  assert (tmp_path / "metrics.jsonl").read_bytes() == files["metrics.jsonl"]  # nothing retrained
  # overwrite=True deletes the run (and evaluations of it), keeps other files, trains afresh.
  (tmp_path / "eval").mkdir()
  (tmp_path / "eval" / "adversarial.md").write_text("results of the 0.6 model")
  (tmp_path / "notes.txt").write_text("mine")
  iss_jax.training.train_and_evaluate(_config("fixed", tiny, sparsity=0.8), tmp_path, overwrite=True)
  assert [r["sparsity"] for r in _rows(tmp_path)] == [0.8, 0.8]
  assert json.loads((tmp_path / "config.json").read_text())["sparsity"] == 0.8
  assert not (tmp_path / "eval").exists() and (tmp_path / "notes.txt").read_text() == "mine"


def test_a_workdir_made_before_the_competitor_fields_existed_still_resumes(tiny, tmp_path):
  config = _config("fixed", tiny)
  stored = json.loads(config.to_json())
  for field in ("tv_layer", "tv_layer_weight", "tv_layer_position", "tv_layer_iters", "pni", "preprocess"):
    del stored[field]
  (tmp_path / "config.json").write_text(json.dumps(stored))
  iss_jax.training.check_workdir(config, tmp_path)  # absent meant none / at the input
  with pytest.raises(iss_jax.training.WorkdirConfigMismatchError, match=r'config\.pni "none" there, '
                     r'"layerwise" now'):
    iss_jax.training.check_workdir(_config("fixed", tiny, pni="layerwise"), tmp_path)
  stored.update(tv_layer="smooth", tv_layer_weight=0.05, tv_layer_iters=30)  # a TV-layer run of last release
  (tmp_path / "config.json").write_text(json.dumps(stored))
  iss_jax.training.check_workdir(_config("fixed", tiny, tv_layer="smooth"), tmp_path)
  with pytest.raises(iss_jax.training.WorkdirConfigMismatchError, match="tv_layer_position"):
    iss_jax.training.check_workdir(_config("fixed", tiny, tv_layer="smooth", tv_layer_position="first_conv"),
                                   tmp_path)


def test_a_field_absent_from_an_old_workdir_means_its_absent_means(vanilla_run, tiny, tmp_path):
  """Each field of an earlier release's configs, absent from a stored config.json, means what it meant."""
  from iss_jax.training._config_schema import REQUIRED

  schema = iss_jax.training.CONFIG_SCHEMA
  absent = {k: f.absent_means for k, f in schema.items() if f.absent_means is not REQUIRED}
  assert absent == {"stem": "cifar", "width": 0, "tv_layer": "none", "tv_layer_position": "input",
                    "pni": "none", "preprocess": "none", "dtype": "float32", "optimizer": "sgd"}
  config = _config("fixed", tiny, width=0)
  for name, value in absent.items():
    stored = json.loads(config.to_json())
    del stored[name]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    iss_jax.training.check_workdir(_config("fixed", tiny, **{"width": 0, name: value}), tmp_path)  # resumes
  stored = json.loads(config.to_json())
  del stored["seed"]  # a field every stored config holds: its absence differs from any value
  (tmp_path / "config.json").write_text(json.dumps(stored))
  with pytest.raises(iss_jax.training.WorkdirConfigMismatchError, match=r'config\.seed "\(absent\)" there'):
    iss_jax.training.check_workdir(config, tmp_path)
  # A model loads from a workdir whose config.json has none of these fields.
  workdir, _ = vanilla_run
  old = tmp_path / "old"
  shutil.copytree(workdir, old)
  stored = json.loads((old / "config.json").read_text())
  for name in absent:
    del stored[name]
  (old / "config.json").write_text(json.dumps(stored))
  model, variables, loaded = iss_jax.training.load_variables(old)
  assert (loaded.stem, loaded.width, loaded.tv_layer, loaded.pni) == ("cifar", 0, "none", "none")
  _, same, _ = iss_jax.training.load_variables(workdir)
  jax.tree_util.tree_map(np.testing.assert_array_equal, variables, same)


def test_validate_config_checks_each_run_once(tiny, tmp_path, monkeypatch):
  """train_and_evaluate checks its config on entry; after the entry points' own check it is not redone."""
  from iss_jax.training import _config_schema

  full_checks = []
  check_fields = _config_schema.check_fields

  def counting(config, names):
    names = tuple(names)
    full_checks.extend([1] if len(names) == len(_config_schema.CONFIG_SCHEMA) else [])
    return check_fields(config, names)

  monkeypatch.setattr(_config_schema, "check_fields", counting)
  monkeypatch.setattr(_config_schema, "_last_accepted", None)
  config = _config("vanilla", tiny, stop_after_steps=1)
  iss_jax.training.train_and_evaluate(config, tmp_path / "a")
  assert len(full_checks) == 1
  monkeypatch.setattr(_config_schema, "_last_accepted", None)
  iss_jax.training.validate_config(config)  # as python -m train.<procedure> does before announcing
  iss_jax.training.train_and_evaluate(config, tmp_path / "b")
  assert len(full_checks) == 2
  config.sparsity = 1.5  # changed after its check: checked again
  with pytest.raises(iss_jax.training.ConfigError, match=r"config\.sparsity must be a number in \[0, 1\]"):
    iss_jax.training.train_and_evaluate(config, tmp_path / "c")
  assert len(full_checks) == 3


def test_the_schema_describes_each_field_of_the_default_config_once():
  schema = iss_jax.training.CONFIG_SCHEMA
  c = default.get_config()
  assert list(schema) == [f.name for f in schema.values()] and set(schema) == set(c)
  for name, field in schema.items():
    assert field.check(c[name]), name  # every default is an allowed value
    assert field.help and field.expected, name
  assert default.FLAG_HELP == {k: f.help for k, f in schema.items()}
  assert iss_jax.training.RESULT_INDEPENDENT_FIELDS == {
      "preset", "data_dir", "cache_dir", "smooth_batch_size", "eval_batch_size", "checkpoint_every_epochs",
      "keep_checkpoints", "stop_after_steps", "progress", "tensorboard", "distributed"}
  assert {k for k, f in schema.items() if not f.in_step} == {
      "procedure", "preset", "dataset", "data_dir", "image_size", "train_limit", "test_limit", "sparsity",
      "start_sparsity", "end_sparsity", "num_levels", "kappa", "nu", "step_factor", "maxiter",
      "smooth_batch_size", "cache_dir", "init_checkpoint", "seed", "checkpoint_every_epochs",
      "keep_checkpoints", "stop_after_steps", "progress", "tensorboard", "distributed", "epochs"}


def test_workdir_with_output_but_no_config_is_refused(tiny, tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
  with pytest.raises(iss_jax.training.WorkdirConfigMismatchError, match="no config.json"):
    iss_jax.training.check_workdir(_config("fixed", tiny), tmp_path)
  iss_jax.training.check_workdir(_config("fixed", tiny), tmp_path / "new")  # a new workdir is fine


def test_default_workdirs_name_the_key_settings():
  from train import _main

  expected = {"vanilla": "workdirs/vanilla", "fixed": "workdirs/fixed_s0.6",
              "iterative": "workdirs/iterative_s0.3-0.8", "finetune": "workdirs/finetune_s0.6",
              "adversarial": "workdirs/pgd_at"}
  for name, workdir in expected.items():
    assert _main.default_workdir(name, _main.get_config(name)) == workdir
  c = _main.get_config("fixed", "cpu")
  c.sparsity = 0.8
  assert _main.default_workdir("fixed", c) == "workdirs/fixed_s0.8_cpu"


def _python(*args, **kw):
  import subprocess
  import sys

  return subprocess.run([sys.executable, *args], capture_output=True, text=True, **kw)


_FAST = ["--config.epochs=1", "--config.train_limit=100", "--config.test_limit=50", "--config.progress=false",
         "--config.tensorboard=false"]


@pytest.mark.parametrize("args, message", [
    (["--sparsity=1.5"], r"--sparsity must be a number in \[0, 1\]; got 1\.5\."),
    (["--dataset=cifar11"], r"--dataset must be one of cifar10, .*; got 'cifar11'\."),
    (["--config.learning_rate=-1"], r"--learning_rate must be a number >= 0; got -1"),  # its short flag
    (["--config.momentum=1.5"], r"--config\.momentum must be a number in \[0, 1\)"),
    (["--sparsty=0.8"], r"Unknown command line flag 'sparsty'"),
    (["--preset=cpu", "--data_dir={tmp}"],
     r"cifar10_exact: .* not found\. .*python -m train\.make_cifar10_exact"),
])
def test_entry_point_user_error_is_one_line_and_exit_2(tmp_path, args, message):
  import re

  workdir = tmp_path / "run"
  args = [a.format(tmp=tmp_path) for a in args]
  out = _python("-m", "train.fixed", *args, f"--workdir={workdir}", f"--config.cache_dir={tmp_path}/c",
                *_FAST)
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(message, lines[0]), out.stderr
  assert not workdir.exists() and not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def fixed_cli_run(tmp_path_factory):
  """`python -m train.fixed --sparsity=0.6` on 100 images for one epoch: (workdir, the common flags)."""
  root = tmp_path_factory.mktemp("cli")
  workdir = root / "run"
  common = [f"--workdir={workdir}", f"--config.cache_dir={root}/cache", *_FAST]
  out = _python("-m", "train.fixed", "--sparsity=0.6", *common)
  assert out.returncode == 0, out.stderr
  return workdir, common


def test_entry_point_refuses_a_workdir_of_another_sparsity(fixed_cli_run, tmp_path):
  """`train.fixed --sparsity=0.6`, then 0.8 in one workdir: exit 2 with one line, nothing touched."""
  workdir, common = fixed_cli_run
  files = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
  assert {"config.json", "metrics.jsonl", "summary.json"} <= set(files)
  out = _python("-m", "train.fixed", "--sparsity=0.8", *common)
  assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
  assert out.stderr.strip().splitlines() == [
      f"error: {workdir} holds a run made with another config (--sparsity 0.6 there, 0.8 now); resuming it "
      "would mix two runs, so either train into another workdir (--workdir=NEW_DIR) or delete that run and "
      "train afresh (--overwrite=True)."]
  assert {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} == files
  out = _python("-m", "train.report", f"--workdirs={workdir}", f"--out={tmp_path}/report")
  assert out.returncode == 0 and "| run | fixed | 0.6 |" in (tmp_path / "report.md").read_text(), out.stderr


@pytest.mark.slow  # a second training run; overwrite=True itself is tested above in the library
def test_entry_point_overwrite_flag_trains_afresh(fixed_cli_run):
  workdir, common = fixed_cli_run
  out = _python("-m", "train.fixed", "--sparsity=0.8", "--overwrite", *common)
  assert out.returncode == 0, out.stderr
  assert [r["sparsity"] for r in _rows(workdir)] == [0.8]
  assert json.loads((workdir / "config.json").read_text())["sparsity"] == 0.8


def test_report_without_a_finished_run_is_one_line_and_exit_2(tmp_path):
  out = _python("-m", "train.report", f"--out={tmp_path}/report")  # the defaults: README commands' workdirs
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: no finished training run in workdirs/vanilla"), lines
  assert "python -m train.fixed --sparsity=0.6" in lines[0] and not (tmp_path / "report.md").exists()


def test_entry_point_flag_precedence():
  """preset < --config.FIELD < named flags, parsed as `python -m train.fixed` would."""
  code = (
      "import sys\n"
      "from absl import flags\n"
      "from train import _main\n"
      "sys.argv = ['fixed', '--preset=cpu', '--config.epochs=3', '--config.sparsity=0.5',"
      " '--config.learning_rate=0.2', '--sparsity=0.7', '--batch_size=64']\n"
      "_main.define_flags('fixed', ['sparsity'])\n"
      "flags.FLAGS(sys.argv)\n"
      "c = _main.build_config('fixed')\n"
      "print(c.preset, c.dataset, c.epochs, c.sparsity, c.batch_size, c.learning_rate, c.model)\n")
  out = _python("-c", code, check=True)
  assert out.stdout.split() == ["cpu", "cifar10_exact", "3", "0.7", "64", "0.2", "resnet_small"]


def test_entry_point_help_lists_the_flags():
  out = _python("-m", "train.fixed", "--help")
  assert out.returncode == 0, out.stderr
  for flag in ("--sparsity", "--preset", "--workdir", "--overwrite", "--config", "--epochs", "--dataset"):
    assert flag in out.stdout, (flag, out.stdout)
  assert "workdirs/fixed_s0.6" in out.stdout  # the default workdir names the sparsity
  out = _python("-m", "train.adversarial", "--help")
  assert out.returncode == 0 and "--method" in out.stdout and "--trades_beta" in out.stdout, out.stdout


def test_a_diverged_run_stops_without_checkpointing_the_nan_epoch(tiny, tmp_path):
  c = _config("vanilla", tiny, learning_rate=1e30, epochs=2)
  with pytest.raises(iss_jax.training.TrainingDivergedError,
                     match=r"epoch \d is (nan|inf).*config\.learning_rate=1e\+30"):
    iss_jax.training.train_and_evaluate(c, tmp_path)
  assert not (tmp_path / "summary.json").exists()
  metrics = tmp_path / "metrics.jsonl"
  assert not metrics.exists() or not metrics.read_text().strip()  # no epoch is recorded when epoch 1 diverges
  with pytest.raises(FileNotFoundError):
    iss_jax.training.load_variables(tmp_path)  # nor checkpointed
