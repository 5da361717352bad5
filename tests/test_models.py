"""Flax ResNets: parameter counts against the PyTorch / torchvision models, stems, shapes, normalisation."""

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
