"""Builds ``cifar10_exact.npz`` (the data of ``--preset=cpu``) from the official CIFAR-10 python pickles.

Usage:
  python -m train.make_cifar10_exact --cifar10_dir=DIR --out=data/cifar10_exact.npz

``DIR`` is the extracted ``cifar-10-python.tar.gz`` of https://www.cs.toronto.edu/~kriz/cifar.html: the
``cifar-10-batches-py`` folder (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) or its parent. The
file holds real CIFAR-10 images with their official indices and the complete label lists, the same arrays
as the copy in ``../shared/data`` (its PROVENANCE.md):

* ``x_train`` uint8 ``(5085, 32, 32, 3)``, ``idx_train`` int32: the first 1,017 images of each of the five
  training batches, indices in the official training order (the batches concatenated);
* ``x_test`` uint8 ``(4599, 32, 32, 3)``, ``idx_test`` int32: test images 0..1016 (the test split the
  loader uses, a natural class mix) plus every test image of airplane, automobile, ship and truck;
* ``y_train_full`` uint8 ``(50000,)``, ``y_test_full`` uint8 ``(10000,)``: all official labels.

``--dataset=cifar10_exact`` (and ``--preset=cpu``) finds it in ``./data`` (or ``--data_dir=DIR``, or
``$ISS_JAX_DATA_DIR``). With the full pickles at hand, ``--dataset=cifar10 --data_dir=DIR`` trains on all of
CIFAR-10 instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from absl import app, flags

import cli
import iss_jax

FLAGS = flags.FLAGS

TRAIN_BATCHES = 5
TRAIN_PER_BATCH = 1017  # the leading images of each training batch
TEST_PREFIX = 1017  # test images 0..1016: the test split of cifar10_exact (the loader keeps idx < 1017)
TEST_CLASSES = (0, 1, 8, 9)  # airplane, automobile, ship, truck: every test image of these is kept too
_FILES = [f"data_batch_{i}" for i in range(1, TRAIN_BATCHES + 1)] + ["test_batch"]


def select_indices(y_train: np.ndarray, y_test: np.ndarray, *, per_batch: int = TRAIN_PER_BATCH,
                   test_prefix: int = TEST_PREFIX) -> tuple[np.ndarray, np.ndarray]:
  """The official indices the file keeps, sorted.

  Args:
    y_train: the training labels in the official order (``TRAIN_BATCHES`` equal batches).
    y_test: the test labels in the official order.
    per_batch: leading images kept from each training batch.
    test_prefix: leading test images kept (besides every test image of ``TEST_CLASSES``).

  Returns:
    ``(idx_train, idx_test)``, int32.
  """
  batch = len(y_train) // TRAIN_BATCHES
  idx_train = np.concatenate([b * batch + np.arange(min(per_batch, batch)) for b in range(TRAIN_BATCHES)])
  idx_test = np.union1d(np.arange(min(test_prefix, len(y_test))),
                        np.flatnonzero(np.isin(y_test, TEST_CLASSES)))
  return idx_train.astype(np.int32), idx_test.astype(np.int32)


def _pickle_folder(cifar10_dir: Path) -> Path:
  for folder in (cifar10_dir, cifar10_dir / "cifar-10-batches-py"):
    if all((folder / f).is_file() for f in _FILES):
      return folder
  raise iss_jax.training.DatasetNotFoundError(
      f"{cifar10_dir} holds no official CIFAR-10 python pickles ({', '.join(_FILES)}, in it or in its "
      "cifar-10-batches-py/); pass --cifar10_dir=DIR with the extracted cifar-10-python.tar.gz of "
      "https://www.cs.toronto.edu/~kriz/cifar.html.")


def build(cifar10_dir: str | os.PathLike, out: str | os.PathLike, *, per_batch: int = TRAIN_PER_BATCH,
          test_prefix: int = TEST_PREFIX) -> dict:
  """Writes the ``cifar10_exact.npz`` arrays (see the module docstring) from the official pickles.

  Args:
    cifar10_dir: ``cifar-10-batches-py`` or its parent.
    out: the ``.npz`` file to write (atomically; its folder is created).
    per_batch, test_prefix: see :func:`select_indices` (the defaults make the shared file).

  Returns:
    ``{"num_train": ..., "num_test": ..., "of_train": ..., "of_test": ...}``.

  Raises:
    DatasetNotFoundError: no pickles in ``cifar10_dir``.
  """
  folder = _pickle_folder(Path(cifar10_dir))
  x_train, y_train = iss_jax.training.load_dataset("cifar10", "train", str(folder))
  x_test, y_test = iss_jax.training.load_dataset("cifar10", "test", str(folder))
  idx_train, idx_test = select_indices(y_train, y_test, per_batch=per_batch, test_prefix=test_prefix)
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.with_name(out.name + ".tmp.npz")
  np.savez_compressed(
      tmp, x_train=x_train[idx_train], idx_train=idx_train, x_test=x_test[idx_test], idx_test=idx_test,
      y_train_full=y_train.astype(np.uint8), y_test_full=y_test.astype(np.uint8),
      note=np.asarray(f"Genuine CIFAR-10 pixels (NHWC uint8) for the listed original indices, plus the full "
                      f"label vectors ({len(y_train)}/{len(y_test)}); built by train.make_cifar10_exact "
                      "from the official python pickles."))
  os.replace(tmp, out)
  return {"num_train": len(idx_train), "num_test": len(idx_test), "of_train": len(y_train),
          "of_test": len(y_test)}


def main(argv):
  del argv
  if not FLAGS.cifar10_dir:
    cli.fail("--cifar10_dir=DIR is required: the extracted cifar-10-python.tar.gz (cifar-10-batches-py).")
  with cli.user_errors((iss_jax.training.DatasetNotFoundError,)):
    n = build(FLAGS.cifar10_dir, FLAGS.out)
  print(f"wrote {FLAGS.out}: {n['num_train']} train / {n['num_test']} test images (of {n['of_train']} / "
        f"{n['of_test']}); use it with --dataset=cifar10_exact (--preset=cpu) "
        f"--data_dir={Path(FLAGS.out).parent}")


if __name__ == "__main__":
  flags.DEFINE_string("cifar10_dir", None, "The extracted cifar-10-python.tar.gz: cifar-10-batches-py or its "
                      "parent.")
  flags.DEFINE_string("out", "data/cifar10_exact.npz", "The .npz file to write.")
  app.run(main, flags_parser=cli.parse_flags)
