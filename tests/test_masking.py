"""Gradient-masking flags on the model: each fires on a model built to mask its gradient that way, and all
stay quiet on an honest model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iss_jax.robustness import model_checks

W = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
X = jax.random.uniform(jax.random.key(1), (16, 4, 4, 3))
Y = jnp.arange(16) % 10

honest = lambda x, key: x.reshape(x.shape[0], -1) @ W
MODELS = {
    "honest": (honest, ()),
    "softmax": (lambda x, key: jax.nn.softmax(honest(x, key)), ("outputs are logits, not probabilities",)),
    "noisy": (lambda x, key: honest(x, key) + 10 * jax.random.normal(key, (x.shape[0], 10)),
              ("clean predictions are deterministic",)),
    # Quantised input (a shattered gradient, Athalye et al. 2018): round() has a zero derivative.
    "quantised": (lambda x, key: honest(jnp.round(x * 8) / 8, key),
                  ("the loss has a gradient at the clean images",)),
}


@pytest.mark.parametrize("name", MODELS)
def test_each_flag_fires_on_its_masking_model_and_only_there(name):
  fn, expected = MODELS[name]
  checks = model_checks(fn, X, Y, key=jax.random.key(3))
  raised = tuple(c["check"] for c in checks if not c["ok"])
  assert raised == expected, checks
  assert len(checks) == 3 and all(c["detail"] for c in checks)


def test_the_zero_gradient_count_is_exact():
  # Half the images saturate a hard threshold model (zero gradient); the other half see a linear model.
  def half(x, key):
    out = honest(x, key)
    return jnp.where((jnp.arange(x.shape[0]) < 8)[:, None], jax.lax.stop_gradient(out), out)
  (_, _, zero) = model_checks(half, X, Y, key=jax.random.key(0))
  assert not zero["ok"] and zero["detail"].startswith("8 of 16 images (50.0%)")
  np.testing.assert_equal(zero["rows"], [])


def test_the_attack_checks_fire_only_beyond_sampling_noise():
  from iss_jax.robustness._masking import (
    gradient_free_check,
    large_eps_check,
    one_step_check,
    randomness_check,
    transfer_check,
    unbounded_check,
  )
  n = 64
  assert not gradient_free_check(0.9, 0.1, n)["ok"] and gradient_free_check(0.5, 0.45, n)["ok"]
  assert not one_step_check(0.1, 0.9, n)["ok"] and one_step_check(0.45, 0.5, n)["ok"]
  assert one_step_check(0.9, 0.1, n)["ok"]  # FGSM weaker than iterative: as it should be
  assert not large_eps_check(0.5, 0.5, n)["ok"] and large_eps_check(0.0, 0.5, n)["ok"]
  assert not unbounded_check(0.75, n)["ok"] and unbounded_check(1.0, n)["ok"]
  assert unbounded_check(0.0, 0)["ok"]
  assert not transfer_check(0.1, 0.9, n)["ok"] and transfer_check(0.9, 0.1, n)["ok"]
  first, second = np.array([0, 1, 2]), np.array([0, 1, 1])
  assert not randomness_check(first, second)["ok"]
  assert randomness_check(first, second, random_protocol=True)["ok"]  # expected under the rand protocol
