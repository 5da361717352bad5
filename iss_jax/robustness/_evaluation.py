"""The evaluations: a classifier behind defenses, run by the one :class:`~iss_jax.robustness.Runner`.

Every evaluation takes ``apply_fn(x) -> logits`` and a sequence of :class:`~iss_jax.robustness.Defense`
(the bare model is always evaluated too, as ``"none"``), and returns a plain dict of numbers (JSON-ready)
whose columns are the defense names. Images are ``(N, H, W, C)``, uint8 or float in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iss_jax._src.checks import as_float_images, check_image, check_labels
from iss_jax._src.lbi import num_edges, tv_grad
from iss_jax._src.metrics import psnr
from iss_jax.robustness import _apgd as apgd_lib
from iss_jax.robustness import _attacks as attacks
from iss_jax.robustness import _corruptions as corruptions
from iss_jax.robustness import _minimal as minimal
from iss_jax.robustness import _square as square_lib
from iss_jax.robustness._defenses import Defense, no_defense, smoothing_defense
from iss_jax.robustness._runner import Runner

Array = jax.Array
NONE = "none"
ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "cw", "deepfool", "autoattack")
DEFAULT_ATTACKS = ("fgsm", "pgd")
APGD_LOSSES = {"apgd-ce": "ce", "apgd-dlr": "dlr", "apgd-t": "dlr-targeted"}
AUTOATTACK = ("apgd-ce", "apgd-t", "square")  # the per-example worst case reported as "autoattack"
SQUARE_QUERIES = 1000
GRAY_BOX = "gray-box"  # attack the bare model, then defend (the main paper's protocol)
PROTOCOLS = (GRAY_BOX, "adaptive")
BLACK_BOX = "black-box"  # the "transfer" attack: PGD examples of a substitute model


def with_bare(defenses: Sequence[Defense]) -> list[Defense]:
  """``[no_defense(), *defenses]``, checking types and that names are unique (they key every table)."""
  out = [no_defense()]
  for d in defenses:
    if not isinstance(d, Defense):
      raise ValueError(f"defenses must be iss_jax.robustness.Defense values (e.g. smoothing_defense(0.6) "
                       f"or iss_jax.baselines.make_defense('tv@0.08')); got {d!r}.")
    if d.transform is not None:
      out.append(d)
  names = [d.name for d in out]
  if len(set(names)) != len(names):
    raise ValueError(f"defense names must be unique; got {names}.")
  return out


def evaluate_accuracy(apply_fn, x, y, *, defense: Defense | None = None, batch_size: int = 100,
                      seed: int = 0) -> float:
  """Top-1 accuracy of ``apply_fn`` on ``x``, behind ``defense`` (None: the bare model)."""
  xf = as_float_images(x)
  run = Runner(apply_fn, batch_size=batch_size, seed=seed, progress=False)
  return float(np.mean(run.correct(xf, y, defense)))


# ----------------------------------------------------------------------------------------------------------
# Adversarial


def _attack_fn(name: str, steps: int, step_size_factor: float, restarts: int, random_start: bool,
               square_queries: int = SQUARE_QUERIES):
  """``attack(model, x, y, eps, key) -> x_adv`` for a deterministic ``model(x) -> logits``."""
  random = _eot_attack_fn(name, steps, step_size_factor, 1, random_start, square_queries, restarts)

  def fn(model, xb, yb, eps, key):
    if name == "fgsm":
      return attacks.fgsm(model, xb, yb, eps=eps)
    if name == "pgd":
      return attacks.pgd(model, xb, yb, eps=eps, step_size=step_size_factor * eps / steps, steps=steps,
                         key=key, random_start=random_start, restarts=restarts)
    return random(lambda z, _: model(z), xb, yb, eps, key)
  return fn


def _eot_attack_fn(name: str, steps: int, step_size_factor: float, samples: int, random_start: bool,
                   square_queries: int = SQUARE_QUERIES, restarts: int = 1):
  """The same attack for a random ``logits(x, key)``: EOT over ``samples`` draws per gradient step.

  APGD and CW average the loss gradient over ``samples`` fresh draws per iteration; Square sees one draw
  per query (it only compares scores); DeepFool attacks the logits averaged over ``samples`` fixed draws;
  ``autoattack`` keeps per example the first of APGD-CE, APGD-T and Square that fools the model (judged
  on the logits averaged over ``samples`` draws).
  """
  def member(member_name, logits, xb, yb, eps, key):
    if member_name in APGD_LOSSES:
      return apgd_lib.eot_apgd(logits, xb, yb, eps=eps, key=key, steps=steps, loss=APGD_LOSSES[member_name],
                               restarts=restarts, samples=samples)
    if member_name == "square":
      return square_lib.random_square(logits, xb, yb, eps=eps, key=key, queries=square_queries)
    raise AssertionError(member_name)

  def fn(logits, xb, yb, eps, key):
    if name == "fgsm":
      return attacks.eot_pgd(logits, xb, yb, key=key, eps=eps, step_size=eps, steps=1, samples=samples,
                             random_start=False)
    if name == "pgd":
      return attacks.eot_pgd(logits, xb, yb, key=key, eps=eps, step_size=step_size_factor * eps / steps,
                             steps=steps, samples=samples, random_start=random_start)
    if name == "cw":
      return minimal.eot_cw(logits, xb, yb, eps=eps, step_size=step_size_factor * eps / steps, steps=steps,
                            key=key, random_start=random_start, restarts=restarts, samples=samples)
    averaged = lambda z, k=key: attacks.eot(logits, samples)(z, k)
    if name == "deepfool":
      return minimal.deepfool_linf(averaged, xb, yb, eps=eps)
    if name == "autoattack":
      best, fooled = xb, jnp.zeros(xb.shape[0], bool)
      for i, m in enumerate(AUTOATTACK):
        x_m = member(m, logits, xb, yb, eps, jax.random.fold_in(key, i))
        ok = jnp.argmax(averaged(x_m, jax.random.fold_in(key, 100 + i)), -1) != yb
        best = jnp.where((ok & ~fooled)[:, None, None, None], x_m, best)
        fooled = fooled | ok
      return best
    return member(name, logits, xb, yb, eps, key)
  return fn


def _deepfool_norms_fn(samples: int):
  """``(logits, x, key) -> (N, 3)``: DeepFool's minimal L-inf and L2 norms and whether both succeeded."""
  def fn(logits, xb, key):
    averaged = lambda z: attacks.eot(logits, samples)(z, key)
    x_inf, ok_inf = minimal.deepfool(averaged, xb, norm="linf")
    x_2, ok_2 = minimal.deepfool(averaged, xb, norm="l2")
    d_inf = jnp.where(ok_inf, jnp.max(jnp.abs(x_inf - xb), axis=(1, 2, 3)), jnp.inf)
    d_2 = jnp.where(ok_2, jnp.sqrt(jnp.sum((x_2 - xb) ** 2, axis=(1, 2, 3))), jnp.inf)
    return jnp.stack([d_inf, d_2, (ok_inf & ok_2).astype(jnp.float32)], axis=-1)
  return fn


def _median_norms(run: Runner, defense: Defense, x, y, clean_correct, samples: int, key) -> dict:
  """DeepFool's median minimal L-inf / L2 norms over the images ``defense`` classifies correctly."""
  logits = run.logits_fn(defense)
  fn = jax.jit(lambda xb, k: _deepfool_norms_fn(samples if run.is_random(defense) else 1)(logits, xb, k))
  out = run.map(fn, x, key=key)[np.asarray(clean_correct, bool)]
  if len(out) == 0:
    return {"median_linf": None, "median_l2": None, "num_images": 0, "success_rate": None}
  finite = lambda v: float(v) if np.isfinite(v) else None  # None: DeepFool failed on most images
  return {"median_linf": finite(np.median(out[:, 0])), "median_l2": finite(np.median(out[:, 1])),
          "num_images": int(len(out)), "success_rate": float(np.mean(out[:, 2]))}


def evaluate_adversarial(apply_fn: Callable[[Array], Array], x, y, *, eps_grid: Sequence[float],
                         defenses: Sequence[Defense] = (), attacks_: Sequence[str] = DEFAULT_ATTACKS,
                         steps: int = 10, step_size_factor: float = 2.5, restarts: int = 1,
                         random_start: bool = True, protocols: Sequence[str] = PROTOCOLS,
                         eot_samples: int = 4, batch_size: int = 100, seed: int = 0,
                         progress: bool = True, square_queries: int = SQUARE_QUERIES,
                         substitute_fn: Callable[[Array], Array] | None = None,
                         return_correct: bool = False) -> dict:
  """Accuracy under FGSM/PGD at each ``eps``, bare and behind each defense, with sanity checks.

  Protocols for a defended model:

  * ``"gray-box"`` (the main paper's protocol): attack the bare model, then defend.
  * ``"adaptive"``: attack the defended model end to end with the gradient the defense gives
    (:attr:`Defense.gradient`: exact, or BPDA for ISS smoothing and SPLIC), averaged over random draws
    (EOT) when the defense is random.
  * ``"worst"`` (reported whenever both run): per example the stronger of the two (an example counts as
    broken if either breaks it), never weaker than the paper's protocol by construction.
  * ``"black-box"`` (with ``substitute_fn``): attack ``"transfer"``, PGD examples of an independently
    trained substitute model fed to the bare and the defended classifier (SPLIC's Table 1 protocol).

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> ``(N, K)`` logits, BatchNorm in inference mode.
    x: ``(N, H, W, C)`` images, uint8 or float in ``[0, 1]``.
    y: ``(N,)`` integer labels.
    eps_grid: L-infinity radii in ``[0, 1]`` pixel space (e.g. ``[2/255, 4/255, 8/255]``).
    defenses: the defended models to evaluate besides the bare one.
    attacks_: subset of :data:`ATTACKS`: ``"fgsm"``, ``"pgd"``, ``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-t"``
      (targeted DLR, 9 targets), ``"square"`` (score-based, no gradient), ``"cw"`` (PGD on the CW
      margin), ``"deepfool"`` (minimal L-inf perturbation clipped to the ``eps`` ball; the median minimal
      norms go to ``result["deepfool"]``) and ``"autoattack"`` (per example the worst of APGD-CE, APGD-T
      and Square).
    steps: PGD iterations (also APGD's and CW's).
    step_size_factor: PGD step ``= step_size_factor * eps / steps`` (Madry et al. use 2.5).
    restarts: PGD random restarts (deterministic models).
    random_start: PGD random start.
    protocols: subset of ``("gray-box", "adaptive")``.
    eot_samples: draws per gradient step against a random defense.
    batch_size: images per jitted batch.
    seed: PRNG seed (random starts, random defenses).
    progress: show a tqdm bar.
    square_queries: Square's query budget per image.
    substitute_fn: an independently trained classifier: the black-box ``"transfer"`` attack makes PGD
      examples on it (white-box there, EOT if it is random) and feeds them to the bare model and to every
      defense (rows with protocol ``"black-box"``). None: no transfer attack.
    return_correct: also return ``result["correct"]``, ``{(attack, eps, defense, protocol): (N,) bool}``
      per example (for per-example worst cases across calls; not JSON-ready).

  Returns:
    A dict with ``"clean"`` (``{defense: accuracy}``), ``"rows"`` (list of ``{"attack", "eps",
    "defense", "protocol", "accuracy"}``, protocol ``"none"`` for the bare model), ``"checks"`` (list of
    ``{"check", "ok", "detail"}``), ``"violations"`` (count), ``"defenses"`` (name -> how it is
    attacked) and ``"settings"``.

  Raises:
    ValueError: bad shapes, unknown attack/protocol, ``eps`` outside ``[0, 1]``.
  """
  x = as_float_images(x)
  y = check_labels(y, len(x))
  eps_grid = [float(e) for e in eps_grid]
  for e in eps_grid:
    if not 0.0 <= e <= 1.0:
      raise ValueError(f"eps_grid values must be in [0, 1] (pixel space); got {e}.")
  for a in attacks_:
    if a not in ATTACKS:
      hint = (" (the black-box 'transfer' attack runs when a substitute model is given)"
              if a == "transfer" else "")
      raise ValueError(f"attacks must be among {ATTACKS}; got {a!r}{hint}.")
  for p in protocols:
    if p not in PROTOCOLS:
      hint = (" (the protocol that attacks the bare model and then defends is 'gray-box'; 'transfer' is "
              "the black-box attack from a substitute model)" if p == "transfer" else "")
      raise ValueError(f"protocols must be among {PROTOCOLS}; got {p!r}{hint}.")
  everyone = with_bare(defenses)
  run = Runner(apply_fn, batch_size=batch_size, seed=seed, progress=False)
  plain = {a: _attack_fn(a, steps, step_size_factor, restarts, random_start, square_queries)
           for a in attacks_}
  eot = {a: _eot_attack_fn(a, steps, step_size_factor, eot_samples, random_start, square_queries, restarts)
         for a in attacks_}

  def jitted(attack_name, defense):
    """The adaptive attack on ``defense`` (on the bare model for ``none``): ``(x, y, eps, key)``."""
    logits = run.logits_fn(defense)
    if run.is_random(defense):
      return jax.jit(lambda xb, yb, eps, k: eot[attack_name](logits, xb, yb, eps, k))
    return jax.jit(lambda xb, yb, eps, k: plain[attack_name](lambda z: logits(z, k), xb, yb, eps, k))

  adaptive = [d for d in everyone[1:] if "adaptive" in protocols]
  compiled = {(a, d.name): jitted(a, d) for a in attacks_ for d in everyone[:1] + adaptive}
  correct = {}  # (attack, eps, defense, protocol) -> bool (N,)
  deepfool_norms = {}  # defense -> DeepFool's median minimal norms
  clean = {d.name: run.correct(x, y, d, key=run.key_for(0, di)) for di, d in enumerate(everyone)}
  bar = tqdm(total=len(eps_grid) * len(attacks_) * (1 + len(adaptive)), desc="adversarial",
             disable=not progress)
  for ai, a in enumerate(attacks_):
    for ei, eps in enumerate(eps_grid):
      def adversarial(d, di, a=a, eps=eps, ai=ai, ei=ei):
        fn = compiled[(a, d.name)]
        x_adv = run.map(lambda xb, yb, k: fn(xb, yb, jnp.float32(eps), k), x, y,
                        key=run.key_for(1, ai, ei, di))
        assert float(np.abs(x_adv - x).max(initial=0.0)) <= eps + 1e-5, "attack left the eps-ball"
        bar.update(1)
        return x_adv

      if a == "deepfool" and ei == 0:  # the minimal perturbation does not depend on eps: once per model
        for di, d in enumerate(everyone[:1] + adaptive):
          deepfool_norms[d.name] = _median_norms(run, d, x, y, clean[d.name], eot_samples, run.key_for(4, di))
      x_bare = adversarial(everyone[0], 0)
      correct[(a, eps, NONE, NONE)] = run.correct(x_bare, y)
      for di, d in enumerate(everyone[1:], start=1):
        if GRAY_BOX in protocols:
          correct[(a, eps, d.name, GRAY_BOX)] = run.correct(x_bare, y, d, key=run.key_for(2, ai, ei, di))
        if d in adaptive:
          x_adv = adversarial(d, di)
          correct[(a, eps, d.name, "adaptive")] = run.correct(x_adv, y, d, key=run.key_for(3, ai, ei, di))
          if GRAY_BOX in protocols:
            correct[(a, eps, d.name, "worst")] = (correct[(a, eps, d.name, "adaptive")]
                                                  & correct[(a, eps, d.name, GRAY_BOX)])
  if substitute_fn is not None:
    sub = Runner(substitute_fn, batch_size=batch_size, seed=seed, progress=False)
    pgd = _eot_attack_fn("pgd", steps, step_size_factor, eot_samples if sub.is_random() else 1,
                         random_start)
    logits = sub.logits_fn()
    make = jax.jit(lambda xb, yb, eps, k: pgd(logits, xb, yb, eps, k))
    for ei, eps in enumerate(eps_grid):
      x_sub = sub.map(lambda xb, yb, k, eps=eps: make(xb, yb, jnp.float32(eps), k), x, y,
                      key=run.key_for(5, ei))
      for di, d in enumerate(everyone):
        protocol = NONE if d.name == NONE else BLACK_BOX
        correct[("transfer", eps, d.name, protocol)] = run.correct(x_sub, y, d, key=run.key_for(6, ei, di))
  bar.close()

  rows = [{"attack": a, "eps": e, "defense": d, "protocol": p, "accuracy": float(np.mean(c)),
           "interval95": wilson_interval(float(np.mean(c)), len(x))} for (a, e, d, p), c in correct.items()]
  result = {
      "clean": {name: float(np.mean(c)) for name, c in clean.items()},
      "rows": rows,
      "num_examples": int(len(x)),
      "defenses": {d.name: run.describe(d) for d in everyone},
      "settings": {"eps_grid": eps_grid, "attacks": list(attacks_), "pgd_steps": steps,
                   "pgd_step_size": f"{step_size_factor} * eps / {steps}", "restarts": restarts,
                   "random_start": random_start, "defenses": [d.name for d in everyone[1:]],
                   "protocols": list(protocols), "seed": seed, "norm": "Linf, [0, 1] pixel space",
                   "eot": f"{eot_samples} draws per gradient step against random defenses"},
  }
  if deepfool_norms:
    result["deepfool"] = deepfool_norms
    result["settings"]["deepfool"] = ("L-inf DeepFool (10 classes, overshoot 0.02, 50 iterations) clipped "
                                      "to the eps ball; median minimal L-inf / L2 norms over correctly "
                                      "classified images (a failure counts as infinite)")
  if any(a in APGD_LOSSES or a in ("square", "autoattack") for a in attacks_):
    result["settings"]["apgd"] = f"{steps} steps, {restarts} restart(s), 9 targets (apgd-t), rho 0.75"
    result["settings"]["square_queries"] = square_queries
  result["checks"] = adversarial_sanity_checks(result)
  result["violations"] = sum(not c["ok"] for c in result["checks"])
  if return_correct:
    result["correct"] = correct
  return result


def wilson_interval(accuracy: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
  """The Wilson score interval of an accuracy measured on ``n`` images (95% for the default ``z``).

  Examples:
    >>> from iss_jax.robustness import wilson_interval
    >>> [round(v, 3) for v in wilson_interval(0.5, 100)]
    [0.404, 0.596]
  """
  if n <= 0:
    return 0.0, 1.0
  p = min(max(float(accuracy), 0.0), 1.0)
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def adversarial_sanity_checks(result: dict, *, zero_tol: float = 0.05) -> list[dict]:
  """Checks an :func:`evaluate_adversarial` result; every failed check is a reason to distrust the table.

  Checks: (1) PGD accuracy on the bare model at the largest ``eps`` is at most ``zero_tol`` when that
  ``eps >= 16/255`` (an attack that cannot break an undefended model at large ``eps`` is broken); (2) accuracy
  never increases with ``eps``; (3) PGD is never weaker than FGSM; (4) the adaptive attack is never weaker
  than the non-adaptive (transfer) one; (5) APGD-CE is never weaker than PGD (same budget); (6) the
  ``autoattack`` worst case is never weaker than any of its members that were also run. Accuracies are
  measured on ``n`` images, so each comparison allows for sampling noise: a check fails only where the 95%
  Wilson intervals (:func:`wilson_interval`) of the two accuracies do not overlap (for (1): where the
  interval lies above ``zero_tol``).

  Args:
    result: the dict returned by :func:`evaluate_adversarial`.
    zero_tol: accuracy counted as "~0".

  Returns:
    A list of ``{"check": str, "ok": bool, "detail": str, "rows": [[attack, eps, defense, protocol]]}``
    (``rows``: the table entries a failure points at).
  """
  acc = {(r["attack"], r["eps"], r["defense"], r["protocol"]): r["accuracy"] for r in result["rows"]}
  n = int(result.get("num_examples", 0))
  ci = lambda v: wilson_interval(v, n)
  above = lambda v, ref: ci(v)[0] > ci(ref)[1]  # v is higher than ref beyond sampling noise
  show = lambda v: f"{v:.2%} [{ci(v)[0]:.1%}, {ci(v)[1]:.1%}]"
  checks = []
  eps_grid = sorted({k[1] for k in acc})
  if "pgd" in {k[0] for k in acc} and eps_grid and eps_grid[-1] >= 16 / 255 - 1e-9:
    a = acc[("pgd", eps_grid[-1], NONE, "none")]
    checks.append({"check": "PGD drives the bare model to ~0 at the largest eps", "ok": ci(a)[0] <= zero_tol,
                   "detail": f"accuracy {show(a)} at eps={eps_grid[-1] * 255:.3g}/255",
                   "rows": [["pgd", eps_grid[-1], NONE, "none"]]})
  groups = {}
  for (a, e, d, p), v in acc.items():
    groups.setdefault((a, d, p), []).append((e, v))
  for (a, d, p), pts in sorted(groups.items()):
    pts.sort()
    pairs = [(e1, v1, e2, v2) for (e1, v1), (e2, v2) in zip(pts[:-1], pts[1:], strict=True) if above(v2, v1)]
    checks.append({"check": f"accuracy non-increasing in eps ({a}, {d}, {p})", "ok": not pairs,
                   "detail": "; ".join(f"{e1 * 255:.3g}->{e2 * 255:.3g}/255: {show(v1)} -> {show(v2)}"
                                       for e1, v1, e2, v2 in pairs) or "ok",
                   "rows": [[a, e2, d, p] for _, _, e2, _ in pairs]})
  for (a, e, d, p), v in sorted(acc.items()):
    if a == "pgd" and ("fgsm", e, d, p) in acc:
      f = acc[("fgsm", e, d, p)]
      checks.append({"check": f"PGD <= FGSM (eps={e * 255:.3g}/255, {d}, {p})", "ok": not above(v, f),
                     "detail": f"PGD {show(v)} vs FGSM {show(f)}", "rows": [["pgd", e, d, p]]})
    if a == "apgd-ce" and ("pgd", e, d, p) in acc:
      g = acc[("pgd", e, d, p)]
      checks.append({"check": f"APGD-CE <= PGD (eps={e * 255:.3g}/255, {d}, {p})", "ok": not above(v, g),
                     "detail": f"APGD-CE {show(v)} vs PGD {show(g)}", "rows": [["apgd-ce", e, d, p]]})
    if a == "autoattack":
      for m in AUTOATTACK:
        if (m, e, d, p) in acc:
          g = acc[(m, e, d, p)]
          checks.append({"check": f"autoattack <= {m} (eps={e * 255:.3g}/255, {d}, {p})",
                         "ok": not above(v, g), "detail": f"autoattack {show(v)} vs {m} {show(g)}",
                         "rows": [["autoattack", e, d, p]]})
    if p == "adaptive" and (a, e, d, GRAY_BOX) in acc:
      t = acc[(a, e, d, GRAY_BOX)]
      checks.append({"check": f"adaptive <= gray-box ({a}, eps={e * 255:.3g}/255, {d})",
                     "ok": not above(v, t), "detail": f"adaptive {show(v)} vs gray-box {show(t)}",
                     "rows": [[a, e, d, "adaptive"]]})
  return checks


# ----------------------------------------------------------------------------------------------------------
# Corruptions


def evaluate_corruptions(apply_fn, x, y, *, names: Sequence[str] = corruptions.PAPER_CORRUPTIONS,
                         severities: Sequence[int] = (1, 2, 3, 4, 5), defenses: Sequence[Defense] = (),
                         source: str = "generate", seed: int = 0, cifar10c_dir: str | None = None,
                         indices=None, tfds_data_dir: str | None = None, frost_dir: str | None = None,
                         batch_size: int = 100, progress: bool = True) -> dict:
  """Accuracy on CIFAR-10-C corruptions per type and severity, bare and behind each defense.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> logits.
    x: clean ``(N, H, W, C)`` uint8 test images in official order (used by ``source="generate"``).
    y: ``(N,)`` labels of ``x``.
    names: corruption names (``iss_jax.robustness.AVAILABLE_CORRUPTIONS`` for ``generate``).
    severities: subset of ``1..5``.
    defenses: defended models to evaluate besides the bare one.
    source: ``"generate"`` (offline seeded CIFAR-10-C-style generator), ``"npy"`` (official files in
      ``cifar10c_dir``, rows of the official test ``indices``) or ``"tfds"`` (``cifar10_corrupted``, first
      ``N`` test images).
    seed: generator seed.
    cifar10c_dir: folder of the official ``.npy`` files (``source="npy"``).
    indices: official test indices of ``x`` (``source="npy"``); ``arange(N)`` when None.
    tfds_data_dir: TFDS data dir (``source="tfds"``).
    frost_dir: folder of the official frost photographs for ``"frost"`` (see
      :func:`iss_jax.robustness.frost_texture_dir`).
    batch_size: images per jitted batch.
    progress: show a tqdm bar.

  Returns:
    ``{"accuracy": {name: {severity: {defense: acc}}}, "mean_over_types": {severity: {defense: acc}},
    "mean": {defense: acc}, "clean": {defense: acc}, "source": label, ...}`` (severity keys are strings).

  Raises:
    ValueError: unknown source/name, bad severity, or missing files.
  """
  if source not in ("generate", "npy", "tfds"):
    raise ValueError(f"source must be 'generate', 'npy' or 'tfds'; got {source!r}.")
  x = np.asarray(x)
  y = check_labels(y, len(x))
  everyone = with_bare(defenses)
  for s in severities:
    if int(s) not in range(1, 6):
      raise ValueError(f"severities must be in 1..5; got {s}.")
  if source == "generate":
    for nme in names:
      if nme not in corruptions.AVAILABLE_CORRUPTIONS:
        raise ValueError(f"corruption {nme!r} not available offline; choose from "
                         f"{corruptions.AVAILABLE_CORRUPTIONS}.")
  if source == "generate" and "frost" in names:
    corruptions.frost_texture_dir(frost_dir)  # no photographs: say so before anything runs
  if source == "npy" and cifar10c_dir is None:
    raise ValueError("source='npy' needs cifar10c_dir (the folder with the official CIFAR-10-C .npy files).")
  run = Runner(apply_fn, batch_size=batch_size, seed=seed, progress=False)
  xf = as_float_images(x)
  clean = {d.name: float(np.mean(run.correct(xf, y, d))) for d in everyone}
  acc = {}
  bar = tqdm(total=len(names) * len(severities), desc="corruptions", disable=not progress)
  for nme in names:
    acc[nme] = {}
    for sev in severities:
      if source == "generate":
        xc, yc = corruptions.corrupt(x if x.dtype == np.uint8 else np.uint8(x * 255 + 0.5), nme,
                                     int(sev), seed=seed, frost_dir=frost_dir), y
      elif source == "npy":
        idx = np.arange(len(x)) if indices is None else np.asarray(indices)
        xc, yc = corruptions.load_cifar10c(cifar10c_dir, nme, int(sev), idx)
        if len(yc) == len(y) and not np.array_equal(yc, y):
          raise ValueError("CIFAR-10-C labels disagree with the dataset labels: the indices do not map "
                           "the dataset to the official test order.")
      else:
        xc, yc = corruptions.load_tfds_cifar10c(nme, int(sev), tfds_data_dir, num_examples=len(x))
      xcf = as_float_images(xc)
      acc[nme][str(sev)] = {d.name: float(np.mean(run.correct(xcf, yc, d))) for d in everyone}
      bar.update(1)
  bar.close()
  dnames = [d.name for d in everyone]
  mean_types = {str(s): {d: float(np.mean([acc[n][str(s)][d] for n in names])) for d in dnames}
                for s in severities}
  mean_sev = {n: {d: float(np.mean([acc[n][str(s)][d] for s in severities])) for d in dnames}
              for n in names}
  label = {"generate": "CIFAR-10-C-style (offline generator, make_cifar_c.py CIFAR parameters, "
                       f"seed {seed})",
           "npy": f"CIFAR-10-C official .npy ({cifar10c_dir})",
           "tfds": "TFDS cifar10_corrupted"}[source]
  return {"accuracy": acc, "mean_over_types": mean_types, "mean_over_severities": mean_sev,
          "mean": {d: float(np.mean([mean_types[str(s)][d] for s in severities])) for d in dnames},
          "clean": clean, "source": label, "num_examples": int(len(x)),
          "names": list(names), "severities": [int(s) for s in severities],
          "defenses": dnames[1:]}


# ----------------------------------------------------------------------------------------------------------
# Low resolution


def nearest_upsample(x, size: tuple[int, int]):
  """Nearest-neighbour upsampling of ``(N, h, w, C)`` images to ``size = (H, W)``.

  Output pixel ``i`` copies input pixel ``floor(i * h / H)`` (PyTorch ``mode="nearest"``), so for
  ``H = k h`` it is exact block replication.
  """
  x = jnp.asarray(x)
  h, w = x.shape[1:3]
  rows = (np.arange(size[0]) * h) // size[0]
  cols = (np.arange(size[1]) * w) // size[1]
  return x[:, rows][:, :, cols]


def low_resolution(x, size: int, *, method: str = "linear", antialias: bool = True):
  """Downsamples ``(N, H, W, C)`` images to ``size x size`` and nearest-upsamples back to ``H x W``.

  Args:
    x: ``(N, H, W, C)`` float images.
    size: intermediate size (paper Sec. 4.4), ``1 <= size <= min(H, W)``.
    method: ``jax.image.resize`` method of the downsampling (``"linear"``, ``"cubic"``, ``"lanczos3"``,
      ``"nearest"``).
    antialias: low-pass before downsampling (a triangle filter for ``"linear"``).

  Returns:
    ``(N, H, W, C)`` images of the same dtype.

  Raises:
    ValueError: bad rank or ``size``.

  Examples:
    >>> import jax.numpy as jnp, iss_jax
    >>> iss_jax.robustness.low_resolution(jnp.ones((1, 32, 32, 3)), 16).shape
    (1, 32, 32, 3)
  """
  x = check_image(x, "x", ranks=(4,), min_size=1, finite=False)
  if not 1 <= int(size) <= min(x.shape[1:3]):
    raise ValueError(f"size must be in 1..{min(x.shape[1:3])}; got {size}.")
  small = jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), method=method, antialias=antialias)
  return nearest_upsample(small, x.shape[1:3]).astype(x.dtype)


def nonzero_edge_fraction(x) -> float:
  """Mean share of 4-neighbour edges whose pixels differ in some channel, over ``(N, H, W, C)`` images.

  ``iss_jax.smooth`` cannot reach a target sparsity above this share (edges with ``D x = 0`` never
  activate): it then stops at ``maxiter`` and returns nearly the input.
  """
  x = jnp.asarray(np.asarray(x))
  if not len(x):
    return 0.0
  differs = jnp.any(tv_grad(jnp.moveaxis(x, 0, -1)) != 0, axis=3)  # (2, H, W, N), D x as iss_jax.smooth
  counts = np.asarray(jnp.sum(differs, axis=(0, 1, 2)), np.float64)  # the padding slots are never set
  return float(np.mean(counts / num_edges(x.shape[1], x.shape[2])))


def evaluate_low_resolution(apply_fn, x, y, *, sizes: Sequence[int] = (28, 24, 20, 16, 12, 8),
                            defenses: Sequence[Defense] = (), method: str = "linear",
                            antialias: bool = True, batch_size: int = 100, seed: int = 0,
                            progress: bool = True) -> dict:
  """Accuracy on low-resolution images (down to ``size``, nearest up), bare and behind each defense.

  Returns:
    ``{"accuracy": {size: {defense: acc}}, "clean": {defense: acc}, "filter": str, ...}``.
  """
  xf = as_float_images(x)
  y = check_labels(y, len(xf))
  everyone = with_bare(defenses)
  run = Runner(apply_fn, batch_size=batch_size, seed=seed, progress=False)
  clean = {d.name: float(np.mean(run.correct(xf, y, d))) for d in everyone}
  acc = {}
  edges = {"original": nonzero_edge_fraction(xf)}
  for size in tqdm(sizes, desc="low resolution", disable=not progress):
    down = jax.jit(lambda xb, k, size=int(size): low_resolution(xb, size, method=method,
                                                                 antialias=antialias))
    xl = run.map(down, xf)
    edges[str(size)] = nonzero_edge_fraction(xl)
    acc[str(size)] = {d.name: float(np.mean(run.correct(xl, y, d))) for d in everyone}
  return {"accuracy": acc, "clean": clean, "sizes": [int(s) for s in sizes],
          "nonzero_edge_fraction": edges,
          "filter": f"jax.image.resize method={method!r}, antialias={antialias}; nearest upsampling "
                    "(source pixel floor(i*s/H))",
          "num_examples": int(len(xf)), "defenses": [d.name for d in everyone[1:]]}


# ----------------------------------------------------------------------------------------------------------
# Denoising PSNR


def evaluate_denoise(x, *, sigma: float = 0.1, sparsity: float = 0.6, tv_denoise=None,
                     tv_weights: Sequence[float] = (0.02, 0.05, 0.08, 0.12, 0.2),
                     tune_examples: int = 64, x_tune=None, seed: int = 0, smooth_kwargs=None,
                     batch_size: int = 100, progress: bool = True) -> dict:
  """PSNR of noisy, ISS-smoothed and (optionally) TV-denoised images (paper App. K, Fig. 15).

  Noise: ``clip(x + sigma * N(0, 1), 0, 1)``. The TV weight is the one of ``tv_weights`` with the best
  mean PSNR on ``tune_examples`` images of ``x_tune`` (held out; else the first images of ``x``) with
  their own noise draw.

  Args:
    x: ``(N, H, W, C)`` clean images, uint8 or float in ``[0, 1]``.
    sigma: noise standard deviation.
    sparsity: ISS smoothing sparsity.
    tv_denoise: ``tv_denoise(x, weight) -> x`` (e.g. ``iss_jax.baselines.tv_denoise``) or None to skip.
    tv_weights: candidate TV weights.
    tune_examples: images used to tune the TV weight.
    x_tune: held-out clean images for the TV weight (e.g. training images); None: the first of ``x``.
    seed: noise seed.
    smooth_kwargs: extra keyword arguments for ``iss_jax.smooth``.
    batch_size: images per jitted batch.
    progress: show a tqdm bar.

  Returns:
    ``{"psnr": {"noisy": [...], "smoothed": [...], "tv": [...]?}, "mean": {...}, "std": {...},
    "tv_weight": w or None, ...}``.
  """
  xf = as_float_images(x)
  noise = np.asarray(jax.random.normal(jax.random.key(seed), xf.shape, jnp.float32))
  noisy = np.clip(xf + sigma * noise, 0.0, 1.0)
  run = Runner(lambda z: z, batch_size=batch_size, seed=seed, progress=progress)
  smoothing = smoothing_defense(sparsity, **dict(smooth_kwargs or {}))
  smoothed = run.map(jax.jit(smoothing.transform), noisy, desc="smooth")
  out = {"noisy": np.asarray(psnr(xf, noisy)), "smoothed": np.asarray(psnr(xf, smoothed))}
  tv_weight = None
  tuning = {}
  if tv_denoise is not None:
    if x_tune is None:
      x_tune, tune_note = xf[:tune_examples], f"first {tune_examples} evaluation images (not held out)"
    else:
      x_tune, tune_note = as_float_images(x_tune, "x_tune")[:tune_examples], "held-out images"
    n_tune = np.asarray(jax.random.normal(jax.random.key(seed + 1), x_tune.shape, jnp.float32))
    noisy_tune = jnp.asarray(np.clip(x_tune + sigma * n_tune, 0.0, 1.0))
    for w in tv_weights:
      tuning[str(w)] = float(np.mean(psnr(x_tune, tv_denoise(noisy_tune, w))))
    tv_weight = float(max(tv_weights, key=lambda w: tuning[str(w)]))
    tv = run.map(jax.jit(lambda xb, k: tv_denoise(xb, tv_weight)), noisy)
    out["tv"] = np.asarray(psnr(xf, tv))
  return {"psnr": {k: v.tolist() for k, v in out.items()},
          "mean": {k: float(np.mean(v)) for k, v in out.items()},
          "std": {k: float(np.std(v)) for k, v in out.items()},
          "tv_weight": tv_weight, "tv_tuning": tuning,
          "tv_tuning_images": tune_note if tv_denoise is not None else None,
          "sigma": sigma, "sparsity": sparsity,
          "num_examples": int(len(xf)),
          "noise": f"clip(x + {sigma} * N(0, 1), 0, 1), seed {seed}"}




# ----------------------------------------------------------------------------------------------------------
# One defended model across the evaluations (a row of ``python -m eval.compare``)


def evaluate_defense(apply_fn: Callable[[Array], Array], x, y, defense: Defense, *,
                     eps: float = 8 / 255, pgd_steps: int = 10, step_size_factor: float = 2.5,
                     eot_samples: int = 4, corruptions: Sequence[str] = (),
                     severities: Sequence[int] = (3,), low_res_sizes: Sequence[int] = (16,),
                     attacks_: Sequence[str] = DEFAULT_ATTACKS, square_queries: int = SQUARE_QUERIES,
                     substitute_fn: Callable[[Array], Array] | None = None,
                     batch_size: int = 100, seed: int = 0, progress: bool = True) -> dict:
  """Every evaluation of one defended classifier, each through the same runner as the others.

  The columns come from :func:`evaluate_accuracy`, :func:`evaluate_corruptions`,
  :func:`evaluate_low_resolution` and :func:`evaluate_adversarial` (the attacks ``attacks_`` at one
  ``eps``), plus a black-box transfer attack from ``substitute_fn`` and the per-example worst case.

  Args:
    apply_fn: the classifier, ``(N, H, W, C)`` float ``[0, 1]`` -> logits (inference mode), or an
      ``iss_jax.robustness.RandomClassifier``.
    x: ``(N, H, W, C)`` test images, uint8 or float in ``[0, 1]``.
    y: ``(N,)`` int labels.
    defense: the defense (``iss_jax.robustness.no_defense()`` for the bare model).
    eps: L-infinity radius of every attack (pixel space ``[0, 1]``).
    pgd_steps: iterations of PGD, APGD and CW; PGD's step ``step_size_factor * eps / pgd_steps``.
    step_size_factor: see above (2.5: 2/255 for 8/255 and 10 steps).
    eot_samples: EOT draws per gradient step against a random defense or classifier.
    corruptions: names for the offline corruption generator; empty skips them.
    severities: corruption severities.
    low_res_sizes: sizes of the low-resolution column(s).
    attacks_: attacks of :data:`ATTACKS` (e.g. ``("pgd", "apgd-ce", "apgd-dlr", "square")``).
    square_queries: Square's queries per image.
    substitute_fn: an independently trained classifier: PGD examples made on it (white-box there) are
      fed to the defended one (the black-box ``transfer`` column, SPLIC's Table 1 protocol). None: skipped.
    batch_size: images per jitted batch.
    seed: PRNG seed (attacks, random defenses).
    progress: tqdm bars.

  Returns:
    ``{"defense": name, "accuracy": {column: value}, "attacks": {column: description}, ...}``. Columns:
    ``clean``; ``corruptions`` (mean); ``lowres<size>`` and, for several sizes, ``lowres`` (their mean);
    for ``fgsm`` / ``pgd``: ``<attack>`` = the attack on the bare classifier, then the defense (the paper's
    gray-box protocol; white-box for the bare model) and ``<attack>_adaptive`` = per example the stronger
    of that and the attack through the defense (its :attr:`Defense.gradient`, with EOT if random); for
    the other attacks ``<attack>`` = the attack through the defense; ``transfer`` (with
    ``substitute_fn``); ``worst`` = per example the worst case of every attack above (an image counts as
    robust only if no attack broke it).
  """
  xf = as_float_images(x)
  y = check_labels(y, len(xf))
  kw = {"batch_size": batch_size, "seed": seed}
  defended = [] if defense.transform is None else [defense]
  name = defense.name
  run = Runner(apply_fn, batch_size=batch_size, seed=seed, progress=False)
  acc, desc = {}, {}
  acc["clean"] = evaluate_accuracy(apply_fn, xf, y, defense=defense, **kw)
  desc["clean"] = "no attack"
  adv = evaluate_adversarial(apply_fn, xf, y, eps_grid=[eps], defenses=defended, attacks_=attacks_,
                             steps=pgd_steps, step_size_factor=step_size_factor, eot_samples=eot_samples,
                             square_queries=square_queries, substitute_fn=substitute_fn, progress=progress,
                             return_correct=True, **kw)
  correct = {(a, d, p): c for (a, _, d, p), c in adv.pop("correct").items()}
  e = f"eps={eps * 255:.3g}/255"
  how = run.describe(defense) + (f", {eot_samples} draws per step" if run.is_random(defense) else "")
  labels = {"fgsm": f"FGSM {e}", "pgd": f"PGD-{pgd_steps} {e} step={step_size_factor:g}*eps/{pgd_steps} "
            "random start", "apgd-ce": f"APGD-CE {pgd_steps} steps {e}",
            "apgd-dlr": f"APGD-DLR {pgd_steps} steps {e}",
            "apgd-t": f"APGD-T {pgd_steps} steps, 9 targets {e}",
            "square": f"Square {square_queries} queries {e} (no gradient)",
            "cw": f"CW-Linf {pgd_steps} steps {e}",
            "deepfool": f"DeepFool-Linf clipped to {e}", "autoattack": f"APGD-CE + APGD-T + Square {e}"}
  fresh_draw = " (a fresh random draw per query)"
  broken = []  # (N,) bool "still correct" of every attack on the defended classifier
  for a in attacks_:
    if not defended:
      acc[a] = float(np.mean(correct[(a, NONE, NONE)]))
      desc[a] = (f"{labels[a]} white-box" + (f" ({how})" if run.is_random() else "") if a != "square" else
                 f"{labels[a]} on the classifier's scores" + (fresh_draw if run.is_random() else ""))
      broken.append(correct[(a, NONE, NONE)])
      if a in ("fgsm", "pgd"):
        acc[f"{a}_adaptive"] = acc[a]
        desc[f"{a}_adaptive"] = "same as the non-adaptive attack (no defense)"
      continue
    adaptive = f"{labels[a]} through {name}: {how}"
    if a in ("fgsm", "pgd"):
      acc[a] = float(np.mean(correct[(a, name, GRAY_BOX)]))
      desc[a] = f"{labels[a]} on the bare classifier, then {name} (gray-box, the paper's protocol)"
      acc[f"{a}_adaptive"] = float(np.mean(correct[(a, name, "worst")]))
      desc[f"{a}_adaptive"] = adaptive + "; per example the stronger of this and the gray-box attack"
      broken.append(correct[(a, name, "worst")])
    else:
      acc[a] = float(np.mean(correct[(a, name, "adaptive")]))
      desc[a] = (adaptive if a != "square" else f"{labels[a]} on the scores of {name}"
                 + (fresh_draw if run.is_random(defense) else ""))
      broken.append(correct[(a, name, "adaptive")])
  if substitute_fn is not None:
    broken.append(correct[("transfer", name, BLACK_BOX if defended else NONE)])
    acc["transfer"] = float(np.mean(broken[-1]))
    desc["transfer"] = (f"black-box transfer: {labels['pgd']} white-box on an independently trained "
                        f"substitute, then {name}")
  if broken:
    acc["worst"] = float(np.mean(np.logical_and.reduce(broken)))
    desc["worst"] = "per example the worst case of " + ", ".join(
        [a for a in attacks_] + (["transfer"] if substitute_fn is not None else []))
  if corruptions:
    res = evaluate_corruptions(apply_fn, xf, y, names=list(corruptions), severities=list(severities),
                               defenses=defended, progress=progress, **kw)
    acc["corruptions"] = float(res["mean"][name])
    desc["corruptions"] = (f"mean over {len(corruptions)} corruption types x severities "
                           f"{list(severities)}: {res['source']}")
  for size in low_res_sizes:
    res = evaluate_low_resolution(apply_fn, xf, y, sizes=[int(size)], defenses=defended, progress=False,
                                  **kw)
    acc[f"lowres{size}"] = float(res["accuracy"][str(size)][name])
    desc[f"lowres{size}"] = f"down to {size}x{size} ({res['filter']})"
  if len(low_res_sizes) > 1:
    acc["lowres"] = float(np.mean([acc[f"lowres{s}"] for s in low_res_sizes]))
    desc["lowres"] = "mean of " + ", ".join(f"{s}x{s}" for s in low_res_sizes)
  return {"defense": name, "accuracy": acc, "attacks": desc, "num_examples": int(len(xf)),
          "random": run.is_random(defense), "gradient": defense.gradient,
          "checks": adv["checks"], "violations": adv["violations"]}
