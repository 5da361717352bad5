"""The one evaluation runner: a classifier behind any defense, over host arrays in fixed-size jitted batches.

Every batch has the same shape (the last one is padded by repeating its first image and the padding is
dropped from the result), so a sweep over ``eps``, sparsities or corruptions compiles each function once.
With several local devices each batch is sharded over them along its first axis (a 1-D mesh ``"batch"``):
the jitted attacks and predictions then run data-parallel, per example the same computation as on one
device. Evaluations given the same runner share its compiled predictions and its memoised clean
predictions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from iss_jax._src.checks import check_labels
from iss_jax.robustness._defenses import Defense, no_defense
from iss_jax.robustness._square import _buckets

Array = jax.Array


class RandomClassifier(NamedTuple):
  """A classifier whose logits depend on a PRNG key (e.g. PNI's weight noise, kept at test time).

  Every evaluation treats it as random: predictions draw a fresh key per batch, adaptive attacks average
  the gradient over ``eot_samples`` draws (EOT), whatever defense stands in front of it.

  Attributes:
    fn: ``fn(x, key) -> logits`` on ``(N, H, W, C)`` float ``[0, 1]`` images.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from iss_jax.robustness import RandomClassifier, Runner
    >>> noisy = RandomClassifier(lambda x, key: x.mean((1, 2)) + jax.random.normal(key, (x.shape[0], 3)))
    >>> Runner(noisy).is_random()
    True
  """

  fn: Callable[[Array, Array], Array]

  def __call__(self, x: Array, key: Array) -> Array:
    return self.fn(x, key)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
  if len(a) == size:
    return a
  return np.concatenate([a, np.repeat(a[:1], size - len(a), axis=0)])


class Runner:
  """Evaluates one classifier, bare or behind a :class:`Defense`, in fixed-size jitted batches.

  Args:
    apply_fn: ``(N, H, W, C)`` float ``[0, 1]`` -> ``(N, K)`` logits, BatchNorm in inference mode; or a
      :class:`RandomClassifier` (``(x, key) -> logits``), which makes every defense in front of it random.
    batch_size: images per jitted batch, rounded up to a multiple of the number of devices.
    seed: the PRNG seed every key of the run derives from (attack starts, random defenses).
    progress: tqdm bars for passes of more than one batch.
    devices: the devices a batch is sharded over (default: every local device of the default backend).

  Examples:
    >>> import jax.numpy as jnp, numpy as np
    >>> from iss_jax.robustness import Runner
    >>> run = Runner(lambda x: jnp.stack([x.mean((1, 2, 3)), 0.5 - x.mean((1, 2, 3))], -1), batch_size=2)
    >>> run.correct(np.ones((3, 4, 4, 1), np.float32), np.zeros(3, np.int32)).tolist()
    [True, True, True]
  """

  def __init__(self, apply_fn: Callable[[Array], Array], *, batch_size: int = 100, seed: int = 0,
               progress: bool = True, devices=None):
    if not isinstance(batch_size, int) or batch_size < 1:
      raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}.")
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
      raise ValueError("devices must name at least one device (e.g. jax.local_devices()); got none.")
    self.apply_fn = apply_fn
    self.devices = devices
    self.batch_size = -(-batch_size // len(devices)) * len(devices)
    # One device: plain arrays (the default placement); several: each batch split along its first axis.
    self.sharding = (NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))
                     if len(devices) > 1 else None)
    self.seed = seed
    self.key = jax.random.key(seed)
    self.progress = progress
    self._predict = {}  # defense -> jitted (x, key) -> classes
    self._clean = {}  # (images, labels, defense, key) fingerprint -> (N,) bool

  def key_for(self, *salt: int) -> Array:
    """A key for one pass of the run, derived from the seed and ``salt`` (distinct passes, distinct keys)."""
    key = self.key
    for s in salt:
      key = jax.random.fold_in(key, s)
    return key

  def map(self, fn: Callable, *arrays: np.ndarray, key: Array | None = None, desc: str | None = None,
          compact: bool = False) -> np.ndarray:
    """``fn(*batches, batch_key)`` over equal-length host arrays in padded batches, concatenated.

    ``fn`` should be jitted; ``batch_key`` is ``fold_in(key, batch_index)`` (``key`` defaults to the run's).
    ``compact``: the last batch, when short, is padded only to the smallest of :meth:`batch_sizes` that
    holds it rather than to a whole batch (for passes over a few images, e.g. the images an ensemble's
    earlier attacks left robust: ``fn`` then compiles once per size used).
    """
    n = len(arrays[0])
    key = self.key if key is None else key
    starts = range(0, n, self.batch_size)
    sizes = self.batch_sizes() if compact else (self.batch_size,)
    outs = []
    for i, a in enumerate(tqdm(starts, desc=desc, leave=False,
                               disable=not self.progress or len(starts) < 2)):
      b = min(a + self.batch_size, n)
      size = min(s for s in sizes if s >= b - a)
      batch = [self._put(_pad(arr[a:b], size)) for arr in arrays]
      outs.append(np.asarray(fn(*batch, jax.random.fold_in(key, i)))[: b - a])
    return np.concatenate(outs) if outs else np.zeros((0,))

  def batch_sizes(self) -> tuple[int, ...]:
    """The batch sizes of a ``compact`` :meth:`map`: ``batch_size`` and ``ceil(batch_size / 2**j)``,
    ``j <= 4``, each rounded up to a multiple of the device count, largest first."""
    return _buckets(self.batch_size, len(self.devices))

  def _put(self, a: np.ndarray) -> Array:
    return jnp.asarray(a) if self.sharding is None else jax.device_put(a, self.sharding)

  def is_random(self, defense: Defense | None = None) -> bool:
    """Whether the classifier behind ``defense`` is random (the defense's draws or the classifier's own)."""
    return isinstance(self.apply_fn, RandomClassifier) or bool(defense is not None and defense.random)

  def describe(self, defense: Defense | None = None) -> str:
    """How an adaptive attack differentiates the classifier behind ``defense``, in words."""
    defense = defense or no_defense()
    text = defense.describe_gradient()
    if isinstance(self.apply_fn, RandomClassifier) and not defense.random:
      text += " + EOT (gradient averaged over the classifier's random draws)"
    return text

  def logits_fn(self, defense: Defense | None = None) -> Callable[[Array, Array], Array]:
    """``(x, key) -> logits`` of the classifier behind ``defense`` (None: the bare model).

    A :class:`RandomClassifier` gets a key of its own, independent of the defense's.
    """
    defense = defense or no_defense()
    if not isinstance(self.apply_fn, RandomClassifier):
      return defense.logits_fn(self.apply_fn)
    model = self.apply_fn
    defended = defense.logits_fn(lambda z: z)  # the defense's transform alone
    return lambda x, key: model(defended(x, jax.random.fold_in(key, 0)), jax.random.fold_in(key, 1))

  def predict(self, x: np.ndarray, defense: Defense | None = None, *, key: Array | None = None,
              desc: str | None = None) -> np.ndarray:
    """``(N,)`` predicted classes of ``x`` behind ``defense``; a random defense draws per batch."""
    defense = defense or no_defense()
    if defense not in self._predict:
      logits = self.logits_fn(defense)
      self._predict[defense] = jax.jit(lambda xb, k: jnp.argmax(logits(xb, k), -1))
    return self.map(self._predict[defense], x, key=key, desc=desc)

  def correct(self, x: np.ndarray, y, defense: Defense | None = None, *, key: Array | None = None,
              desc: str | None = None) -> np.ndarray:
    """``(N,)`` bool, prediction behind ``defense`` equals the label."""
    y = check_labels(y, len(x))
    return self.predict(x, defense, key=key, desc=desc) == y

  def clean_correct(self, x: np.ndarray, y, defense: Defense | None = None, *, key: Array | None = None
                    ) -> np.ndarray:
    """:meth:`correct`, memoised per images, labels, defense and key (the key only for a random one).

    Evaluations sharing a runner ask for the clean accuracy of the same images each: only the first
    predicts them. The memo holds a fingerprint of ``x`` and ``y``, not the arrays.
    """
    defense = defense or no_defense()
    y = check_labels(y, len(x))
    x = np.ascontiguousarray(x)
    digest = hashlib.blake2b(x.data, digest_size=16)
    digest.update(np.ascontiguousarray(np.asarray(y)).data)
    key = self.key if key is None else key
    salt = (bytes(np.asarray(jax.random.key_data(key)).data) if self.is_random(defense) else None)
    memo = (digest.hexdigest(), x.shape, str(x.dtype), defense, salt)
    if memo not in self._clean:
      self._clean[memo] = self.correct(x, y, defense, key=key)
    return self._clean[memo]


def runner_for(apply_fn, runner: Runner | None, *, batch_size: int, seed: int) -> Runner:
  """``runner`` when given (it must run ``apply_fn``), else a new quiet :class:`Runner` of ``apply_fn``."""
  if runner is None:
    return Runner(apply_fn, batch_size=batch_size, seed=seed, progress=False)
  if not isinstance(runner, Runner):
    raise ValueError(f"runner must be an iss_jax.robustness.Runner or None; got {runner!r}.")
  if apply_fn is not None and apply_fn is not runner.apply_fn:
    raise ValueError("runner must run apply_fn (a Runner(apply_fn, ...)); it runs another classifier.")
  return runner
