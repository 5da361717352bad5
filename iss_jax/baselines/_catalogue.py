"""Every defense by name: ISS smoothing and the competitors, as defenses of the one protocol."""

from __future__ import annotations

from iss_jax.baselines._lowpass import gaussian_lowpass
from iss_jax.baselines._menet import menet
from iss_jax.baselines._splic import splic
from iss_jax.baselines._tv import tv_denoise
from iss_jax.robustness import Defense, custom_defense, no_defense, smoothing_defense

# The spec forms :func:`make_defense` accepts (``tv@auto`` is resolved by the caller, which holds data).
DEFENSE_SPECS = ("none", "smooth@S", "tv@W", "lowpass@SIGMA", "splic@R", "menet@P")


def tv_defense(weight: float, *, iters: int = 50) -> Defense:
  """Chambolle TV denoising at ``weight`` (``"tv@W"``); the adaptive attack differentiates the iteration."""
  w = float(weight)
  if not w >= 0:
    raise ValueError(f"TV weight must be a number >= 0; got {weight}.")
  return custom_defense(f"tv@{w:g}", lambda x, key: tv_denoise(x, w, iters=iters), gradient="exact")


def lowpass_defense(sigma: float) -> Defense:
  """Gaussian low-pass of std ``sigma`` pixels (``"lowpass@SIGMA"``); exact gradient."""
  s = float(sigma)
  if not s >= 0:
    raise ValueError(f"low-pass sigma must be a number >= 0; got {sigma}.")
  return custom_defense(f"lowpass@{s:g}", lambda x, key: gaussian_lowpass(x, s), gradient="exact")


def splic_defense(rank: int, *, maxiter: int = 70) -> Defense:
  """SPLIC low-rank completion at ``rank`` (``"splic@R"``); random: BPDA + EOT for adaptive attacks."""
  r = int(rank)
  if r != float(rank) or r < 1:
    raise ValueError(f"SPLIC rank must be an integer >= 1; got {rank}.")
  return custom_defense(f"splic@{r}", lambda x, key: splic(x, rank=r, key=key, maxiter=maxiter),
                        gradient="bpda", random=True)


def menet_defense(p: float, *, method: str = "usvt") -> Defense:
  """ME-Net at observation probability ``p`` (``"menet@P"``); random: BPDA + EOT for adaptive attacks."""
  q = float(p)
  if not 0.0 < q <= 1.0:
    raise ValueError(f"ME-Net observation probability must be in (0, 1]; got {p}.")
  name = f"menet@{q:g}" + ("" if method == "usvt" else f"-{method}")
  return custom_defense(name, lambda x, key: menet(x, p=q, key=key, method=method), gradient="bpda",
                        random=True)


def make_defense(spec: str, *, tv_iters: int = 50, splic_maxiter: int = 70,
                 smooth_kwargs: dict | None = None) -> Defense:
  """A defense from its name: ``"none"``, ``"smooth@S"``, ``"tv@W"``, ``"lowpass@SIGMA"``, ``"splic@R"``,
  ``"menet@P"``.

  Args:
    spec: the name; the number after ``@`` is the sparsity, TV weight, low-pass std, SPLIC rank or ME-Net
      observation probability.
    tv_iters: Chambolle iterations of ``tv@``.
    splic_maxiter: gradient steps per SPLIC pass.
    smooth_kwargs: further keyword arguments of ``iss_jax.smooth`` for ``smooth@``.

  Returns:
    The :class:`iss_jax.robustness.Defense`.

  Raises:
    ValueError: an unknown name, or a value that is not a number or out of range (one sentence naming
      the spec and the accepted forms).

  Examples:
    >>> from iss_jax.baselines import make_defense
    >>> [make_defense(s).gradient for s in ("smooth@0.6", "tv@0.08", "splic@8")]
    ['bpda-partition', 'exact', 'bpda']
  """
  forms = ", ".join(DEFENSE_SPECS)
  if spec == "none":
    return no_defense()
  kind, _, value = str(spec).partition("@")
  builders = {"smooth": lambda v: smoothing_defense(v, **dict(smooth_kwargs or {})),
              "tv": lambda v: tv_defense(v, iters=tv_iters),
              "lowpass": lowpass_defense,
              "splic": lambda v: splic_defense(v, maxiter=splic_maxiter),
              "menet": menet_defense}
  if kind not in builders:
    raise ValueError(f"unknown defense {spec!r}; use one of {forms}.")
  try:
    number = float(value)
  except ValueError:
    raise ValueError(f"defense {spec!r}: expected {kind}@<number>; the forms are {forms}.") from None
  try:
    return builders[kind](number)
  except ValueError as e:
    raise ValueError(f"defense {spec!r}: {e}") from None
