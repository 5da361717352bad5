"""Tests for APGD-CE / APGD-DLR / APGD-T, Square, CW-L-inf and DeepFool, and their place in the evaluation."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toys import EPS, linear_model, toy_data

import iss_jax
from iss_jax.robustness import _attack_table, _minimal

R = iss_jax.robustness
KEY = jax.random.key(0)


def _optimum(w, x, y, eps):
  """The optimal L-inf attack on a linear 2-class model: ``x + eps * sign(w_wrong - w_true)``, clipped."""
  d = jnp.where((y == 0)[:, None], w[:, 1] - w[:, 0], w[:, 0] - w[:, 1]).reshape(x.shape)
  return jnp.clip(x + eps * jnp.sign(d), 0.0, 1.0)


def _ten_class(seed=0):
  w = jnp.asarray(np.random.default_rng(seed).standard_normal((48, 10)), jnp.float32)
  return lambda x: x.reshape(x.shape[0], -1) @ w


ATTACKS = {
    "apgd-ce": lambda f, x, y, eps: R.apgd(f, x, y, eps=eps, key=KEY, steps=10),
    "apgd-dlr": lambda f, x, y, eps: R.apgd(f, x, y, eps=eps, key=KEY, steps=10, loss="dlr"),
    "apgd-t": lambda f, x, y, eps: R.apgd(f, x, y, eps=eps, key=KEY, steps=10, loss="dlr-targeted",
                                          num_targets=3),
    "square": lambda f, x, y, eps: R.square(f, x, y, eps=eps, key=KEY, queries=30),
    "cw": lambda f, x, y, eps: R.cw(f, x, y, eps=eps, step_size=eps / 4, steps=10, key=KEY),
    "deepfool": lambda f, x, y, eps: _minimal.deepfool_linf(f, x, y, eps=eps),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_ball_and_box(name):
  f = _ten_class()
  x = jnp.asarray(np.random.default_rng(3).random((6, 4, 4, 3)), jnp.float32)
  x = x.at[0].set(0.0).at[1].set(1.0)  # saturated images exercise the [0, 1] clip
  y = jnp.arange(6) % 10
  attack = jax.jit(lambda x, y, eps: ATTACKS[name](f, x, y, eps))  # eps traced: one compilation
  for eps in (0.0, EPS, 0.5):
    x_adv = attack(x, y, eps)
    assert x_adv.shape == x.shape and bool(jnp.all(jnp.isfinite(x_adv)))
    assert float(jnp.abs(x_adv - x).max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-dlr", "apgd-t", "cw"])
def test_linear_closed_form(name):
  w, f = linear_model()
  x, y = toy_data()
  np.testing.assert_allclose(ATTACKS[name](f, x, y, EPS), _optimum(w, x, y, EPS), atol=1e-6)


def _wrong(f, x, y):
  return np.asarray(jnp.argmax(f(x), -1) != y)


def test_square_closed_form_and_no_gradient():
  w, f = linear_model()
  x, y = toy_data(16)
  best = _wrong(f, _optimum(w, x, y, EPS), y)

  @jax.custom_vjp
  def nan_grad(z):
    return f(z)
  nan_grad.defvjp(lambda z: (f(z), None), lambda _, g: (jnp.full((16, 4, 4, 3), jnp.nan),))
  rounded = lambda z: jnp.round(f(z))  # piecewise constant: zero gradient almost everywhere
  for model in (f, nan_grad, rounded):
    x_adv = R.square(model, x, y, eps=EPS, key=KEY, queries=200)
    assert bool(jnp.all(jnp.isfinite(x_adv))) and float(jnp.abs(x_adv - x).max()) <= EPS + 1e-6
    fooled = _wrong(f, x_adv, y)
    assert fooled.sum() >= _wrong(f, x, y).sum()  # never worse than clean
    assert fooled.sum() >= best.sum() - 1  # finds (nearly) every example the optimum fools
  # A gradient attack gets nothing from the NaN gradient; Square does not ask for it.
  assert not bool(jnp.all(jnp.isfinite(R.pgd(nan_grad, x, y, eps=EPS, step_size=EPS, steps=1, key=KEY))))


def test_dlr_losses_match_numpy():
  rng = np.random.default_rng(0)
  z = rng.standard_normal((7, 10)).astype(np.float32)
  y = rng.integers(0, 10, 7)
  y[:3] = np.argmax(z[:3], -1)  # some examples with the label on top
  t = (y + 1 + rng.integers(0, 9, 7)) % 10
  s = np.sort(z, -1)
  zy, zt = z[np.arange(7), y], z[np.arange(7), t]
  top_is_y = np.argsort(z, -1)[:, -1] == y
  dlr = -(zy - s[:, -2] * top_is_y - s[:, -1] * (1 - top_is_y)) / (s[:, -1] - s[:, -3] + 1e-12)
  dlr_t = -(zy - zt) / (s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)
  np.testing.assert_allclose(R.dlr_loss(jnp.asarray(z), jnp.asarray(y)), dlr, rtol=1e-5)
  np.testing.assert_allclose(R.dlr_loss_targeted(jnp.asarray(z), jnp.asarray(y), jnp.asarray(t)), dlr_t,
                             rtol=1e-5)
  np.testing.assert_allclose(R.cw_loss(jnp.asarray(z), jnp.asarray(y)),
                             np.minimum(np.max(np.where(np.eye(10)[y] > 0, -np.inf, z), -1) - zy, 50.0))


@pytest.mark.parametrize("steps", [100, 200, 1000])
def test_apgd_checkpoints_follow_the_paper(steps):
  p = [0.0, 0.22]
  while p[-1] < 1:
    p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
  expected = [int(np.ceil(q * steps - 1e-9)) for q in p[1:] if q <= 1 + 1e-12]
  assert R.apgd_checkpoints(steps) == expected
  assert R.apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_square_p_schedule_matches_reference():
  def p_selection(it, n_queries, rescale):  # autoattack/square.py, written out
    if rescale:
      it = int(it / n_queries * 10000)
    for bound, div in ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32), (500, 16), (200, 8),
                       (50, 4), (10, 2)):
      if it > bound:
        return 0.8 / div
    return 0.8
  for rescale, queries in ((False, 5000), (True, 1000), (True, 37)):
    for i in [0, 1, 10, 11, 50, 51, 200, 201, 999, 1000, 1001, 4500, 7999, 8001, queries - 1]:
      assert float(R.square_p_schedule(i, queries, rescale_schedule=rescale)) == pytest.approx(
          p_selection(i, queries, rescale), rel=1e-6)


def test_deepfool_linear_closed_form():
  w, f = linear_model()
  x, _ = toy_data()
  dw = w[:, 1] - w[:, 0]
  margin = jnp.abs(f(x)[:, 1] - f(x)[:, 0])
  for norm, dual, measure in (("l2", jnp.linalg.norm(dw), lambda d: jnp.linalg.norm(d, axis=-1)),
                              ("linf", jnp.sum(jnp.abs(dw)), lambda d: jnp.max(jnp.abs(d), -1))):
    x_adv, fooled = R.deepfool(f, x, norm=norm)
    assert bool(jnp.all(fooled))
    np.testing.assert_allclose(measure((x_adv - x).reshape(len(x), -1)), 1.02 * margin / dual, rtol=1e-3)


def test_jit_equals_eager():
  f = _ten_class()
  x = jnp.asarray(np.random.default_rng(3).random((4, 4, 4, 3)), jnp.float32)
  y = jnp.arange(4)
  for name in ("apgd-ce", "square"):
    eager = ATTACKS[name](f, x, y, EPS)
    jitted = jax.jit(lambda x, y, e, name=name: ATTACKS[name](f, x, y, e))(x, y, EPS)
    np.testing.assert_allclose(jitted, eager, atol=1e-6, err_msg=name)


@functools.lru_cache(maxsize=1)
def _trained_cifar_mlp():
  """A small MLP trained for 300 full-batch steps on the shipped 1,000 CIFAR-10 training images."""
  x, y = iss_jax.training.load_dataset("cifar10_sample", "train")
  x, y = jnp.asarray(x, jnp.float32) / 255.0, jnp.asarray(y)
  k1, k2 = jax.random.split(jax.random.key(1))
  p = {"w1": jax.random.normal(k1, (3072, 64)) / np.sqrt(3072), "b1": jnp.zeros(64),
       "w2": jax.random.normal(k2, (64, 10)) / 8.0, "b2": jnp.zeros(10)}
  apply = lambda p, z: (jax.nn.relu((z.reshape(z.shape[0], -1) - 0.5) @ p["w1"] + p["b1"][None]) @ p["w2"]
                        + p["b2"][None])
  loss = lambda p: jnp.mean(R.cross_entropy(apply(p, x), y))

  def step(state, _):
    p, m = state
    g = jax.grad(loss)(p)
    m = jax.tree_util.tree_map(lambda a, b: 0.9 * a + b, m, g)
    return (jax.tree_util.tree_map(lambda a, b: a - 0.02 * b, p, m), m), None

  (p, _), _ = jax.lax.scan(step, (p, jax.tree_util.tree_map(jnp.zeros_like, p)), None, 300)
  xt, yt = iss_jax.training.load_dataset("cifar10_sample", "test")
  return functools.partial(apply, p), np.asarray(xt[:100]), np.asarray(yt[:100])


def test_trained_model_apgd_beats_pgd_and_worst_case():
  f, x, y = _trained_cifar_mlp()
  eps = 1 / 255
  res = R.evaluate_adversarial(f, x, y, eps_grid=[eps], attacks_=["pgd", "apgd-ce"], steps=10,
                               batch_size=100, progress=False)
  acc = {r["attack"]: r["accuracy"] for r in res["rows"]}
  assert res["clean"]["none"] > 0.3 and res["violations"] == 0, (res["clean"], res["checks"])
  assert acc["apgd-ce"] <= acc["pgd"] < res["clean"]["none"], acc  # same eps, same 10 steps

  # The worst case against the very members it ran (same keys): never above any of them.
  @jax.jit
  def worst_and_members(xb, yb):
    settings = R.AttackSettings(steps=10, square_queries=100)
    worst = R.ATTACKS["autoattack"].against(settings, random=False)(f, xb, yb, eps, KEY)
    members = [R.ATTACKS[m].against(settings, random=True)(lambda z, _: f(z), xb, yb, eps,
                                                           jax.random.fold_in(KEY, i))
               for i, m in enumerate(_attack_table.AUTOATTACK)]
    right = lambda z: jnp.argmax(f(z), -1) == yb
    return right(worst), jnp.stack([right(v) for v in members])

  worst, members = map(np.asarray, worst_and_members(jnp.asarray(x, jnp.float32) / 255.0, jnp.asarray(y)))
  assert np.all(worst <= members.min(0)) and worst.mean() <= acc["apgd-ce"] + 0.05, (worst.mean(), acc)


def test_evaluate_adversarial_new_attacks_every_protocol():
  f = _ten_class()
  x = np.random.default_rng(0).random((8, 4, 4, 3)).astype(np.float32)
  y = np.asarray(jnp.argmax(f(jnp.asarray(x)), -1))
  noise = R.custom_defense("noise", lambda z, k: jnp.clip(z + 0.01 * jax.random.normal(k, z.shape), 0, 1),
                           gradient="exact", random=True)
  names = ["deepfool", "autoattack"]  # autoattack runs apgd-ce, apgd-t and square
  res = R.evaluate_adversarial(f, x, y, eps_grid=[EPS], attacks_=names, defenses=[noise], steps=3,
                               square_queries=20, eot_samples=2, batch_size=8, progress=False)
  got = {(r["attack"], r["defense"], r["protocol"]) for r in res["rows"]}
  for a in names:
    assert {(a, "none", "none")} | {(a, "noise", p) for p in ("gray-box", "adaptive", "worst")} <= got
  assert set(res["deepfool"]) == {"none", "noise"} and res["deepfool"]["none"]["median_linf"] > 0
  json.dumps(res)
  with pytest.raises(ValueError, match="attacks"):
    R.evaluate_adversarial(f, x, y, eps_grid=[EPS], attacks_=["apgd"], progress=False)
  with pytest.raises(ValueError, match="protocol that attacks the bare model and then defends is 'gray-box'"):
    R.evaluate_adversarial(f, x, y, eps_grid=[EPS], protocols=["transfer"], progress=False)


def test_sanity_check_flags_apgd_weaker_than_pgd():
  accuracies = (("pgd", 0.1), ("apgd-ce", 0.6), ("apgd-t", 0.05), ("square", 0.3), ("autoattack", 0.5))
  rows = [{"attack": a, "eps": EPS, "defense": "none", "protocol": "none", "accuracy": v}
          for a, v in accuracies]
  checks = R.adversarial_sanity_checks({"rows": rows, "num_examples": 200})
  failed = {c["check"].split(" (")[0] for c in checks if not c["ok"]}
  assert failed == {"APGD-CE <= PGD", "autoattack <= apgd-t", "autoattack <= square"}


def test_attack_table_drives_evaluate_adversarial(monkeypatch):
  """An attack is one table entry: added to ATTACKS it is run, bare and through every defense."""
  f = _ten_class()
  x = np.random.default_rng(0).random((6, 4, 4, 3)).astype(np.float32)
  y = np.asarray(jnp.argmax(f(jnp.asarray(x)), -1))
  calls = []

  def flip(settings, logits, xb, yb, eps, key):  # moves every pixel by eps towards the far end of [0, 1]
    calls.append(settings.samples)
    return jnp.where(xb < 0.5, jnp.minimum(xb + eps, 1.0), jnp.maximum(xb - eps, 0.0))

  monkeypatch.setitem(R.ATTACKS, "flip", R.Attack("flip", "Flip", "pixels towards the far end",
                                                  budget=lambda s, e: f"flip {e}", random=flip))
  assert "flip" in list(R.ATTACKS) and R.ATTACKS["flip"].titles() == {"flip": "Flip"}
  noise = R.custom_defense("noise", lambda z, k: z, gradient="exact", random=True)
  res = R.evaluate_adversarial(f, x, y, eps_grid=[EPS, 0.5], attacks_=["flip"], defenses=[noise],
                               eot_samples=3, batch_size=6, progress=False)
  rows = {(r["attack"], r["eps"], r["defense"], r["protocol"]): r["accuracy"] for r in res["rows"]}
  flipped = np.where(x < 0.5, np.minimum(x + 0.5, 1.0), np.maximum(x - 0.5, 0.0))
  expected = float(np.mean(np.asarray(jnp.argmax(f(jnp.asarray(flipped)), -1)) == y))
  assert set(rows) == {("flip", e, d, p) for e in (EPS, 0.5)
                       for d, p in (("none", "none"), ("noise", "gray-box"), ("noise", "adaptive"),
                                    ("noise", "worst"))}
  assert rows[("flip", 0.5, "none", "none")] == rows[("flip", 0.5, "noise", "adaptive")] == expected
  assert sorted(set(calls)) == [1, 3]  # the bare model with one draw, the random defense with EOT's three
  assert R.ATTACKS["pgd"].titles() == {"pgd": "PGD gray-box", "pgd_adaptive": "PGD adapt."}


def test_apgd_carries_a_named_state(monkeypatch):
  """APGD's loop state is the NamedTuple APGDState (one field per per-example quantity)."""
  carried = []
  fori_loop = jax.lax.fori_loop

  def spy(lower, upper, body, init):
    carried.append(type(init))
    return fori_loop(lower, upper, body, init)

  monkeypatch.setattr(jax.lax, "fori_loop", spy)
  f = _ten_class()
  x = jnp.asarray(np.random.default_rng(3).random((2, 4, 4, 3)), jnp.float32)
  R.apgd(f, x, jnp.arange(2), eps=EPS, key=KEY, steps=5)
  assert R.APGDState in carried
  assert issubclass(R.APGDState, tuple) and len(R.APGDState._fields) == 13
