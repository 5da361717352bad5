"""Tests for the L-infinity attacks (FGSM, PGD, pgd_maximize, EOT) and BPDA through ``iss_jax.smooth``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax

H = W = 6
C = 3


def _mlp_apply(params, x):
  h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"][None])
  return h @ params["w2"] + params["b2"][None]


def _toy_data(key, n):
  """Two classes: a bright or a dark centre square on noise; learnable in a few hundred steps."""
  k1, k2 = jax.random.split(key)
  y = jax.random.bernoulli(k1, 0.5, (n,)).astype(jnp.int32)
  x = 0.5 + 0.15 * jax.random.normal(k2, (n, H, W, C))
  centre = jnp.zeros((H, W, C)).at[2:4, 2:4].set(1.0)
  x = x + (2.0 * y[:, None, None, None] - 1.0) * 0.15 * centre[None]
  return jnp.clip(x, 0.0, 1.0), y


@functools.lru_cache(maxsize=1)
def _trained_model():
  key = jax.random.key(0)
  x, y = _toy_data(key, 512)
  d = H * W * C
  k1, k2 = jax.random.split(jax.random.key(1))
  params = {"w1": jax.random.normal(k1, (d, 32)) / np.sqrt(d), "b1": jnp.zeros(32),
            "w2": jax.random.normal(k2, (32, 2)) / np.sqrt(32), "b2": jnp.zeros(2)}
  loss = lambda p: jnp.mean(iss_jax.robustness.cross_entropy(_mlp_apply(p, x), y))

  @jax.jit
  def step(p, _):
    g = jax.grad(loss)(p)
    return jax.tree_util.tree_map(lambda a, b: a - 0.5 * b, p, g), None

  params, _ = jax.lax.scan(step, params, None, 400)
  x_test, y_test = _toy_data(jax.random.key(2), 256)
  return functools.partial(_mlp_apply, params), x_test, y_test


def _acc(apply_fn, x, y):
  return float(jnp.mean(jnp.argmax(apply_fn(x), -1) == y))


@pytest.mark.parametrize("eps", [0.0, 8 / 255, 1.0])
def test_attacks_stay_in_ball_and_box(eps):
  apply_fn, x, y = _trained_model()
  x = x.at[0].set(0.0).at[1].set(1.0)  # saturated images exercise the [0, 1] clip
  outs = [iss_jax.robustness.fgsm(apply_fn, x, y, eps=eps),
          iss_jax.robustness.pgd(apply_fn, x, y, eps=eps, step_size=eps / 4, steps=5, key=jax.random.key(3),
                                 restarts=2)]
  for x_adv in outs:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(jnp.max(jnp.abs(x_adv - x))) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_pgd_no_stronger_than_fgsm_no_stronger_than_clean():
  apply_fn, x, y = _trained_model()
  clean = _acc(apply_fn, x, y)
  assert clean > 0.9  # the toy model learnt the task, so the ordering below is meaningful
  eps = 0.08
  acc_fgsm = _acc(apply_fn, iss_jax.robustness.fgsm(apply_fn, x, y, eps=eps), y)
  acc_pgd = _acc(apply_fn, iss_jax.robustness.pgd(apply_fn, x, y, eps=eps, step_size=eps / 4, steps=10,
                                                  key=jax.random.key(4)), y)
  assert acc_pgd <= acc_fgsm <= clean
  assert acc_fgsm < clean  # the attack does something
  big = iss_jax.robustness.pgd(apply_fn, x, y, eps=0.5, step_size=0.1, steps=10, key=jax.random.key(5))
  assert _acc(apply_fn, big, y) < 0.05


def test_fgsm_matches_closed_form_on_linear_model():
  """For logits ``x.w`` the loss gradient sign is known in closed form."""
  w = jax.random.normal(jax.random.key(0), (H * W * C, 3))
  apply_fn = lambda x: x.reshape(x.shape[0], -1) @ w
  x = jax.random.uniform(jax.random.key(1), (4, H, W, C), minval=0.2, maxval=0.8)
  y = jnp.array([0, 1, 2, 0])
  p = jax.nn.softmax(apply_fn(x))
  grad = (p - jax.nn.one_hot(y, 3)) @ w.T  # d CE / d x, flattened
  expected = np.clip(np.asarray(x) + 0.1 * np.sign(np.asarray(grad)).reshape(x.shape), 0, 1)
  np.testing.assert_allclose(iss_jax.robustness.fgsm(apply_fn, x, y, eps=0.1), expected, atol=1e-6)


def test_pgd_maximize_reaches_box_corner_and_jit_sweep():
  x = jnp.full((2, 3, 3, 1), 0.5)
  obj = lambda z: jnp.sum(z, axis=(1, 2, 3))
  run = jax.jit(lambda eps: iss_jax.robustness.pgd_maximize(obj, x, eps=eps, step_size=eps / 2, steps=3,
                                                            random_start=False))
  np.testing.assert_allclose(run(0.1), 0.6, atol=1e-6)
  np.testing.assert_allclose(run(0.7), 1.0, atol=1e-6)  # clipped to the pixel box
  assert run._cache_size() == 1  # eps is traced: no recompilation across the sweep


def test_pgd_restarts_never_weaker_than_one_restart():
  apply_fn, x, y = _trained_model()
  kw = dict(eps=0.05, step_size=0.0125, steps=3, key=jax.random.key(6))
  one = _acc(apply_fn, iss_jax.robustness.pgd(apply_fn, x, y, restarts=1, **kw), y)
  many = _acc(apply_fn, iss_jax.robustness.pgd(apply_fn, x, y, restarts=3, **kw), y)
  assert many <= one


def test_bpda_gradient_through_smooth_is_identity_backward():
  apply_fn, x, y = _trained_model()
  x = x[:4]
  y = y[:4]
  loss_smooth = lambda z: jnp.sum(iss_jax.robustness.cross_entropy(apply_fn(iss_jax.smooth(z, 0.6)), y))
  g = jax.grad(loss_smooth)(x)
  assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
  # BPDA: the backward pass is the identity, so the gradient is the model's gradient at smooth(x).
  ce = iss_jax.robustness.cross_entropy
  g_ref = jax.grad(lambda z: jnp.sum(ce(apply_fn(z), y)))(iss_jax.smooth(x, 0.6))
  np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-7)
  x_adv = iss_jax.robustness.pgd(lambda z: apply_fn(iss_jax.smooth(z, 0.6)), x, y, eps=0.03, step_size=0.01,
                                 steps=2, key=jax.random.key(7))
  assert float(jnp.max(jnp.abs(x_adv - x))) <= 0.03 + 1e-6


def test_eot_averages_draws():
  fn = lambda x, key: x * jax.random.uniform(key, ())
  g = iss_jax.robustness.eot(fn, 3)
  key = jax.random.key(0)
  expected = jnp.mean(jnp.stack([fn(jnp.ones(2), k) for k in jax.random.split(key, 3)]), axis=0)
  np.testing.assert_allclose(g(jnp.ones(2), key), expected, rtol=1e-6)


def test_bad_inputs_raise():
  apply_fn, x, y = _trained_model()
  with pytest.raises(ValueError, match="eps"):
    iss_jax.robustness.fgsm(apply_fn, x, y, eps=2.0)
  with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
    iss_jax.robustness.fgsm(apply_fn, x[0], y, eps=0.1)
  with pytest.raises(ValueError, match="y must be"):
    iss_jax.robustness.fgsm(apply_fn, x, y[:3], eps=0.1)
  with pytest.raises(ValueError, match="key"):
    iss_jax.robustness.pgd(apply_fn, x, y, eps=0.1, step_size=0.1, steps=1)
  with pytest.raises(ValueError, match="steps"):
    iss_jax.robustness.pgd(apply_fn, x, y, eps=0.1, step_size=0.1, steps=0, key=jax.random.key(0))
  with pytest.raises(ValueError, match="float"):
    iss_jax.robustness.fgsm(apply_fn, (x * 255).astype(jnp.uint8), y, eps=0.1)
