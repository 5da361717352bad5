"""PGD-AT and TRADES losses on a toy two-class linear model, where PGD's maximiser is known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toys import EPS, linear_model, toy_data

import iss_jax

_model, _data = linear_model, toy_data


def _ce_numpy(logits, y):
  logits = np.asarray(logits, np.float64)
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  return -logp[np.arange(len(y)), np.asarray(y)]


def _kl_numpy(lp, lq):
  lp, lq = (np.asarray(a, np.float64) for a in (lp, lq))
  logp = lp - lp.max(-1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
  logq = lq - lq.max(-1, keepdims=True)
  logq -= np.log(np.exp(logq).sum(-1, keepdims=True))
  return (np.exp(logp) * (logp - logq)).sum(-1)


def test_pgd_at_loss_is_ce_at_the_closed_form_maximiser():
  w, f = _model()
  x, y = _data()
  loss, info = iss_jax.baselines.pgd_at_loss(f, x, y, key=jax.random.key(0), steps=10)
  # Two linear classes: grad_x CE has the constant sign of (w_other - w_y); 10 steps of 2/255 cross
  # the whole 8/255 ball, so PGD ends at the vertex x + eps * sign(w_other - w_y).
  away = np.where(np.asarray(y) == 0, 1, -1)[:, None]  # towards the other class
  direction = np.sign(np.asarray(w[:, 1] - w[:, 0]))[None, :] * away
  x_star = np.asarray(x).reshape(len(y), -1) + EPS * direction
  np.testing.assert_allclose(np.asarray(info["x_adv"]).reshape(len(y), -1), x_star, atol=1e-6)
  want = _ce_numpy(x_star @ np.asarray(w, np.float64), y).mean()
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  assert float(loss) > float(jnp.mean(iss_jax.robustness.cross_entropy(f(x), y)))


def test_pgd_at_gradient_is_taken_at_the_fixed_adversarial_example():
  w, _ = _model()
  x, y = _data()
  f = lambda w: (lambda z: z.reshape(z.shape[0], -1) @ w)
  loss_fn = lambda w: iss_jax.baselines.pgd_at_loss(f(w), x, y, key=jax.random.key(0))[0]
  x_adv = iss_jax.baselines.pgd_at_loss(f(w), x, y, key=jax.random.key(0))[1]["x_adv"]
  fixed = lambda w: jnp.mean(iss_jax.robustness.cross_entropy(f(w)(x_adv), y))
  np.testing.assert_allclose(jax.grad(loss_fn)(w), jax.grad(fixed)(w), rtol=1e-5, atol=1e-7)


def test_trades_loss_matches_definition():
  w, f = _model(3)
  x, y = _data()
  loss, info = iss_jax.baselines.trades_loss(f, x, y, key=jax.random.key(1), beta=6.0, steps=10)
  x_adv = np.asarray(info["x_adv"])
  assert np.abs(x_adv - np.asarray(x)).max() <= EPS + 1e-6
  wn = np.asarray(w, np.float64)
  lx = np.asarray(x, np.float64).reshape(len(y), -1) @ wn
  la = x_adv.reshape(len(y), -1).astype(np.float64) @ wn
  want = _ce_numpy(lx, y).mean() + 6.0 * _kl_numpy(lx, la).mean()
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(info["natural"] + 6.0 * info["robust"], loss, rtol=1e-6)
  # The inner maximiser reaches a vertex x +- eps sign(w_1 - w_0): the KL is monotone in the logit
  # gap on each side, so it equals the KL at one of the two vertices, and exceeds the KL at x.
  s = np.sign(wn[:, 1] - wn[:, 0])
  xf = np.asarray(x, np.float64).reshape(len(y), -1)
  kl_plus = _kl_numpy(lx, (xf + EPS * s) @ wn)
  kl_minus = _kl_numpy(lx, (xf - EPS * s) @ wn)
  kl = _kl_numpy(lx, la)
  assert np.all(np.minimum(np.abs(kl - kl_plus), np.abs(kl - kl_minus)) <= 1e-5 + 1e-3 * kl)
  assert np.all(kl > 0)


def test_trades_beta_zero_is_clean_ce_and_has_aux():
  _, f = _model()
  x, y = _data()
  loss, info = iss_jax.baselines.trades_loss(lambda z: (f(z), {"calls": z.shape[0]}), x, y,
                                             key=jax.random.key(0), beta=0.0, has_aux=True)
  np.testing.assert_allclose(loss, _ce_numpy(f(x), y).mean(), rtol=1e-5)
  assert info["aux"] == {"calls": 2 * len(y)}  # one forward pass on [x; x_adv]


def test_attack_model_is_used_for_the_inner_maximisation():
  w, f = _model()
  x, y = _data()
  # An attack model with the opposite weights pushes the other way: the loss on f falls below clean.
  _, info = iss_jax.baselines.pgd_at_loss(f, x, y, key=jax.random.key(0),
                                          attack_logits_fn=lambda z: -f(z))
  assert float(jnp.mean(iss_jax.robustness.cross_entropy(f(info["x_adv"]), y))) < float(
      jnp.mean(iss_jax.robustness.cross_entropy(f(x), y)))


def test_bad_arguments():
  _, f = _model()
  x, y = _data()
  with pytest.raises(ValueError, match="key"):
    iss_jax.baselines.pgd_at_loss(f, x, y, key=None)
  with pytest.raises(ValueError, match="y must"):
    iss_jax.baselines.trades_loss(f, x, y[:2], key=jax.random.key(0))
  with pytest.raises(ValueError, match="method"):
    iss_jax.baselines.adversarial_examples(f, x, y, key=jax.random.key(0), method="fgsm")


def test_training_loss_terms_are_wired_into_make_loss_fn():
  from iss_jax.training._train import make_loss_fn
  from train.configs import default

  model = iss_jax.training.resnet_small(10, width=8)
  x = jnp.asarray(np.random.default_rng(0).random((4, 8, 8, 3)), jnp.float32)
  y = jnp.asarray([0, 1, 2, 3], jnp.int32)
  v = model.init(jax.random.key(0), x, train=False)
  c = default.get_config()
  plain = make_loss_fn(c, model)(v["params"], v["batch_stats"], x, y, jax.random.key(1))[0]
  c.smooth_kernel_weight = 0.01
  reg = make_loss_fn(c, model)(v["params"], v["batch_stats"], x, y, jax.random.key(1))[0]
  np.testing.assert_allclose(reg, plain + 0.01 * iss_jax.baselines.smooth_kernel_penalty(v["params"]),
                             rtol=1e-5)
  c.smooth_kernel_weight, c.adversarial, c.adv_steps = 0.0, "pgd", 2
  adv, (_, logits) = make_loss_fn(c, model)(v["params"], v["batch_stats"], x, y, jax.random.key(1))
  assert float(adv) > float(plain) and logits.shape == (4, 10)
  c.adversarial = "mixup"  # refused by the one check of the config; make_loss_fn takes a checked config
  with pytest.raises(iss_jax.training.ConfigError,
                     match=r"config\.adversarial must be one of none, pgd, trades"):
    iss_jax.training.validate_config(c)
