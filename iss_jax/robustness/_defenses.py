"""Test-time defenses by name and one protocol that compares them all (``python -m eval.compare``).

A defense is a classifier (``apply_fn``) plus an optional input transform: ISS smoothing, TV
denoising, Gaussian low-pass or SPLIC. Every defense is evaluated the same way: clean accuracy,
common corruptions, low resolution, and FGSM / PGD both non-adaptive (attack the bare classifier,
then transform) and adaptive (attack through the transform: exact gradients for TV and low-pass,
BPDA for ISS smoothing, BPDA + EOT for the random SPLIC).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iss_jax._src import attacks
from iss_jax._src.lowpass import gaussian_lowpass
from iss_jax._src.smooth import smooth
from iss_jax._src.splic import splic
from iss_jax._src.tv import tv_denoise

Array = jax.Array


class Defense(NamedTuple):
  """A test-time input transform.

  Attributes:
    name: label, e.g. ``"tv@0.08"``.
    transform: ``transform(x, key) -> x'`` on ``(N, H, W, C)`` float ``[0, 1]`` batches; None =
      identity.
    random: True when the output depends on ``key`` (then adaptive attacks use EOT).
    gradient: how ``jax.grad`` passes through ``transform`` (``"none"``, ``"exact"``, ``"bpda"``).
  """

  name: str
  transform: Callable[[Array, Array], Array] | None
  random: bool
  gradient: str


def make_defense(spec: str, *, tv_iters: int = 50, splic_maxiter: int = 70,
                 smooth_kwargs: dict | None = None) -> Defense:
  """A :class:`Defense` from its name.

  Args:
    spec: ``"none"``; ``"smooth@S"`` (``iss_jax.smooth`` at sparsity ``S``); ``"tv@W"`` (Chambolle
      TV denoising with weight ``W``); ``"lowpass@SIGMA"`` (Gaussian blur); ``"splic@R"`` (SPLIC
      with target rank ``R``, paper defaults otherwise).
    tv_iters: Chambolle iterations for ``tv@``.
    splic_maxiter: gradient steps per SPLIC pass.
    smooth_kwargs: extra keyword arguments of ``iss_jax.smooth``.

  Returns:
    The :class:`Defense`.

  Raises:
    ValueError: an unknown name or a value that is not a number.

  Examples:
    >>> from iss_jax._src.defenses import make_defense
    >>> make_defense("tv@0.08").gradient
    'exact'
  """
  if spec == "none":
    return Defense("none", None, False, "none")
  kind, _, value = spec.partition("@")
  try:
    v = float(value)
  except ValueError as e:
    raise ValueError(f"defense {spec!r}: expected <kind>@<number>, e.g. 'tv@0.08'.") from e
  if kind == "smooth":
    kw = dict(smooth_kwargs or {})
    return Defense(spec, lambda x, key: smooth(x, v, **kw), False, "bpda")
  if kind == "tv":
    return Defense(spec, lambda x, key: tv_denoise(x, v, iters=tv_iters), False, "exact")
  if kind == "lowpass":
    return Defense(spec, lambda x, key: gaussian_lowpass(x, v), False, "exact")
  if kind == "splic":
    return Defense(spec, lambda x, key: splic(x, rank=int(v), key=key, maxiter=splic_maxiter), True,
                   "bpda")
  raise ValueError(f"unknown defense {spec!r}; use none, smooth@S, tv@W, lowpass@SIGMA or splic@R.")


def eot_pgd(logits_fn: Callable[[Array, Array], Array], x, y, *, key, eps, step_size, steps: int,
            samples: int, random_start: bool = True) -> Array:
  """PGD on the cross-entropy averaged over ``samples`` draws of a random defense, new each step.

  Args:
    logits_fn: ``logits_fn(x, key) -> logits`` of the defended model (differentiable in ``x``, e.g.
      through BPDA).
    x: ``(N, H, W, C)`` float images in ``[0, 1]``.
    y: ``(N,)`` int labels.
    key: PRNG key (random start and the draws).
    eps: L-infinity radius.
    step_size: sign-gradient step.
    steps: iterations (static).
    samples: EOT draws per step (static).
    random_start: start from a uniform point of the ball (else from ``x``).

  Returns:
    Adversarial images with ``|x' - x| <= eps`` in ``[0, 1]``.

  References:
    A. Athalye, N. Carlini, D. Wagner, "Obfuscated gradients give a false sense of security", ICML
    2018.
  """

  def loss(z, k):
    ks = jax.random.split(k, samples)
    return jnp.mean(jnp.stack([jnp.sum(attacks.cross_entropy(logits_fn(z, ki), y)) for ki in ks]))

  k0, key = jax.random.split(key)
  x_adv = x
  if random_start:
    x_adv = jnp.clip(x + jax.random.uniform(k0, x.shape, x.dtype, -eps, eps), 0.0, 1.0)

  def body(t, x_adv):
    g = jax.grad(loss)(x_adv, jax.random.fold_in(key, t))
    x_adv = x_adv + step_size * jnp.sign(g)
    return jnp.clip(jnp.clip(x_adv, x - eps, x + eps), 0.0, 1.0)

  return jax.lax.fori_loop(0, steps, body, x_adv)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
  if len(a) == size:
    return a
  return np.concatenate([a, np.repeat(a[:1], size - len(a), axis=0)])


def _batched(fn, arrays, batch_size, key, desc=None, progress=False):
  n = len(arrays[0])
  outs = []
  starts = list(range(0, n, batch_size))
  for i, a in enumerate(tqdm(starts, desc=desc, disable=not progress, leave=False)):
    b = min(a + batch_size, n)
    args = [jnp.asarray(_pad(arr[a:b], batch_size)) for arr in arrays]
    outs.append(np.asarray(fn(*args, jax.random.fold_in(key, i)))[: b - a])
  return np.concatenate(outs)


def evaluate_defense(apply_fn: Callable[[Array], Array], x, y, defense: Defense, *,
                     eps: float = 8 / 255, pgd_steps: int = 10, step_size: float | None = None,
                     eot_samples: int = 4, corruptions: Sequence[str] = (),
                     severities: Sequence[int] = (3,), low_res_sizes: Sequence[int] = (16,),
                     batch_size: int = 100, seed: int = 0, progress: bool = True) -> dict:
  """All evaluations of one defended classifier under one protocol.

  Args:
    apply_fn: the classifier, ``(N, H, W, C)`` float ``[0, 1]`` -> logits (inference mode).
    x: ``(N, H, W, C)`` uint8 test images.
    y: ``(N,)`` int labels.
    defense: the test-time transform (:func:`make_defense`).
    eps: L-infinity radius of FGSM and PGD (pixel space ``[0, 1]``).
    pgd_steps: PGD iterations.
    step_size: PGD step; default ``2.5 * eps / pgd_steps`` (2/255 for 8/255 and 10 steps).
    eot_samples: EOT draws per PGD step for a random defense (adaptive attack).
    corruptions: names for ``iss_jax.evaluate_corruptions`` (offline generator); empty skips them.
    severities: corruption severities.
    low_res_sizes: sizes for ``iss_jax.evaluate_low_resolution``.
    batch_size: images per jitted batch.
    seed: PRNG seed (attacks, random defenses).
    progress: tqdm bars.

  Returns:
    ``{"accuracy": {column: value}, "attacks": {column: description}, ...}`` with columns ``clean``,
    ``corruptions``, ``lowres<size>``, ``fgsm``, ``fgsm_adaptive``, ``pgd``, ``pgd_adaptive``
    (non-adaptive columns: attack the bare classifier, then transform).
  """
  from iss_jax._src import evaluation  # the EVALUATION owner's library (imports flax-free modules)

  x = np.asarray(x)
  y = np.asarray(y, np.int32)
  xf = evaluation.as_float_images(x)
  step_size = 2.5 * eps / pgd_steps if step_size is None else step_size
  key = jax.random.key(seed)
  tf = defense.transform

  def defended(z, k):
    return apply_fn(z if tf is None else tf(z, k))

  predict = jax.jit(lambda z, yb, k: jnp.argmax(defended(z, k), -1) == yb)
  correct = lambda xs, k: _batched(predict, [xs, y], batch_size, k)
  fgsm = jax.jit(lambda z, yb, k: attacks.fgsm(apply_fn, z, yb, eps=eps))
  pgd = jax.jit(lambda z, yb, k: attacks.pgd(apply_fn, z, yb, eps=eps, step_size=step_size,
                                             steps=pgd_steps, key=k))
  acc, desc = {}, {}
  acc["clean"] = float(np.mean(correct(xf, jax.random.fold_in(key, 1))))
  desc["clean"] = "no attack"
  bare = f"on the bare classifier, then {defense.name}" if tf is not None else "white-box"
  x_fgsm = _batched(fgsm, [xf, y], batch_size, jax.random.fold_in(key, 2), "fgsm", progress)
  acc["fgsm"] = float(np.mean(correct(x_fgsm, jax.random.fold_in(key, 3))))
  desc["fgsm"] = f"FGSM eps={eps * 255:.3g}/255 {bare}"
  x_pgd = _batched(pgd, [xf, y], batch_size, jax.random.fold_in(key, 4), "pgd", progress)
  pgd_transfer = np.asarray(correct(x_pgd, jax.random.fold_in(key, 5)))
  acc["pgd"] = float(np.mean(pgd_transfer))
  desc["pgd"] = (f"PGD-{pgd_steps} eps={eps * 255:.3g}/255 step={step_size * 255:.3g}/255 "
                 f"random start {bare}")
  if tf is None:
    acc["fgsm_adaptive"], acc["pgd_adaptive"] = acc["fgsm"], acc["pgd"]
    desc["fgsm_adaptive"] = desc["pgd_adaptive"] = "same as non-adaptive (no transform)"
  else:
    how = {"exact": "exact gradient through the transform", "bpda": "BPDA (identity backward)"}[
        defense.gradient]
    if defense.random:
      how += f" + EOT ({eot_samples} draws per step, redrawn each step)"
      adv_fgsm = jax.jit(lambda z, yb, k: eot_pgd(defended, z, yb, key=k, eps=eps, step_size=eps,
                                                  steps=1, samples=eot_samples, random_start=False))
      adv_pgd = jax.jit(lambda z, yb, k: eot_pgd(defended, z, yb, key=k, eps=eps,
                                                 step_size=step_size, steps=pgd_steps,
                                                 samples=eot_samples))
      fgsm_name = "FGSM (one EOT step)"
    else:
      fixed = lambda z: defended(z, key)
      adv_fgsm = jax.jit(lambda z, yb, k: attacks.fgsm(fixed, z, yb, eps=eps))
      adv_pgd = jax.jit(lambda z, yb, k: attacks.pgd(fixed, z, yb, eps=eps, step_size=step_size,
                                                     steps=pgd_steps, key=k))
      fgsm_name = "FGSM"
    xa = _batched(adv_fgsm, [xf, y], batch_size, jax.random.fold_in(key, 6), "fgsm adaptive",
                  progress)
    acc["fgsm_adaptive"] = float(np.mean(correct(xa, jax.random.fold_in(key, 7))))
    desc["fgsm_adaptive"] = f"{fgsm_name} eps={eps * 255:.3g}/255 through {defense.name}: {how}"
    xa = _batched(adv_pgd, [xf, y], batch_size, jax.random.fold_in(key, 8), "pgd adaptive",
                  progress)
    pgd_adaptive = np.asarray(correct(xa, jax.random.fold_in(key, 9)))
    # Adaptive = per example the stronger of the adaptive and the non-adaptive attack.
    acc["pgd_adaptive"] = float(np.mean(pgd_adaptive & pgd_transfer))
    desc["pgd_adaptive"] = (f"PGD-{pgd_steps} eps={eps * 255:.3g}/255 through {defense.name}: "
                            f"{how}; per example the stronger of this and the non-adaptive PGD")
  fixed_key = jax.random.fold_in(key, 10)
  defended_fixed = lambda z: defended(z, fixed_key)
  if corruptions:
    res = evaluation.evaluate_corruptions(defended_fixed, x, y, names=list(corruptions),
                                          severities=list(severities), batch_size=batch_size,
                                          seed=seed, progress=progress)
    acc["corruptions"] = float(res["mean"]["none"])
    desc["corruptions"] = (f"mean over {len(corruptions)} corruption types x severities "
                           f"{list(severities)}: {res['source']}")
  for size in low_res_sizes:
    res = evaluation.evaluate_low_resolution(defended_fixed, x, y, sizes=[int(size)],
                                             batch_size=batch_size, progress=False)
    acc[f"lowres{size}"] = float(res["accuracy"][str(size)]["none"])
    desc[f"lowres{size}"] = f"down to {size}x{size} ({res['filter']})"
  return {"defense": defense.name, "accuracy": acc, "attacks": desc, "num_examples": int(len(x)),
          "random": defense.random, "gradient": defense.gradient}
