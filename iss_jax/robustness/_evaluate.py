"""The one call of an adversarial evaluation: :func:`evaluate`, AutoAttack-shaped, with masking flags.

``evaluate(model_fn, x, y, eps=8/255)`` runs a protocol of attacks of :data:`ATTACKS` (``"standard"``:
APGD-CE, APGD-T, DeepFool in FAB-T's place, Square at 5,000 queries; ``"rand"``: APGD-CE and APGD-DLR
with EOT over 20 draws, for random defenses; ``"custom"``: the attacks given) through the one
:class:`Runner`, as AutoAttack does: each attack runs on the images that every attack before it left
robust. It keeps per example the strongest point found, counts the classifier's forward and backward passes
(:class:`PassCounter`), and raises the gradient-masking flags of :mod:`iss_jax.robustness._masking`
from what the run measured.

References:
  Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
  attacks", ICML 2020 (AutoAttack, its ``standard`` and ``rand`` versions); Croce et al., "RobustBench",
  2021; Carlini et al., "On evaluating adversarial robustness", 2019 (the gradient-masking checklist).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from iss_jax._src.checks import as_float_images, check_labels
from iss_jax.robustness import _masking as masking
from iss_jax.robustness._adversarial import _compiled_attack
from iss_jax.robustness._attack_table import ATTACKS, AttackSettings
from iss_jax.robustness._claims import claim_record
from iss_jax.robustness._defenses import Defense, no_defense
from iss_jax.robustness._passes import PassCounter
from iss_jax.robustness._runner import Runner
from iss_jax.robustness._square import margin
from iss_jax.robustness._stats import wilson_interval

Array = jax.Array

VERSIONS = ("standard", "rand", "custom")
NORMS = ("Linf",)
# AutoAttack's standard version with DeepFool-Linf (clipped to the eps ball) in FAB-T's place: FAB is
# DeepFool's linearised step onto the closest boundary plus a projection and a biased backward step; the
# repository's minimal-norm attacks are DeepFool and C&W-L2, and DeepFool is the L-inf one.
STANDARD = ("apgd-ce", "apgd-t", "deepfool", "square")
FAB_T_SUBSTITUTE = "deepfool"
# AutoAttack's rand version; "square-eot" (Square accepting a candidate only if the loss averaged over draws
# improves) runs when the attack table has it.
RAND = ("apgd-ce", "apgd-dlr", "square-eot")
STANDARD_STEPS = 100  # APGD iterations (AutoAttack: 100)
STANDARD_QUERIES = 5000  # Square's queries (AutoAttack: 5,000)
RAND_EOT = 20  # EOT draws per gradient step in "rand" (AutoAttack: 20)
RAND_REPEATS = 5  # final evaluations of a random classifier in "rand"; an image must survive all of them
SWEEP_EPS = 0.5  # the large eps of the eps-sweep check
UNBOUNDED_EPS = 1.0  # the unbounded attack's radius: the whole [0, 1] pixel box
CHECK_EXAMPLES = 64  # images of the model checks, the eps sweep and the unbounded attack
PASSES_COUNTED = ("images run through the classifier inside the compiled attacks, counted per execution by "
                  "jax.debug.callback (iss_jax.robustness.PassCounter): loops, EOT draws, restarts and the "
                  "padding of the last batch count as run; a Jacobian of K classes counts K backward passes")

# Key salts of one evaluation (run.key_for(salt, index, ...)).
_SALT_CLEAN, _SALT_ATTACK, _SALT_JUDGE, _SALT_CHECKS = 0, 1, 2, 3


class AttackResult(NamedTuple):
  """One attack of an :func:`evaluate` run.

  Attributes:
    name: the :data:`ATTACKS` name (checks: ``"fgsm (check)"``, ``"gray-box apgd-ce (check)"``,
      ``"apgd-ce at eps=0.5 (check)"``, ``"unbounded apgd-ce (check)"``).
    budget: the attack and its budget in words.
    role: ``"ensemble"`` (an attack of the version, run on the images still robust), ``"check"`` (run
      within ``eps`` on every correctly classified image: it counts in the worst case) or ``"sweep"`` (a
      check outside ``eps``, on the first ``check_examples`` images: it does not count).
    attacked: images it ran on.
    accuracy: for the ensemble, robust accuracy after it and every ensemble attack before it; for a
      check, accuracy under it alone (on its images; the unbounded attack: its success rate).
    forward: images run forward through the classifier (the attack and its judging).
    backward: images run backward.
    seconds: wall time.
  """

  name: str
  budget: str
  role: str
  attacked: int
  accuracy: float
  forward: int
  backward: int
  seconds: float


class Evaluation(NamedTuple):
  """The result of :func:`evaluate`.

  Attributes:
    x_adv: ``(N, H, W, C)`` float32, per example the strongest point found within ``eps`` (of lowest
      margin behind the defense: the first that fooled it, else the closest to fooling it); the clean
      image where the clean prediction is already wrong.
    robust: ``(N,)`` bool, per example the worst case: correctly classified and no attack within ``eps``
      (ensemble and checks) fooled it (in any of the ``repeats`` final evaluations).
    clean: ``(N,)`` bool, correctly classified clean images (one draw for a random classifier).
    margins: ``(N,)`` float, per example the lowest margin ``z_y - max_{i != y} z_i`` found (negative:
      fooled).
    clean_accuracy: mean of ``clean``.
    robust_accuracy: mean of ``robust``.
    ensemble_accuracy: robust accuracy under the version's attacks alone (the AutoAttack-comparable
      number; ``robust_accuracy`` is never above it).
    attacks: ``{name: AttackResult}`` in the order they ran.
    max_perturbation: the largest ``|x_adv - x|`` of any attack's points (to compare with ``eps``).
    finite: no attack produced a NaN image or margin.
    forward_passes: images run forward through the classifier in the whole evaluation.
    backward_passes: images run backward.
    flags: the checks, ``{"check", "ok", "detail", "rows"}`` each; ``ok=False`` is a raised flag.
    settings: the protocol and its budgets, JSON-ready.
  """

  x_adv: np.ndarray
  robust: np.ndarray
  clean: np.ndarray
  margins: np.ndarray
  clean_accuracy: float
  robust_accuracy: float
  ensemble_accuracy: float
  attacks: dict
  max_perturbation: float
  finite: bool
  forward_passes: int
  backward_passes: int
  flags: list
  settings: dict

  @property
  def n(self) -> int:
    return int(len(self.robust))

  @property
  def raised(self) -> list[str]:
    """The names of the raised flags."""
    return [c["check"] for c in self.flags if not c["ok"]]

  def interval(self, accuracy: float) -> tuple[float, float]:
    """The 95% Wilson interval of ``accuracy`` on this run's images."""
    return wilson_interval(accuracy, self.n)

  def summary(self) -> dict:
    """Everything but the per-example arrays, JSON-ready."""
    return {"n": self.n, "clean_accuracy": self.clean_accuracy,
            "clean_interval95": list(self.interval(self.clean_accuracy)),
            "robust_accuracy": self.robust_accuracy,
            "robust_interval95": list(self.interval(self.robust_accuracy)),
            "ensemble_accuracy": self.ensemble_accuracy,
            "ensemble_interval95": list(self.interval(self.ensemble_accuracy)),
            "attacks": [{**a._asdict(), "interval95": list(wilson_interval(
                a.accuracy, a.attacked if a.role == "sweep" else self.n))} for a in self.attacks.values()],
            "max_perturbation": self.max_perturbation, "finite": self.finite,
            "forward_passes": self.forward_passes, "backward_passes": self.backward_passes,
            "passes_counted": PASSES_COUNTED, "flags": list(self.flags), "flags_raised": self.raised,
            "settings": self.settings}

  def claim(self, *, model: str, dataset: str) -> dict:
    """The RobustBench-style claim record of this evaluation (see :func:`claim_record`)."""
    s = self.settings
    return claim_record(
        model=model, defense=s["defense"], dataset=dataset, n=self.n, eps=s["eps"],
        clean_accuracy=self.clean_accuracy, robust_accuracy=self.robust_accuracy,
        attacks=[{"name": a.name, "budget": a.budget, "role": a.role, "accuracy": a.accuracy,
                  "forward": a.forward, "backward": a.backward} for a in self.attacks.values()],
        norm=s["norm"], forward_passes=self.forward_passes, backward_passes=self.backward_passes,
        passes_counted=PASSES_COUNTED, version=s["version"], random=s["random"], flags=self.raised,
        extra={"ensemble_accuracy": self.ensemble_accuracy,
               "ensemble_interval95": list(self.interval(self.ensemble_accuracy)),
               "max_perturbation": self.max_perturbation, "finite": self.finite,
               "settings": s})

  def report(self) -> str:
    """The evaluation as Markdown: accuracies with intervals, every attack with its budget and passes,
    and the gradient-masking flags (raised ones in bold)."""
    s, n = self.settings, self.n
    eot = (f"; EOT {s['eot_samples']} draws per step, {s['repeats']} final evaluation(s)" if s["random"]
           else "")
    pct = lambda v, m=n: (f"{100 * v:.1f}% [{100 * wilson_interval(v, m)[0]:.1f}, "
                          f"{100 * wilson_interval(v, m)[1]:.1f}]")
    lines = [f"## Robustness evaluation: version `{s['version']}`, {s['norm']} eps = {s['eps']:.4g} "
             f"({s['eps'] * 255:.3g}/255), n = {n}", "",
             f"- defense: `{s['defense']}` ({s['gradient']}); classifier random: "
             f"{'yes' if s['random'] else 'no'}{eot}",
             f"- clean accuracy: {pct(self.clean_accuracy)}",
             f"- robust accuracy (per example the worst case of every attack within eps): "
             f"**{pct(self.robust_accuracy)}**",
             f"- the version's attacks alone ({', '.join(s['attacks'])}): {pct(self.ensemble_accuracy)}",
             f"- largest perturbation {self.max_perturbation:.4g} (eps {s['eps']:.4g}); all images and "
             f"margins finite: {'yes' if self.finite else '**NO (NaN)**'}",
             f"- classifier passes: {self.forward_passes:,} forward, {self.backward_passes:,} backward "
             f"({self.forward_passes / max(n, 1):,.0f} / {self.backward_passes / max(n, 1):,.0f} per image; "
             f"{PASSES_COUNTED})"]
    lines += [f"- skipped: `{a}`: {why}" for a, why in s["skipped"].items()]
    lines += ["", "| attack | role | budget | images attacked | accuracy (%) [95% CI] | forward | backward "
              "| time |", "|---|---|---|---|---|---|---|---|"]
    for a in self.attacks.values():
      acc = pct(a.accuracy, a.attacked if a.role == "sweep" else n)
      lines.append(f"| {a.name} | {a.role} | {a.budget} | {a.attacked} | {acc} | {a.forward:,} | "
                   f"{a.backward:,} | {a.seconds:.1f} s |")
    lines += ["", "Accuracy: for the ensemble, robust accuracy after the attack and every one before it "
              "(each attack runs on the images still robust); for a check, under it alone (the unbounded "
              "attack: its success rate over the correctly classified images of the check set).", "",
              "### Gradient-masking flags", ""]
    raised = self.raised
    lines.append(f"**{len(raised)} flag(s) raised: {'; '.join(raised)}.**" if raised
                 else "No flag raised.")
    lines += ["", "| check | result | detail |", "|---|---|---|"]
    for c in self.flags:
      name, result = (c["check"], "ok") if c["ok"] else (f"**{c['check']}**", "**RAISED**")
      lines.append(f"| {name} | {result} | {c['detail']} |")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _measure(counter: PassCounter | None, out: dict):
  """Fills ``out`` with the passes and seconds of the block (no counter: 0 passes)."""
  f0, b0 = counter.read() if counter is not None else (0, 0)
  t0 = time.perf_counter()
  yield
  f1, b1 = counter.read() if counter is not None else (0, 0)
  out.update(forward=f1 - f0, backward=b1 - b0, seconds=time.perf_counter() - t0)


class _Attacks:
  """The attacks of one run on one runner, as :func:`evaluate` runs them: :meth:`attack` runs a compiled
  attack (one per attack and target) on the images ``idx`` in compact batches, :meth:`judge` gives the
  lowest margin behind ``defense`` over ``repeats`` draws. ``prefix``: salts in front of every key, so
  another evaluation on the same runner (:func:`masking_probes` in ``evaluate_defense``) draws its own."""

  def __init__(self, run: Runner, defense: Defense, x, y, settings: AttackSettings, samples: int,
               repeats: int, prefix: tuple = ()):
    self.run, self.defense, self.x, self.y = run, defense, x, y
    self.settings, self.samples, self.repeats, self.prefix = settings, samples, repeats, prefix
    logits = run.logits_fn(defense)
    self.margin_fn = jax.jit(lambda xb, yb, k: margin(logits(xb, k), yb))
    self._compiled = {}

  def attack(self, name: str, target: Defense, idx, salt, at: float) -> np.ndarray:
    """Attack ``name`` on the classifier behind ``target`` at radius ``at``, on the images ``idx``."""
    if (name, target.name) not in self._compiled:
      self._compiled[(name, target.name)] = _compiled_attack(self.run, name, target, self.settings,
                                                             self.samples)
    fn = self._compiled[(name, target.name)]
    return self.run.map(lambda xb, yb, k: fn(xb, yb, jnp.float32(at), k), self.x[idx], self.y[idx],
                        key=self.run.key_for(*self.prefix, _SALT_ATTACK, *salt), compact=True)

  def judge(self, xs, idx, salt) -> np.ndarray:
    """The lowest margin of the points ``xs`` (of the images ``idx``) behind the defense over the draws."""
    m = np.full(len(idx), np.inf, np.float32)
    for r in range(self.repeats):
      m = np.minimum(m, self.run.map(self.margin_fn, xs, self.y[idx],
                                     key=self.run.key_for(*self.prefix, _SALT_JUDGE, *salt, r), compact=True))
    return m


def masking_probes(attacks: _Attacks, clean: np.ndarray, *, eps: float, check_examples: int,
                   counter: PassCounter | None = None, robust_accuracy: float | None = None,
                   random_protocol: bool = False) -> tuple[list[dict], dict]:
  """The gradient-masking checks that need only the model and the clean images: the model checks
  (:func:`model_checks`) on the first ``check_examples`` images, the eps sweep (APGD-CE at
  :data:`SWEEP_EPS` reaches ~0; when ``eps >= SWEEP_EPS``, ``robust_accuracy`` at ``eps`` is read instead)
  and the unbounded attack (APGD-CE at :data:`UNBOUNDED_EPS`, the whole pixel box, fools ~every correctly
  classified check image). Both attacks run outside ``eps``: their points never count as adversarial.

  Returns:
    ``(flags, results)``: the five checks (model checks, large eps, unbounded) and ``{label:
    AttackResult}`` of the two attacks.
  """
  run, defense, x, y = attacks.run, attacks.defense, attacks.x, attacks.y
  sub = np.arange(min(check_examples, len(x)))
  flags = masking.model_checks(run.logits_fn(defense), x[sub], y[sub],
                               key=run.key_for(*attacks.prefix, _SALT_CHECKS, 0),
                               random_protocol=random_protocol)
  sub_idx = sub[clean[sub]]
  results = {}

  def outside(at: float, salt) -> tuple[int, dict]:  # both reuse the compiled APGD-CE (eps is traced)
    cost, survived = {}, 0
    with _measure(counter, cost):
      if len(sub_idx):
        xs = attacks.attack("apgd-ce", defense, sub_idx, salt, at=at)
        survived = int(np.sum(attacks.judge(xs, sub_idx, salt) > 0))
    return survived, cost

  budget = lambda at: ATTACKS["apgd-ce"].budget(attacks.settings, f"eps={at:g}")
  if eps < SWEEP_EPS or robust_accuracy is None:
    survived, cost = outside(SWEEP_EPS, (102,))
    sweep = survived / len(sub)
    label = f"apgd-ce at eps={SWEEP_EPS:g} (check)"
    results[label] = AttackResult(label, budget(SWEEP_EPS), "sweep", len(sub), sweep, **cost)
    flags.append(masking.large_eps_check(sweep, SWEEP_EPS, len(sub)))
  else:
    flags.append(masking.large_eps_check(robust_accuracy, eps, len(x)))
  survived, cost = outside(UNBOUNDED_EPS, (103,))
  success = 1.0 - survived / len(sub_idx) if len(sub_idx) else 1.0
  label = "unbounded apgd-ce (check)"
  results[label] = AttackResult(label, budget(UNBOUNDED_EPS) + " (the whole pixel box: no radius)", "sweep",
                                len(sub_idx), success, **cost)
  flags.append(masking.unbounded_check(success, len(sub_idx), name="APGD-CE at eps=1"))
  return flags, results


def _attack_names(version: str, attacks) -> tuple[list[str], dict]:
  """The version's attacks of :data:`ATTACKS` and ``{name: why}`` of those skipped."""
  if version == "custom":
    if attacks is None or isinstance(attacks, str) or not len(attacks):
      raise ValueError("attacks must be a non-empty sequence of iss_jax.robustness.ATTACKS names with "
                       f"version='custom' (e.g. ('apgd-ce', 'square')); got {attacks!r}.")
    names = list(attacks)
  else:
    if attacks is not None:
      raise ValueError(f"attacks are given only with version='custom'; version={version!r} runs "
                       f"{STANDARD if version == 'standard' else RAND}.")
    names = list(STANDARD if version == "standard" else RAND)
  skipped = {}
  for a in list(names):
    if a not in ATTACKS:
      if version == "custom":
        raise ValueError(f"attacks must be among {tuple(ATTACKS)}; got {a!r}.")
      skipped[a] = ("not in iss_jax.robustness.ATTACKS in this version of the code (an EOT Square accepting "
                    "a candidate only if the loss averaged over draws improves); Square with one draw per "
                    "query is not run in its place, as it is weak against random defenses")
      names.remove(a)
  if len(set(names)) != len(names):
    raise ValueError(f"attacks must be unique; got {names}.")
  return names, skipped


def _check_request(norm, eps, version, defense, steps, square_queries, eot_samples, repeats, check_examples):
  if norm not in NORMS:
    raise ValueError(f"norm must be one of {NORMS} (the attacks are L-inf); got {norm!r}.")
  if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not 0 < float(eps) <= 1:
    raise ValueError(f"eps must be a number in (0, 1] (L-inf radius in [0, 1] pixel space); got {eps!r}.")
  if version not in VERSIONS:
    raise ValueError(f"version must be one of {VERSIONS}; got {version!r}.")
  if defense is not None and not isinstance(defense, Defense):
    raise ValueError(f"defense must be an iss_jax.robustness.Defense or None; got {defense!r}.")
  check_counts(steps=steps, square_queries=square_queries, eot_samples=eot_samples, repeats=repeats,
               check_examples=check_examples)


def check_counts(**values) -> None:
  """Each keyword an int >= 1 (None: not given), else one sentence naming it."""
  for name, v in values.items():
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
      raise ValueError(f"{name} must be an int >= 1; got {v!r}.")


def evaluate(model_fn: Callable[[Array], Array], x, y, *, norm: str = "Linf", eps: float,
             version: str = "standard", defense: Defense | None = None, attacks: Sequence[str] | None = None,
             steps: int | None = None, square_queries: int | None = None, eot_samples: int | None = None,
             repeats: int | None = None, checks: bool = True, check_examples: int = CHECK_EXAMPLES,
             batch_size: int = 100, seed: int = 0, progress: bool = True) -> Evaluation:
  """Robust accuracy of ``model_fn`` (behind ``defense``) under an AutoAttack-shaped protocol, with flags.

  Each attack of the version runs through the defense (the gradient :attr:`Defense.gradient` gives, EOT
  when random) on the images that the attacks before it left robust, as AutoAttack runs its ensemble.
  With ``checks``, the run also measures the warning signs of gradient masking and raises a flag for each
  one seen (``Evaluation.flags``, printed by ``Evaluation.report()``):

  * outputs that look like probabilities, not logits; clean predictions that change between two runs
    (a random classifier outside ``version="rand"``); an exactly zero loss gradient at the clean images
    (:func:`model_checks`, on the first ``check_examples`` images);
  * a gradient-free attack (Square) that breaks images the gradient attacks before it left robust;
  * FGSM (one step, run on every correctly classified image) stronger than the iterative APGD-CE;
  * accuracy not reaching ~0 at ``eps = 0.5`` (APGD-CE on the first ``check_examples`` images);
  * an unbounded attack (APGD-CE at ``eps = 1``, the whole pixel box) not fooling ~100% of the
    correctly classified images among the first ``check_examples``;
  * with a defense: APGD-CE examples made on the bare model (gray-box) stronger through the defense than
    APGD-CE through it (adaptive).

  Each comparison allows for sampling noise (it fires where the 95% Wilson intervals do not overlap).
  FGSM's and the gray-box points are within ``eps`` and count in the per-example worst case.

  Args:
    model_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> ``(N, K)`` logits (BatchNorm in inference mode), or an
      :class:`RandomClassifier` ``(x, key) -> logits``.
    x: ``(N, H, W, C)`` images, uint8 or float in ``[0, 1]``.
    y: ``(N,)`` int labels.
    norm: ``"Linf"`` (the only threat model of the attacks).
    eps: the radius in ``[0, 1]`` pixel space (e.g. ``8 / 255``).
    version: ``"standard"``: APGD-CE, APGD-T (9 targets), DeepFool-Linf clipped to ``eps`` (the stated
      substitute for FAB-T, see :data:`FAB_T_SUBSTITUTE`), Square at 5,000 queries, 100 steps;
      ``"rand"`` (for random defenses): APGD-CE and APGD-DLR with EOT over ``eot_samples`` (20) draws per
      step, ``"square-eot"`` when :data:`ATTACKS` has it, and ``repeats`` (5) final evaluations of which an
      image must survive every one; ``"custom"``: ``attacks``.
    defense: the test-time defense (None: the bare model).
    attacks: names of :data:`ATTACKS`, in order, with ``version="custom"`` only.
    steps: iterations of the gradient attacks (default 100).
    square_queries: Square's queries per image (default 5,000).
    eot_samples: draws per gradient step against a random classifier (default: 20 in ``"rand"``, else 1,
      as AutoAttack's standard version attacks with one draw).
    repeats: final evaluations of each attack's points against a random classifier (default: 5 in
      ``"rand"``, else 1); an image counts as robust only if it survives all.
    checks: run the gradient-masking checks (FGSM, gray-box, eps sweep, unbounded attack, model checks).
    check_examples: images of the model checks, the eps sweep and the unbounded attack.
    batch_size: images per jitted batch (at most ``N``); the attacks after the first run on fewer images,
      padded to the smallest of ``batch_size``, ``batch_size / 2``, ..., ``batch_size / 16`` that holds
      them (:meth:`Runner.batch_sizes`; the padding is counted in the passes).
    seed: the PRNG seed of the run (random starts, draws).
    progress: tqdm bars.

  Returns:
    An :class:`Evaluation`: ``x_adv``, ``robust`` and ``clean`` per example, the accuracies, every
    attack's result with its passes (``attacks``), the largest perturbation, the NaN check, the forward
    and backward passes (counted as the compiled code ran them, :class:`PassCounter`) and the flags;
    ``.report()`` is Markdown, ``.summary()`` JSON-ready, ``.claim(model=, dataset=)`` the claim record.

  Raises:
    ValueError: a bad argument (one sentence naming it).

  Examples:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from iss_jax.robustness import evaluate
    >>> w = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 10))
    >>> model = lambda x: x.reshape(x.shape[0], -1) @ w
    >>> x = np.asarray(jax.random.uniform(jax.random.key(1), (8, 4, 4, 3)))
    >>> y = np.asarray(jnp.argmax(model(x), -1))
    >>> res = evaluate(model, x, y, eps=8 / 255, version="custom", attacks=("apgd-ce",), steps=5,
    ...                progress=False)
    >>> res.clean_accuracy, res.robust_accuracy <= res.clean_accuracy, res.raised
    (1.0, True, [])
  """
  _check_request(norm, eps, version, defense, steps, square_queries, eot_samples, repeats, check_examples)
  eps = float(eps)
  names, skipped = _attack_names(version, attacks)
  x = as_float_images(x)
  y = check_labels(y, len(x))
  defense = no_defense() if defense is None else defense
  counter = PassCounter()
  # A batch is never larger than the data: padding it would run the classifier on copies.
  run = Runner(counter.wrap(model_fn), batch_size=min(batch_size, max(len(x), 1)), seed=seed,
               progress=progress)
  random = run.is_random(defense)
  if eot_samples is None:
    eot_samples = RAND_EOT if version == "rand" else 1
  samples = eot_samples if random else 1
  repeats = (RAND_REPEATS if version == "rand" and random else 1) if repeats is None else repeats
  if not random:
    repeats = 1
  settings = AttackSettings(steps=STANDARD_STEPS if steps is None else steps, restarts=1,
                            square_queries=STANDARD_QUERIES if square_queries is None else square_queries,
                            samples=samples)
  e = f"eps={eps * 255:.3g}/255"
  atk = _Attacks(run, defense, x, y, settings, samples, repeats)
  state = {"max": 0.0, "finite": True}
  results, clean_cost = {}, {}
  with _measure(counter, clean_cost):
    best_m = run.map(atk.margin_fn, x, y, key=run.key_for(_SALT_CLEAN))
  clean = best_m > 0
  best_x = np.array(x, np.float32, copy=True)
  results["clean"] = AttackResult("clean", "no attack", "clean", len(x), float(np.mean(clean)),
                                  **clean_cost)

  def keep(xs, idx, m):
    """Per example the point of lowest margin; NaN and the perturbation's size are recorded."""
    state["finite"] &= bool(np.isfinite(xs).all() and not np.isnan(m).any())
    state["max"] = max(state["max"], float(np.nanmax(np.abs(xs - x[idx]), initial=0.0)))
    lower = m < best_m[idx]
    best_x[idx[lower]] = xs[lower]
    best_m[idx[lower]] = m[lower]
    return ~(m > 0)  # fooled (NaN counts as fooled)

  ensemble = clean.copy()
  after = {}  # ensemble attack -> accuracy after it
  for ai, name in enumerate(names):
    idx = np.flatnonzero(ensemble)
    cost = {}
    with _measure(counter, cost):
      if len(idx):
        xs = atk.attack(name, defense, idx, (ai,), at=eps)
        ensemble[idx[keep(xs, idx, atk.judge(xs, idx, (ai,)))]] = False
    after[name] = float(np.mean(ensemble))
    budget = ATTACKS[name].budget(settings, e) + (" (FAB-T's substitute)" if name == FAB_T_SUBSTITUTE
                                                  and version == "standard" else "")
    results[name] = AttackResult(name, budget, "ensemble", len(idx), after[name], **cost)
  robust = ensemble.copy()
  flags = []
  if checks:
    flags = _run_checks(atk, counter, clean, names, after, results, robust, keep, eps, e, version,
                        check_examples)
  flags[3:3] = [masking._check("every adversarial image lies within eps", state["max"] <= eps + 1e-5,
                               f"largest |x_adv - x| {state['max']:.6g} for eps {eps:.6g}"),
                masking._check("no NaN in the adversarial images or the margins", state["finite"],
                               "all finite" if state["finite"] else "an attack produced NaN")]
  f, b = counter.read()
  return Evaluation(
      x_adv=best_x, robust=robust, clean=clean, margins=best_m, clean_accuracy=float(np.mean(clean)),
      robust_accuracy=float(np.mean(robust)), ensemble_accuracy=float(np.mean(ensemble)), attacks=results,
      max_perturbation=state["max"], finite=state["finite"], forward_passes=f, backward_passes=b,
      flags=flags,
      settings={"version": version, "norm": norm, "eps": eps, "attacks": names, "skipped": skipped,
                "defense": defense.name, "gradient": run.describe(defense), "random": random,
                "eot_samples": samples, "repeats": repeats, "steps": settings.steps,
                "square_queries": settings.square_queries, "restarts": settings.restarts,
                "checks": bool(checks), "check_examples": int(min(check_examples, len(x))),
                "sweep_eps": SWEEP_EPS, "seed": seed, "batch_size": run.batch_size})


def _run_checks(attacks: _Attacks, counter, clean, names, after, results, robust, keep, eps, e, version,
                check_examples) -> list[dict]:
  """The gradient-masking checks of :func:`evaluate` (they add their results to ``results`` and, within
  ``eps``, their fooled images to ``robust``)."""
  run, defense, x, settings = attacks.run, attacks.defense, attacks.x, attacks.settings
  n = len(x)
  idx = np.flatnonzero(clean)
  standalone = {}  # attack -> accuracy under it alone (on every correctly classified image)
  if names:
    standalone[names[0]] = after[names[0]]

  def within(label, name, target, budget, salt):
    cost = {}
    with _measure(counter, cost):
      survived = clean.copy()
      if len(idx):
        xs = attacks.attack(name, target, idx, salt, at=eps)
        fooled = keep(xs, idx, attacks.judge(xs, idx, salt))
        survived[idx[fooled]] = False
        robust[idx[fooled]] = False
    standalone[label] = float(np.mean(survived))
    results[label] = AttackResult(label, budget, "check", len(idx), standalone[label], **cost)

  within("fgsm (check)", "fgsm", defense, ATTACKS["fgsm"].budget(settings, e), (100,))
  if defense.transform is not None:
    within("gray-box apgd-ce (check)", "apgd-ce", no_defense(),
           f"{ATTACKS['apgd-ce'].budget(settings, e)} on the bare model, then {defense.name}", (101,))
  flags, probes = masking_probes(attacks, clean, eps=eps, check_examples=check_examples, counter=counter,
                                 robust_accuracy=float(np.mean(robust)),
                                 random_protocol=version == "rand" and run.is_random(defense))
  results.update(probes)
  # The comparisons of the attacks: each gradient-free one with the ensemble before it, if that holds a
  # gradient attack.
  for i, name in enumerate(names):
    if ATTACKS[name].gradient_free and any(not ATTACKS[a].gradient_free for a in names[:i]):
      flags.append(masking.gradient_free_check(after[names[i - 1]], after[name], n, name=name))
  iterative = next((a for a in ("apgd-ce", "pgd", "apgd-dlr") if a in standalone), None)
  if iterative is not None:
    flags.append(masking.one_step_check(standalone["fgsm (check)"], standalone[iterative], n, name=iterative))
  else:
    flags.append(masking._check("one-step FGSM is not stronger than iterative attacks", True,
                                "not compared: the first attack of the run is not an iterative gradient one"))
  if defense.transform is not None:
    if "apgd-ce" in standalone:
      flags.append(masking.transfer_check(standalone["gray-box apgd-ce (check)"], standalone["apgd-ce"], n))
    else:
      flags.append(masking._check("transfer from the bare model is not stronger than adaptive apgd-ce", True,
                                  "not compared: apgd-ce is not the first attack of the run"))
  return flags


def eot_sweep(model_fn, x, y, *, eps: float, samples: Sequence[int] = (1, 2, 5, 10, 20),
              defense: Defense | None = None, attack: str = "apgd-ce", steps: int | None = None,
              repeats: int | None = None, batch_size: int = 100, seed: int = 0,
              progress: bool = True) -> dict:
  """Accuracy under ``attack`` against a random classifier as a function of the EOT draws per step.

  Each point is :func:`evaluate` with ``version="custom"``, ``attacks=(attack,)`` and ``eot_samples=s``
  (same seed, so the same starts); accuracy should fall and then plateau once the averaged gradient is
  accurate enough. The plateau is the fewest draws from which every accuracy lies in the 95% interval of
  the accuracy at the most draws.

  Args:
    model_fn: the classifier (a :class:`RandomClassifier`, or any behind a random ``defense``).
    x, y: images and labels, as in :func:`evaluate`.
    eps: the radius.
    samples: EOT draws per step, increasing.
    defense: the defense (None: the bare model).
    attack: the :data:`ATTACKS` gradient attack.
    steps: its iterations (default 100).
    repeats: final evaluations per point (default 5, as in ``"rand"``).
    batch_size, seed, progress: as in :func:`evaluate`.

  Returns:
    ``{"attack", "eps", "samples", "accuracy", "interval95", "forward_passes", "backward_passes", "plateau",
    "clean_accuracy", "n"}``.

  Raises:
    ValueError: ``samples`` not increasing ints ``>= 1``, or a bad argument of :func:`evaluate`.
  """
  samples = list(samples)
  bad = [s for s in samples if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1]
  if not samples or bad or samples != sorted(set(samples)):
    raise ValueError(f"samples must be increasing ints >= 1; got {samples!r}.")
  out = {"attack": attack, "eps": float(eps), "samples": samples, "accuracy": [], "interval95": [],
         "forward_passes": [], "backward_passes": []}
  for s in samples:
    res = evaluate(model_fn, x, y, eps=eps, version="custom", attacks=(attack,), defense=defense, steps=steps,
                   eot_samples=int(s), repeats=RAND_REPEATS if repeats is None else repeats, checks=False,
                   batch_size=batch_size, seed=seed, progress=progress)
    out["accuracy"].append(res.robust_accuracy)
    out["interval95"].append(list(res.interval(res.robust_accuracy)))
    out["forward_passes"].append(res.forward_passes)
    out["backward_passes"].append(res.backward_passes)
    out["clean_accuracy"], out["n"], out["random"] = res.clean_accuracy, res.n, res.settings["random"]
  lo, hi = out["interval95"][-1]
  within = [lo <= a <= hi for a in out["accuracy"]]
  first = next(i for i in range(len(samples)) if all(within[i:]))
  out["plateau"] = samples[first]
  return out
