"""iss_jax.robustness.evaluate: the one-call evaluation, its pass counts, its per-example worst case, its
claim record and its gradient-masking flags (each fires on a model built to mask its gradient that way, and
none fires on an honest one)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from masking_toys import EPS, data, honest, masking_models

from iss_jax.robustness import (
  ATTACKS,
  PassCounter,
  RandomClassifier,
  evaluate,
  read_claims,
  write_claim,
)

X, Y = data()
FAST = {"steps": 5, "square_queries": 100, "progress": False, "batch_size": len(X)}


def test_pass_counter_counts_each_execution():
  counter = PassCounter()
  w = jnp.asarray(np.random.default_rng(0).standard_normal((12, 3)), jnp.float32)
  plain = lambda x: x.reshape(x.shape[0], -1) @ w
  f = counter.wrap(plain)
  x = jnp.ones((5, 2, 2, 3))
  g = jax.jit(jax.grad(lambda z: f(z).sum()))(x)
  np.testing.assert_allclose(g, jax.grad(lambda z: plain(z).sum())(x))  # the same gradient
  assert counter.read() == (5, 5)
  loop = jax.jit(lambda z: jax.lax.fori_loop(0, 7, lambda i, v: v + jax.grad(lambda u: f(u).sum())(v), z))
  loop(x)
  assert counter.read() == (5 + 35, 5 + 35)  # a loop counts every iteration, not its one trace
  jax.jit(jax.vmap(f))(jnp.ones((4, 5, 2, 2, 3)))
  assert counter.read() == (40 + 20, 40)
  _, vjp = jax.vjp(f, x)  # a 3-class Jacobian: 3 backward passes per image
  jax.vmap(lambda ct: vjp(ct)[0])(jnp.eye(3)[:, None, :].repeat(5, 1))
  assert counter.read() == (65, 40 + 15)


def test_pass_counter_keeps_a_random_classifier_random():
  counter = PassCounter()
  noisy = RandomClassifier(lambda x, key: x.reshape(x.shape[0], -1)[:, :3]
                           + jax.random.normal(key, (x.shape[0], 3)))
  f = counter.wrap(noisy)
  assert isinstance(f, RandomClassifier)
  x, key = jnp.ones((4, 1, 1, 3)), jax.random.key(1)
  np.testing.assert_allclose(f(x, key), noisy(x, key))
  np.testing.assert_allclose(jax.grad(lambda z: f(z, key).sum())(x), jnp.ones((4, 1, 1, 3)))
  assert counter.read() == (8, 4)


def test_apgd_passes_match_its_settings():
  steps = 5
  res = evaluate(honest, X, Y, eps=EPS, version="custom", attacks=("apgd-ce",), checks=False, **FAST)
  a = res.attacks["apgd-ce"]
  n = len(X)
  # One start and `steps` iterations, each a forward and a backward pass, then one forward to judge.
  assert (a.forward, a.backward) == (n * (steps + 1) + n, n * (steps + 1))
  assert res.attacks["clean"].forward == n
  assert (res.forward_passes, res.backward_passes) == (a.forward + n, a.backward)


def test_an_attack_on_a_few_images_runs_on_the_smallest_batch_that_holds_them():
  x, y = X.copy(), Y.copy()
  y[:20] = 1 - y[:20]  # 4 of 24 images correctly classified: the attack runs on those only
  steps = 5
  assert len(X) == 24
  res = evaluate(honest, x, y, eps=EPS, version="custom", attacks=("apgd-ce",), checks=False, **FAST)
  a = res.attacks["apgd-ce"]
  # Batches of 24, 12, 6, 3, 2 (24 / 2**j rounded up): 4 images are padded to 6, not to 24.
  assert a.attacked == 4 and (a.forward, a.backward) == (6 * (steps + 1) + 6, 6 * (steps + 1))
  # The points are those of the same attack on the 4 images alone (in a batch of their own size).
  alone = evaluate(honest, x[20:], y[20:], eps=EPS, version="custom", attacks=("apgd-ce",), checks=False,
                   **dict(FAST, batch_size=4))
  assert alone.attacks["apgd-ce"].forward == 4 * (steps + 2)
  np.testing.assert_array_equal(res.x_adv[20:], alone.x_adv)
  np.testing.assert_array_equal(res.robust[20:], alone.robust)


def test_compact_map_pads_a_short_pass_to_the_smallest_size_and_returns_the_same():
  from iss_jax.robustness import Runner

  run = Runner(lambda v: v, batch_size=100, progress=False)
  assert run.batch_sizes() == (100, 50, 25, 13, 7)
  seen = []
  fn = lambda xb, k: (seen.append(len(xb)), np.asarray(xb).sum((1, 2, 3)))[1]
  v = np.random.default_rng(0).uniform(size=(130, 2, 2, 1)).astype(np.float32)
  np.testing.assert_allclose(run.map(fn, v, compact=True), run.map(fn, v), rtol=1e-6)
  assert seen == [100, 50, 100, 100]  # the tail of 30 on 50 images, then on a whole batch
  seen.clear()
  run.map(fn, v[:5], compact=True)
  assert seen == [7]


def test_standard_runs_autoattack_and_keeps_the_strongest_point():
  x, y = X.copy(), Y.copy()
  y[:3] = 1 - y[:3]  # three images misclassified from the start
  res = evaluate(honest, x, y, eps=0.1, checks=False, **FAST)
  assert list(res.attacks) == ["clean", "apgd-ce", "apgd-t", "deepfool", "square"]
  assert "9 targets" in res.attacks["apgd-t"].budget and "FAB-T" in res.attacks["deepfool"].budget
  assert res.settings["square_queries"] == 100
  assert res.settings["attacks"] == ["apgd-ce", "apgd-t", "deepfool", "square"]
  # The returned points, classified again by an independent call of the model, are the worst case.
  again = np.argmax(np.asarray(honest(jnp.asarray(res.x_adv))), -1) == y
  np.testing.assert_array_equal(again, res.robust)
  np.testing.assert_array_equal(res.robust, res.clean & (res.margins > 0))
  assert not res.clean[:3].any() and np.array_equal(res.x_adv[:3], x[:3])
  assert np.abs(res.x_adv - x).max() <= 0.1 + 1e-6 and res.max_perturbation <= 0.1 + 1e-6
  assert res.finite and res.robust_accuracy <= res.ensemble_accuracy <= res.clean_accuracy
  # Each attack after the first ran only on the images still robust.
  assert [res.attacks[a].attacked for a in ("apgd-ce", "apgd-t")] == [int(res.clean.sum()),
                                                                     int(round(res.attacks["apgd-ce"].accuracy
                                                                               * len(x)))]


@pytest.mark.slow  # ~40 s on 2 CPU cores: EOT over a random classifier
def test_rand_keeps_the_worst_case_over_repeats_and_states_what_it_skipped():
  noisy = RandomClassifier(lambda x, key: honest(x) + 3 * jax.random.normal(key, (x.shape[0], 10)))
  kw = dict(FAST, steps=2, eps=0.02, version="rand", eot_samples=2, checks=False)
  five = evaluate(noisy, X, Y, **kw)
  assert five.settings["attacks"] == ["apgd-ce", "apgd-dlr"] + (["square-eot"] if "square-eot" in ATTACKS
                                                                else [])
  if "square-eot" not in ATTACKS:
    assert "square-eot" in five.settings["skipped"]
  assert five.settings["eot_samples"] == 2 and five.settings["repeats"] == 5
  one = evaluate(noisy, X, Y, **kw, repeats=1)
  # The same APGD-CE points (the same keys), judged once or five times: five never keep more images.
  np.testing.assert_array_equal(one.clean, five.clean)
  assert five.attacks["apgd-ce"].accuracy < one.attacks["apgd-ce"].accuracy
  assert five.attacks["apgd-ce"].forward > one.attacks["apgd-ce"].forward


def test_claim_record_round_trips(tmp_path):
  res = evaluate(honest, X, Y, eps=EPS, version="custom", attacks=("apgd-ce",), checks=False, **FAST)
  record = res.claim(model="toy", dataset="masking toys")
  path = write_claim(tmp_path / "claims" / "toy.json", record)
  (back,) = read_claims([path])
  assert back == json.loads(json.dumps(record))
  for field in ("model", "defense", "dataset", "n", "threat_model", "eps", "clean_accuracy",
                "clean_interval95", "robust_accuracy", "robust_interval95", "attacks", "forward_passes",
                "backward_passes", "code_version"):
    assert field in back, field
  assert back["n"] == len(X) and back["threat_model"] == "Linf"
  assert back["forward_passes"] == res.forward_passes
  lo, hi = back["robust_interval95"]
  assert lo - 1e-12 <= back["robust_accuracy"] <= hi
  (tmp_path / "other.json").write_text("{}")
  with pytest.raises(ValueError, match="not an iss-jax claim record"):
    read_claims([tmp_path / "other.json"])


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": 0.0}, "eps must be a number in"), ({"eps": EPS, "norm": "L2"}, "norm must be one of"),
    ({"eps": EPS, "version": "plus"}, "version must be one of"),
    ({"eps": EPS, "attacks": ("pgd",)}, "attacks are given only with version='custom'"),
    ({"eps": EPS, "version": "custom"}, "attacks must be a non-empty sequence"),
    ({"eps": EPS, "version": "custom", "attacks": ("fab",)}, "attacks must be among"),
    ({"eps": EPS, "steps": 0}, "steps must be an int >= 1"),
    ({"eps": EPS, "defense": "smooth@0.6"}, "defense must be an iss_jax.robustness.Defense")])
def test_bad_arguments_are_refused_in_one_sentence(kwargs, match):
  with pytest.raises(ValueError, match=match):
    evaluate(honest, X, Y, **kwargs)


MODELS = masking_models(X)


# The random model (~30 s: EOT over its draws) runs with -m slow; tests/test_masking.py checks its flag fast.
@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.slow) if m == "random" else m
                                  for m in MODELS])
def test_each_flag_fires_on_its_masking_model_and_none_on_the_honest_one(name):
  fn, defense, expected = MODELS[name]
  res = evaluate(fn, X, Y, eps=EPS, version="custom", attacks=("apgd-ce", "square"), defense=defense,
                 **dict(FAST, square_queries=300))
  raised = set(res.raised)
  if name == "honest":
    assert not raised, res.report()
  assert set(expected) <= raised, res.report()
  report = res.report()
  for flag in raised:
    assert f"| **{flag}** | **RAISED** |" in report
  assert ("No flag raised." in report) == (not raised)


# evaluate's one-step and transfer flags are, in a row of evaluate_defense, its columns' sanity checks
# ("PGD <= FGSM", "adaptive <= gray-box": tests/test_eval.py), so the trap and broken-defense models run
# with -m slow here.
ROW_FLAGS = {"one-step FGSM is not stronger than iterative apgd-ce": "PGD <= FGSM",
             "transfer from the bare model is not stronger than adaptive apgd-ce": "adaptive <= gray-box"}


@pytest.mark.parametrize("name", [pytest.param(m, marks=pytest.mark.slow)
                                  if m in ("random", "trap", "broken-defense") else m for m in MODELS])
def test_a_row_of_evaluate_defense_raises_the_same_flags(name):
  """eval.compare's rows (evaluate_defense) raise evaluate's flags on the masking models, none on the honest
  one: the model checks, the eps sweep and the unbounded attack run on the row too."""
  from iss_jax.robustness import evaluate_defense, no_defense

  fn, defense, expected = MODELS[name]
  row = evaluate_defense(fn, X, Y, defense or no_defense(), eps=EPS, pgd_steps=5, square_queries=300,
                         attacks_=("fgsm", "pgd", "square"), low_res_sizes=(), batch_size=len(X),
                         progress=False)
  raised = [c["check"] for c in row["checks"] if not c["ok"]]
  assert row["violations"] == len(raised)
  if name == "honest":
    assert not raised, row["checks"]
  if name == "random":  # a row attacks a random classifier with EOT always: expected, not a flag
    (det,) = [c for c in row["checks"] if c["check"] == "clean predictions are deterministic"]
    assert det["ok"] and "evaluated with EOT" in det["detail"]
    expected = ()
  for flag in expected:
    assert any(r.startswith(ROW_FLAGS.get(flag, flag)) for r in raised), (flag, row["checks"])
  if name != "honest":
    return
  with pytest.raises(ValueError, match="check_examples must be an int >= 1; got 0"):
    evaluate_defense(fn, X, Y, no_defense(), eps=EPS, check_examples=0, progress=False)
  quiet = evaluate_defense(fn, X, Y, no_defense(), eps=EPS, pgd_steps=5, square_queries=300,
                           attacks_=("fgsm", "pgd", "square"), low_res_sizes=(), batch_size=len(X),
                           progress=False, masking_checks=False)
  assert [c["check"] for c in quiet["checks"]] == [c["check"] for c in row["checks"]][:len(quiet["checks"])]
  assert quiet["accuracy"] == row["accuracy"]  # the checks' attacks are outside eps and count nowhere


def test_eot_sweep_on_a_deterministic_model_is_flat_and_refuses_bad_samples():
  from iss_jax.robustness import eot_sweep
  sweep = eot_sweep(honest, X, Y, eps=0.02, samples=(1, 3), steps=3, progress=False, batch_size=len(X))
  assert sweep["random"] is False and sweep["accuracy"][0] == sweep["accuracy"][1] and sweep["plateau"] == 1
  with pytest.raises(ValueError, match="samples must be increasing ints >= 1"):
    eot_sweep(honest, X, Y, eps=0.02, samples=(5, 2))


@pytest.mark.slow  # ~20 s of CPU (the README command covers the path in the default suite)
def test_eval_adversarial_version_writes_the_report_claims_and_sweep(tmp_path, monkeypatch):
  import iss_jax
  from eval import adversarial

  x8 = np.round(X * 255).astype(np.uint8)
  y8 = np.argmax(np.asarray(honest(jnp.asarray(x8 / 255.0, jnp.float32))), -1).astype(np.int32)
  monkeypatch.setattr(iss_jax.training, "load_dataset", lambda name, split, data_dir=None: (x8, y8))
  monkeypatch.setattr(iss_jax.training, "load_classifier", lambda wd: (honest, {}))
  (tmp_path / "config.json").write_text("{}")  # a training workdir, as far as the entry point checks
  out = tmp_path / "out"
  adversarial.main(["--workdir", str(tmp_path), "--out", str(out), "--eps", "0.1", "--version", "rand",
                    "--aa_steps", "2", "--eot_sweep", "1,2", "--batch_size", "24", "--no_progress"])
  md = (out / "adversarial_rand.md").read_text()
  assert "Gradient-masking flags" in md and "EOT sweep" in md and "plateau from 1 draws" in md
  assert os.path.getsize(out / "adversarial_rand.png") > 0
  (claim,) = read_claims([out / "claims" / "none_eps25.5.json"])
  assert claim["version"] == "rand" and claim["n"] == len(x8) and claim["eps"] == pytest.approx(0.1)


def test_pass_counter_counts_every_eot_draw_under_a_gradient():
  counter = PassCounter()
  f = counter.wrap(RandomClassifier(lambda x, key: x.reshape(x.shape[0], -1)[:, :3]
                                    + jax.random.normal(key, (x.shape[0], 3))))
  x = jnp.ones((5, 2, 2, 3))
  draws = lambda z: jax.lax.map(lambda k: f(z, k), jax.random.split(jax.random.key(0), 4)).sum()
  jax.jit(jax.grad(draws))(x)  # the image is loop-invariant in the loop over the 4 draws
  assert counter.read() == (20, 20)
