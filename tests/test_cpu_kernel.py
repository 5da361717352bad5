"""The fused CPU kernel of iss_jax.smooth against the XLA implementation, and its build and fallback."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sample_data import SAMPLE_PATH

import iss_jax
from iss_jax._src import cpu_kernel
from iss_jax._src import definition as reference

DATA = str(SAMPLE_PATH)


def real_images(n, start=0):
  return np.load(DATA)["x_test"][start:start + n].astype(np.float64) / 255.0


def both(x, sparsities, **kwargs):
  """smooth_path by the kernel and by XLA: ``(out, info)`` for each."""
  return [iss_jax.smooth_path(x, sparsities, return_info=True, implementation=impl, **kwargs)
          for impl in ("cpu", "xla")]


def assert_same(a, b, atol):
  (out_a, info_a), (out_b, info_b) = a, b
  np.testing.assert_array_equal(np.asarray(info_a.steps), np.asarray(info_b.steps))
  # count / m in float32 (XLA may multiply by the reciprocal instead: one ulp)
  np.testing.assert_allclose(np.asarray(info_a.sparsity), np.asarray(info_b.sparsity), rtol=2e-7)
  np.testing.assert_array_equal(np.asarray(info_a.capped), np.asarray(info_b.capped))
  np.testing.assert_allclose(np.asarray(out_a), np.asarray(out_b), atol=atol)


def test_same_steps_as_xla_on_real_cifar10():
  # Full 32x32 colour images along a path: every image stops at the same step in both implementations.
  x = jnp.asarray(real_images(24), jnp.float32)
  assert_same(*both(x, jnp.asarray([0.3, 0.6, 0.8]), maxiter=6000), atol=2e-5)


@pytest.mark.parametrize("shape", [(2, 9, 13, 3), (11, 7), (2, 10, 12, 2), (1, 6, 5, 4)])
def test_same_steps_as_xla_on_other_shapes(x64, shape):
  # Grey (C = 1), the generic channel path (C = 2, 4) and widths that are no multiple of the vector size,
  # on noise, in float64 (in float32 an edge of noise can sit within rounding of the threshold).
  x = np.random.default_rng(0).random(shape)
  assert_same(*both(jnp.asarray(x), jnp.asarray([0.4, 0.7])), atol=1e-12)


def test_same_steps_as_xla_with_other_parameters():
  # nu != 1 takes the kernel's general branch; kappa and the step factor change alpha.
  x = jnp.asarray(real_images(4)[:, :12, :12], jnp.float32)
  assert_same(*both(x, jnp.asarray([0.5]), kappa=5.0, nu=0.5, step_factor=1.2), atol=2e-5)


def test_float64_matches_reference(x64):
  img = real_images(1, start=3)[0, 4:16, 6:18]
  out, info = iss_jax.smooth(jnp.asarray(img), 0.6, return_info=True, implementation="cpu")
  assert out.dtype == jnp.float64
  ref, steps, _ = reference.smooth_reference(img, 0.6, hnorm=reference.hessian_norm(12, 12),
                                       step_factor=iss_jax.DEFAULT_STEP_FACTOR)
  assert int(info.steps) == steps
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-9)


def test_platform_default_uses_the_kernel_on_cpu(monkeypatch):
  # implementation=None on CPU goes through the kernel: a cap of 0 steps is honoured there too, and
  # turning the kernel off switches to XLA with identical results.
  x = jnp.asarray(real_images(3)[:, :10, :10], jnp.float32)
  default = iss_jax.smooth(x, 0.5, return_info=True)
  assert_same(default, iss_jax.smooth(x, 0.5, return_info=True, implementation="cpu"), atol=0)
  monkeypatch.setenv("ISS_JAX_CPU_KERNEL", "0")
  assert not cpu_kernel.available()
  assert_same(default, iss_jax.smooth(x, 0.5, return_info=True), atol=2e-5)
  with pytest.raises(cpu_kernel.KernelUnavailableError, match="ISS_JAX_CPU_KERNEL=0"):
    iss_jax.smooth(x, 0.5, implementation="cpu")


def test_bad_implementation():
  with pytest.raises(ValueError, match="implementation"):
    iss_jax.smooth(jnp.ones((4, 4)) * jnp.arange(4.0)[None] / 3, 0.5, implementation="cuda")


def test_grad_and_jit_through_the_kernel():
  x = jnp.asarray(real_images(2)[:, :8, :8], jnp.float32)
  w = jax.random.normal(jax.random.key(0), x.shape)
  g = jax.grad(lambda v: jnp.sum(w * iss_jax.smooth(v, 0.5, implementation="cpu")))(x)
  np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6)  # BPDA identity
  f = jax.jit(lambda v, s: iss_jax.smooth(v, s, implementation="cpu"))
  np.testing.assert_array_equal(np.asarray(f(x, 0.5)), np.asarray(iss_jax.smooth(x, 0.5)))


def test_build_is_cached_and_atomic(tmp_path, monkeypatch):
  monkeypatch.setenv("ISS_JAX_CACHE_DIR", str(tmp_path))
  path = cpu_kernel.build()
  assert path.parent == tmp_path and path.stat().st_size > 0
  mtime = path.stat().st_mtime_ns
  assert cpu_kernel.build() == path and path.stat().st_mtime_ns == mtime  # cached, not rebuilt
  assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_missing_compiler_warns_once_and_falls_back(tmp_path):
  # A fresh process with no compiler and an empty cache: smooth warns once and uses XLA; asking for the
  # kernel explicitly raises with the reason.
  script = tmp_path / "nocc.py"
  script.write_text(
      "import warnings\n"
      "import jax.numpy as jnp, numpy as np, iss_jax\n"
      "from iss_jax._src import cpu_kernel\n"
      "x = jnp.ones((6, 6)) * jnp.arange(6.0)[None] / 5\n"
      "with warnings.catch_warnings(record=True) as caught:\n"
      "  warnings.simplefilter('always')\n"
      "  a = iss_jax.smooth(x, 0.5)\n"
      "  b = iss_jax.smooth(x, 0.5)\n"
      "assert len([w for w in caught if 'CPU kernel is unavailable' in str(w.message)]) == 1, caught\n"
      "c = iss_jax.smooth(x, 0.5, implementation='xla')\n"
      "np.testing.assert_array_equal(np.asarray(a), np.asarray(c))\n"
      "try:\n"
      "  iss_jax.smooth(x, 0.5, implementation='cpu')\n"
      "except cpu_kernel.KernelUnavailableError as e:\n"
      "  assert 'no C++ compiler' in str(e), e\n"
      "  print('ok')\n")
  env = dict(os.environ, CXX=str(tmp_path / "no-such-c++"), ISS_JAX_CACHE_DIR=str(tmp_path / "cache"))
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=600)
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield
