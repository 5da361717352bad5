"""One defended classifier across the evaluations (a row of a comparison table), through one runner.

Every evaluation takes ``apply_fn(x) -> logits`` and a sequence of :class:`~iss_jax.robustness.Defense`
(the bare model is always evaluated too, as ``"none"``), and returns a plain dict of numbers (JSON-ready)
whose columns are the defense names. Images are ``(N, H, W, C)``, uint8 or float in ``[0, 1]``. Each
evaluation lives beside its transforms (``_adversarial``, ``_corruptions``, ``_low_resolution``,
``_frequency``, ``_denoise``); :func:`evaluate_defense` runs them all on one :class:`Runner`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from iss_jax._src.checks import as_float_images, check_labels
from iss_jax.robustness._adversarial import BLACK_BOX, GRAY_BOX, NONE, SALT_MASKING, evaluate_adversarial
from iss_jax.robustness._attack_table import ATTACKS, DEFAULT_ATTACKS, AttackSettings
from iss_jax.robustness._corruptions import evaluate_corruptions
from iss_jax.robustness._defenses import Defense
from iss_jax.robustness._evaluate import CHECK_EXAMPLES, SWEEP_EPS, _Attacks, check_counts, masking_probes
from iss_jax.robustness._low_resolution import evaluate_low_resolution
from iss_jax.robustness._masking import gradient_free_check
from iss_jax.robustness._runner import Runner, runner_for
from iss_jax.robustness._square import SQUARE_QUERIES

Array = jax.Array


def evaluate_accuracy(apply_fn, x, y, *, defense: Defense | None = None, batch_size: int = 100,
                      seed: int = 0, runner: Runner | None = None) -> float:
  """Top-1 accuracy of ``apply_fn`` on ``x``, behind ``defense`` (None: the bare model).

  ``runner``: a :class:`Runner` of ``apply_fn`` to share (its clean predictions are memoised); None: a
  new one from ``batch_size`` and ``seed``.
  """
  xf = as_float_images(x)
  run = runner_for(apply_fn, runner, batch_size=batch_size, seed=seed)
  return float(np.mean(run.clean_correct(xf, y, defense)))


def _attack_columns(run: Runner, defense: Defense, correct: dict, attacks_, settings: AttackSettings,
                    eps: float, eot_samples: int, acc: dict, desc: dict) -> list:
  """Fills ``acc`` / ``desc`` with the attack columns; returns each column's per-example survivors."""
  defended, name = defense.transform is not None, defense.name
  e = f"eps={eps * 255:.3g}/255"
  how = run.describe(defense) + (f", {eot_samples} draws per step" if run.is_random(defense) else "")
  fresh_draw = " (a fresh random draw per query)"
  survivors = []
  for a in attacks_:
    attack, label = ATTACKS[a], ATTACKS[a].budget(settings, e)
    if not defended:
      acc[a] = float(np.mean(correct[(a, NONE, NONE)]))
      desc[a] = (f"{label} white-box" + (f" ({how})" if run.is_random() else "") if not attack.gradient_free
                 else f"{label} on the classifier's scores" + (fresh_draw if run.is_random() else ""))
      survivors.append(correct[(a, NONE, NONE)])
      if attack.gray_box_column:
        acc[f"{a}_adaptive"] = acc[a]
        desc[f"{a}_adaptive"] = "same as the non-adaptive attack (no defense)"
      continue
    adaptive = f"{label} through {name}: {how}"
    if attack.gray_box_column:
      acc[a] = float(np.mean(correct[(a, name, GRAY_BOX)]))
      desc[a] = f"{label} on the bare classifier, then {name} (gray-box, the paper's protocol)"
      acc[f"{a}_adaptive"] = float(np.mean(correct[(a, name, "worst")]))
      desc[f"{a}_adaptive"] = adaptive + "; per example the stronger of this and the gray-box attack"
      survivors.append(correct[(a, name, "worst")])
    else:
      acc[a] = float(np.mean(correct[(a, name, "adaptive")]))
      desc[a] = (adaptive if not attack.gradient_free else f"{label} on the scores of {name}"
                 + (fresh_draw if run.is_random(defense) else ""))
      survivors.append(correct[(a, name, "adaptive")])
  return survivors


def _masking_flags(run: Runner, defense: Defense, x, y, attacks_, survivors, settings: AttackSettings,
                   eot_samples: int, eps: float, eps_space: str, worst: float, check_examples: int) -> list:
  """The gradient-masking checks of :func:`iss_jax.robustness.evaluate` that a row's columns do not already
  make (:func:`adversarial_sanity_checks` compares FGSM with PGD and gray-box with adaptive): the model
  checks, the eps sweep and the unbounded attack on the first ``check_examples`` images
  (:func:`masking_probes`, under their own keys), and each gradient-free attack against the per-example
  worst case of the gradient attacks."""
  random = run.is_random(defense)
  atk = _Attacks(run, defense, x, y, settings._replace(restarts=1), eot_samples if random else 1, 1,
                 prefix=(SALT_MASKING,))
  clean = run.clean_correct(x, y, defense)
  pixel_eps = eps if eps_space == "pixel" else 0.0  # a normalised eps: the sweep always runs
  flags, _ = masking_probes(atk, clean, eps=pixel_eps, check_examples=check_examples,
                            robust_accuracy=worst if pixel_eps >= SWEEP_EPS else None, random_protocol=random)
  gradient = [s for a, s in zip(attacks_, survivors, strict=True) if not ATTACKS[a].gradient_free]
  if gradient:
    before = np.logical_and.reduce(gradient)  # survivors of every gradient attack
    for a, s in zip(attacks_, survivors, strict=True):
      if ATTACKS[a].gradient_free:
        flags.append(gradient_free_check(float(np.mean(before)), float(np.mean(before & s)), len(x), name=a))
  return flags


def evaluate_defense(apply_fn: Callable[[Array], Array], x, y, defense: Defense, *,
                     eps: float = 8 / 255, pgd_steps: int = 10, step_size_factor: float = 2.5,
                     eot_samples: int = 4, corruptions: Sequence[str] = (),
                     severities: Sequence[int] = (3,), low_res_sizes: Sequence[int] = (16,),
                     attacks_: Sequence[str] = DEFAULT_ATTACKS, square_queries: int = SQUARE_QUERIES,
                     substitute_fn: Callable[[Array], Array] | None = None,
                     batch_size: int = 100, seed: int = 0, progress: bool = True,
                     runner: Runner | None = None, eps_space: str = "pixel", masking_checks: bool = True,
                     check_examples: int = CHECK_EXAMPLES) -> dict:
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
    eps: L-infinity radius of every attack, in ``eps_space``.
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
    batch_size: images per jitted batch (when no ``runner`` is given).
    seed: PRNG seed (attacks, random defenses; when no ``runner`` is given).
    progress: tqdm bars.
    runner: a :class:`~iss_jax.robustness.Runner` of ``apply_fn``; None: a new one from ``batch_size`` and
      ``seed``. Every evaluation of the row runs through it, so each function compiles once and the clean
      images are predicted once per defense (and key, for a random one).
    eps_space: ``"pixel"`` (``eps`` in ``[0, 1]`` pixels) or ``"normalized"`` (on CIFAR-10-normalised
      inputs: the per-channel pixel radius ``eps * std_c``, :func:`~iss_jax.robustness.eps_radius`).
    masking_checks: add the gradient-masking checks of :func:`~iss_jax.robustness.evaluate` to
      ``checks``: outputs that look like probabilities, clean predictions that change between two runs
      (of a classifier not treated as random), zero gradients at the clean images, accuracy not reaching
      ~0 at eps 0.5 and an unbounded attack (APGD-CE at eps 1) not fooling ~every image (on the first
      ``check_examples`` images; their points are outside ``eps`` and count nowhere else), and a
      gradient-free attack (``square``) breaking images every gradient attack left robust. FGSM vs PGD and
      gray-box vs adaptive are :func:`adversarial_sanity_checks` of the attack columns.
    check_examples: images of those checks.

  Returns:
    ``{"defense": name, "accuracy": {column: value}, "attacks": {column: description}, ...}``. Columns:
    ``clean``; ``corruptions`` (mean); ``lowres<size>`` and, for several sizes, ``lowres`` (their mean);
    for the attacks with a gray-box column (``fgsm`` / ``pgd``): ``<attack>`` = the attack on the bare
    classifier, then the defense (the paper's gray-box protocol; white-box for the bare model) and
    ``<attack>_adaptive`` = per example the stronger of that and the attack through the defense (its
    :attr:`Defense.gradient`, with EOT if random); for the other attacks ``<attack>`` = the attack through
    the defense; ``transfer`` (with ``substitute_fn``); ``worst`` = per example the worst case of every
    attack above (an image counts as robust only if no attack broke it).
  """
  if masking_checks:
    check_counts(check_examples=check_examples)
  xf = as_float_images(x)
  y = check_labels(y, len(xf))
  defended = [] if defense.transform is None else [defense]
  name = defense.name
  run = runner_for(apply_fn, runner, batch_size=batch_size, seed=seed)
  acc, desc = {}, {}
  acc["clean"] = evaluate_accuracy(apply_fn, xf, y, defense=defense, runner=run)
  desc["clean"] = "no attack"
  adv = evaluate_adversarial(apply_fn, xf, y, eps_grid=[eps], defenses=defended, attacks_=attacks_,
                             steps=pgd_steps, step_size_factor=step_size_factor, eot_samples=eot_samples,
                             square_queries=square_queries, substitute_fn=substitute_fn, progress=progress,
                             return_correct=True, runner=run, eps_space=eps_space)
  correct = {(a, d, p): c for (a, _, d, p), c in adv.pop("correct").items()}
  settings = AttackSettings(steps=pgd_steps, step_size_factor=step_size_factor, square_queries=square_queries)
  survivors = _attack_columns(run, defense, correct, attacks_, settings, eps, eot_samples, acc, desc)
  if substitute_fn is not None:
    survivors.append(correct[("transfer", name, BLACK_BOX if defended else NONE)])
    acc["transfer"] = float(np.mean(survivors[-1]))
    desc["transfer"] = (f"black-box transfer: {ATTACKS['pgd'].budget(settings, f'eps={eps * 255:.3g}/255')} "
                        f"white-box on an independently trained substitute, then {name}")
  if survivors:
    acc["worst"] = float(np.mean(np.logical_and.reduce(survivors)))
    desc["worst"] = "per example the worst case of " + ", ".join(
        list(attacks_) + (["transfer"] if substitute_fn is not None else []))
  checks = list(adv["checks"])
  if masking_checks:
    checks += _masking_flags(run, defense, xf, y, attacks_, survivors[:len(attacks_)], settings, eot_samples,
                             eps, eps_space, acc.get("worst", acc["clean"]), check_examples)
  if corruptions:
    res = evaluate_corruptions(apply_fn, xf, y, names=list(corruptions), severities=list(severities),
                               defenses=defended, seed=seed, progress=progress, runner=run)
    acc["corruptions"] = float(res["mean"][name])
    desc["corruptions"] = (f"mean over {len(corruptions)} corruption types x severities "
                           f"{list(severities)}: {res['source']}")
  for size in low_res_sizes:
    res = evaluate_low_resolution(apply_fn, xf, y, sizes=[int(size)], defenses=defended, progress=False,
                                  runner=run)
    acc[f"lowres{size}"] = float(res["accuracy"][str(size)][name])
    desc[f"lowres{size}"] = f"down to {size}x{size} ({res['filter']})"
  if len(low_res_sizes) > 1:
    acc["lowres"] = float(np.mean([acc[f"lowres{s}"] for s in low_res_sizes]))
    desc["lowres"] = "mean of " + ", ".join(f"{s}x{s}" for s in low_res_sizes)
  return {"defense": name, "accuracy": acc, "attacks": desc, "num_examples": int(len(xf)), "eps": float(eps),
          "eps_space": eps_space,
          "random": run.is_random(defense), "gradient": defense.gradient,
          "checks": checks, "violations": sum(not c["ok"] for c in checks)}
