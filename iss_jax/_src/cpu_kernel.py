"""The fused CPU kernel of :func:`iss_jax.smooth`: Split LBI and projection in C++, as an XLA FFI call.

On CPU, XLA compiles the batched LBI step into several memory passes per step with a scheduler around
them; the kernel in ``csrc/lbi_cpu.cc`` instead runs each image to its targets with its state in cache,
one vectorised pass per update, images shared out over XLA's intra-op thread pool so that each stops at
its own step with no waiting. It performs the operations of :func:`iss_jax.lbi_step` in the same order
(no fused multiply-adds), so images stop at the same step as the XLA scheduler (the GPU/TPU path): on
real CIFAR-10 images every one did in our tests and benchmarks; in float32 an edge of noise that sits
within rounding of the threshold can activate a step apart, since XLA may contract multiply-adds. The
projection uses union-find and sums components in double precision.

The library is compiled from source on first use with the system C++ compiler (``$CXX``, else ``c++``;
6-7 s on two cores) and cached under ``$ISS_JAX_CACHE_DIR`` (default ``~/.cache/iss_jax``), keyed
by the source, flags, compiler, jaxlib headers and CPU. Without a compiler, :func:`iss_jax.smooth` warns
once and uses the XLA implementation. ``ISS_JAX_CPU_KERNEL=0`` turns the kernel off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp

from iss_jax._src.io import atomic_write

Array = jax.Array

TARGET = "iss_jax_lbi_smooth"
_SOURCE = Path(__file__).parent / "csrc" / "lbi_cpu.cc"
# -ffp-contract=off: no fused multiply-adds, the roundings of lbi.step. -fno-math-errno and
# -fno-trapping-math let GCC vectorise the branch-free group scale 1 - 1/sqrt(max(s, 1)) (much faster);
# neither changes a result. -march=native is retried without when the compiler lacks it.
_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
          "-w")
# The source is compiled as two parts at once (float32 + the FFI handler, float64; ISS_JAX_PART in the
# source), then linked: 6 s instead of 9 s on two cores.
_PARTS = (1, 2)
_NATIVE = ("-march=native",)


class KernelUnavailableError(RuntimeError):
  """The CPU kernel could not be built or is turned off (``ISS_JAX_CPU_KERNEL=0``)."""


def enabled() -> bool:
  """False when the environment variable ``ISS_JAX_CPU_KERNEL`` is ``0`` (or ``false``/``no``/``off``)."""
  return os.environ.get("ISS_JAX_CPU_KERNEL", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
  return Path(os.environ.get("ISS_JAX_CACHE_DIR", Path.home() / ".cache" / "iss_jax")).expanduser()


def _compiler() -> str:
  return os.environ.get("CXX", "c++")


def _cpu_signature() -> bytes:
  """The processor's model and feature flags (what -march=native compiles for), or the host name."""
  try:
    with open("/proc/cpuinfo", "rb") as f:
      lines = [ln for ln in f.read().splitlines() if ln.startswith((b"model name", b"flags", b"Features"))]
    return b"\n".join(sorted(set(lines)))
  except OSError:
    return platform.node().encode()


def _library_path(compiler: str, flags: tuple[str, ...]) -> Path:
  try:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
  except (OSError, subprocess.SubprocessError):
    version = ""
  key = hashlib.sha256()
  for part in (_SOURCE.read_bytes(), " ".join(flags).encode(), version.encode(),
               jax.ffi.include_dir().encode(), platform.machine().encode(), _cpu_signature()):
    key.update(part)
  return cache_dir() / f"lbi_cpu-{key.hexdigest()[:16]}.so"


def build() -> Path:
  """Compiles the kernel if it is not cached yet and returns the library's path.

  The two parts of the source compile in parallel in a temporary folder beside the cache; the linked
  library is renamed into place, so concurrent builds and interrupted ones never leave a partial library.

  Raises:
    KernelUnavailableError: no compiler, or compilation failed (the message holds the compiler output).
  """
  compiler = _compiler()
  if shutil.which(compiler) is None:
    raise KernelUnavailableError(f"no C++ compiler {compiler!r} on PATH (set $CXX)")
  errors = []
  for extra in (_NATIVE, ()):
    flags = _FLAGS + extra
    path = _library_path(compiler, flags)
    if path.exists():
      return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
      objects = [os.path.join(tmp, f"part{part}.o") for part in _PARTS]
      compile_cmds = [[compiler, *flags, f"-DISS_JAX_PART={part}", f"-I{jax.ffi.include_dir()}", "-c",
                       str(_SOURCE), "-o", obj] for part, obj in zip(_PARTS, objects, strict=True)]
      library = os.path.join(tmp, "lib.so")
      link_cmd = [compiler, "-shared", *objects, "-o", library]
      error = _run_parallel(compile_cmds) or _run_parallel([link_cmd])
      if error is None:
        atomic_write(path, Path(library).read_bytes())  # a concurrent or interrupted build leaves none
        return path
      errors.append(error)
  raise KernelUnavailableError("compiling the CPU kernel failed:\n" + "\n".join(errors))


def _run_parallel(commands: list[list[str]]) -> str | None:
  """Runs the commands at once; None if all succeed, else the failing commands with their output."""
  try:
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd in commands]
  except OSError as e:
    return f"$ {' '.join(commands[0])}\n{e}"
  failures = []
  for cmd, proc in zip(commands, procs, strict=True):
    try:
      output, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
      proc.kill()
      output, _ = proc.communicate()
      output += "\n(timed out after 600 s)"
    if proc.returncode != 0:
      failures.append(f"$ {' '.join(cmd)}\n{output[-2000:]}")
  return "\n".join(failures) or None


@functools.cache
def _load() -> str | None:
  """Builds, loads and registers the kernel once per process; the failure message, or None."""
  try:
    library = ctypes.cdll.LoadLibrary(str(build()))
  except (KernelUnavailableError, OSError) as e:
    return str(e)
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(library.IssJaxLbiSmooth), platform="cpu")
  return None


def available(*, warn: bool = False) -> bool:
  """Whether the CPU kernel is turned on and built (building it on the first call).

  Args:
    warn: warn (once per process) when it is on but could not be built.
  """
  if not enabled():
    return False
  error = _load()
  if error is not None and warn:
    _warn_once(error)
  return error is None


@functools.cache
def _warn_once(error: str) -> None:
  warnings.warn("iss_jax: the fused CPU kernel is unavailable, so smoothing on CPU uses the XLA "
                "implementation (several times slower); set ISS_JAX_CPU_KERNEL=0 to silence this. Reason: "
                + error, RuntimeWarning, stacklevel=4)


def require() -> None:
  """Raises :class:`KernelUnavailableError` with the reason when the kernel cannot be used."""
  if not enabled():
    raise KernelUnavailableError("the CPU kernel is turned off by ISS_JAX_CPU_KERNEL=0")
  error = _load()
  if error is not None:
    raise KernelUnavailableError(error)


def smooth_targets(x4: Array, loop_targets: Array, kappa, nu, alpha, maxiter):
  """Runs the kernel: each image to each of its targets (visited in column order), projected.

  Args:
    x4: ``(N, H, W, C)`` float32 or float64 images.
    loop_targets: ``(N, P)`` targets; a negative target is reached at once.
    kappa, nu, alpha: scalar LBI parameters (:class:`iss_jax.LBIParams` fields).
    maxiter: scalar int step cap.

  Returns:
    ``(N, P, H, W, C)`` projected images, ``(N, P)`` int32 steps and ``(N, P)`` float32 sparsity at the
    step each target was reached (or the cap).
  """
  n, p = loop_targets.shape
  dtype = x4.dtype
  per_image = lambda v, t: jnp.broadcast_to(jnp.asarray(v, t), (n,))
  call = jax.ffi.ffi_call(
      TARGET,
      (jax.ShapeDtypeStruct((n, p) + x4.shape[1:], dtype), jax.ShapeDtypeStruct((n, p), jnp.int32),
       jax.ShapeDtypeStruct((n, p), jnp.float32)),
      vmap_method="broadcast_all")
  return call(x4, loop_targets.astype(dtype), per_image(kappa, dtype), per_image(nu, dtype),
              per_image(alpha, dtype), per_image(maxiter, jnp.int32))
