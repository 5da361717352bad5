"""The defense protocol, the one runner and the one BPDA helper (iss_jax.robustness, iss_jax.baselines)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toys import EPS, linear_model, toy_data

import iss_jax
from iss_jax.baselines import make_defense
from iss_jax.robustness import (
  Runner,
  custom_defense,
  eot_pgd,
  evaluate_adversarial,
  evaluate_defense,
  no_defense,
  smoothing_defense,
)

_model, _data = linear_model, toy_data


# ------------------------------------------------------------------------------------------ straight-through


def test_straight_through_forward_exact_backward_surrogate():
  x = jnp.array([0.2, 1.6, -0.7])
  f = lambda v: iss_jax.straight_through(jnp.round, v)
  np.testing.assert_array_equal(f(x), jnp.round(x))
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(f(v) * jnp.arange(3.0)))(x), jnp.arange(3.0))
  # A surrogate of another shape: the cotangent of a (2, 3) broadcast sums back to x.
  g = lambda v: iss_jax.straight_through(lambda u, k: jnp.stack([u * k, u * k]), v, 3.0,
                                         surrogate=lambda u: jnp.stack([u, u]))
  np.testing.assert_array_equal(g(x), jnp.stack([3 * x, 3 * x]))
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(g(v)))(x), jnp.full(3, 2.0))
  # Auxiliary integer outputs and non-float arguments get no gradient.
  h = lambda v: iss_jax.straight_through(lambda u, n: (u + n, n), v, jnp.int32(2), has_aux=True)
  out, aux = h(x)
  assert int(aux) == 2
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(h(v)[0]))(x), jnp.ones(3))


def test_smoothing_and_splic_share_the_identity_gradient():
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
  w = jax.random.normal(jax.random.key(1), x.shape)
  for fn in (lambda v: iss_jax.smooth(v, 0.5),
             lambda v: iss_jax.baselines.splic(v, rank=2, key=jax.random.key(2), maxiter=7)):
    np.testing.assert_allclose(jax.grad(lambda v, fn=fn: jnp.sum(fn(v) * w))(x), w, rtol=0, atol=0)
  path = jax.grad(lambda v: jnp.sum(iss_jax.smooth_path(v, [0.3, 0.6])))(x)  # one cotangent per target
  np.testing.assert_array_equal(path, jnp.full(x.shape, 2.0))


# ----------------------------------------------------------------------------------------------- defenses


@pytest.mark.parametrize("spec,name,gradient,random", [
    ("none", "none", "none", False), ("smooth@0.6", "smooth@0.6", "bpda-partition", False),
    ("tv@0.1", "tv@0.1", "exact", False), ("lowpass@1", "lowpass@1", "exact", False),
    ("splic@2", "splic@2", "bpda", True)])
def test_make_defense_names_every_defense(spec, name, gradient, random):
  d = make_defense(spec)
  assert (d.name, d.gradient, d.random) == (name, gradient, random)


@pytest.mark.parametrize("spec,match", [("jpeg@75", "unknown defense 'jpeg@75'"), ("tv@abc", "tv@<number>"),
                                        ("smooth@1.5", r"sparsity must be in \[0, 1\]"),
                                        ("splic@2.5", "rank must be an integer"), ("tv@-1", ">= 0")])
def test_make_defense_rejects_bad_specs_with_one_sentence(spec, match):
  with pytest.raises(ValueError, match=match):
    make_defense(spec)


def test_smoothing_defense_is_the_smoothing():
  x = jax.random.uniform(jax.random.key(3), (3, 8, 8, 3))
  d = smoothing_defense(0.5, maxiter=500)
  np.testing.assert_array_equal(d.transform(x, jax.random.key(0)), iss_jax.smooth(x, 0.5, maxiter=500))
  assert smoothing_defense(0.5, gradient="unrolled", maxiter=10).gradient == "exact"
  with pytest.raises(ValueError, match="gradient must be one of"):
    custom_defense("x", lambda x, k: x, gradient="approximate")


# ------------------------------------------------------------------------------------------------- runner


def test_runner_batches_do_not_change_results():
  _, f = _model()
  x, y = _data(7)
  want = np.asarray(jnp.argmax(f(x), -1) == y)
  for batch_size in (1, 3, 7, 10):
    run = Runner(f, batch_size=batch_size, progress=False)
    np.testing.assert_array_equal(run.correct(np.asarray(x), np.asarray(y)), want)


def test_runner_draws_a_new_key_per_batch_for_random_defenses():
  noise = custom_defense("noise", lambda x, k: x + jax.random.normal(k, x.shape), gradient="exact",
                         random=True)
  run = Runner(lambda z: z.reshape(z.shape[0], -1)[:, :2], batch_size=2, progress=False)
  x = np.zeros((4, 4, 4, 3), np.float32)
  a = run.predict(x, noise, key=run.key_for(0))
  logits = run.map(jax.jit(lambda xb, k: noise.transform(xb, k)), x, key=run.key_for(0))
  assert not np.allclose(logits[:2], logits[2:])  # batches drew different noise
  np.testing.assert_array_equal(a, run.predict(x, noise, key=run.key_for(0)))  # same key, same draws


# ------------------------------------------------------------------------------------------------ attacks


def test_eot_pgd_stays_in_the_ball_and_averages_draws():
  w, f = _model()
  x, y = _data()
  # A random defense adding noise: its EOT gradient has the sign of f's, so PGD ends at the
  # closed-form vertex of the toy model.
  noisy = lambda z, k: f(z + 0.01 * jax.random.normal(k, z.shape))
  x_adv = eot_pgd(noisy, x, y, key=jax.random.key(0), eps=EPS, step_size=2 / 255, steps=10, samples=3)
  assert float(jnp.abs(x_adv - x).max()) <= EPS + 1e-6
  away = np.where(np.asarray(y) == 0, 1, -1)[:, None]
  direction = np.sign(np.asarray(w[:, 1] - w[:, 0]))[None, :] * away
  np.testing.assert_allclose(np.asarray(x_adv).reshape(len(y), -1),
                             np.asarray(x).reshape(len(y), -1) + EPS * direction, atol=1e-6)


def test_evaluate_defense_columns_and_protocol():
  _, f = _model()
  x = (np.random.default_rng(5).random((6, 4, 4, 3)) * 255).astype(np.uint8)
  y = np.asarray([0, 1, 0, 1, 0, 1], np.int32)
  r = evaluate_defense(f, x, y, make_defense("lowpass@1"), pgd_steps=2, low_res_sizes=(2,), batch_size=4,
                       progress=False)
  acc = r["accuracy"]
  assert set(acc) == {"clean", "fgsm", "fgsm_adaptive", "pgd", "pgd_adaptive", "lowres2", "worst"}
  assert acc["pgd_adaptive"] <= acc["pgd"]  # adaptive = per example the stronger attack
  assert acc["worst"] <= min(acc["fgsm_adaptive"], acc["pgd_adaptive"])
  assert all(0.0 <= a <= 1.0 for a in acc.values())
  assert "exact gradient" in r["attacks"]["pgd_adaptive"]
  bare = evaluate_defense(f, x, y, no_defense(), pgd_steps=2, low_res_sizes=(), batch_size=4,
                          progress=False)["accuracy"]
  assert bare["pgd"] == bare["pgd_adaptive"] and bare["fgsm"] == bare["fgsm_adaptive"]


def test_compare_row_is_the_single_defense_adversarial_evaluation():
  """eval.adversarial and eval.compare run one harness: the same seed gives the same numbers."""
  _, f = _model()
  x, y = _data(8)
  x, y = np.asarray(x), np.asarray(y)
  for d in (make_defense("lowpass@1"), custom_defense("noise", lambda z, k: z + 0.05 * jax.random.normal(
      k, z.shape), gradient="exact", random=True)):
    row = evaluate_defense(f, x, y, d, eps=EPS, pgd_steps=3, low_res_sizes=(), batch_size=4, seed=3,
                           progress=False, masking_checks=False)
    adv = evaluate_adversarial(f, x, y, eps_grid=[EPS], defenses=[d], steps=3, batch_size=4, seed=3,
                               progress=False)
    table = {(r["attack"], r["protocol"]): r["accuracy"] for r in adv["rows"] if r["defense"] == d.name}
    for a in ("fgsm", "pgd"):
      assert row["accuracy"][a] == table[(a, "gray-box")]
      assert row["accuracy"][f"{a}_adaptive"] == table[(a, "worst")] <= table[(a, "adaptive")]
    assert adv["defenses"][d.name].endswith("EOT (gradient averaged over random draws)") == d.random


def test_evaluate_defense_worst_case_and_black_box_transfer_are_per_example():
  """The worst case is the per-example AND of every attack's survivors (recomputed here from
  evaluate_adversarial), and the black-box column feeds a substitute's PGD examples to the defense."""
  _, f = _model()
  _, g = _model(seed=1)  # an independently drawn substitute
  x, y = _data(8)
  x, y = np.asarray(x), np.asarray(y)
  d = make_defense("lowpass@1")
  attacks = ("pgd", "apgd-ce", "square")
  row = evaluate_defense(f, x, y, d, eps=EPS, pgd_steps=3, low_res_sizes=(), batch_size=4, seed=3,
                         attacks_=attacks, square_queries=20, substitute_fn=g, progress=False,
                         masking_checks=False)  # tests/test_evaluate.py checks the masking flags of a row
  adv = evaluate_adversarial(f, x, y, eps_grid=[EPS], defenses=[d], steps=3, batch_size=4, seed=3,
                             attacks_=attacks, square_queries=20, substitute_fn=g, progress=False,
                             return_correct=True)
  c = {(a, dn, p): v for (a, _, dn, p), v in adv["correct"].items()}
  survivors = [c[("pgd", d.name, "worst")], c[("apgd-ce", d.name, "adaptive")],
               c[("square", d.name, "adaptive")], c[("transfer", d.name, "black-box")]]
  assert row["accuracy"]["worst"] == float(np.mean(np.logical_and.reduce(survivors)))
  assert row["accuracy"]["transfer"] == float(np.mean(survivors[-1]))
  assert set(row["accuracy"]) == {"clean", "pgd", "pgd_adaptive", "apgd-ce", "square", "transfer", "worst"}
  # With the model as its own substitute (no random start), black-box transfer IS white-box PGD.
  own = evaluate_adversarial(f, x, y, eps_grid=[EPS], steps=3, batch_size=4, attacks_=("pgd",),
                             random_start=False, substitute_fn=f, progress=False)
  table = {(r["attack"], r["defense"]): r["accuracy"] for r in own["rows"]}
  assert table[("transfer", "none")] == table[("pgd", "none")] < 1.0


def test_evaluate_defense_predicts_the_clean_images_once_per_defense():
  """One row shares one runner: the clean images reach the classifier once bare and once defended, though
  the clean accuracy enters the clean, adversarial, corruption and low-resolution columns."""
  _, f = _model()
  x = (np.random.default_rng(5).random((6, 4, 4, 3)) * 255).astype(np.uint8)
  y = np.asarray([0, 1, 0, 1, 0, 1], np.int32)
  xf = x.astype(np.float32) / 255.0
  shrink = custom_defense("shrink", lambda z, k: 0.9 * z + 0.05, gradient="exact")
  seen = []
  record = lambda batch: seen.append(np.asarray(batch).copy())

  def counting(z):
    jax.debug.callback(record, z)
    return f(z)

  # Without the masking checks: their randomness check runs the clean images twice on purpose.
  evaluate_defense(counting, x, y, shrink, pgd_steps=2, attacks_=("pgd",), corruptions=("brightness",),
                   low_res_sizes=(2, 1), batch_size=6, progress=False, masking_checks=False)
  jax.effects_barrier()
  bare = sum(b.shape == xf.shape and np.array_equal(b, xf) for b in seen)
  defended = sum(b.shape == xf.shape and np.allclose(b, 0.9 * xf + 0.05, atol=1e-6) for b in seen)
  assert (bare, defended) == (1, 1), (bare, defended, len(seen))


def test_runner_is_shared_and_must_run_the_classifier():
  _, f = _model()
  _, g = _model(seed=1)
  x, y = _data(4)
  run = Runner(f, batch_size=4, progress=False)
  d = make_defense("lowpass@1")
  acc = iss_jax.robustness.evaluate_accuracy(f, x, y, defense=d, runner=run)
  assert acc == iss_jax.robustness.evaluate_accuracy(f, x, y, defense=d, batch_size=4)
  assert len(run._predict) == 1 and len(run._clean) == 1
  with pytest.raises(ValueError, match="runner must run apply_fn"):
    iss_jax.robustness.evaluate_accuracy(g, x, y, runner=run)


def _regions_numpy(img):
  """Labels of the 4-connected regions of equal value, by scipy's connected components."""
  from scipy.sparse import coo_matrix
  from scipy.sparse.csgraph import connected_components as scipy_cc
  h, w, _ = img.shape
  idx = np.arange(h * w).reshape(h, w)
  same_r = np.all(img[:, :-1] == img[:, 1:], -1)
  same_d = np.all(img[:-1] == img[1:], -1)
  rows = np.concatenate([idx[:, :-1][same_r], idx[:-1][same_d]])
  cols = np.concatenate([idx[:, 1:][same_r], idx[1:][same_d]])
  graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(h * w, h * w))
  return scipy_cc(graph, directed=False)[1].reshape(h, w)


def test_smoothing_defense_gradient_is_the_mean_over_the_smoothed_regions():
  x = jax.random.uniform(jax.random.key(4), (2, 8, 8, 3))
  w = jax.random.normal(jax.random.key(5), x.shape)
  d = smoothing_defense(0.5, maxiter=500)
  assert d.gradient == "bpda-partition" and smoothing_defense(0.5, bpda="identity").gradient == "bpda"
  out = d.transform(x, None)
  np.testing.assert_array_equal(out, iss_jax.smooth(x, 0.5, maxiter=500, value_range=None))
  grad = np.asarray(jax.grad(lambda z: jnp.sum(w * d.transform(z, None)))(x))
  for i in range(2):  # d<w, P x>/dx = P w: the mean of w over each region of the output
    labels = _regions_numpy(np.asarray(out[i]))
    assert 1 < labels.max() + 1 < 64
    expected = np.stack([np.bincount(labels.ravel(), np.asarray(w[i])[..., c].ravel())[labels]
                         / np.bincount(labels.ravel())[labels] for c in range(3)], -1)
    np.testing.assert_allclose(grad[i], expected, rtol=1e-5, atol=1e-6)
  identity = smoothing_defense(0.5, bpda="identity", maxiter=500)
  np.testing.assert_allclose(jax.grad(lambda z: jnp.sum(w * identity.transform(z, None)))(x), w, atol=1e-6)
  with pytest.raises(ValueError, match="bpda must be one of"):
    smoothing_defense(0.5, bpda="exact")
