"""Training sized for the device: batch sizes against the device count, bfloat16 computation with float32
master weights, AdamW (the ViT's recipe)."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

import iss_jax
from iss_jax.training import _train
from iss_jax.training._defended_models import build_model
from train.configs import vanilla


def _images(n, size=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_batch_size_against_the_device_count():
  for n_dev in (1, 2, 8):
    _train.check_batch_size(8 * 64, n_dev)
    for eval_batch in (1, 5, 500, 512):
      b = _train.device_batch(eval_batch, n_dev)
      assert b % n_dev == 0 and eval_batch <= b < eval_batch + n_dev
  with pytest.raises(iss_jax.training.ConfigError,
                     match=r"config\.batch_size must be a multiple of the device count 8 .*got 500: use 496 "
                           r"or 504\.$"):
    _train.check_batch_size(500, 8)
  with pytest.raises(iss_jax.training.ConfigError, match=r"got 3: use 8\.$"):
    _train.check_batch_size(3, 8)


def test_eight_devices_refuse_the_quick_batch_in_one_line(tmp_path):
  # The quick preset (batch 100, evaluation batch 500) on 8 devices: one sentence naming --batch_size and
  # the device count, exit 2, nothing written; the evaluation batch alone would be rounded up.
  workdir = tmp_path / "run"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "train.vanilla", "--preset=quick", f"--workdir={workdir}",
                        "--config.progress=false", "--config.tensorboard=false"],
                       capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 2, out.stderr[-3000:]
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  assert re.search(r"batch_size must be a multiple of the device count 8 .*got 100: use 96 or 104\.",
                   lines[0]), lines
  assert not workdir.exists()


class _Linear(nn.Module):
  """A linear classifier with the models' call signature (enough for the evaluation's batching)."""

  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(10)(x.reshape(x.shape[0], -1))


def test_a_rounded_evaluation_batch_gives_the_same_accuracy_and_loss():
  model = _Linear()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  eval_step = jax.jit(_train.make_eval_step(model))
  x, y = _images(13, seed=1), np.arange(13) % 10
  sharding = _train._Shardings.all_devices().data
  a = _train.evaluate(eval_step, variables, x, y, 5, sharding)
  b = _train.evaluate(eval_step, variables, x, y, _train.device_batch(5, 8), sharding)
  assert a["accuracy"] == b["accuracy"] and 0 < a["loss"]
  np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)


def _step_and_state(dtype, optimizer="sgd", model_name="resnet_small"):
  config = vanilla.get_config("quick")
  config.width = 8 if model_name == "resnet_small" else 24
  config.model, config.dtype, config.optimizer = model_name, dtype, optimizer
  config.crop_padding, config.flip = 0, False
  model = build_model(config, 10)
  variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 8, 8, 3)), train=False))(jax.random.key(0))
  tx = _train.make_optimizer(config, optax.constant_schedule(0.05))
  state = iss_jax.training.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                             batch_stats=variables.get("batch_stats", {}))
  return jax.jit(_train.make_train_step(config, model, tx)), state


@pytest.mark.parametrize("model_name", ["resnet_small", pytest.param("vit_tiny", marks=pytest.mark.slow)])
def test_bfloat16_computation_keeps_float32_weights_and_the_loss(model_name):
  x, y = jnp.asarray(_images(16, seed=2)), jnp.arange(16) % 10
  losses, states = {}, {}
  for dtype in ("float32", "bfloat16"):
    step, state = _step_and_state(dtype, model_name=model_name)
    for _ in range(3):
      state, metrics = step(state, x, y, jax.random.key(1))
    losses[dtype], states[dtype] = float(metrics["loss"]), state
    leaves = jax.tree_util.tree_leaves((state.params, state.batch_stats, state.opt_state))
    assert all(leaf.dtype in (jnp.float32, jnp.int32) for leaf in leaves), {leaf.dtype for leaf in leaves}
  assert np.isfinite(losses["bfloat16"])
  # bfloat16 keeps 8 bits of mantissa: the loss after three steps within 2% of float32's.
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.02)
  leaves = [jax.tree_util.tree_leaves(states[d].params) for d in ("bfloat16", "float32")]
  moved = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(*leaves, strict=True)]
  assert 0 < max(moved) < 0.05  # a different computation, the same training


def test_adamw_is_optax_adamw_with_the_masked_decay():
  config = vanilla.get_config("quick")
  config.optimizer, config.weight_decay, config.momentum = "adamw", 0.05, 0.9
  params = {"w": jnp.ones((3,)), "extra": jnp.ones((2,))}
  grads = {"w": jnp.asarray([0.1, -0.2, 0.3]), "extra": jnp.asarray([0.5, 0.5])}
  mask = {"w": True, "extra": False}
  tx = _train.make_optimizer(config, optax.constant_schedule(1e-2), mask)
  ref = optax.adamw(1e-2, b1=0.9, weight_decay=0.05, mask=mask)
  got, _ = tx.update(grads, tx.init(params), params)
  want, _ = ref.update(grads, ref.init(params), params)
  jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
  # First Adam step: -lr * sign(g) - lr * wd * p where decayed (bias-corrected moments: m/sqrt(v) = sign(g)).
  np.testing.assert_allclose(got["w"], -1e-2 * np.sign(grads["w"]) - 1e-2 * 0.05, rtol=1e-5)
  np.testing.assert_allclose(got["extra"], -1e-2 * np.ones(2), rtol=1e-5)
  config.optimizer = "sgd"
  sgd = _train.make_optimizer(config, optax.constant_schedule(1e-2), mask)
  got, _ = sgd.update(grads, sgd.init(params), params)
  np.testing.assert_allclose(got["w"], -1e-2 * (grads["w"] + 0.05), rtol=1e-6)


def test_prefetch_runs_ahead_in_order_and_stops_when_closed():
  import threading
  import time

  produced = []

  def items(n):
    for i in range(n):
      produced.append(i)
      yield jnp.full((2,), i)  # a device array, as the training loop's batches

  feed = _train.prefetch(items(10), size=2)
  first = next(feed)
  deadline = time.monotonic() + 10
  while len(produced) < 4 and time.monotonic() < deadline:  # 1 consumed + 2 queued + 1 waiting to be put
    time.sleep(0.01)
  assert int(first[0]) == 0 and len(produced) == 4
  assert [int(b[0]) for b in feed] == list(range(1, 10))
  # Closing early stops the producer thread; an error while producing is raised to the consumer.
  feed = _train.prefetch(items(1000), size=2)
  next(feed)
  feed.close()
  assert not any(t.name == "iss_jax-prefetch" and t.is_alive() for t in threading.enumerate())

  def failing():
    yield 1
    raise OSError("disk gone")

  feed = _train.prefetch(failing())
  assert next(feed) == 1
  with pytest.raises(OSError, match="disk gone"):
    next(feed)
