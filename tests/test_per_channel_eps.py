"""Per-channel L-inf radii: every attack of the table keeps ``|delta_c| <= eps_c`` per channel, a scalar eps
is the same attack as that eps repeated per channel, and ``eps_radius`` is ``eps * std`` on normalised inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax

R = iss_jax.robustness
KEY = jax.random.key(0)
EPS_C = np.array([1 / 255, 4 / 255, 12 / 255], np.float32)  # a different radius per channel
SETTINGS = R.AttackSettings(steps=3, square_queries=20, samples=2)


def _model(seed=0):
  w = jnp.asarray(np.random.default_rng(seed).standard_normal((48, 10)), jnp.float32)
  return lambda x: x.reshape(x.shape[0], -1) @ w


def _data(n=6):
  x = jnp.asarray(0.25 + 0.5 * np.random.default_rng(3).random((n, 4, 4, 3)), jnp.float32)
  x = x.at[0].set(0.0).at[1].set(1.0)  # saturated images exercise the [0, 1] clip
  return x, jnp.arange(n) % 10


def _attack(name, random):
  """The table's attack ``(x, y, eps, key) -> x_adv``, jitted, against a deterministic or a random model."""
  f = _model()
  fn = R.ATTACKS[name].against(SETTINGS, random=random)
  if random:
    noisy = lambda z, k: f(z + 0.01 * jax.random.normal(k, z.shape))
    return jax.jit(lambda x, y, eps, k: fn(noisy, x, y, eps, k))
  return jax.jit(lambda x, y, eps, k: fn(f, x, y, eps, k))


def _per_channel_max(x_adv, x):
  return np.abs(np.asarray(x_adv) - np.asarray(x)).reshape(-1, x.shape[-1]).max(axis=0)


@pytest.mark.parametrize("random", [False, True], ids=["deterministic", "random"])
@pytest.mark.parametrize("name", sorted(R.ATTACKS))
def test_every_attack_keeps_each_channel_in_its_ball(name, random):
  x, y = _data()
  x_adv = _attack(name, random)(x, y, jnp.asarray(EPS_C), KEY)
  assert x_adv.shape == x.shape and bool(jnp.all(jnp.isfinite(x_adv)))
  assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
  delta = _per_channel_max(x_adv, x)
  assert np.all(delta <= EPS_C + 1e-6), (name, delta * 255)
  if name in ("fgsm", "pgd", "apgd-ce", "apgd-t", "square", "autoattack") and not random:
    # Each channel reaches its own radius (not the smallest one): these attacks step to the ball's faces.
    np.testing.assert_allclose(delta, EPS_C, atol=1e-6)


@pytest.mark.parametrize("name", sorted(R.ATTACKS))
def test_scalar_eps_equals_the_same_eps_per_channel(name):
  x, y = _data()
  attack = _attack(name, random=False)
  eps = np.float32(6 / 255)
  np.testing.assert_array_equal(attack(x, y, jnp.asarray(eps), KEY),
                                attack(x, y, jnp.full((3,), eps), KEY))


def test_public_attacks_take_a_per_channel_eps_and_check_its_shape():
  f = _model()
  x, y = _data()
  eps = jnp.asarray(EPS_C)
  for x_adv in (R.fgsm(f, x, y, eps=eps), R.pgd(f, x, y, eps=eps, step_size=eps / 2, steps=3, key=KEY),
                R.apgd(f, x, y, eps=eps, key=KEY, steps=5), R.square(f, x, y, eps=eps, key=KEY, queries=10),
                R.cw(f, x, y, eps=eps, step_size=eps / 2, steps=3, key=KEY)):
    assert np.all(_per_channel_max(x_adv, x) <= EPS_C + 1e-6)
  with pytest.raises(ValueError, match=r"eps must be a scalar or an array of shape \(3,\)"):
    R.fgsm(f, x, y, eps=jnp.ones(4) / 255)
  with pytest.raises(ValueError, match="eps must be in"):
    R.square(f, x, y, eps=jnp.asarray([0.1, 2.0, 0.1]), key=KEY)


def test_eps_radius_closed_form():
  std = np.array([0.2470, 0.2435, 0.2616])
  assert R.CIFAR10_STD == (0.2470, 0.2435, 0.2616)
  np.testing.assert_array_equal(R.eps_radius(8 / 255, "normalized"), 8 / 255 * std)
  assert R.eps_radius(8 / 255) == 8 / 255 and R.eps_radius(8 / 255, "pixel") == 8 / 255
  np.testing.assert_allclose(R.eps_radius(8 / 255, "normalized", std=(0.25, 0.25, 0.25)), [2 / 255] * 3)
  for bad, match in ((dict(eps=0.1, space="normalised"), "space must be one of"),
                     (dict(eps=0.1, space="normalized", std=(0.2, -0.1, 0.2)), "std must be"),
                     (dict(eps=5.0, space="normalized"), "pixel radius in"), (dict(eps=-0.1), "eps must be")):
    with pytest.raises(ValueError, match=match):
      R.eps_radius(**bad)


def test_normalized_radius_bounds_the_perturbation_of_the_normalised_input():
  """An attack at ``eps_radius(eps, "normalized", std)`` moves ``(x - mean) / std`` by at most ``eps``."""
  std = np.array([0.2470, 0.2435, 0.2616], np.float32)
  mean = np.array([0.4914, 0.4822, 0.4465], np.float32)
  f = _model()
  normalised_model = lambda z: f((z - mean.reshape(1, 1, 1, 3)) / std.reshape(1, 1, 1, 3))
  x, y = _data()
  eps = 8 / 255
  x_adv = R.apgd(normalised_model, x, y, eps=jnp.asarray(R.eps_radius(eps, "normalized", std), jnp.float32),
                 key=KEY, steps=5)
  moved = np.abs((np.asarray(x_adv) - mean) / std - (np.asarray(x) - mean) / std).reshape(-1, 3).max(0)
  assert np.all(moved <= eps + 1e-5)
  np.testing.assert_allclose(moved, eps, atol=1e-5)  # APGD reaches the faces in every channel


def test_evaluate_adversarial_reports_the_eps_space():
  f = _model()
  x, y = _data(8)
  kw = dict(eps_grid=[8 / 255], attacks_=("fgsm",), protocols=(), batch_size=8)
  pixel = R.evaluate_adversarial(f, x, y, **kw)
  norm = R.evaluate_adversarial(f, x, y, eps_space="normalized", **kw)
  assert {r["eps_space"] for r in pixel["rows"]} == {"pixel"} and pixel["settings"]["eps_space"] == "pixel"
  assert {r["eps_space"] for r in norm["rows"]} == {"normalized"}
  np.testing.assert_allclose(norm["settings"]["pixel_radius"][str(8 / 255)], 8 / 255 * np.array(R.CIFAR10_STD))
  # FGSM at the per-channel radius, run directly, gives the evaluation's accuracy.
  x_adv = R.fgsm(f, x, y, eps=jnp.asarray(R.eps_radius(8 / 255, "normalized"), jnp.float32))
  assert norm["rows"][0]["accuracy"] == float(np.mean(np.argmax(f(x_adv), -1) == np.asarray(y)))
  with pytest.raises(ValueError, match="eps_space must be one of"):
    R.evaluate_adversarial(f, x, y, eps_space="normalised", **kw)
