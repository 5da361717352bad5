"""Compiled statistics of the Pallas smoothing kernel for an NVIDIA sm_90 GPU, without a GPU.

  python -m benchmarks.bench_pallas_sass --triton_python=/path/to/venv/bin/python [--warps=4,8,16]

Two halves. Here (the project's JAX, no GPU needed): the kernel of ``iss_jax.smooth(x, 0.6,
implementation="pallas")`` for a batch of 32x32x3 images is lowered for CUDA, and its Triton IR is taken
from the lowered module (the ``__gpu$xla.gpu.triton`` call holds it as MLIR bytecode, printed as text
with jaxlib's MLIR and its Triton dialect). Then ``--triton_python`` (an interpreter with pip
``triton``, e.g. a separate venv: ``python -m venv v && v/bin/pip install triton``) compiles that IR for
``sm_90`` with Triton's bundled ptxas at each warp count, with and without FP fusion (multiply-add
contraction), and reads the cubin with the bundled ``cuobjdump`` (registers, stack, local memory) and
``nvdisasm`` (SASS instructions by opcode: LDL/STL local loads and stores, FFMA, barriers, global
loads/stores).

What this measures is static: the instructions of the whole kernel (prologue, the step, the recording of
a target), per thread, as this Triton compiles them; the GPU's own XLA compiles the same IR with its own
Triton, which may differ. No timing. Prints one table and writes ``<out>/bench_pallas_sass.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def triton_ir(n: int = 4) -> str:
  """The Triton IR (text) of the kernel ``iss_jax.smooth(..., implementation="pallas")`` runs on CUDA."""
  import jax
  import jax.numpy as jnp
  from jax._src.lib.mlir import ir  # jaxlib's MLIR: the Triton dialect is registered in the context below
  from jax._src.pallas.triton.lowering import _new_ir_context

  import iss_jax
  from iss_jax._src import pallas_kernel  # the kernel itself: smooth's input checks are host callbacks,
  # which cannot be lowered for another platform than the host's

  x = jnp.zeros((n, 32, 32, 3), jnp.float32)
  params = iss_jax.lbi_params(32, 32)
  fn = jax.jit(lambda x, t: pallas_kernel.smooth_targets(
      x, t, params.kappa, params.nu, params.alpha, jnp.int32(iss_jax.DEFAULT_MAXITER), platform="cuda",
      interpret=False))
  lowered = fn.trace(x, jnp.full((n, 1), 0.6, jnp.float32)).lower(lowering_platforms=("cuda",))
  text = lowered.as_text()
  m = re.search(r'custom_call @__gpu\$xla\.gpu\.triton\(.*?\bir = "((?:[^"\\]|\\.)*)"', text, re.S)
  if m is None:
    raise RuntimeError("no Triton call in the lowered module")
  escaped, raw, i = m.group(1), bytearray(), 0
  simple = {"\\": 92, '"': 34, "n": 10, "t": 9}
  while i < len(escaped):  # MLIR string escapes: \\, \", \n, \t and \XX (hex)
    if escaped[i] == "\\":
      if escaped[i + 1] in simple:
        raw.append(simple[escaped[i + 1]])
        i += 2
      else:
        raw.append(int(escaped[i + 1:i + 3], 16))
        i += 3
    else:
      raw += escaped[i].encode("latin-1")
      i += 1
  with _new_ir_context():
    return str(ir.Module.parse(bytes(raw)))


_COMPILE = r'''
import json, os, re, subprocess, sys
import triton
from triton.backends.compiler import GPUTarget
path, warps = sys.argv[1], [int(w) for w in sys.argv[2].split(",")]
tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
rows = []
OPS = ("LDL", "STL", "FFMA", "FMUL", "FADD", "MUFU", "BAR", "LDG", "STG")
def tool(name, *a):
  return subprocess.run([os.path.join(tools, name), *a], capture_output=True, text=True).stdout
for nw in warps:
  for fusion in (True, False):
    options = {"num_warps": nw, "enable_fp_fusion": fusion}
    k = triton.compile(path, target=GPUTarget("cuda", 90, 32), options=options)
    cubin = path + ".cubin"
    open(cubin, "wb").write(k.asm["cubin"])
    usage, sass = tool("cuobjdump", "--dump-resource-usage", cubin), tool("nvdisasm", cubin)
    ins = [l for l in sass.splitlines() if re.match(r"\s+/\*[0-9a-f]{4}\*/", l)]
    count = lambda op: sum(1 for l in ins if re.search(r"\b%s\b" % op, l))
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", usage)
    rows.append({"num_warps": nw, "fp_fusion": fusion, "registers": int(m.group(1)),
                 "stack_bytes": int(m.group(2)), "shared_bytes": int(m.group(3)),
                 "local_bytes": int(m.group(4)), "sass_instructions": len(ins),
                 **{op: count(op) for op in OPS}})
print(json.dumps({"triton": triton.__version__, "rows": rows}))
'''


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--triton_python", default=os.environ.get("ISS_BENCH_TRITON_PYTHON", sys.executable),
                      help="an interpreter with pip triton (default $ISS_BENCH_TRITON_PYTHON, else this one)")
  parser.add_argument("--warps", default="4,8,16", help="warp counts to compile for, comma-separated")
  parser.add_argument("--out", default="results/bench")
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "iss_split_lbi.ttir")
    with open(path, "w") as f:
      f.write(triton_ir())
    env = dict(os.environ, TRITON_DEFAULT_FP_FUSION="1")
    r = subprocess.run([args.triton_python, "-c", _COMPILE, path, args.warps], capture_output=True, text=True,
                       env=env, timeout=1800)
  if r.returncode != 0:
    sys.exit(f"error: compiling with {args.triton_python} failed (needs pip triton):\n{r.stderr[-2000:]}")
  result = json.loads(r.stdout.strip().splitlines()[-1])
  print(f"Pallas smoothing kernel, one 32x32x3 float32 image per program, sm_90 (pip triton "
        f"{result['triton']}; static SASS of the whole kernel, per thread):")
  print("warps  FP fusion  registers  stack B  SASS instr  LDL  STL  FFMA  FMUL  FADD  BAR  LDG  STG")
  for row in result["rows"]:
    print(f"{row['num_warps']:5d}  {str(row['fp_fusion']):9s}  {row['registers']:9d}  "
          f"{row['stack_bytes']:7d}  {row['sass_instructions']:10d}  {row['LDL']:3d}  {row['STL']:3d}  "
          f"{row['FFMA']:4d}  {row['FMUL']:4d}  {row['FADD']:4d}  {row['BAR']:3d}  {row['LDG']:3d}  "
          f"{row['STG']:3d}")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "bench_pallas_sass.json"), "w") as f:
    json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
