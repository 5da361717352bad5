"""The competitors of issue 12: the TV layer, PNI, ME-Net, and models trained with them."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax
from iss_jax import baselines, robustness

flax = pytest.importorskip("flax")
from flax import linen as nn  # noqa: E402
from sample_data import SAMPLE_PATH  # noqa: E402


def real_images(n, size=32):
  """The first ``n`` real CIFAR-10 test images of the shipped sample, float in [0, 1], top-left crops."""
  return np.load(SAMPLE_PATH)["x_test"][:n, :size, :size].astype(np.float32) / 255


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# ----------------------------------------------------------------------------------------------------------
# TV layer


def test_tv_layer_forward_is_tv_denoise_in_both_modes():
  x = jnp.asarray(real_images(3, size=12))
  smooth = baselines.tv_layer(x, 0.08, mode="smooth", iters=25)
  np.testing.assert_array_equal(smooth, baselines.tv_denoise(x, 0.08, iters=25))
  np.testing.assert_allclose(baselines.tv_layer(x, 0.08, mode="sharp", iters=25), 2 * x - smooth, atol=1e-6)


@pytest.mark.parametrize("mode", ["smooth", "sharp"])
def test_tv_layer_gradient_matches_finite_differences_in_float64(x64, mode):
  """The unrolled backward pass against central differences, w.r.t. the input and the weight."""
  x = jnp.asarray(real_images(1, size=6), jnp.float64)
  probe = jax.random.normal(jax.random.key(0), x.shape, jnp.float64)
  f = lambda z, w: jnp.sum(probe * baselines.tv_layer(z, w, mode=mode, iters=20))
  gx, gw = jax.grad(f, argnums=(0, 1))(x, jnp.float64(0.07))
  h = 1e-6
  direction = jax.random.normal(jax.random.key(1), x.shape, jnp.float64)
  fd_x = (f(x + h * direction, 0.07) - f(x - h * direction, 0.07)) / (2 * h)
  fd_w = (f(x, 0.07 + h) - f(x, 0.07 - h)) / (2 * h)
  np.testing.assert_allclose(jnp.sum(gx * direction), fd_x, rtol=1e-6)
  np.testing.assert_allclose(gw, fd_w, rtol=1e-5, atol=1e-9)
  assert abs(float(gw)) > 1e-6  # the weight does move the output


class _ConvThenPool(nn.Module):
  """A first convolution named like the library's models' (``stem_conv``), then mean pooling and a head."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.Conv(6, (3, 3), padding="SAME", name="stem_conv")(x)
    return nn.Dense(4, name="head")(jnp.mean(nn.relu(h), axis=(1, 2)))


@pytest.mark.parametrize("mode", ["smooth", "sharp"])
def test_tv_layer_after_the_first_conv_smooths_its_feature_maps(mode):
  x = jnp.asarray(real_images(2, size=10))
  model = iss_jax.training.DefendedModel(_ConvThenPool(), tv_layer=mode, tv_layer_position="first_conv",
                                         tv_layer_iters=7)
  variables = model.init(jax.random.key(0), x)
  p = variables["params"]
  weight = baselines.tv_layer_weight(p["tv_layer"]["theta"])
  # by hand, from the parameters: conv, the TV layer on its 6 feature maps, relu, pooling, head
  h = jax.lax.conv_general_dilated(x, p["stem_conv"]["kernel"], (1, 1), "SAME",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  h = h + p["stem_conv"]["bias"][None, None, None]
  h = baselines.tv_layer(h, weight, mode=mode, iters=7)
  want = jnp.mean(jax.nn.relu(h), axis=(1, 2)) @ p["head"]["kernel"] + p["head"]["bias"][None]
  np.testing.assert_allclose(model.apply(variables, x), want, rtol=1e-5, atol=1e-5)
  at_input = iss_jax.training.DefendedModel(_ConvThenPool(), tv_layer=mode, tv_layer_iters=7)
  assert not np.allclose(at_input.apply(variables, x), want, atol=1e-3)  # the placement matters
  grad = jax.grad(lambda q: model.apply({"params": q}, x).sum())(p)
  assert float(jnp.abs(grad["tv_layer"]["theta"])) > 0  # the weight is learned through the feature maps


def test_tv_layer_after_the_first_conv_needs_a_model_that_has_one():
  class NoConv(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
      return nn.Dense(3)(x.reshape(len(x), -1))

  model = iss_jax.training.DefendedModel(NoConv(), tv_layer="smooth", tv_layer_position="first_conv")
  with pytest.raises(ValueError, match="tv_layer_position='first_conv' needs a model whose first conv"):
    model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
  with pytest.raises(ValueError, match="tv_layer_position must be one of"):
    iss_jax.training.DefendedModel(NoConv(), tv_layer="smooth", tv_layer_position="middle")


def test_tv_layer_weight_parametrisation_round_trips():
  for w in (1e-3, 0.05, 0.3):
    assert float(baselines.tv_layer_weight(baselines.tv_layer_theta(w))) == pytest.approx(w, rel=1e-5)
  with pytest.raises(ValueError, match="TV layer weight must be a number > 0"):
    baselines.tv_layer_theta(0.0)
  with pytest.raises(ValueError, match="mode must be one of"):
    baselines.tv_layer(jnp.zeros((1, 4, 4, 3)), 0.1, mode="blur")


# ----------------------------------------------------------------------------------------------------------
# PNI


def _dense_params():
  model = nn.Sequential([nn.Dense(64), nn.relu, nn.Dense(5)])
  return model, model.init(jax.random.key(0), jnp.ones((1, 300)))["params"]


def test_pni_init_adds_one_scale_per_kernel_or_channel():
  _, params = _dense_params()
  layer = baselines.pni_init(params)["pni_alpha"]
  assert sorted(layer) == ["layers_0/kernel", "layers_2/kernel"]
  assert all(v.shape == () and float(v) == 0.25 for v in layer.values())
  channel = baselines.pni_init(params, channelwise=True)["pni_alpha"]
  assert channel["layers_0/kernel"].shape == (64,) and channel["layers_2/kernel"].shape == (5,)


def test_pni_noise_has_the_weights_std_and_the_closed_form_gradients():
  _, params = _dense_params()
  params = baselines.pni_init(params, init=0.5)
  noisy = baselines.pni_perturb(params, jax.random.key(3))
  assert "pni_alpha" not in noisy
  w = params["layers_0"]["kernel"]
  eta = (noisy["layers_0"]["kernel"] - w) / 0.5  # the noise: N(0, std(W)^2), 19,200 draws
  assert float(jnp.std(eta)) == pytest.approx(float(jnp.std(w)), rel=0.03)
  assert abs(float(jnp.mean(eta))) < 0.03 * float(jnp.std(w))
  np.testing.assert_array_equal(noisy["layers_0"]["bias"], params["layers_0"]["bias"])  # biases untouched
  # d/dW sum(W') = 1 (std(W) and eta carry no gradient); d/dalpha sum(W') = sum(eta).
  first_kernel = lambda p: jnp.sum(baselines.pni_perturb(p, jax.random.key(3))["layers_0"]["kernel"])
  grads = jax.grad(first_kernel)(params)
  np.testing.assert_allclose(grads["layers_0"]["kernel"], jnp.ones_like(w))
  np.testing.assert_allclose(grads["pni_alpha"]["layers_0/kernel"], jnp.sum(eta), rtol=1e-4)
  assert float(jnp.sum(jnp.abs(grads["pni_alpha"]["layers_2/kernel"]))) == 0.0
  zero = baselines.pni_perturb(baselines.pni_init(params, init=0.0), jax.random.key(3))
  np.testing.assert_array_equal(zero["layers_0"]["kernel"], w)


def test_a_pni_model_is_random_and_needs_a_noise_key():
  model = iss_jax.training.DefendedModel(iss_jax.training.resnet_small(width=4), pni="layerwise")
  x = jnp.asarray(real_images(2))
  v = model.init(jax.random.key(0), x)
  a = model.apply(v, x, rngs={"noise": jax.random.key(1)})
  b = model.apply(v, x, rngs={"noise": jax.random.key(2)})
  assert not np.allclose(a, b) and model.random
  np.testing.assert_array_equal(a, model.apply(v, x, rngs={"noise": jax.random.key(1)}))
  with pytest.raises(ValueError, match="rngs=\\{'noise': key\\}"):
    model.apply(v, x)


# ----------------------------------------------------------------------------------------------------------
# ME-Net


def _usvt_numpy(x, mask, eta=0.01):
  """Chatterjee (2015), Sec. 1.2, written out: scale to [-1, 1], zero-fill, threshold, rescale, clip."""
  y = np.where(mask, 2 * x - 1, 0.0)
  p_hat = mask.mean()
  u, s, vt = np.linalg.svd(y, full_matrices=False)
  keep = s >= (2 + eta) * np.sqrt(max(x.shape) * p_hat)
  w = np.clip((u[:, keep] * s[keep]) @ vt[keep] / p_hat, -1, 1)
  return (w + 1) / 2


def _soft_impute_numpy(x, mask, lam, sweeps):
  z = np.zeros_like(x)
  for _ in range(sweeps):
    u, s, vt = np.linalg.svd(np.where(mask, x, z), full_matrices=False)
    z = (u * np.maximum(s - lam, 0)) @ vt
  return np.clip(z, 0, 1)


def _low_rank(m=40, n=30, rank=2, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.uniform(0, 1, (m, rank)) @ rng.uniform(0, 1, (rank, n)) / rank
  mask = rng.uniform(size=(m, n)) < 0.6
  return a, mask


def test_usvt_and_soft_impute_match_numpy_ports(x64):
  a, mask = _low_rank()
  np.testing.assert_allclose(baselines.usvt(jnp.asarray(a), jnp.asarray(mask)), _usvt_numpy(a, mask),
                             atol=1e-10)
  np.testing.assert_allclose(baselines.soft_impute(jnp.asarray(a), jnp.asarray(mask), lam=0.3, sweeps=15),
                             _soft_impute_numpy(a, mask, 0.3, 15), atol=1e-10)


def test_soft_impute_recovers_a_low_rank_matrix_from_60_percent_of_its_entries(x64):
  a, mask = _low_rank(60, 50)
  est = np.asarray(baselines.soft_impute(jnp.asarray(a), jnp.asarray(mask), lam=0.05, sweeps=200))
  err = np.linalg.norm((est - a)[~mask]) / np.linalg.norm(a[~mask])
  mean_fill = np.linalg.norm((a[mask].mean() - a)[~mask]) / np.linalg.norm(a[~mask])
  assert err < 0.1 * mean_fill


def test_menet_keeps_values_in_range_draws_masks_and_is_a_random_bpda_defense():
  x = jnp.asarray(real_images(4))
  k1, k2 = jax.random.key(1), jax.random.key(2)
  for method in ("usvt", "softimpute"):
    y = baselines.menet(x, p=0.5, key=k1, method=method)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert not np.allclose(y, baselines.menet(x, p=0.5, key=k2, method=method))
  d = baselines.make_defense("menet@0.5")
  assert (d.name, d.gradient, d.random) == ("menet@0.5", "bpda", True)
  g = jax.grad(lambda z: jnp.sum(d.transform(z, k1) * 3.0))(x)  # BPDA: identity backward
  np.testing.assert_allclose(g, 3.0 * jnp.ones_like(x))
  with pytest.raises(ValueError, match="observation probability must be in \\(0, 1\\]"):
    baselines.make_defense("menet@1.5")


# ----------------------------------------------------------------------------------------------------------
# Random classifiers in the runner


def test_runner_gives_a_random_classifier_its_own_key_and_attacks_it_with_eot():
  seen = []

  def model(x, key):
    seen.append(key)
    return jnp.stack([x.mean((1, 2, 3)), 0.5 + 0 * x.mean((1, 2, 3))], -1) + 0.01 * jax.random.normal(
        key, (x.shape[0], 2))

  clf = robustness.RandomClassifier(model)
  run = robustness.Runner(clf, batch_size=4)
  assert run.is_random() and run.is_random(robustness.no_defense())
  logits = run.logits_fn(baselines.make_defense("lowpass@1"))
  a = logits(jnp.full((4, 8, 8, 3), 0.7), jax.random.key(0))
  b = logits(jnp.full((4, 8, 8, 3), 0.7), jax.random.key(1))
  assert not np.allclose(a, b)
  x = real_images(8)
  y = (x.mean((1, 2, 3)) < 0.5).astype(np.int32)  # the class of the noise-free logits
  res = robustness.evaluate_adversarial(clf, x, y, eps_grid=[8 / 255], steps=2, eot_samples=3, batch_size=4,
                                        progress=False)
  assert res["clean"]["none"] == 1.0
  assert "EOT" in res["defenses"]["none"]  # the bare random classifier is attacked with EOT


# ----------------------------------------------------------------------------------------------------------
# Training with the competitors


def _tiny(config_name, **fields):
  from train.configs import default

  c = default.apply_preset(default.get_config(), "quick")
  c.update(procedure="vanilla", train_limit=64, test_limit=32, batch_size=32, eval_batch_size=32, epochs=1,
           progress=False, tensorboard=False, width=4, **fields)
  return c


@pytest.mark.parametrize("fields", [
    {"tv_layer": "sharp", "tv_layer_iters": 5},
    {"tv_layer": "smooth", "tv_layer_position": "first_conv", "tv_layer_iters": 3},
    # PNI adversarial training (one FGSM step per batch through the noisy weights) costs about a minute
    # on 2 cores; the noise layer itself is checked in the default suite above.
    pytest.param({"pni": "channelwise", "adversarial": "pgd", "adv_steps": 1, "adv_step_size": 10 / 255},
                 marks=pytest.mark.slow),
    {"preprocess": "menet@0.6"},
], ids=["tvlayer", "tvlayer_first_conv", "pni", "menet"])
def test_training_with_a_competitor_learns_its_parameters_and_loads_back(tmp_path, fields):
  config = _tiny("vanilla", **fields)
  summary = iss_jax.training.train_and_evaluate(config, tmp_path)
  assert summary["completed"]
  model, variables, stored = iss_jax.training.load_variables(tmp_path)
  params = variables["params"]
  apply_fn, _ = iss_jax.training.load_classifier(tmp_path)
  x = jnp.asarray(real_images(2))
  if "tv_layer" in fields:
    theta = float(params["tv_layer"]["theta"])
    assert theta != pytest.approx(baselines.tv_layer_theta(0.05), abs=1e-7)  # learned
    assert apply_fn(x).shape == (2, 10)
  elif "pni" in fields:
    assert isinstance(apply_fn, robustness.RandomClassifier)
    alphas = np.concatenate([np.ravel(a) for a in params["pni_alpha"].values()])
    assert alphas.shape[0] > 5 and not np.allclose(alphas, 0.25)  # one per channel, learned
    assert not np.allclose(apply_fn(x, jax.random.key(0)), apply_fn(x, jax.random.key(1)))
  else:
    assert json.loads((tmp_path / "config.json").read_text())["preprocess"] == "menet@0.6"
    assert stored.preprocess == "menet@0.6"


@pytest.mark.parametrize("field,value,message", [
    ("preprocess", "smooth@0.6", "config.procedure 'fixed' and config.sparsity S"),
    ("preprocess", "menet@2", "config.preprocess: defense 'menet@2'"),
    ("tv_layer", "blur", "config.tv_layer must be one of none, smooth, sharp"),
    ("pni", "yes", "config.pni must be one of none, layerwise, channelwise"),
    ("tv_layer_weight", -1.0, "config.tv_layer_weight must be a number > 0"),
    ("tv_layer_position", "middle", "config.tv_layer_position must be one of input, first_conv"),
])
def test_bad_competitor_fields_are_one_sentence_before_anything_is_written(tmp_path, field, value, message):
  config = _tiny("vanilla", **{field: value})
  with pytest.raises(iss_jax.training.ConfigError, match=message.replace("(", "\\(")):
    iss_jax.training.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()
