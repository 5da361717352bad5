"""The runner over several devices (a batch sharded along a 1-D mesh) gives per example what one device
gives; each attack's forward / backward passes are counted as run."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

from iss_jax.robustness import Runner, evaluate_adversarial

# The same evaluation on 1 and on 2 (forced host) devices, printed as JSON: per-example results and the
# shards of one batch.
_SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from iss_jax.robustness import Runner, evaluate_adversarial, smoothing_defense
rng = np.random.default_rng(0)
x = rng.uniform(size=(10, 6, 6, 3)).astype(np.float32)
y = rng.integers(0, 3, 10)
w = jnp.asarray(rng.normal(size=(108, 3)).astype(np.float32))
f = lambda v: jnp.tanh(v.reshape(v.shape[0], -1) @ w)
run = Runner(f, batch_size=3, seed=0, progress=False)
# The devices each batch lies on, as map hands it over (a plain function: it sees the placed arrays).
spread = run.map(lambda xb, k: np.full(len(xb), len(xb.sharding.device_set)), x)
res = evaluate_adversarial(f, x, y, eps_grid=[0.03], attacks_=["pgd", "square"], square_queries=20,
                           defenses=[smoothing_defense(0.6, maxiter=50)], runner=run, return_correct=True,
                           progress=False)
print(json.dumps({"devices": len(run.devices), "batch": run.batch_size, "spread": spread.tolist(),
                  "correct": {"|".join(map(str, k)): v.tolist() for k, v in res["correct"].items()}}))
"""


def _run(devices: int) -> dict:
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  return json.loads(r.stdout.strip().splitlines()[-1])


def test_two_devices_shard_each_batch_and_agree_per_example_with_one():
  one, two = _run(1), _run(2)
  assert (one["devices"], one["batch"]) == (1, 3)
  assert (two["devices"], two["batch"]) == (2, 4)  # batch_size 3 rounded up to the device count
  assert one["spread"] == [1] * 10 and two["spread"] == [2] * 10
  # Square's random draws and the smoothing are per example: the same points, bare and behind the defense.
  assert two["correct"] == one["correct"]


def test_a_runner_needs_a_device():
  import pytest

  with pytest.raises(ValueError, match="^devices must name at least one device"):
    Runner(lambda v: v, devices=[])


def _linear(seed=0, n=8):
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(n, 4, 4, 3)).astype(np.float32)
  y = rng.integers(0, 3, n)
  w = jnp.asarray(rng.normal(size=(48, 3)).astype(np.float32))
  return (lambda v: v.reshape(v.shape[0], -1) @ w), x, y


def test_passes_of_each_attack_are_counted_as_run():
  f, x, y = _linear()
  n, steps, queries = len(x), 5, 20
  res = evaluate_adversarial(f, x, y, eps_grid=[1e-6, 0.5], attacks_=["fgsm", "pgd", "square"], steps=steps,
                             square_queries=queries, batch_size=n, progress=False)
  passes = {(p["attack"], p["eps"]): (p["forward"], p["backward"]) for p in res["passes"]}
  # FGSM: one gradient per image, then the point judged; PGD: a gradient per step, the point judged.
  assert passes[("fgsm", 1e-6)] == (2 * n, n)
  assert passes[("pgd", 1e-6)] == ((steps + 1) * n, steps * n)
  # Square: the start is scored on every image, each query only on the images still robust (gathered into
  # the smallest of the batches n, n/2, ..., n/16 that holds them), then the point judged. At eps 1e-6 no
  # image is broken: the robust ones are the correctly classified ones, every query.
  robust = int(round(res["clean"]["none"] * n))
  bucket = min(b for b in (n, n // 2, n // 4, n // 8) if b >= robust)
  assert 0 < robust < n // 2
  assert passes[("square", 1e-6)] == (n + queries * bucket + n, 0)
  # At eps 0.5 images break early: fewer queries, never more.
  assert passes[("square", 0.5)][0] <= passes[("square", 1e-6)][0]
  # Counting changes no result.
  plain = evaluate_adversarial(f, x, y, eps_grid=[1e-6, 0.5], attacks_=["fgsm", "pgd", "square"],
                               steps=steps, square_queries=queries, batch_size=n, progress=False,
                               count_passes=False)
  assert plain["passes"] is None and plain["rows"] == res["rows"]
  shared = evaluate_adversarial(f, x, y, eps_grid=[0.5], attacks_=["fgsm"], progress=False,
                                runner=Runner(f, batch_size=n, progress=False))
  assert shared["passes"] is None  # a given runner runs its own classifier, uncounted
