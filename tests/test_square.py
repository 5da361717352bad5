"""Square queries only the images still robust (same result per image as querying all), counts its forward
passes, keeps querying every image of a random model, and its EOT form averages each query over draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax
from iss_jax.robustness import _square

R = iss_jax.robustness
KEY = jax.random.key(0)
EPS = 8 / 255


def _mlp(seed=0):
  rng = np.random.default_rng(seed)
  w1 = jnp.asarray(rng.standard_normal((48, 32)) / 4, jnp.float32)
  w2 = jnp.asarray(rng.standard_normal((32, 10)), jnp.float32)
  return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2


def _data(n, seed=3):
  x = jnp.asarray(np.random.default_rng(seed).random((n, 4, 4, 3)), jnp.float32)
  return x, jnp.asarray(np.random.default_rng(seed + 1).integers(0, 10, n), jnp.int32)


def _expected_forward(queries: np.ndarray, n: int) -> int:
  """The start (``n``) plus, per iteration ``t``, the smallest bucket that holds the images still robust:
  those queried more than ``t + 1`` times (an image, once fooled, is never queried again)."""
  buckets = sorted({-(-n // 2**j) for j in range(5)})
  total, t = n, 0
  while (k := int(np.sum(queries > t + 1))) > 0:
    total += min(b for b in buckets if b >= k)
    t += 1
  return total


@pytest.mark.parametrize("n", [37, 64])
def test_compacted_square_equals_querying_every_image(n):
  f = _mlp()
  x, y = _data(n)
  compact = jax.jit(lambda x, y, k: R.square(f, x, y, eps=EPS, key=k, queries=200, return_info=True))
  every = jax.jit(lambda x, y, k: R.random_square(lambda z, _: f(z), x, y, eps=EPS, key=k, queries=200,
                                                  return_info=True))
  (x_c, info_c), (x_e, info_e) = compact(x, y, KEY), every(x, y, KEY)
  np.testing.assert_array_equal(x_c, x_e)  # the same adversarial point per image
  np.testing.assert_array_equal(jnp.argmax(f(x_c), -1), jnp.argmax(f(x_e), -1))
  np.testing.assert_array_equal(info_c.queries, info_e.queries)
  assert int(info_c.iterations) == int(info_e.iterations)
  fooled = np.asarray(jnp.argmax(f(x_c), -1) != y)
  assert 0.3 < fooled.mean() < 1.0  # a mix of images fooled early, late and never
  # Querying every image costs n per iteration; the compacted form its buckets.
  assert int(info_e.forward_passes) == n * (int(info_e.iterations) + 1)
  assert int(info_c.forward_passes) == _expected_forward(np.asarray(info_c.queries), n)
  assert int(info_c.forward_passes) < 0.7 * int(info_e.forward_passes)
  # Another batch, with other counts of robust images, runs on the same compiled function.
  compact(*_data(n, seed=9), KEY)
  assert compact._cache_size() == 1


def test_square_stops_when_all_are_fooled_and_counts_queries_per_image():
  f = _mlp()
  x, y = _data(16)
  y = jnp.argmax(f(x), -1).at[:4].add(1) % 10  # four images misclassified from the start
  _, info = R.square(f, x, y, eps=0.5, key=KEY, queries=500, return_info=True)
  q = np.asarray(info.queries)
  assert np.all(q >= 1) and int(info.iterations) == q.max() - 1 < 500
  clean_wrong = np.asarray(jnp.argmax(f(x), -1) != y)
  assert np.all(q[clean_wrong] <= 2)  # the stripes start may fix a wrong image's fate at once


def test_random_model_queries_every_image():
  f = _mlp()
  x, y = _data(24)
  noisy = lambda z, k: f(z) + 0.3 * jax.random.normal(k, (1, 10))  # one draw shared by the batch (as PNI)
  x_r, info = R.random_square(noisy, x, y, eps=EPS, key=KEY, queries=100, return_info=True)
  assert int(info.forward_passes) == 24 * (int(info.iterations) + 1)
  table = R.ATTACKS["square"].against(R.AttackSettings(square_queries=100), random=True)
  np.testing.assert_array_equal(table(noisy, x, y, EPS, KEY), x_r)  # the evaluations' random path


def test_eot_square_with_one_draw_is_square_and_many_draws_beat_one():
  f = _mlp(1)
  x, _ = _data(32)
  y = jnp.argmax(f(x), -1)  # every image correct at the start
  noisy = lambda z, k: f(z) + jax.random.normal(k, (z.shape[0], 10))  # noise >> one proposal's effect
  eps, queries = 16 / 255, 100
  one = R.random_square(noisy, x, y, eps=eps, key=KEY, queries=queries)
  np.testing.assert_array_equal(R.eot_square(noisy, x, y, eps=eps, key=KEY, queries=queries, samples=1), one)
  eot_x, info = R.eot_square(noisy, x, y, eps=eps, key=KEY, queries=queries, samples=8, return_info=True)
  assert int(info.forward_passes) == 8 * 32 * (int(info.iterations) + 1)
  assert float(jnp.abs(eot_x - x).max()) <= eps + 1e-6
  expected = lambda z: np.asarray(R.eot(lambda v, k: _square.margin(noisy(v, k), y), 1000)(z, KEY))
  # The expected margin (what the attacker of a random model lowers) ends lower with the averaged rule.
  a, b = expected(one), expected(eot_x)
  assert np.mean(b) < np.mean(a) - 0.1 and np.mean(b < a) > 0.6


def test_square_eot_in_the_table():
  entry = R.ATTACKS["square-eot"]
  assert entry.gradient_free
  f = _mlp()
  x, y = _data(8)
  s = R.AttackSettings(square_queries=20, samples=2)
  plain = entry.against(s, random=False)(f, x, y, EPS, KEY)
  np.testing.assert_array_equal(plain, R.square(f, x, y, eps=EPS, key=KEY, queries=20))
  noisy = lambda z, k: f(z) + 0.1 * jax.random.normal(k, (z.shape[0], 10))
  np.testing.assert_array_equal(entry.against(s, random=True)(noisy, x, y, EPS, KEY),
                                R.eot_square(noisy, x, y, eps=EPS, key=KEY, queries=20, samples=2))
