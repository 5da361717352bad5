"""Flax ResNets and the ViT: parameter counts against PyTorch / torchvision / timm and by formula, stems on
real 224x224 images against NumPy, shapes, normalisation, gradients, training and loading the ViT."""

from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iss_jax


def _param_count(model, shape):
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))
  return iss_jax.training.count_params(variables["params"]), variables


@pytest.mark.parametrize("name,num_classes,stem,shape,expected", [
    # kuangliu/pytorch-cifar ResNet18 / ResNet34 (3x3 stem, no max-pool), torchvision resnet50.
    ("resnet18", 10, "cifar", (1, 32, 32, 3), 11_173_962),
    ("resnet34", 10, "cifar", (1, 32, 32, 3), 21_282_122),
    ("resnet50", 1000, "imagenet", (1, 224, 224, 3), 25_557_032),
    ("resnet18", 1000, "imagenet", (1, 224, 224, 3), 11_689_512),  # torchvision resnet18
])
def test_param_counts_match_pytorch(name, num_classes, stem, shape, expected):
  count, _ = _param_count(iss_jax.training.create_model(name, num_classes, stem), shape)
  assert count == expected


def test_resnet18_cifar_constructor_and_stem_kernel():
  count, variables = _param_count(iss_jax.training.resnet18(), (1, 32, 32, 3))
  assert count == 11_173_962
  assert variables["params"]["stem_conv"]["kernel"].shape == (3, 3, 3, 64)
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])
             if path[-1].key == "kernel" and leaf.ndim == 4]
  assert len(kernels) == 1 + 8 * 2 + 3  # stem, two per block, three projection shortcuts


def test_imagenet_stem_downsamples_by_four():
  model = iss_jax.training.resnet_small(stem="imagenet")
  x = jnp.zeros((2, 64, 64, 3))
  variables = model.init(jax.random.key(0), x)
  assert variables["params"]["stem_conv"]["kernel"].shape == (7, 7, 3, 16)
  feats = model.apply(variables, x, capture_intermediates=True,
                      method=lambda m, x: m(x, train=False))[1]["intermediates"]
  block = feats["stage1_block1"]["__call__"][0]
  assert block.shape == (2, 16, 16, 16)  # stride-2 conv then stride-2 max-pool


@pytest.mark.parametrize("channels", [1, 3])
def test_logits_shape_and_modes(channels):
  model = iss_jax.training.resnet_small(num_classes=7)
  x = jax.random.uniform(jax.random.key(1), (4, 16, 16, channels))
  variables = model.init(jax.random.key(0), x)
  logits = model.apply(variables, x, train=False)
  assert logits.shape == (4, 7) and logits.dtype == jnp.float32
  logits_train, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert logits_train.shape == (4, 7)
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), updates["batch_stats"],
                                   variables["batch_stats"])
  assert any(jax.tree_util.tree_leaves(changed))


def test_normalisation_inside_model():
  """The model on [0, 1] pixels equals the same weights without normalisation on (x - mean) / std."""
  mean, std = np.array(iss_jax.training.resnet_small().mean), np.array(iss_jax.training.resnet_small().std)
  model = iss_jax.training.resnet_small()
  plain = iss_jax.training.resnet_small(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
  x = jax.random.uniform(jax.random.key(2), (3, 16, 16, 3))
  variables = model.init(jax.random.key(0), x)
  a = model.apply(variables, x)
  b = plain.apply(variables, (x - mean.reshape(1, 1, 1, 3)) / std.reshape(1, 1, 1, 3))
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_input_gradient_and_jit():
  model = iss_jax.training.resnet_small()
  x = jax.random.uniform(jax.random.key(3), (2, 16, 16, 3))
  variables = model.init(jax.random.key(0), x)
  f = lambda x: jnp.sum(model.apply(variables, x)[:, 0])
  g = jax.jit(jax.grad(f))(x)
  assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0
  np.testing.assert_allclose(jax.jit(model.apply)(variables, x), model.apply(variables, x), atol=1e-5)


def test_bad_inputs():
  with pytest.raises(ValueError, match="model must be one of"):
    iss_jax.training.create_model("resnet19")
  with pytest.raises(ValueError, match="stem"):
    iss_jax.training.create_model("resnet18", stem="tiny")
  model = iss_jax.training.resnet_small()
  with pytest.raises(ValueError, match="batch of images"):
    model.init(jax.random.key(0), jnp.zeros((32, 32, 3)))


# --------------------------------------------------------------------------------------------------
# ViT.


def _vit_param_count(width, depth, mlp, patch, channels, tokens, num_classes):
  """The ViT's parameters by formula: patch embedding, class token, position embeddings, per block two
  LayerNorms, Q/K/V/output projections and the MLP, the final LayerNorm and the head."""
  block = 2 * (2 * width) + 4 * (width * width + width) + (width * mlp + mlp) + (mlp * width + width)
  return ((patch * patch * channels * width + width) + width + (tokens + 1) * width + depth * block
          + 2 * width + (width * num_classes + num_classes))


@pytest.mark.parametrize("kwargs,shape,num_classes,patch", [
    ({}, (1, 224, 224, 3), 1000, 16),  # DeiT-Tiny: timm's deit_tiny_patch16_224 has 5,717,416
    ({}, (1, 32, 32, 3), 10, 4),
    ({}, (1, 84, 84, 3), 64, 14),
    ({"width": 12, "depth": 2, "patch_size": 8}, (1, 32, 32, 1), 5, 8),
])
def test_vit_param_count_by_formula(kwargs, shape, num_classes, patch):
  model = iss_jax.training.vit_tiny(num_classes, **kwargs)
  count, variables = _param_count(model, shape)
  width, depth = kwargs.get("width", 192), kwargs.get("depth", 12)
  tokens = (shape[1] // patch) * (shape[2] // patch)
  assert count == _vit_param_count(width, depth, 4 * width, patch, shape[-1], tokens, num_classes)
  if shape == (1, 224, 224, 3):
    assert count == 5_717_416
  assert set(variables) == {"params"}  # no BatchNorm statistics
  assert variables["params"]["stem_conv"]["kernel"].shape == (patch, patch, shape[-1], width)
  assert variables["params"]["pos_embed"].shape == (1, tokens + 1, width)


def test_vit_default_patch_size():
  patch = iss_jax.training.default_patch_size
  assert (patch(32, 32), patch(224, 224), patch(84, 84), patch(64, 64), patch(96, 96)) == (4, 16, 14, 4, 16)
  with pytest.raises(ValueError, match="patch_size"):
    patch(97, 97)  # prime: no patch of 8..32 divides it
  with pytest.raises(ValueError, match="patch_size"):
    patch(224, 100)  # the shorter side gives 20 (the divisor of 100 nearest 16), which 224 is not
  with pytest.raises(ValueError, match="patch_size"):
    iss_jax.training.vit_tiny(depth=1, patch_size=5).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_vit_head_reads_the_class_token():
  """Without blocks the class token never sees the patches, so every image gets the same logits,
  head(LayerNorm(cls + pos[0])); a pooled head would depend on the image."""
  model = iss_jax.training.vit_tiny(7, width=12, depth=0)
  x = jax.random.uniform(jax.random.key(0), (3, 32, 32, 3))
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(model.init, jax.random.key(1), x)
  variables = jax.tree_util.tree_map(lambda a: rng.normal(size=a.shape).astype(np.float32), shapes)
  p = variables["params"]  # random weights, so that a head reading anything else would differ
  t = (p["cls_token"] + p["pos_embed"][:, :1])[0, 0].astype(np.float64)
  t = (t - t.mean()) / np.sqrt(t.var() + 1e-6) * p["final_norm"]["scale"] + p["final_norm"]["bias"]
  expected = t @ p["head"]["kernel"] + p["head"]["bias"]
  logits = np.asarray(jax.jit(model.apply)(variables, x))
  np.testing.assert_allclose(logits, np.broadcast_to(expected, (3, 7)), rtol=1e-4, atol=1e-4)


def test_vit_normalises_inside_and_is_differentiable():
  model = iss_jax.training.vit_tiny(5, width=12, depth=1, stem="imagenet")
  plain = iss_jax.training.vit_tiny(5, width=12, depth=1, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
  mean, std = np.array(model.mean), np.array(model.std)
  assert (tuple(model.mean), tuple(model.std)) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
  x = jax.random.uniform(jax.random.key(2), (2, 32, 32, 3))
  variables = jax.jit(model.init)(jax.random.key(0), x)
  apply = jax.jit(model.apply, static_argnames="train")
  normalised = (x - mean.reshape(1, 1, 1, 3)) / std.reshape(1, 1, 1, 3)
  np.testing.assert_allclose(apply(variables, x), jax.jit(plain.apply)(variables, normalised), rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(apply(variables, x, train=True), apply(variables, x), atol=0)
  f = jax.jit(lambda x: jnp.sum(model.apply(variables, x)[:, 0]))
  g = jax.jit(jax.grad(f))(x)
  assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0
  eps = 1e-3 * jnp.sign(g)  # the input gradient predicts the change of the logit (an attack's step)
  assert float(f(x + eps) - f(x)) == pytest.approx(float(jnp.sum(g * eps)), rel=0.1)


# --------------------------------------------------------------------------------------------------
# The ImageNet stem on real 224x224 images (tests/data/folder_sample: crops of Kodak24 and Set12).

FOLDER_SAMPLE = Path(__file__).parent / "data" / "folder_sample"


def test_imagenet_stem_on_real_224_images_matches_numpy():
  """The 7x7/2 convolution (padding 3) and 3x3/2 max-pool (padding 1) of the ImageNet stem, as in
  torchvision, checked against a NumPy loop on two real images."""
  x, _ = iss_jax.training.load_dataset(f"folder:{FOLDER_SAMPLE}", "test", image_size=224)
  x = jnp.asarray(x[[0, 4]], jnp.float32) / 255.0  # a colour and a grey image
  model = iss_jax.training.resnet_small(3, stem="imagenet", width=4)
  variables = jax.jit(model.init)(jax.random.key(0), x)

  @jax.jit
  def stem(variables, x):  # the stem convolution's output and the stem's (the first block's input)
    seen = {}

    def record(next_fun, args, kwargs, context):
      if context.method_name == "__call__" and context.module.name == "stage1_block1":
        seen["stem_out"] = args[0]
      return next_fun(*args, **kwargs)

    with flax.linen.intercept_methods(record):
      _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    return state["intermediates"]["stem_conv"]["__call__"][0], seen["stem_out"]

  conv, stem_out = map(np.asarray, stem(variables, x))
  assert conv.shape == (2, 112, 112, 4) and stem_out.shape == (2, 56, 56, 4)
  k = np.asarray(variables["params"]["stem_conv"]["kernel"], np.float64)
  z = (np.asarray(x, np.float64) - np.array(model.mean)) / np.array(model.std)
  zp = np.pad(z, ((0, 0), (3, 3), (3, 3), (0, 0)))
  for i, j in [(0, 0), (5, 111), (60, 37), (111, 111)]:
    window = zp[:, 2 * i:2 * i + 7, 2 * j:2 * j + 7, :]
    np.testing.assert_allclose(conv[:, i, j], np.einsum("nhwc,hwcd->nd", window, k), rtol=1e-3, atol=1e-3)
  # Then BatchNorm (running statistics) + ReLU and the 3x3/2 max-pool with padding 1.
  bn, params = variables["batch_stats"]["stem_bn"], variables["params"]["stem_bn"]
  r = np.maximum((conv - np.asarray(bn["mean"])) / np.sqrt(np.asarray(bn["var"]) + 1e-5)
                 * np.asarray(params["scale"]) + np.asarray(params["bias"]), 0)
  rp = np.pad(r, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  pooled = np.stack([np.stack([rp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2)) for j in range(56)],
                              axis=1) for i in range(56)], axis=1)
  np.testing.assert_allclose(stem_out, pooled, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------------
# --model=vit_tiny through train_and_evaluate and load_classifier.


def _tiny_vit_config(root, procedure="vanilla", **kw):
  from train.configs import adversarial, finetune, fixed, iterative, vanilla

  rng = np.random.default_rng(0)
  path = root / "tiny.npz"
  if not path.exists():
    images = lambda n: rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    np.savez(path, x_train=images(16), y_train=rng.integers(0, 3, 16), x_test=images(8),
             y_test=rng.integers(0, 3, 8))
  configs = {"vanilla": vanilla, "fixed": fixed, "iterative": iterative, "finetune": finetune,
             "adversarial": adversarial}
  c = configs[procedure].get_config("quick")
  c.update(dataset=f"npz:{path}", model="vit_tiny", epochs=1, batch_size=8, eval_batch_size=8, num_levels=2,
           cache_dir=str(root / "cache"), progress=False, tensorboard=False, **kw)
  return c


def test_vit_train_and_evaluate_and_load_classifier(tmp_path, monkeypatch):
  """One epoch (two steps) of --model=vit_tiny, one block deep to keep CPU compilation short, then the
  classifier loaded from its workdir: same test accuracy, differentiable w.r.t. the input."""
  import functools

  from iss_jax.training import _models

  monkeypatch.setitem(_models.MODELS, "vit_tiny", functools.partial(_models.vit_tiny, depth=1))
  config = _tiny_vit_config(tmp_path, width=9)  # a width only this test uses: no cached model is shared
  summary = iss_jax.training.train_and_evaluate(config, tmp_path / "run")
  assert summary["completed"] and summary["model"] == "vit_tiny"
  assert summary["num_params"] == _vit_param_count(9, 1, 36, 4, 3, 4, 3)
  apply_fn, loaded = iss_jax.training.load_classifier(tmp_path / "run")
  x_test, y_test = iss_jax.training.load_dataset(loaded.dataset, "test")
  x = jnp.asarray(x_test, jnp.float32) / 255.0
  logits = jax.jit(apply_fn)(x)
  assert float(jnp.mean(jnp.argmax(logits, -1) == y_test)) == pytest.approx(summary["final_test_accuracy"])
  g = jax.grad(lambda x: jnp.sum(apply_fn(x)[:, 0]))(x)
  assert g.shape == x.shape and float(jnp.abs(g).sum()) > 0


@pytest.mark.slow
@pytest.mark.parametrize("procedure", ["vanilla", "fixed", "iterative", "adversarial", "finetune"])
def test_vit_tiny_every_procedure(procedure, tmp_path_factory):
  """The full-depth ViT-Tiny (width 6) trains with every procedure (a few minutes of CPU compilation)."""
  root = tmp_path_factory.getbasetemp() / "vit_every_procedure"
  root.mkdir(exist_ok=True)
  kw = {"width": 6, "adv_steps": 1} if procedure == "adversarial" else {"width": 6}
  if procedure == "finetune":
    base = root / "vanilla"
    if not (base / "summary.json").exists():
      iss_jax.training.train_and_evaluate(_tiny_vit_config(root, width=6), base)
    kw["init_checkpoint"] = str(base)
  summary = iss_jax.training.train_and_evaluate(_tiny_vit_config(root, procedure, **kw), root / procedure)
  assert summary["completed"] and summary["num_params"] == _vit_param_count(6, 12, 24, 4, 3, 4, 3)


@pytest.mark.slow  # about 30 s of CPU: smoothing 20 real 84x84 images and compiling a ResNet
def test_fixed_training_on_real_84x84_images(tmp_path):
  """The shipped real image folder at 84x84 (miniImageNet's size) through fixed training: smoothing at
  sparsity 0.6, the ImageNet stem, one epoch, and the loaded classifier on the test split (val/)."""
  from train.configs import fixed

  c = fixed.get_config("quick")
  c.update(dataset=f"folder:{FOLDER_SAMPLE}", image_size=84, model="resnet_small", stem="imagenet", width=4,
           epochs=1, batch_size=10, eval_batch_size=5, crop_padding=8, cache_dir=str(tmp_path / "cache"),
           progress=False, tensorboard=False)
  summary = iss_jax.training.train_and_evaluate(c, tmp_path / "run")
  assert summary["completed"] and (summary["num_train"], summary["num_test"]) == (20, 5)
  apply_fn, _ = iss_jax.training.load_classifier(tmp_path / "run")
  x, y = iss_jax.training.load_dataset(f"folder:{FOLDER_SAMPLE}", "test", image_size=84)
  logits = jax.jit(apply_fn)(jnp.asarray(x, jnp.float32) / 255.0)
  assert logits.shape == (5, 5)
  assert float(jnp.mean(jnp.argmax(logits, -1) == y)) == pytest.approx(summary["final_test_accuracy"])
