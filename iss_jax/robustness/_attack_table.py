"""The table of attacks the evaluations run: one :class:`Attack` entry per name in :data:`ATTACKS`.

Adding an attack to every evaluation (and to the command-line tools, whose attack choices, help and column
titles read this table) is adding one entry. Each entry knows how to attack a random classifier
``logits_fn(x, key)`` with EOT over :attr:`AttackSettings.samples` draws; a deterministic classifier
``apply_fn(x)`` gets the same attack with one draw unless the entry has a deterministic form of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from iss_jax.robustness import _apgd as apgd_lib
from iss_jax.robustness import _attacks as attacks
from iss_jax.robustness import _cw_l2 as cw_l2_lib
from iss_jax.robustness import _minimal as minimal
from iss_jax.robustness import _square as square_lib

Array = jax.Array


# Carlini-Wagner L2 at SPLIC's setting (Sec. 3.5: confidence 20, 5 bisection steps, Adam 0.005, 1,000
# iterations); an evaluation at an L-inf eps clips its perturbation to the eps ball, as SPLIC's tables do.
CW_L2 = {"kappa": 20.0, "binary_steps": 5, "steps": 1000, "lr": 0.005}


class AttackSettings(NamedTuple):
  """The budget every attack of one evaluation shares.

  Attributes:
    steps: iterations of PGD, APGD and CW.
    step_size_factor: PGD's (and CW's) step is ``step_size_factor * eps / steps``.
    restarts: random restarts (PGD on a deterministic classifier, APGD, CW).
    random_start: PGD's and CW's random start.
    square_queries: Square's query budget per image.
    samples: EOT draws per gradient step (1 for a deterministic classifier).
    cw_l2: C&W-L2's settings, ``(name, value)`` pairs of :func:`~iss_jax.robustness.cw_l2`'s keywords
      (default :data:`CW_L2`, SPLIC's).
  """

  steps: int = 10
  step_size_factor: float = 2.5
  restarts: int = 1
  random_start: bool = True
  square_queries: int = square_lib.SQUARE_QUERIES
  samples: int = 1
  cw_l2: tuple = tuple(CW_L2.items())

  def step_size(self, eps):
    """The sign-gradient step of PGD and CW at ``eps``."""
    return self.step_size_factor * eps / self.steps


# (settings, logits_fn(x, key), x, y, eps, key) -> x_adv;  (settings, apply_fn(x), x, y, eps, key) -> x_adv
RandomAttack = Callable[[AttackSettings, Callable[[Array, Array], Array], Array, Array, Array, Array], Array]
PlainAttack = Callable[[AttackSettings, Callable[[Array], Array], Array, Array, Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Attack:
  """One attack of the evaluations.

  Attributes:
    name: the key in :data:`ATTACKS` and in result rows, e.g. ``"pgd"``.
    label: the short title, e.g. ``"PGD"``.
    help: one line saying what it does (for command-line help and docs).
    budget: ``budget(settings, e) -> str``, the attack with its budget at ``e`` (``"eps=8/255"``), for the
      descriptions of :func:`iss_jax.robustness.evaluate_defense`.
    random: ``random(settings, logits_fn, x, y, eps, key) -> x_adv`` against a random
      ``logits_fn(x, key)``, EOT over ``settings.samples`` draws.
    plain: ``plain(settings, apply_fn, x, y, eps, key) -> x_adv`` against a deterministic
      ``apply_fn(x)``; None: ``random`` with one draw.
    gray_box_column: :func:`iss_jax.robustness.evaluate_defense` reports this attack on the bare
      classifier, then the defense (the paper's protocol) as ``name`` and the per-example stronger of that
      and the adaptive attack as ``name + "_adaptive"`` (otherwise ``name`` is the adaptive attack).
    gradient_free: it only reads the classifier's scores (described so).
    uses_apgd_budget: the result's settings record APGD's budget and Square's queries.
    minimal_norms: ``minimal_norms(logits_fn, x, key, samples) -> (N, 3)`` per-image minimal L-inf and L2
      norms and success (0/1), reported once per classifier over its correctly classified images; None:
      none.
    norms_help: what ``minimal_norms`` measures, for the result's settings.
    members: a combination of these attacks (AutoAttack): ``random`` / ``plain`` keep per example the
      first member point that fools the attacked classifier, and the adversarial evaluation reports each
      of its rows (bare, gray-box, adaptive) as the per-example worst case of the members' rows, each
      point judged by the classifier of the row (a point that fools the bare model first may transfer
      worse to the defense than another member's, so it is never above a member).
  """

  name: str
  label: str
  help: str
  budget: Callable[[AttackSettings, str], str]
  random: RandomAttack
  plain: PlainAttack | None = None
  gray_box_column: bool = False
  gradient_free: bool = False
  uses_apgd_budget: bool = False
  minimal_norms: Callable | None = None
  norms_help: str = ""
  members: tuple[str, ...] = ()

  def titles(self) -> dict[str, str]:
    """Column name -> table title of this attack's columns in :func:`iss_jax.robustness.evaluate_defense`."""
    if self.gray_box_column:
      return {self.name: f"{self.label} gray-box", f"{self.name}_adaptive": f"{self.label} adapt."}
    return {self.name: self.label}

  def against(self, settings: AttackSettings, random: bool) -> Callable:
    """``fn(model, x, y, eps, key) -> x_adv``: ``model`` is ``logits_fn(x, key)`` if ``random`` (EOT over
    ``settings.samples`` draws), else ``apply_fn(x)``."""
    if random:
      return lambda model, xb, yb, eps, key: self.random(settings, model, xb, yb, eps, key)
    if self.plain is not None:
      return lambda model, xb, yb, eps, key: self.plain(settings, model, xb, yb, eps, key)
    once = settings._replace(samples=1)
    return lambda model, xb, yb, eps, key: self.random(once, lambda z, _: model(z), xb, yb, eps, key)


def _averaged(logits, s: AttackSettings, key):
  """The logits averaged over ``s.samples`` draws, ``z -> logits`` (``key`` fixed: a deterministic view)."""
  return lambda z, k=key: attacks.eot(logits, s.samples)(z, k)


def _apgd(loss: str) -> RandomAttack:
  return lambda s, logits, x, y, eps, key: apgd_lib.eot_apgd(
      logits, x, y, eps=eps, key=key, steps=s.steps, loss=loss, restarts=s.restarts, samples=s.samples)


AUTOATTACK = ("apgd-ce", "apgd-t", "square")  # the per-example worst case reported as "autoattack"


def _autoattack(s: AttackSettings, logits, x, y, eps, key):
  """Per example the first of :data:`AUTOATTACK` that fools the classifier (judged on averaged logits)."""
  averaged = _averaged(logits, s, key)
  best, fooled = x, jnp.zeros(x.shape[0], bool)
  for i, m in enumerate(AUTOATTACK):
    x_m = ATTACKS[m].random(s, logits, x, y, eps, jax.random.fold_in(key, i))
    ok = jnp.argmax(averaged(x_m, jax.random.fold_in(key, 100 + i)), -1) != y
    best = jnp.where((ok & ~fooled)[:, None, None, None], x_m, best)
    fooled = fooled | ok
  return best


def _norms_rows(x_inf, ok_inf, x_2, ok_2, x):
  """``(N, 3)``: L-inf norm of ``x_inf - x``, L2 norm of ``x_2 - x`` (each inf where it failed), and
  whether both succeeded: the rows of :attr:`Attack.minimal_norms`."""
  d_inf = jnp.where(ok_inf, jnp.max(jnp.abs(x_inf - x), axis=(1, 2, 3)), jnp.inf)
  d_2 = jnp.where(ok_2, jnp.sqrt(jnp.sum((x_2 - x) ** 2, axis=(1, 2, 3))), jnp.inf)
  return jnp.stack([d_inf, d_2, (ok_inf & ok_2).astype(jnp.float32)], axis=-1)


def _deepfool_norms(logits, x, key, samples: int, s: AttackSettings):
  """``(N, 3)``: DeepFool's minimal L-inf and L2 norms (inf where it failed) and whether both succeeded."""
  averaged = lambda z: attacks.eot(logits, samples)(z, key)
  x_inf, ok_inf = minimal.deepfool(averaged, x, norm="linf")
  x_2, ok_2 = minimal.deepfool(averaged, x, norm="l2")
  return _norms_rows(x_inf, ok_inf, x_2, ok_2, x)


def _cw_budget(c: dict) -> str:
  return f"C&W-L2 kappa={c['kappa']:g} {c['binary_steps']}x{c['steps']} steps lr={c['lr']:g}"


def _cw_l2(logits, s: AttackSettings, key, x, y):
  return cw_l2_lib.cw_l2(_averaged(logits, s, key), x, y, **dict(s.cw_l2))


def _cw_l2_norms(logits, x, key, samples: int, s: AttackSettings):
  """``(N, 3)``: C&W-L2's L-inf and L2 norms (inf where it failed) and its success, at its own labels: the
  classifier's clean predictions (the caller keeps only the correctly classified images)."""
  averaged = lambda z: attacks.eot(logits, samples)(z, key)
  res = cw_l2_lib.cw_l2(averaged, x, jnp.argmax(averaged(x), -1), **dict(s.cw_l2))
  return _norms_rows(res.x_adv, res.success, res.x_adv, res.success, x)


_ENTRIES = (
    Attack("fgsm", "FGSM", "fast gradient sign, one step of eps",
           budget=lambda s, e: f"FGSM {e}",
           random=lambda s, logits, x, y, eps, key: attacks.eot_pgd(
               logits, x, y, key=key, eps=eps, step_size=eps, steps=1, samples=s.samples, random_start=False),
           plain=lambda s, f, x, y, eps, key: attacks.fgsm(f, x, y, eps=eps),
           gray_box_column=True),
    Attack("pgd", "PGD", "projected gradient descent on the cross-entropy (Madry et al.)",
           budget=lambda s, e: (f"PGD-{s.steps} {e} step={s.step_size_factor:g}*eps/{s.steps} "
                                "random start"),
           random=lambda s, logits, x, y, eps, key: attacks.eot_pgd(
               logits, x, y, key=key, eps=eps, step_size=s.step_size(eps), steps=s.steps, samples=s.samples,
               random_start=s.random_start),
           plain=lambda s, f, x, y, eps, key: attacks.pgd(
               f, x, y, eps=eps, step_size=s.step_size(eps), steps=s.steps, key=key,
               random_start=s.random_start, restarts=s.restarts),
           gray_box_column=True),
    Attack("apgd-ce", "APGD-CE", "Auto-PGD on the cross-entropy",
           budget=lambda s, e: f"APGD-CE {s.steps} steps {e}", random=_apgd("ce"), uses_apgd_budget=True),
    Attack("apgd-dlr", "APGD-DLR", "Auto-PGD on the DLR loss",
           budget=lambda s, e: f"APGD-DLR {s.steps} steps {e}", random=_apgd("dlr"), uses_apgd_budget=True),
    Attack("apgd-t", "APGD-T", "targeted Auto-PGD on the DLR loss, 9 targets",
           budget=lambda s, e: f"APGD-T {s.steps} steps, 9 targets {e}", random=_apgd("dlr-targeted"),
           uses_apgd_budget=True),
    Attack("square", "Square", "Square Attack, score-based random search (no gradient)",
           budget=lambda s, e: f"Square {s.square_queries} queries {e} (no gradient)",
           random=lambda s, logits, x, y, eps, key: square_lib.random_square(
               logits, x, y, eps=eps, key=key, queries=s.square_queries),
           plain=lambda s, f, x, y, eps, key: square_lib.square(f, x, y, eps=eps, key=key,
                                                                queries=s.square_queries),
           gradient_free=True, uses_apgd_budget=True),
    Attack("square-eot", "Square-EOT",
           "Square Attack keeping a proposal only if the margin averaged over the EOT draws improves (random "
           "defenses; Square on a deterministic one)",
           budget=lambda s, e: f"Square-EOT {s.square_queries} queries x {s.samples} draws {e} (no gradient)",
           random=lambda s, logits, x, y, eps, key: square_lib.eot_square(
               logits, x, y, eps=eps, key=key, queries=s.square_queries, samples=s.samples),
           plain=lambda s, f, x, y, eps, key: square_lib.square(f, x, y, eps=eps, key=key,
                                                                queries=s.square_queries),
           gradient_free=True, uses_apgd_budget=True),
    Attack("cw-linf", "CW-Linf", "PGD on the Carlini-Wagner margin loss (L-inf; not Carlini-Wagner L2)",
           budget=lambda s, e: f"CW-Linf {s.steps} steps {e}",
           random=lambda s, logits, x, y, eps, key: minimal.eot_cw(
               logits, x, y, eps=eps, step_size=s.step_size(eps), steps=s.steps, key=key,
               random_start=s.random_start, restarts=s.restarts, samples=s.samples)),
    Attack("deepfool", "DeepFool", "DeepFool's minimal L-inf perturbation clipped to the eps ball",
           budget=lambda s, e: f"DeepFool-Linf clipped to {e}",
           random=lambda s, logits, x, y, eps, key: minimal.deepfool_linf(_averaged(logits, s, key), x, y,
                                                                          eps=eps),
           minimal_norms=_deepfool_norms,
           norms_help=("L-inf DeepFool (10 classes, overshoot 0.02, 50 iterations) clipped to the eps ball; "
                       "median minimal L-inf / L2 norms over correctly classified images (a failure counts "
                       "as infinite)")),
    Attack("cw-l2", "C&W-L2",
           "Carlini-Wagner L2 (Adam in tanh space, bisection over c; SPLIC's kappa 20, 5 x 1,000 steps, lr "
           "0.005 unless the evaluation's cw_l2 says otherwise) clipped to the eps ball",
           budget=lambda s, e: _cw_budget(dict(s.cw_l2)) + f", clipped to {e}",
           random=lambda s, logits, x, y, eps, key: attacks._project(_cw_l2(logits, s, key, x, y).x_adv, x,
                                                                     attacks._radius(eps, x)),
           minimal_norms=_cw_l2_norms,
           norms_help=("Carlini-Wagner L2 at the settings' cw_l2 (default kappa 20, 5 bisection steps "
                       "of 1,000 Adam steps, lr 0.005), unclipped; median L-inf / L2 norms over correctly "
                       "classified images (a failure counts as infinite)")),
    Attack("autoattack", "AutoAttack", "per example the worst of APGD-CE, APGD-T and Square",
           budget=lambda s, e: f"APGD-CE + APGD-T + Square {e}", random=_autoattack, uses_apgd_budget=True,
           members=AUTOATTACK),
)
ATTACKS: dict[str, Attack] = {a.name: a for a in _ENTRIES}
DEFAULT_ATTACKS = ("fgsm", "pgd")
