"""The adversarial evaluation: every attack of :data:`ATTACKS` at each ``eps``, bare and behind each defense.

Protocols for a defended model: ``"gray-box"`` (attack the bare model, then defend: the main paper's
protocol), ``"adaptive"`` (attack through the defense with the gradient it gives, EOT when random), their
per-example ``"worst"``, and ``"black-box"`` (PGD examples of a substitute model, the ``"transfer"`` attack).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iss_jax._src.checks import as_float_images, check_labels
from iss_jax.robustness._attack_table import ATTACKS, AUTOATTACK, CW_L2, DEFAULT_ATTACKS, AttackSettings
from iss_jax.robustness._attacks import CIFAR10_STD, EPS_SPACES, eps_radius
from iss_jax.robustness._defenses import Defense, with_bare
from iss_jax.robustness._passes import PassCounter
from iss_jax.robustness._runner import Runner, runner_for
from iss_jax.robustness._square import SQUARE_QUERIES
from iss_jax.robustness._stats import wilson_interval

Array = jax.Array
NONE = "none"
GRAY_BOX = "gray-box"  # attack the bare model, then defend (the main paper's protocol)
PROTOCOLS = (GRAY_BOX, "adaptive")
BLACK_BOX = "black-box"  # the "transfer" attack: PGD examples of a substitute model

# Key salts: each pass of evaluate_adversarial draws from run.key_for(SALT, *indices) (attack index ai,
# eps index ei, defense index di, 0 for the bare model).
SALT_CLEAN = 0  # (di): clean predictions
SALT_ATTACK = 1  # (ai, ei, di): the attack's batches (di: the attacked defense, 0 for the bare model)
SALT_GRAY_BOX = 2  # (ai, ei, di): predictions of the bare model's adversarial images behind defense di
SALT_ADAPTIVE = 3  # (ai, ei, di): predictions of the adaptive adversarial images behind defense di
SALT_NORMS = 4  # (di): minimal-perturbation norms (DeepFool)
SALT_TRANSFER = 5  # (ei): the substitute's PGD batches
SALT_BLACK_BOX = 6  # (ei, di): predictions of the substitute's adversarial images
SALT_MASKING = 7  # evaluate_defense's gradient-masking probes (evaluate's keys behind this salt)


def _check_request(eps_grid, attacks_, protocols, eps_space: str = "pixel", std=CIFAR10_STD) -> list[float]:
  """``eps_grid`` as floats, after checking it (each a pixel radius in ``[0, 1]`` once read in
  ``eps_space``), ``attacks_`` and ``protocols`` (one sentence each)."""
  if eps_space not in EPS_SPACES:
    raise ValueError(f"eps_space must be one of {EPS_SPACES}; got {eps_space!r}.")
  eps_grid = [float(e) for e in eps_grid]
  for e in eps_grid:
    if not 0.0 <= e <= 1.0:
      raise ValueError(f"eps_grid values must be in [0, 1] ({eps_space} space); got {e}.")
    eps_radius(e, eps_space, std)
  for a in attacks_:
    if a not in ATTACKS:
      hint = {"transfer": " (the black-box 'transfer' attack runs when a substitute model is given)",
              "cw": " (PGD on the Carlini-Wagner margin is 'cw-linf'; 'cw-l2' is the Carlini-Wagner L2 "
                    "attack)"}.get(a, "")
      raise ValueError(f"attacks must be among {tuple(ATTACKS)}; got {a!r}{hint}.")
  for p in protocols:
    if p not in PROTOCOLS:
      hint = (" (the protocol that attacks the bare model and then defends is 'gray-box'; 'transfer' is "
              "the black-box attack from a substitute model)" if p == "transfer" else "")
      raise ValueError(f"protocols must be among {PROTOCOLS}; got {p!r}{hint}.")
  return eps_grid


def _compiled_attack(run: Runner, name: str, defense: Defense, settings: AttackSettings, eot_samples: int):
  """The jitted attack ``(x, y, eps, key) -> x_adv`` on the classifier behind ``defense`` (EOT if random)."""
  logits = run.logits_fn(defense)
  if run.is_random(defense):
    fn = ATTACKS[name].against(settings._replace(samples=eot_samples), random=True)
    return jax.jit(lambda xb, yb, eps, k: fn(logits, xb, yb, eps, k))
  fn = ATTACKS[name].against(settings, random=False)
  return jax.jit(lambda xb, yb, eps, k: fn(lambda z: logits(z, k), xb, yb, eps, k))


def _attack_images(run: Runner, fn, x, y, radius, key) -> np.ndarray:
  """``fn`` over the batches of ``x`` at the pixel ``radius`` (scalar or ``(C,)``), checked to stay in the
  ball per channel."""
  r = jnp.asarray(radius, jnp.float32)
  x_adv = run.map(lambda xb, yb, k: fn(xb, yb, r, k), x, y, key=key)
  if np.isnan(x_adv).any():
    bad = int(np.isnan(x_adv).any((1, 2, 3)).sum())
    raise FloatingPointError(f"apply_fn: the attack's points are NaN on {bad} of {len(x)} images: the "
                             "classifier's logits or their gradient are not finite.")
  delta = np.abs(x_adv - x).reshape(-1, x.shape[-1]).max(axis=0, initial=0.0)
  assert np.all(delta <= np.asarray(radius) + 1e-5), "attack left the eps-ball"
  return x_adv


def _minimal_norms(run: Runner, name: str, defense: Defense, x, clean_correct, samples: int, key,
                   settings: AttackSettings) -> dict:
  """The median minimal L-inf / L2 norms of attack ``name`` over the images ``defense`` classifies right."""
  logits = run.logits_fn(defense)
  norms = ATTACKS[name].minimal_norms
  fn = jax.jit(lambda xb, k: norms(logits, xb, k, samples if run.is_random(defense) else 1, settings))
  out = run.map(fn, x, key=key)[np.asarray(clean_correct, bool)]
  if len(out) == 0:
    return {"median_linf": None, "median_l2": None, "num_images": 0, "success_rate": None}
  finite = lambda v: float(v) if np.isfinite(v) else None  # None: the attack failed on most images
  return {"median_linf": finite(np.median(out[:, 0])), "median_l2": finite(np.median(out[:, 1])),
          "num_images": int(len(out)), "success_rate": float(np.mean(out[:, 2]))}


def transfer_name(attack: str) -> str:
  """The row name of the black-box transfer of ``attack``: ``"transfer"`` for PGD, ``"transfer-<attack>"``
  for the others."""
  return "transfer" if attack == "pgd" else f"transfer-{attack}"


def _transfer(run: Runner, substitute_fn, x, y, eps_grid, everyone, settings: AttackSettings,
              eot_samples: int, radius: dict, attacks_: Sequence[str] = ("pgd",)) -> dict:
  """The black-box transfer rows: examples of each of ``attacks_`` made on ``substitute_fn`` (white-box
  there, at the pixel radius ``radius[eps]``) fed to every classifier (row attack :func:`transfer_name`)."""
  sub = Runner(substitute_fn, batch_size=run.batch_size, seed=run.seed, progress=False)
  samples = eot_samples if sub.is_random() else 1
  logits = sub.logits_fn()
  correct = {}
  for ai, a in enumerate(attacks_):
    attack = ATTACKS[a].against(settings._replace(restarts=1, samples=samples), random=True)
    make = jax.jit(lambda xb, yb, eps, k, attack=attack: attack(logits, xb, yb, eps, k))
    for ei, eps in enumerate(eps_grid):
      r = jnp.asarray(radius[eps], jnp.float32)
      salt = (SALT_TRANSFER, ei) if a == "pgd" else (SALT_TRANSFER, ei, ai + 1)
      x_sub = sub.map(lambda xb, yb, k, r=r, make=make: make(xb, yb, r, k), x, y, key=run.key_for(*salt))
      for di, d in enumerate(everyone):
        protocol = NONE if d.name == NONE else BLACK_BOX
        correct[(transfer_name(a), eps, d.name, protocol)] = run.correct(
            x_sub, y, d, key=run.key_for(SALT_BLACK_BOX, ei, di, *salt[2:]))
  return correct


def _cw_l2_settings(overrides: dict | None) -> tuple:
  """C&W-L2's keywords: SPLIC's (``CW_L2``) with ``overrides``, checked by name."""
  overrides = dict(overrides or {})
  unknown = sorted(set(overrides) - set(CW_L2) - {"c_init"})
  if unknown:
    raise ValueError(f"cw_l2 takes keywords among {sorted(CW_L2) + ['c_init']}; got {unknown}.")
  return tuple({**CW_L2, **overrides}.items())


def _settings_summary(eps_grid, attacks_, settings: AttackSettings, everyone, protocols, seed, eot_samples,
                      minimal_norms, eps_space: str = "pixel", std=CIFAR10_STD,
                      transfer_attacks: Sequence[str] = ()) -> dict:
  s = settings
  space = ("Linf, [0, 1] pixel space" if eps_space == "pixel" else
           f"Linf on normalised inputs (x - mean) / std: pixel radius eps * std per channel, std "
           f"{tuple(float(v) for v in std)}")
  out = {"eps_grid": eps_grid, "eps_space": eps_space, "attacks": list(attacks_), "pgd_steps": s.steps,
         "pgd_step_size": f"{s.step_size_factor} * eps / {s.steps}", "restarts": s.restarts,
         "random_start": s.random_start, "defenses": [d.name for d in everyone[1:]],
         "protocols": list(protocols), "seed": seed, "norm": space,
         "eot": f"{eot_samples} draws per gradient step against random defenses"}
  if eps_space != "pixel":
    out["std"] = [float(v) for v in std]
    out["pixel_radius"] = {str(e): [float(r) for r in np.atleast_1d(eps_radius(e, eps_space, std))]
                           for e in eps_grid}
  for a in minimal_norms:
    out[a] = ATTACKS[a].norms_help
  if "cw-l2" in attacks_ or "cw-l2" in transfer_attacks:
    out["cw_l2"] = dict(s.cw_l2)
  if any(ATTACKS[a].uses_apgd_budget for a in attacks_):
    out["apgd"] = f"{s.steps} steps, {s.restarts} restart(s), 9 targets (apgd-t), rho 0.75"
    out["square_queries"] = s.square_queries
  return out


def evaluate_adversarial(apply_fn: Callable[[Array], Array], x, y, *, eps_grid: Sequence[float],
                         defenses: Sequence[Defense] = (), attacks_: Sequence[str] = DEFAULT_ATTACKS,
                         steps: int = 10, step_size_factor: float = 2.5, restarts: int = 1,
                         random_start: bool = True, protocols: Sequence[str] = PROTOCOLS,
                         eot_samples: int = 4, batch_size: int = 100, seed: int = 0,
                         progress: bool = True, square_queries: int = SQUARE_QUERIES,
                         substitute_fn: Callable[[Array], Array] | None = None,
                         return_correct: bool = False, runner: Runner | None = None,
                         eps_space: str = "pixel", std=CIFAR10_STD,
                         transfer_attacks: Sequence[str] = ("pgd",), cw_l2: dict | None = None,
                         count_passes: bool = True, minimal_norms: bool = True) -> dict:
  """Accuracy under each attack at each ``eps``, bare and behind each defense, with sanity checks.

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
    eps_grid: L-infinity radii (e.g. ``[2/255, 4/255, 8/255]``) in ``eps_space``.
    defenses: the defended models to evaluate besides the bare one.
    attacks_: names of :data:`ATTACKS` (each entry's ``help`` says what it does): ``"fgsm"``, ``"pgd"``,
      ``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-t"``, ``"square"``, ``"square-eot"``, ``"cw-linf"``,
      ``"cw-l2"``, ``"deepfool"`` and ``"autoattack"`` (every row of a combination is per example the worst
      case of its members' rows: never above a member); the median norms of an attack with
      ``minimal_norms`` (DeepFool, C&W-L2) go to ``result[name]``.
    steps: PGD iterations (also APGD's and CW's).
    step_size_factor: PGD step ``= step_size_factor * eps / steps`` (Madry et al. use 2.5).
    restarts: PGD random restarts (deterministic models).
    random_start: PGD random start.
    protocols: subset of ``("gray-box", "adaptive")``.
    eot_samples: draws per gradient step against a random defense.
    batch_size: images per jitted batch (when no ``runner`` is given).
    seed: PRNG seed (random starts, random defenses; when no ``runner`` is given).
    progress: show a tqdm bar.
    square_queries: Square's query budget per image.
    substitute_fn: an independently trained classifier: the black-box ``"transfer"`` attack makes PGD
      examples on it (white-box there, EOT if it is random) and feeds them to the bare model and to every
      defense (rows with protocol ``"black-box"``). None: no transfer attack.
    transfer_attacks: the attacks of :data:`ATTACKS` made on ``substitute_fn`` for the black-box rows
      (SPLIC's Table 1: ``("fgsm", "pgd", "cw-l2")``); row attack ``"transfer"`` for PGD,
      ``"transfer-<attack>"`` for the others.
    return_correct: also return ``result["correct"]``, ``{(attack, eps, defense, protocol): (N,) bool}``
      per example (for per-example worst cases across calls; not JSON-ready).
    runner: a :class:`~iss_jax.robustness.Runner` of ``apply_fn`` to share compiled functions and clean
      predictions with other evaluations; None: a new one from ``batch_size`` and ``seed``.
    eps_space: ``"pixel"`` (the default: radii in ``[0, 1]`` pixels) or ``"normalized"`` (radii on
      normalised inputs, the main paper's Sec. 4.2: each attack runs at the per-channel pixel radius
      ``eps * std_c``, :func:`eps_radius`).
    std: the per-channel standard deviations of the normalisation (``"normalized"`` only).
    cw_l2: keywords of :func:`~iss_jax.robustness.cw_l2` that replace SPLIC's setting (``kappa`` 20,
      ``binary_steps`` 5, ``steps`` 1,000, ``lr`` 0.005) for ``"cw-l2"`` and its transfer row, e.g.
      ``{"steps": 100}`` for a smaller budget (reported in ``settings``).
    count_passes: count the classifier's forward and backward passes per attack and ``eps``, as the
      compiled attacks run them (:class:`~iss_jax.robustness.PassCounter`; Square's queries only the
      images still robust, so its count is below ``queries x N``); not with a ``runner`` (it runs a
      classifier of its own).
    minimal_norms: also run the unbounded attacks of those with ``minimal_norms`` (DeepFool, C&W-L2) for
      their median norms; False: only their eps rows (an evaluation that reports accuracies only saves
      two DeepFool runs and one C&W-L2 run per classifier).

  Returns:
    A dict with ``"clean"`` (``{defense: accuracy}``), ``"rows"`` (list of ``{"attack", "eps",
    "eps_space", "defense", "protocol", "accuracy"}``, ``eps`` in ``eps_space``, protocol ``"none"`` for
    the bare model), ``"checks"`` (list of
    ``{"check", "ok", "detail"}``), ``"violations"`` (count), ``"defenses"`` (name -> how it is
    attacked), ``"gray_box_stronger"`` (the cells where the gray-box attack breaks more images than the
    adaptive one, with the images only each breaks), ``"settings"`` and ``"passes"`` (with
    ``count_passes``: a list of ``{"attack", "eps", "forward", "backward"}``, each attack's points made
    and judged, bare and behind every defense; ``eps`` None for the minimal norms; the substitute's
    passes of a transfer attack are not counted; None with a ``runner``).

  Raises:
    ValueError: bad shapes, unknown attack/protocol, ``eps`` outside ``[0, 1]``.
  """
  x = as_float_images(x)
  y = check_labels(y, len(x))
  eps_grid = _check_request(eps_grid, attacks_, protocols, eps_space, std)
  radius = {e: eps_radius(e, eps_space, std) for e in eps_grid}  # the pixel radius of each eps
  for a in transfer_attacks:
    if a not in ATTACKS:
      raise ValueError(f"transfer_attacks must be among {tuple(ATTACKS)}; got {a!r}.")
  everyone = with_bare(defenses)
  counter = PassCounter() if count_passes and runner is None else None
  run = runner_for(apply_fn if counter is None else counter.wrap(apply_fn), runner, batch_size=batch_size,
                   seed=seed)
  passes = []

  def counted(attack: str, eps, fn):
    """``fn()``, its passes appended to ``passes`` under ``attack`` and ``eps``."""
    before = counter.read() if counter is not None else None
    out = fn()
    if counter is not None:
      after = counter.read()
      passes.append({"attack": attack, "eps": eps, "forward": after[0] - before[0],
                     "backward": after[1] - before[1]})
    return out

  settings = AttackSettings(steps, step_size_factor, restarts, random_start, square_queries,
                            cw_l2=_cw_l2_settings(cw_l2))
  attacked = everyone[:1] + (everyone[1:] if "adaptive" in protocols else [])  # attacked end to end
  clean = {d.name: run.clean_correct(x, y, d, key=run.key_for(SALT_CLEAN, di))
           for di, d in enumerate(everyone)}
  correct, norms = {}, {}  # (attack, eps, defense, protocol) -> (N,) bool; attack -> {defense: norms}
  # The attacks that run: each attack of attacks_, or for a combination (AutoAttack) each of its members.
  runs = list(dict.fromkeys(m for a in attacks_ for m in (ATTACKS[a].members or (a,))))
  index = {m: attacks_.index(m) if m in attacks_ else len(attacks_) + list(ATTACKS).index(m) for m in runs}
  compiled = {(m, d.name): _compiled_attack(run, m, d, settings, eot_samples) for m in runs for d in attacked}
  bar = tqdm(total=len(eps_grid) * len(runs) * len(attacked), desc="adversarial", disable=not progress)
  attack_rows = {}  # (attack, ei) -> {(defense, protocol): (N,) bool}

  def rows_of(m: str, ei: int, eps: float) -> dict:
    """Attack ``m`` at ``eps``: its bare-model points judged bare and behind each defense (gray-box), and
    its points made through each attacked defense (adaptive)."""
    if (m, ei) not in attack_rows:
      attack_rows[(m, ei)] = counted(m, eps, lambda: _rows_of(m, ei, eps))
    return attack_rows[(m, ei)]

  def _rows_of(m: str, ei: int, eps: float) -> dict:
    mi = index[m]
    x_bare = _attack_images(run, compiled[(m, NONE)], x, y, radius[eps], run.key_for(SALT_ATTACK, mi, ei, 0))
    bar.update(1)
    rows = {(NONE, NONE): run.correct(x_bare, y)}
    for di, d in enumerate(everyone[1:], start=1):
      if GRAY_BOX in protocols:
        rows[(d.name, GRAY_BOX)] = run.correct(x_bare, y, d, key=run.key_for(SALT_GRAY_BOX, mi, ei, di))
      if d in attacked:
        x_adv = _attack_images(run, compiled[(m, d.name)], x, y, radius[eps],
                               run.key_for(SALT_ATTACK, mi, ei, di))
        bar.update(1)
        rows[(d.name, "adaptive")] = run.correct(x_adv, y, d, key=run.key_for(SALT_ADAPTIVE, mi, ei, di))
    return rows

  for a in attacks_:
    if minimal_norms and ATTACKS[a].minimal_norms is not None and eps_grid:  # once per classifier
      norms[a] = counted(a, None, lambda a=a: {
          d.name: _minimal_norms(run, a, d, x, clean[d.name], eot_samples, run.key_for(SALT_NORMS, di),
                                 settings) for di, d in enumerate(attacked)})
    for ei, eps in enumerate(eps_grid):
      # A combination's example survives only if it survives each member's point, judged by the classifier
      # of the row: per example the member point strongest against it (for gray-box: the point strongest
      # against the defense, not the first that fooled the bare model).
      members = [rows_of(m, ei, eps) for m in ATTACKS[a].members or (a,)]
      for row in members[0]:
        correct[(a, eps, *row)] = np.logical_and.reduce([rows[row] for rows in members])
      for d in everyone[1:]:
        if d in attacked and GRAY_BOX in protocols:
          correct[(a, eps, d.name, "worst")] = (correct[(a, eps, d.name, "adaptive")]
                                                & correct[(a, eps, d.name, GRAY_BOX)])
  if substitute_fn is not None:
    correct.update(_transfer(run, substitute_fn, x, y, eps_grid, everyone, settings, eot_samples, radius,
                             transfer_attacks))
  bar.close()

  result = {
      "clean": {name: float(np.mean(c)) for name, c in clean.items()},
      "rows": [{"attack": a, "eps": e, "eps_space": eps_space, "defense": d, "protocol": p,
                "accuracy": float(np.mean(c)),
                "interval95": wilson_interval(float(np.mean(c)), len(x))}
               for (a, e, d, p), c in correct.items()],
      "num_examples": int(len(x)),
      "defenses": {d.name: run.describe(d) for d in everyone},
      "settings": _settings_summary(eps_grid, attacks_, settings, everyone, protocols, run.seed, eot_samples,
                                    list(norms), eps_space, std,
                                    transfer_attacks if substitute_fn is not None else ()),
  }
  result.update(norms)
  result["passes"] = passes if counter is not None else None
  result["gray_box_stronger"] = _gray_box_stronger(correct)
  result["checks"] = adversarial_sanity_checks(result)
  result["violations"] = sum(not c["ok"] for c in result["checks"])
  if return_correct:
    result["correct"] = correct
  return result


def _gray_box_stronger(correct: dict) -> list[dict]:
  """The cells where the gray-box point (made on the bare model) breaks more images than the adaptive one
  (made through the defense): ``{"attack", "eps", "defense", "gray_box", "adaptive", "only_gray_box",
  "only_adaptive"}`` (accuracies, and the images only that point breaks). The worst case takes both."""
  out = []
  for (a, e, d, p), adaptive in correct.items():
    gray = correct.get((a, e, d, GRAY_BOX))
    if p != "adaptive" or gray is None or not np.mean(gray) < np.mean(adaptive):
      continue
    out.append({"attack": a, "eps": e, "defense": d, "gray_box": float(np.mean(gray)),
                "adaptive": float(np.mean(adaptive)), "only_gray_box": int(np.sum(~gray & adaptive)),
                "only_adaptive": int(np.sum(gray & ~adaptive))})
  return out


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
