"""Gray-box AutoAttack keeps, per example, the member point strongest against the defended model: its worst
case is never above any member's accuracy on the same images (it kept the first point fooling the bare
model before, which transfers worse)."""

import jax.numpy as jnp
import numpy as np

import iss_jax

R = iss_jax.robustness


def _mlp(seed=0):
  rng = np.random.default_rng(seed)
  w1 = jnp.asarray(rng.standard_normal((48, 32)) / 4, jnp.float32)
  w2 = jnp.asarray(rng.standard_normal((32, 10)), jnp.float32)
  return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2


def _quantise(x, key):
  """A deterministic defense through which the bare model's adversarial points transfer imperfectly."""
  del key
  return jnp.round(x * 4.0) / 4.0


def test_gray_box_autoattack_is_never_above_a_member():
  f = _mlp()
  x = jnp.asarray(np.random.default_rng(3).random((64, 4, 4, 3)), jnp.float32)
  y = jnp.argmax(f(_quantise(x, None)), -1)  # every image correct behind the defense
  defense = R.custom_defense("quantise", _quantise, gradient="bpda")
  res = R.evaluate_adversarial(f, x, y, eps_grid=[16 / 255], defenses=[defense],
                               attacks_=("apgd-ce", "apgd-t", "square", "autoattack"),
                               steps=5, square_queries=60, batch_size=64, return_correct=True)
  c = res["correct"]
  eps = 16 / 255
  worst = c[("autoattack", eps, "quantise", "gray-box")]
  for m in ("apgd-ce", "apgd-t", "square"):
    member = c[(m, eps, "quantise", "gray-box")]
    assert np.mean(worst) <= np.mean(member), m
    assert not np.any(worst & ~member), m  # per example: robust to the worst case => robust to each member
    for row in (("none", "none"), ("quantise", "adaptive"), ("quantise", "worst")):
      assert not np.any(c[("autoattack", eps, *row)] & ~c[(m, eps, *row)]), (m, row)
  assert all(ch["ok"] for ch in res["checks"] if ch["check"].startswith("autoattack <="))
  assert np.mean(worst) < 1.0
  # The report names every cell where the gray-box point is stronger than the adaptive one.
  stronger = {(g["attack"], g["defense"]): g for g in res["gray_box_stronger"]}
  for a in ("apgd-ce", "apgd-t", "square", "autoattack"):
    gray, adaptive = c[(a, eps, "quantise", "gray-box")], c[(a, eps, "quantise", "adaptive")]
    assert ((a, "quantise") in stronger) == (gray.mean() < adaptive.mean()), a
    if (a, "quantise") in stronger:
      assert stronger[(a, "quantise")]["only_gray_box"] == int(np.sum(~gray & adaptive))
