"""Datasets as uint8 NHWC arrays in the official order: shipped sample, real subset, TFDS, local files.

Every loader returns ``(x, y)``: ``x`` uint8 ``(N, H, W, C)``, ``y`` int32 ``(N,)``, in the dataset's
official order (CIFAR-10-C and PSNR pairings rely on it), held in host memory.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

# The 1,000 / 500 real CIFAR-10 images the quick preset and the tests use ship inside the package.
SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "cifar10_sample.npz"
DATA_DIR_ENV = "ISS_JAX_DATA_DIR"
EXACT_TEST_COUNT = 1017  # official test images 0..1016: natural class mix.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
NUM_CLASSES = {"cifar10_sample": 10, "cifar10_exact": 10, "cifar10": 10, "cifar100": 100,
               "imagenette": 10}


class DatasetNotFoundError(FileNotFoundError):
  """A dataset is neither available locally nor through TFDS; the message names the flag or path to use."""


def _check_split(split: str) -> None:
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")


def _finish(x, y, source: str):
  x = np.asarray(x)
  y = np.asarray(y).astype(np.int32).reshape(-1)
  if x.dtype != np.uint8 or x.ndim != 4:
    raise ValueError(f"{source}: images must be uint8 (N, H, W, C); got {x.dtype} {x.shape}.")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"{source}: {x.shape[0]} images but {y.shape[0]} labels.")
  return np.ascontiguousarray(x), y


def find_data_file(filename: str, data_dir: str | None = None) -> Path:
  """Where a dataset file is looked for: ``data_dir`` if given, else ``$ISS_JAX_DATA_DIR``, else ``./data``.

  Returns the first candidate (existing or not, so an error can name it); nothing is looked up
  relative to the installed package.
  """
  if data_dir:
    return Path(data_dir) / filename
  env = os.environ.get(DATA_DIR_ENV)
  return (Path(env) if env else Path("data")) / filename


def _load_sample(split, data_dir):
  path = Path(data_dir) / "cifar10_sample.npz" if data_dir else SAMPLE_PATH
  if not path.exists():
    raise DatasetNotFoundError(
        f"cifar10_sample: {path} not found. It ships with the repository (data/cifar10_sample.npz); "
        "pass --data_dir=DIR with the folder that holds cifar10_sample.npz.")
  with np.load(path) as d:
    return _finish(d[f"x_{split}"], d[f"y_{split}"], str(path))


def _load_exact(split, data_dir):
  path = find_data_file("cifar10_exact.npz", data_dir)
  if not path.exists():
    raise DatasetNotFoundError(
        f"cifar10_exact: {path} not found. It is a 5,085-train / 4,599-test-image subset of the real "
        f"CIFAR-10 (the cpu preset's data); pass --data_dir=DIR (or set ${DATA_DIR_ENV}=DIR) with the "
        "folder that holds cifar10_exact.npz (e.g. --data_dir=../shared/data beside a clone), or build it "
        "from the official CIFAR-10 python pickles (cifar-10-python.tar.gz, extracted) in a clone: "
        "python -m train.make_cifar10_exact --cifar10_dir=DIR --out=data/cifar10_exact.npz; or use "
        "--dataset=cifar10_sample (--preset=quick) offline.")
  with np.load(path) as d:
    idx = d[f"idx_{split}"]
    x = d[f"x_{split}"]
    labels = d[f"y_{split}_full"]
  if split == "test":
    keep = idx < EXACT_TEST_COUNT
    x, idx = x[keep], idx[keep]
  order = np.argsort(idx, kind="stable")
  return _finish(x[order], labels[idx[order]], str(path))


def _unpickle(path: Path):
  with open(path, "rb") as f:
    return pickle.load(f, encoding="bytes")


def _get(d, key):
  return d[key.encode()] if key.encode() in d else d[key]


def _load_cifar_pickles(name, split, folder: Path):
  """The official CIFAR python version: ``cifar-10-batches-py`` or ``cifar-100-python``."""
  if name == "cifar10":
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    label_key = "labels"
  else:
    files = ["train" if split == "train" else "test"]
    label_key = "fine_labels"
  for sub in ("", "cifar-10-batches-py", "cifar-100-python"):
    if all((folder / sub / f).exists() for f in files):
      folder = folder / sub
      break
  else:
    return None
  xs, ys = [], []
  for f in files:
    d = _unpickle(folder / f)
    xs.append(np.asarray(_get(d, "data"), np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    ys.append(np.asarray(_get(d, label_key)))
  return _finish(np.concatenate(xs), np.concatenate(ys), str(folder))


def _load_tfds(name, split, data_dir, image_size):
  """TFDS in its stored order (``shuffle_files=False``); None when TFDS is missing or offline."""
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    return None
  tfds_split = "validation" if name == "imagenette" and split == "test" else split
  try:
    ds = tfds.load(name, split=tfds_split, data_dir=data_dir, as_supervised=True, shuffle_files=False)
  except Exception:  # noqa: BLE001 - offline / not prepared: the caller raises the clear error.
    return None
  images, labels = [], []
  for image, label in tfds.as_numpy(ds):
    images.append(image)
    labels.append(label)
  if name == "imagenette" or (image_size and images[0].shape[:2] != (image_size, image_size)):
    x = _resize_all(images, image_size or 160)
  else:
    x = np.stack(images)
  return _finish(x, np.asarray(labels), f"tfds:{name}")


def _resize_all(images, size):
  from PIL import Image

  return np.stack([np.asarray(Image.fromarray(np.asarray(im)).convert("RGB").resize(
      (size, size), Image.BILINEAR)) for im in images])


def _load_npz(path: Path, split):
  if not path.exists():
    raise DatasetNotFoundError(f"npz dataset: {path} not found; pass --dataset=npz:/path/file.npz.")
  with np.load(path) as d:
    if f"x_{split}" in d:
      return _finish(d[f"x_{split}"], d[f"y_{split}"], str(path))
    if "x" in d and "y" in d:
      return _finish(d["x"], d["y"], str(path))
    raise ValueError(f"{path}: expected arrays 'x_{split}' and 'y_{split}', or 'x' and 'y'; "
                     f"found {sorted(d.files)}.")


def _load_folder(root: Path, split, image_size):
  from PIL import Image

  if not root.is_dir():
    raise DatasetNotFoundError(f"image folder {root} not found; pass --dataset=folder:/path with one "
                               "sub-folder per class (optionally under train/ and test/).")
  if (root / split).is_dir():
    root = root / split
  classes = sorted(p.name for p in root.iterdir() if p.is_dir())
  if not classes:
    raise ValueError(f"{root}: expected one sub-folder per class; found none.")
  images, labels = [], []
  for label, cls in enumerate(classes):
    for f in sorted((root / cls).iterdir()):
      if f.suffix.lower() in IMAGE_EXTENSIONS:
        with Image.open(f) as im:
          im = im.convert("RGB")
          if image_size:
            im = im.resize((image_size, image_size), Image.BILINEAR)
          images.append(np.asarray(im, np.uint8))
        labels.append(label)
  if not images:
    raise ValueError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders.")
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise ValueError(f"{root}: images have different sizes {sorted(shapes)[:3]}...; "
                     "pass image_size to resize them all.")
  return _finish(np.stack(images), np.asarray(labels), str(root))


def load_dataset(name: str, split: str = "train", data_dir: str | None = None, *,
                 image_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Loads a dataset split into host memory, in the official order.

  Args:
    name: ``"cifar10_sample"`` (1,000 train / 500 test real CIFAR-10 images shipped in
      ``data/cifar10_sample.npz``; the offline default), ``"cifar10_exact"`` (5,085 real train images;
      test = official test images 0..1016; from ``cifar10_exact.npz`` in ``data_dir``,
      ``$ISS_JAX_DATA_DIR`` or ``./data``),
      ``"cifar10"``, ``"cifar100"`` (the official python pickle folder in ``data_dir`` if given, else
      TFDS), ``"imagenette"`` (an image folder in ``data_dir`` with ``train/`` and ``val``/``test``
      sub-folders, else TFDS; resized to ``image_size``, default 160), ``"npz:/path/file.npz"`` (arrays
      ``x_train``/``y_train``/``x_test``/``y_test``, or ``x``/``y`` for every split; ``x`` uint8 NHWC) or
      ``"folder:/path"`` (one sub-folder per class, optionally under ``train/`` and ``test/``; classes
      numbered in sorted order).
    split: ``"train"`` or ``"test"``.
    data_dir: folder holding the files (see ``name``); for TFDS, its ``data_dir``.
    image_size: resize images to ``image_size x image_size`` (image folders and TFDS only).

  Returns:
    ``(x, y)``: ``x`` uint8 ``(N, H, W, C)``, ``y`` int32 ``(N,)``.

  Raises:
    DatasetNotFoundError: (a ``FileNotFoundError``) the data is not there; the message names the flag or
      path to use.
    ValueError: unknown name or split, or malformed files.

  Examples:
    >>> import iss_jax
    >>> x, y = iss_jax.training.load_dataset("cifar10_sample", "test")
    >>> x.shape, x.dtype, y.shape
    ((500, 32, 32, 3), dtype('uint8'), (500,))
  """
  _check_split(split)
  if name.startswith("npz:"):
    return _load_npz(Path(name[4:]).expanduser(), split)
  if name.startswith("folder:"):
    return _load_folder(Path(name[7:]).expanduser(), split, image_size)
  if name == "cifar10_sample":
    return _load_sample(split, data_dir)
  if name == "cifar10_exact":
    return _load_exact(split, data_dir)
  if name in ("cifar10", "cifar100"):
    if data_dir and Path(data_dir).is_dir():
      out = _load_cifar_pickles(name, split, Path(data_dir))
      if out is not None:
        return out
    out = _load_tfds(name, split, data_dir, image_size)
    if out is not None:
      return out
    raise DatasetNotFoundError(
        f"{name}: no local copy and TFDS is unavailable or offline. Pass --data_dir=DIR with the official "
        f"CIFAR python folder ({'cifar-10-batches-py' if name == 'cifar10' else 'cifar-100-python'}), "
        "or install tensorflow-datasets on a machine with internet access "
        "(or pass --dataset=cifar10_exact / cifar10_sample offline).")
  if name == "imagenette":
    if data_dir:
      root = Path(data_dir)
      sub = split if split == "train" else next(
          (s for s in ("val", "validation", "test") if (root / s).is_dir()), "val")
      if (root / sub).is_dir():
        return _load_folder(root / sub, split, image_size or 160)
    out = _load_tfds(name, split, data_dir, image_size)
    if out is not None:
      return out
    raise DatasetNotFoundError(
        "imagenette: TFDS is unavailable or offline; pass --data_dir=DIR with the extracted imagenette2 "
        "folder (train/ and val/, one sub-folder per class), or install tensorflow-datasets online.")
  raise ValueError(f"dataset must be one of {sorted(NUM_CLASSES)}, 'npz:/path.npz' or 'folder:/path'; "
                   f"got {name!r}.")


def num_classes_of(name: str, y_train: np.ndarray | None = None) -> int:
  """Number of classes of a named dataset (or ``max(y) + 1`` for ``npz:``/``folder:`` data)."""
  if name in NUM_CLASSES:
    return NUM_CLASSES[name]
  if y_train is None:
    raise ValueError(f"num_classes of {name!r} needs the labels.")
  return int(np.max(y_train)) + 1


def dataset_fingerprint(x: np.ndarray) -> str:
  """A short content hash of an image array (shape, dtype and bytes), for cache keys."""
  import hashlib

  h = hashlib.sha256()
  h.update(str((x.shape, str(x.dtype))).encode())
  h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()[:16]


def official_test_indices(name: str, data_dir: str | None = None) -> np.ndarray | None:
  """Official CIFAR-10 test indices of the dataset's test split, in its order, or None if unknown.

  ``cifar10`` and ``cifar10_exact`` are in the official order from image 0; ``cifar10_sample`` and
  ``npz:`` files carry an ``idx_test`` array (used to pair images with the official CIFAR-10-C files).
  """
  if name in ("cifar10", "cifar10_exact"):
    return np.arange(10_000)
  if name == "cifar10_sample":
    path = Path(data_dir) / "cifar10_sample.npz" if data_dir else SAMPLE_PATH
  elif name.startswith("npz:"):
    path = Path(name[4:])
  else:
    return None
  if not path.exists():
    return None
  with np.load(path) as d:
    return np.asarray(d["idx_test"]) if "idx_test" in d else None
