"""Tests for the model analyses: LRP, t-SNE and the silhouette score, activation maximisation, Grad-CAM on a
ViT, and the ``eval.lrp`` / ``eval.tsne`` / ``eval.activation_max`` entry points."""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax

ana = iss_jax.analysis


# --------------------------------------------------------------------------------------------------- LRP


class BiasFreeResNet(nn.Module):
  """conv -> relu -> residual block -> max-pool -> global mean -> dense, all without biases."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Conv(6, (3, 3), use_bias=False, name="stem_conv")(x))
    y = nn.relu(nn.Conv(6, (3, 3), use_bias=False, name="conv1")(x))
    y = nn.Conv(6, (3, 3), use_bias=False, name="conv2")(y)
    x = nn.relu(x + y)
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.Dense(5, use_bias=False, name="head")(jnp.mean(x, axis=(1, 2)))


class ConvBN(nn.Module):
  """conv (no bias) -> BatchNorm -> relu -> global mean -> dense, or the same with the BN folded in."""

  folded: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.folded:
      x = nn.Conv(4, (3, 3), name="conv")(x)
    else:
      x = nn.Conv(4, (3, 3), use_bias=False, name="conv")(x)
      x = nn.BatchNorm(use_running_average=True, epsilon=1e-5, name="bn")(x)
    return nn.Dense(3, name="head")(jnp.mean(nn.relu(x), axis=(1, 2)))


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(7, name="fc1")(x))
    x = nn.relu(nn.Dense(5, name="fc2")(x))
    return nn.Dense(3, name="head")(x)


def _images(n=3, hw=8, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, hw, hw, 3))


def _perturb(variables, seed, scale=0.3):
  """Random nonzero biases / BN statistics, so that biases really absorb relevance."""
  leaves, tree = jax.tree_util.tree_flatten(variables)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  leaves = [v + scale * jax.random.normal(k, v.shape) if v.ndim == 1 else v
            for v, k in zip(leaves, keys, strict=True)]
  out = jax.tree_util.tree_unflatten(tree, leaves)
  if "batch_stats" in out:  # a positive running variance
    out["batch_stats"] = jax.tree_util.tree_map(jnp.abs, out["batch_stats"])
  return out


def test_lrp0_of_a_bias_free_relu_network_conserves_the_logit_exactly():
  model = BiasFreeResNet()
  x = _images()
  variables = model.init(jax.random.key(1), x)
  res = ana.lrp(model, variables, x, epsilon=0.0, target=jnp.array([0, 2, 4]))
  logits = np.asarray(model.apply(variables, x))
  np.testing.assert_allclose(res.logit, logits[np.arange(3), [0, 2, 4]], rtol=1e-6)
  np.testing.assert_allclose(res.relevance.sum((1, 2, 3)), res.logit, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(res.absorbed, 0.0, atol=1e-6)
  # with a stabiliser, relevance is only lost (it shrinks towards zero)
  eps = ana.lrp(model, variables, x, epsilon=1.0, target=jnp.array([0, 2, 4]))
  assert np.all(np.abs(eps.relevance.sum((1, 2, 3))) < np.abs(res.logit))
  np.testing.assert_allclose(eps.residual, 0.0, atol=1e-5)


def _lrp_epsilon_numpy(params, x, target, eps):
  """The textbook LRP-epsilon recursion of an MLP in float64 (Montavon et al. 2019, Eq. 2)."""
  layers = [params[k] for k in ("fc1", "fc2", "head")]
  acts = [np.asarray(x, np.float64).reshape(len(x), -1)]
  zs = []
  for i, p in enumerate(layers):
    z = acts[-1] @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)
    zs.append(z)
    acts.append(np.maximum(z, 0) if i < len(layers) - 1 else z)
  r = np.zeros_like(zs[-1])
  r[np.arange(len(x)), target] = zs[-1][np.arange(len(x)), target]
  absorbed = np.zeros(len(x))
  for p, a, z in zip(layers[::-1], acts[-2::-1], zs[::-1], strict=True):
    s = r / (z + eps * np.where(z >= 0, 1.0, -1.0))
    r_in = a * (s @ np.asarray(p["kernel"], np.float64).T)
    absorbed += r.sum(1) - r_in.sum(1)
    r = r_in
  return r, absorbed


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_lrp_matches_the_textbook_epsilon_rule_on_an_mlp(eps):
  model = MLP()
  x = _images(n=4, hw=3)
  variables = _perturb(model.init(jax.random.key(2), x), seed=3)
  target = np.array([0, 1, 2, 1])
  res = ana.lrp(model, variables, x, epsilon=eps, target=target)
  ref, absorbed = _lrp_epsilon_numpy(variables["params"], x, target, eps)
  np.testing.assert_allclose(res.relevance.reshape(4, -1), ref, rtol=2e-4, atol=2e-6)
  np.testing.assert_allclose(res.absorbed, absorbed, rtol=2e-4, atol=2e-6)
  np.testing.assert_allclose(ref.sum(1) + absorbed, res.logit, rtol=1e-5, atol=1e-6)


def test_lrp_folds_batchnorm_into_the_convolution():
  x = _images(n=2, hw=6)
  model = ConvBN()
  v = _perturb(model.init(jax.random.key(4), x), seed=5)
  bn, conv = v["params"]["bn"], v["params"]["conv"]
  stats = v["batch_stats"]["bn"]
  scale = bn["scale"] / jnp.sqrt(stats["var"] + 1e-5)
  kernel = conv["kernel"] * scale.reshape(1, 1, 1, -1)
  folded = {"params": {"conv": {"kernel": kernel, "bias": bn["bias"] - stats["mean"] * scale},
                       "head": v["params"]["head"]}}
  ref_model = ConvBN(folded=True)
  np.testing.assert_allclose(model.apply(v, x), ref_model.apply(folded, x), rtol=1e-5, atol=1e-6)
  got = ana.lrp(model, v, x, epsilon=0.1, target=np.array([1, 2]))
  ref = ana.lrp(ref_model, folded, x, epsilon=0.1, target=np.array([1, 2]))
  np.testing.assert_allclose(got.relevance, ref.relevance, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got.absorbed, ref.absorbed, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got.residual, 0.0, atol=1e-5)


@pytest.mark.slow
def test_lrp_accounts_for_all_relevance_in_a_resnet_with_batchnorm():
  model = iss_jax.training.resnet_small(width=4, num_classes=3)
  x = _images(n=2, hw=8)
  v = _perturb(model.init(jax.random.key(6), x), seed=7, scale=0.2)
  res = ana.lrp(model, v, x, epsilon=0.05)
  assert res.relevance.shape == x.shape
  np.testing.assert_array_equal(res.target, np.argmax(model.apply(v, x), -1))
  assert np.all(np.abs(res.absorbed) > 1e-3)  # the BatchNorm biases do absorb relevance
  np.testing.assert_allclose(res.relevance.sum((1, 2, 3)) + res.absorbed, res.logit, rtol=1e-4, atol=1e-5)


def test_lrp_conserves_through_a_vit_without_position_embeddings_and_class_token():
  """LayerNorm (std held), attention (weights held) and GELU (identity rule) conserve relevance; only the
  constants a ViT adds outside its layers (position embeddings, class token) keep some."""
  if "vit_tiny" not in iss_jax.training._models.MODELS:  # noqa: SLF001 - added by the ViT work
    pytest.skip("iss_jax.training has no vit_tiny yet")
  model = iss_jax.training.create_model("vit_tiny", 3, "cifar", width=8, depth=1, num_heads=2)
  x = _images(n=2, hw=8)
  v = _perturb(model.init(jax.random.key(0), x), seed=1, scale=0.1)
  full = ana.lrp(model, v, x, epsilon=0.01)
  assert np.all(np.abs(full.residual) > 1e-4)  # the position embeddings and class token hold some
  params = {**v["params"], "pos_embed": jnp.zeros_like(v["params"]["pos_embed"]),
            "cls_token": jnp.zeros_like(v["params"]["cls_token"])}
  res = ana.lrp(model, {"params": params}, x, epsilon=0.01)
  assert np.all(np.abs(res.relevance).sum((1, 2, 3)) > 1e-4)  # relevance does reach the pixels
  np.testing.assert_allclose(res.relevance.sum((1, 2, 3)) + res.absorbed, res.logit, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"epsilon": -0.1}, "epsilon must be a finite number >= 0"),
    ({"target": np.array([0, 1, 2])}, "target must hold one class per image"),
])
def test_lrp_bad_arguments_end_in_one_sentence(kwargs, message):
  model = MLP()
  x = _images(n=2, hw=3)
  with pytest.raises(ValueError, match=message):
    ana.lrp(model, model.init(jax.random.key(0), x), x, **kwargs)


# ------------------------------------------------------------------------------------------------ t-SNE


def _blobs(k=4, per=30, dim=10, spread=20.0, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(k, dim)) * spread
  labels = np.repeat(np.arange(k), per)
  return centres[labels] + rng.normal(size=(k * per, dim)), labels


@pytest.mark.parametrize("perplexity", [5.0, 20.0])
def test_affinities_hit_the_target_perplexity(perplexity):
  x, _ = _blobs()
  p, beta = ana.conditional_affinities(x, perplexity)
  np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
  assert np.all(np.diag(p) == 0)
  logp = np.log(np.where(p > 0, p, 1.0))
  entropy_bits = -np.sum(p * logp, axis=1) / np.log(2)
  np.testing.assert_allclose(2.0**entropy_bits, perplexity, rtol=1e-6)
  # each row is a Gaussian kernel of its own precision (brute force, row 0)
  d0 = np.sum((x - x[0]) ** 2, axis=1)
  w = np.exp(-beta[0] * (d0 - d0[1:].min()))
  w[0] = 0
  np.testing.assert_allclose(p[0], w / w.sum(), rtol=1e-8, atol=1e-300)


def test_tsne_keeps_separated_clusters_apart_and_decreases_kl():
  x, labels = _blobs()
  res = ana.tsne(x, perplexity=10, iterations=400, exaggeration_iterations=100)
  assert res.embedding.shape == (120, 2) and np.all(np.isfinite(res.embedding))
  assert ana.silhouette_score(res.embedding, labels) > 0.7
  kl = res.kl[100:]  # after early exaggeration: the true KL(P || Q)
  assert kl[-1] < 0.5 * kl[0] and kl[-1] <= np.min(kl) + 0.05
  # each point's nearest embedded neighbour is from its own cluster
  d = ana.squared_distances(res.embedding) + np.diag(np.full(120, np.inf))
  assert np.all(labels[np.argmin(d, axis=1)] == labels)


def _silhouette_brute_force(x, labels):
  out = []
  for i in range(len(x)):
    dist = [np.sqrt(np.sum((x[i] - x[j]) ** 2)) for j in range(len(x))]
    own = [dist[j] for j in range(len(x)) if labels[j] == labels[i] and j != i]
    if not own:
      out.append(0.0)
      continue
    a = np.mean(own)
    b = min(np.mean([dist[j] for j in range(len(x)) if labels[j] == c])
            for c in set(labels.tolist()) if c != labels[i])
    out.append((b - a) / max(a, b))
  return np.array(out)


def test_silhouette_matches_the_definition():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(13, 3))
  labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 7])  # label 7: a singleton (s = 0)
  np.testing.assert_allclose(ana.silhouette_samples(x, labels), _silhouette_brute_force(x, labels),
                             rtol=1e-10, atol=1e-12)
  assert ana.silhouette_score(x, labels) == pytest.approx(np.mean(_silhouette_brute_force(x, labels)))
  with pytest.raises(ValueError, match="at least two clusters"):
    ana.silhouette_score(x, np.zeros(13))
  with pytest.raises(ValueError, match="perplexity must be in"):
    ana.tsne(x, perplexity=13)


# ------------------------------------------------------------------------------ activation maximisation


def test_activation_maximization_of_a_linear_unit_is_its_weights():
  """max w.(x - 0.5) - l2 ||x - 0.5||^2 over [0, 1]: x = 0.5 + w / (2 l2) when that is inside the box."""
  w = 0.1 * jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
  l2 = 2.0
  unit = lambda x: jnp.sum(w * (x - 0.5), axis=(1, 2, 3))  # noqa: E731
  x0 = 0.5 + 0.05 * jax.random.normal(jax.random.key(2), (2, 6, 6, 3))
  res = ana.activation_maximization(unit, x0, steps=400, learning_rate=0.02, l2=l2)
  np.testing.assert_allclose(res.images - 0.5, np.asarray(w) / (2 * l2), atol=2e-3)
  np.testing.assert_allclose(res.final, np.sum(np.asarray(w) ** 2, axis=(1, 2, 3)) / (2 * l2), rtol=2e-2)
  assert np.all(res.final > res.initial)


@pytest.mark.slow
def test_activation_maximization_increases_a_conv_unit_with_jitter_and_tv():
  model = BiasFreeResNet()
  v = model.init(jax.random.key(3), _images(n=1, hw=12))

  def unit(x):
    a = ana.module_activation(model, v, x, "head", which="input")
    return a[jnp.arange(2), jnp.array([0, 3])]

  x0 = jnp.clip(0.5 + 0.1 * jax.random.normal(jax.random.key(4), (2, 12, 12, 3)), 0, 1)
  res = ana.activation_maximization(unit, x0, steps=60, l2=1e-3, tv=1e-3, jitter=2, key=jax.random.key(5))
  assert np.all(res.final > res.initial + 0.1)
  assert res.images.min() >= 0 and res.images.max() <= 1
  with pytest.raises(ValueError, match="key is required"):
    ana.activation_maximization(unit, x0, jitter=1)


def test_module_activation_reads_inputs_and_outputs():
  model = ConvBN()
  x = _images(n=2, hw=6)
  v = _perturb(model.init(jax.random.key(0), x), seed=1)
  _, inter = model.apply(v, x, capture_intermediates=True)
  bn = inter["intermediates"]["bn"]["__call__"][0]
  np.testing.assert_allclose(ana.module_activation(model, v, x, "head", which="input"),
                             jnp.mean(jax.nn.relu(bn), axis=(1, 2)), rtol=1e-6)
  np.testing.assert_allclose(ana.module_activation(model, v, x, "conv"),
                             inter["intermediates"]["conv"]["__call__"][0], rtol=1e-6)
  with pytest.raises(ValueError, match="'nope' is not a module"):
    ana.module_activation(model, v, x, "nope")


# ------------------------------------------------------------------------------------------ ViT Grad-CAM


class TokenCNN(nn.Module):
  """A CNN written as a token model: conv -> tokens (plus a class token) -> per-token Dense -> mean.

  With ``as_tokens=False`` the same network keeps the 4-D layout (the per-token Dense is a 1x1 conv), the
  reference for Grad-CAM on tokens.
  """

  as_tokens: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(6, (2, 2), (2, 2), padding="VALID", name="stem_conv")(x)
    n, h, w, d = x.shape
    if self.as_tokens:
      t = jnp.concatenate([jnp.zeros((n, 1, d)), x.reshape(n, h * w, d)], axis=1)
      t = nn.relu(nn.Dense(6, name="mix")(t))
      feats = jnp.mean(t[:, 1:], axis=1)
    else:
      t = nn.relu(nn.Conv(6, (1, 1), name="mix")(x))
      feats = jnp.mean(t, axis=(1, 2))
    return nn.Dense(4, name="head")(feats)


def test_grad_cam_on_tokens_equals_grad_cam_on_the_same_conv_layer():
  x = _images(n=2, hw=8)
  tok = TokenCNN()
  v = tok.init(jax.random.key(0), x)
  v4 = {"params": {**v["params"], "mix": {"kernel": v["params"]["mix"]["kernel"][None, None],
                                          "bias": v["params"]["mix"]["bias"]}}}
  np.testing.assert_allclose(tok.apply(v, x), TokenCNN(as_tokens=False).apply(v4, x), rtol=1e-5, atol=1e-6)
  cam, target, layer = ana.grad_cam(tok, v, x, layer="mix")
  ref, ref_target, _ = ana.grad_cam(TokenCNN(as_tokens=False), v4, x, layer="mix")
  assert layer == "mix"
  np.testing.assert_array_equal(target, ref_target)
  np.testing.assert_allclose(cam, ref, atol=1e-5)


@functools.cache
def _vit():
  model = iss_jax.training.create_model("vit_tiny", 4, "cifar", width=12, depth=2, num_heads=2)
  x = _images(n=2, hw=16)
  return model, model.init(jax.random.key(0), x), x


@pytest.mark.slow
def test_grad_cam_on_a_vit_reads_the_last_block_before_the_class_token_is_read():
  if "vit_tiny" not in iss_jax.training._models.MODELS:  # noqa: SLF001 - added by the ViT work
    pytest.skip("iss_jax.training has no vit_tiny yet")
  model, v, x = _vit()
  cam, target, layer = ana.grad_cam(model, v, x)
  assert layer == "block2/norm1"
  assert cam.shape == x.shape[:3] and np.all(np.isfinite(cam))
  assert np.all(cam.max(axis=(1, 2)) == pytest.approx(1.0)) and np.all(cam.min(axis=(1, 2)) == 0.0)
  np.testing.assert_array_equal(target, np.argmax(model.apply(v, x), -1))


# ----------------------------------------------------------------------------------------- entry points


def _entry_setup(tmp_path, monkeypatch, model, variables, hw=16, n=12):
  rng = np.random.default_rng(0)
  data = (rng.integers(0, 256, (n, hw, hw, 3), dtype=np.uint8), np.arange(n, dtype=np.int32) % 3)
  monkeypatch.setattr(iss_jax.training, "load_dataset", lambda name, split, data_dir=None: data)
  monkeypatch.setattr(iss_jax.training, "load_variables", lambda wd: (model, variables, {}))
  (tmp_path / "config.json").write_text("{}")  # a training workdir, as far as the entry points check
  return ["--workdir", str(tmp_path), "--out", str(tmp_path / "out"), "--no_progress"]


@pytest.mark.slow
@pytest.mark.parametrize("module, argv", [
    ("lrp", ["--lrp_indices=0,1", "--smooth_sparsity=0.5"]),
    ("tsne", ["--perplexity=3", "--tsne_iterations=50", "--attack_steps=1", "--batch_size=6"]),
    ("activation_max", ["--am_steps=3", "--first_units=0,1", "--penultimate_units=2",
                        "--am_classes=0,1,2"]),
])
def test_entry_points_write_reports(tmp_path, monkeypatch, module, argv):
  model = iss_jax.training.resnet_small(width=4, num_classes=3)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  common = _entry_setup(tmp_path, monkeypatch, model, variables)
  entry = __import__(f"eval.{module}", fromlist=["main"])
  entry.main(common + argv)
  for ext in ("md", "json", "png"):
    assert os.path.getsize(tmp_path / "out" / f"{module}.{ext}") > 0, ext


@pytest.mark.parametrize("module, flag, message", [
    ("lrp", "--lrp_epsilon=-1", "--lrp_epsilon must be >= 0"),
    ("lrp", "--lrp_indices=99", "--lrp_indices must name test images"),
    ("tsne", "--perplexity=50", "--perplexity must be in [1, number of images"),
    ("activation_max", "--am_steps=0", "--am_steps must be >= 1"),
])
def test_entry_points_end_user_errors_in_one_line(tmp_path, monkeypatch, capsys, module, flag, message):
  model = MLP()
  common = _entry_setup(tmp_path, monkeypatch, model, None)
  entry = __import__(f"eval.{module}", fromlist=["main"])
  with pytest.raises(SystemExit) as e:
    entry.main(common + [flag])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


# ------------------------------------------------------------------------------------------- the room


def test_the_analyses_live_in_iss_jax_analysis_and_the_old_names_say_so():
  for name in iss_jax.analysis.__all__:
    assert getattr(iss_jax.analysis, name).__module__.startswith("iss_jax.analysis._"), name
    moved = rf"iss_jax\.robustness\.{name} moved to iss_jax\.analysis\.{name}"
    with pytest.raises(AttributeError, match=moved):
      getattr(iss_jax.robustness, name)
  assert {"lrp", "tsne", "silhouette_score", "activation_maximization", "module_activation",
          "grad_cam"} <= set(iss_jax.analysis.__all__)
  with pytest.raises(AttributeError, match=r"iss_jax\.grad_cam moved to iss_jax\.analysis\.grad_cam"):
    iss_jax.grad_cam  # noqa: B018
  with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
    iss_jax.robustness.nonsense  # noqa: B018
