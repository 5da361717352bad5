"""``iss_jax.training.use_fast_cpu_training`` and its convolution: same results as the default path.

XLA flags are read once per process, so the switched-on side of the train-step check runs in a fresh
interpreter.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import iss_jax
from iss_jax.training import _cpu

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("size,k,stride,padding", [
    (8, 3, 1, "SAME"), (8, 3, 2, "SAME"), (9, 3, 2, "SAME"), (8, 1, 2, "SAME"), (11, 7, 2, ((3, 3), (3, 3))),
    (8, 3, 1, "VALID"), (10, 3, 2, "VALID"), (7, 2, 1, ((0, 1), (1, 0)))])
def test_conv_and_its_gradients_equal_lax(size, k, stride, padding):
  rng = np.random.default_rng(size + k + stride)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.standard_normal((3, size, size + 1, 5)))
    w = jnp.asarray(rng.standard_normal((k, k, 5, 4)))

    def loss(conv, x, w):
      return jnp.sum(jnp.sin(conv(x, w, (stride, stride), padding, dimension_numbers=NHWC)))

    ref = jax.value_and_grad(lambda x, w: loss(lax.conv_general_dilated, x, w), (0, 1))(x, w)
    new = jax.value_and_grad(lambda x, w: loss(_cpu.conv_general_dilated, x, w), (0, 1))(x, w)
    # unstrided convolutions take the swapped kernel gradient, strided ones lax's
    swapped = "custom_vjp" in str(jax.make_jaxpr(lambda x, w: loss(_cpu.conv_general_dilated, x, w))(x, w))
    assert swapped == (stride == 1)
    np.testing.assert_allclose(new[0], ref[0], rtol=1e-12)
    for a, b in zip(new[1], ref[1], strict=True):
      np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10)


def test_other_convolutions_are_lax_unchanged():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 6, 6, 4), np.float32))
  w = jnp.asarray(rng.standard_normal((3, 3, 2, 4), np.float32))  # grouped: 2 groups
  kw = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=NHWC, feature_group_count=2)
  np.testing.assert_array_equal(_cpu.conv_general_dilated(x, w, **kw), lax.conv_general_dilated(x, w, **kw))


def test_the_default_path_is_lax():
  assert _cpu.model_conv() is None  # the switch is per process and off unless opted in


# One train-mode loss and its parameter gradients of a small ResNet, on the default path or after
# use_fast_cpu_training(); also whether XLA still hands a convolution to YNNPACK.
_SCRIPT = """
import json, os, re, sys
import iss_jax
opted = sys.argv[1] == "fast"
added = iss_jax.training.use_fast_cpu_training() if opted else None
again = iss_jax.training.use_fast_cpu_training() if opted else None
import jax, jax.numpy as jnp, numpy as np, optax

model = iss_jax.training.resnet_small(width=32)
rng = np.random.default_rng(0)
x = jnp.asarray(rng.uniform(0, 1, (16, 32, 32, 3)), jnp.float32)
y = jnp.asarray(rng.integers(0, 10, 16))
variables = model.init(jax.random.key(0), x[:1])

def loss(params):
  logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

f = jax.jit(jax.value_and_grad(loss))
hlo = f.lower(variables["params"]).compile().as_text()
bodies = dict(re.findall(r"^%(\\S+) \\(.*?\\{\\n(.*?)\\n\\}", hlo, re.S | re.M))
ynn = [bodies.get(c, "") for c in re.findall(r"%ynn_fusion\\S* = .*?calls=%([^,\\s]+)", hlo)]
value, grads = f(variables["params"])
leaves = {jax.tree_util.keystr(k): np.asarray(v).ravel()[::5].tolist()
          for k, v in jax.tree_util.tree_leaves_with_path(grads)}
print(json.dumps({"added": added, "again": again, "flags": os.environ.get("XLA_FLAGS", ""),
                  "ynn_convolutions": sum("convolution(" in b for b in ynn), "loss": float(value),
                  "grads": leaves}))
"""


def _run(mode: str) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, env=env,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_fast_cpu_training_matches_the_default_path():
  default, fast = _run("default"), _run("fast")
  assert fast["added"] is True and fast["again"] is False
  assert fast["flags"] == iss_jax.training.EIGEN_CONVOLUTION_FLAGS
  assert fast["ynn_convolutions"] == 0
  np.testing.assert_allclose(fast["loss"], default["loss"], rtol=1e-5)
  assert fast["grads"].keys() == default["grads"].keys()
  # Float32 rounding, amplified by BatchNorm in the stem's kernel gradient; the default path's own error
  # is the larger one there (YNNPACK's stem kernel gradient was 15x further from a float64 reference
  # than Eigen's or the swapped one's, on 16 images).
  for key, g in default["grads"].items():
    scale = np.abs(g).max()
    np.testing.assert_allclose(fast["grads"][key], g, rtol=0, atol=5e-3 * scale + 1e-7, err_msg=key)


def test_fast_cpu_training_refuses_a_running_backend():
  jnp.zeros(1).block_until_ready()  # JAX is running in the test process
  with pytest.raises(RuntimeError, match="before JAX starts"):
    iss_jax.training.use_fast_cpu_training()
  assert _cpu.model_conv() is None


def test_the_training_entry_points_switch_it_on_by_default():
  # `python -m train.<procedure>` calls use_fast_cpu_training() unless --nofast_cpu: the flag's default.
  out = subprocess.run([sys.executable, "-m", "train.vanilla", "--helpfull"], capture_output=True, text=True,
                       timeout=300)
  text = out.stdout + out.stderr
  i = text.index("--[no]fast_cpu")
  assert "(default: 'true')" in text[i:i + 800], text[i:i + 800]
  script = ("import sys; sys.argv = ['vanilla'] + sys.argv[1:]\n"
            "from absl import flags\nfrom train import _main\nimport iss_jax\n"
            "_main.define_flags('vanilla')\nflags.FLAGS(sys.argv)\n"
            "if flags.FLAGS.fast_cpu:\n  iss_jax.training.use_fast_cpu_training()\n"
            "import os, jax\nfrom iss_jax.training import _cpu\n"
            "print(os.environ.get('XLA_FLAGS', ''), _cpu.model_conv() is not None)\n")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  for args, on in (([], True), (["--nofast_cpu"], False)):
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    flags_text, conv = r.stdout.strip().rsplit(" ", 1) if " " in r.stdout.strip() else ("", r.stdout.strip())
    assert (iss_jax.training.EIGEN_CONVOLUTION_FLAGS in flags_text) == on and conv == str(on), r.stdout
