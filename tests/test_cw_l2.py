"""Carlini-Wagner L2 against closed forms: the minimal L2 perturbation of a linear classifier."""

import jax.numpy as jnp
import numpy as np
import pytest

from iss_jax.robustness import cw_l2


def _linear(w, b):
  return lambda v: v.reshape(v.shape[0], -1) @ w + b[None]


def _closed_form_l2(w, b, x, y, kappa):
  """Minimal ||d||_2 with Z_o(x + d) - Z_y(x + d) >= kappa for a two-class linear model (box inactive)."""
  z = x.reshape(len(x), -1) @ w + b
  other = 1 - y
  gap = z[np.arange(len(x)), y] - z[np.arange(len(x)), other] + kappa
  direction = w[:, 0] - w[:, 1]
  return np.maximum(gap, 0) / np.linalg.norm(direction)


@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_minimal_perturbation_of_a_linear_model_matches_the_closed_form(kappa):
  rng = np.random.default_rng(0)
  w = rng.normal(size=(12, 2)).astype(np.float32)
  x = rng.uniform(0.45, 0.55, size=(6, 2, 2, 3)).astype(np.float32)
  # A bias that puts every image a small margin (L2 distance about 0.1-0.2) on the side of class 0, so that
  # the minimal perturbation stays far inside the box [0, 1] and the closed form holds.
  dw = w[:, 0] - w[:, 1]
  b = np.array([0.15 * np.linalg.norm(dw) - float(np.mean(x.reshape(6, -1) @ dw)), 0.0], np.float32)
  y = np.argmax(x.reshape(6, -1) @ w + b, -1).astype(np.int32)
  assert (y == 0).all()
  res = cw_l2(_linear(jnp.asarray(w), jnp.asarray(b)), jnp.asarray(x), jnp.asarray(y), kappa=kappa,
              c_init=1.0, binary_steps=9, steps=1000, lr=0.005)
  expected = _closed_form_l2(w, b, x, y, kappa)
  assert bool(res.success.all())
  got = np.asarray(res.l2)
  # Never below the minimum (up to float32 rounding), and close to it.
  assert np.all(got >= expected * (1 - 1e-3) - 1e-5), (got, expected)
  np.testing.assert_allclose(got, expected, rtol=1e-3)
  # The returned examples do what the result says: fooled with the margin, at that distance, in the box.
  z = np.asarray(_linear(w, b)(np.asarray(res.x_adv)))
  assert np.all(z[np.arange(6), 1 - y] > z[np.arange(6), y] + kappa)
  np.testing.assert_allclose(np.sqrt(((np.asarray(res.x_adv) - x) ** 2).sum((1, 2, 3))), got, rtol=1e-5)
  assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1


def test_an_unreachable_margin_fails_and_returns_the_input():
  # Z = (v, -v) for one pixel v in [0, 1]: class 1 needs v < 0, impossible inside the box.
  model = _linear(jnp.array([[1.0, -1.0]]), jnp.array([0.5, 0.0]))
  x = jnp.full((2, 1, 1, 1), 0.3)
  res = cw_l2(model, x, jnp.array([0, 0]), c_init=1.0, binary_steps=3, steps=100)
  assert not bool(res.success.any())
  np.testing.assert_array_equal(np.asarray(res.x_adv), np.asarray(x))
  np.testing.assert_array_equal(np.asarray(res.l2), 0.0)


def test_bisection_raises_c_until_the_attack_succeeds():
  # With c_init tiny the first step cannot succeed (the L2 term dominates); bisection must raise c.
  model = _linear(jnp.array([[4.0, -4.0]]), jnp.array([0.0, 4.0]))  # class 1 below v = 0.5
  x = jnp.full((1, 1, 1, 1), 0.6)
  one = cw_l2(model, x, jnp.array([0]), c_init=1e-4, binary_steps=1, steps=200)
  many = cw_l2(model, x, jnp.array([0]), c_init=1e-4, binary_steps=9, steps=200)
  assert not bool(one.success[0]) and bool(many.success[0])
  assert float(many.c[0]) > 1e-4


def test_each_example_is_independent_of_the_batch():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(12, 2)).astype(np.float32)
  x = rng.uniform(0.3, 0.7, size=(4, 2, 2, 3)).astype(np.float32)
  model = _linear(jnp.asarray(w), jnp.zeros(2))
  y = np.argmax(x.reshape(4, -1) @ w, -1)
  together = cw_l2(model, x, y, binary_steps=3, steps=50, c_init=0.1)
  alone = cw_l2(model, x[2:3], y[2:3], binary_steps=3, steps=50, c_init=0.1)
  np.testing.assert_allclose(np.asarray(together.x_adv[2:3]), np.asarray(alone.x_adv), atol=1e-6)


@pytest.mark.parametrize("kwargs, word", [({"kappa": -1.0}, "kappa"), ({"c_init": 0.0}, "c_init"),
                                          ({"steps": 0}, "steps"), ({"binary_steps": 1.5}, "binary_steps"),
                                          ({"lr": -0.1}, "lr")])
def test_bad_settings_are_one_sentence_naming_the_argument(kwargs, word):
  with pytest.raises(ValueError, match=word):
    cw_l2(lambda v: v.reshape(1, -1), jnp.zeros((1, 2, 2, 1)), jnp.array([0]), **kwargs)


def test_cw_l2_is_one_entry_of_the_attack_table_with_its_median_norms():
  from iss_jax.robustness import ATTACKS, evaluate_adversarial

  rng = np.random.default_rng(2)
  w = (50 * rng.normal(size=(12, 2))).astype(np.float32)  # steep: the kappa = 20 margin is near
  x = rng.uniform(0.45, 0.55, size=(8, 2, 2, 3)).astype(np.float32)
  dw = w[:, 0] - w[:, 1]
  b = np.array([0.1 * np.linalg.norm(dw) - float(np.mean(x.reshape(8, -1) @ dw)), 0.0], np.float32)
  y = np.zeros(8, np.int32)
  assert (np.argmax(x.reshape(8, -1) @ w + b, -1) == y).all()
  model = _linear(jnp.asarray(w), jnp.asarray(b))
  res = evaluate_adversarial(model, x, y, eps_grid=[1.0], attacks_=["cw-l2"], progress=False)
  assert ATTACKS["cw-l2"].label == "C&W-L2"
  assert [r["accuracy"] for r in res["rows"]] == [0.0]  # eps = 1 clips nothing: every image is broken
  norms = res["cw-l2"]["none"]
  assert norms["success_rate"] == 1.0 and norms["num_images"] == 8
  expected = np.median(_closed_form_l2(w, b, x, y, 20.0))
  assert norms["median_l2"] == pytest.approx(expected, rel=2e-3)
  assert "kappa 20" in res["settings"]["cw-l2"]


def test_the_old_cw_name_points_to_both_attacks():
  from iss_jax.robustness import evaluate_adversarial

  with pytest.raises(ValueError, match=r"'cw-linf'; 'cw-l2' is the Carlini-Wagner L2 attack\)\.$"):
    evaluate_adversarial(lambda v: v.reshape(v.shape[0], -1)[:, :2], np.zeros((1, 2, 2, 1), np.float32),
                         np.zeros(1, np.int32), eps_grid=[0.1], attacks_=["cw"])


def test_an_evaluation_sets_cw_l2s_budget_and_reports_it():
  from iss_jax.robustness import evaluate_adversarial

  rng = np.random.default_rng(3)
  w = (50 * rng.normal(size=(12, 2))).astype(np.float32)
  x = rng.uniform(0.45, 0.55, size=(4, 2, 2, 3)).astype(np.float32)
  dw = w[:, 0] - w[:, 1]
  b = np.array([0.1 * np.linalg.norm(dw) - float(np.mean(x.reshape(4, -1) @ dw)), 0.0], np.float32)
  y = np.zeros(4, np.int32)
  model = _linear(jnp.asarray(w), jnp.asarray(b))
  res = evaluate_adversarial(model, x, y, eps_grid=[1.0], attacks_=["cw-l2"], progress=False,
                             cw_l2={"kappa": 0.0, "steps": 300})
  assert res["settings"]["cw_l2"] == {"kappa": 0.0, "binary_steps": 5, "steps": 300, "lr": 0.005}
  # kappa 0: the minimal perturbation is the closed form's at margin 0, not SPLIC's kappa 20.
  expected = np.median(_closed_form_l2(w, b, x, y, 0.0))
  assert res["cw-l2"]["none"]["median_l2"] == pytest.approx(expected, rel=2e-2)
  with pytest.raises(ValueError, match=r"^cw_l2 takes keywords among .*; got \['kapa'\]\.$"):
    evaluate_adversarial(model, x, y, eps_grid=[1.0], attacks_=["cw-l2"], progress=False,
                         cw_l2={"kapa": 0.0})


def test_minimal_norms_can_be_skipped_without_changing_the_eps_rows():
  from iss_jax.robustness import evaluate_adversarial

  rng = np.random.default_rng(5)
  w = rng.normal(size=(12, 3)).astype(np.float32)
  x = rng.uniform(size=(6, 2, 2, 3)).astype(np.float32)
  y = rng.integers(0, 3, 6)
  model = _linear(jnp.asarray(w), jnp.zeros(3, jnp.float32))
  kw = dict(eps_grid=[0.05], attacks_=["deepfool", "cw-l2"], progress=False, cw_l2={"steps": 20},
            batch_size=6)
  full = evaluate_adversarial(model, x, y, **kw)
  lean = evaluate_adversarial(model, x, y, minimal_norms=False, **kw)
  assert lean["rows"] == full["rows"] and "deepfool" in full and "deepfool" not in lean
  # Without the norms, fewer passes: the unbounded runs are gone.
  assert sum(p["forward"] for p in lean["passes"]) < sum(p["forward"] for p in full["passes"])
