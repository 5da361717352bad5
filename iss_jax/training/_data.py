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
               "imagenette": 10, "miniimagenet": 64, "imagenet100": 100}
# Named datasets whose classes are the class folders (or class list) found: NUM_CLASSES holds the usual
# count, the labels decide (num_classes_of).
_CLASSES_FROM_DATA = frozenset({"miniimagenet", "imagenet100"})

MINIIMAGENET_SIZE = 84
MINIIMAGENET_TEST_PER_CLASS = 100  # the main paper's split: 100 held-out images of each training class
IMAGENET100_SIZE = 224
IMAGENET100_LIST = "imagenet100.txt"  # a class list in the data folder: one wnid a line
# The common ImageNet-100 (Tian et al., "Contrastive Multiview Coding", 2019: CMC's imagenet100.txt),
# sorted; used when --data_dir holds no imagenet100.txt. The ISS papers do not list their 100 classes.
IMAGENET100_CLASSES = (
    "n01558993", "n01692333", "n01729322", "n01735189", "n01749939", "n01773797", "n01820546", "n01855672",
    "n01978455", "n01980166", "n01983481", "n02009229", "n02018207", "n02085620", "n02086240", "n02086910",
    "n02087046", "n02089867", "n02089973", "n02090622", "n02091831", "n02093428", "n02099849", "n02100583",
    "n02104029", "n02105505", "n02106550", "n02107142", "n02108089", "n02109047", "n02113799", "n02113978",
    "n02114855", "n02116738", "n02119022", "n02123045", "n02138441", "n02172182", "n02231487", "n02259212",
    "n02326432", "n02396427", "n02483362", "n02488291", "n02701002", "n02788148", "n02804414", "n02859443",
    "n02869837", "n02877765", "n02974003", "n03017168", "n03032252", "n03062245", "n03085013", "n03259280",
    "n03379051", "n03424325", "n03492542", "n03494278", "n03530642", "n03584829", "n03594734", "n03637318",
    "n03642806", "n03764736", "n03775546", "n03777754", "n03785016", "n03787032", "n03794056", "n03837869",
    "n03891251", "n03903868", "n03930630", "n03947888", "n04026417", "n04067472", "n04099969", "n04111531",
    "n04127249", "n04136333", "n04229816", "n04238763", "n04336792", "n04418357", "n04429376", "n04435653",
    "n04485082", "n04493381", "n04517823", "n04589890", "n04592741", "n07714571", "n07715103", "n07753275",
    "n07831146", "n07836838", "n13037406", "n13040303")


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
  # A data_dir holding its own copy wins; else the copy shipped with the package (a data_dir of other
  # datasets, such as ../shared/data, does not hide the sample).
  path = Path(data_dir) / "cifar10_sample.npz" if data_dir else SAMPLE_PATH
  if not path.exists():
    path = SAMPLE_PATH
  if not path.exists():
    raise DatasetNotFoundError(
        f"cifar10_sample: {path} not found. It ships with the repository (data/cifar10_sample.npz); "
        "pass data_dir=DIR with the folder that holds cifar10_sample.npz.")
  with np.load(path) as d:
    return _finish(d[f"x_{split}"], d[f"y_{split}"], str(path))


def _load_exact(split, data_dir):
  path = find_data_file("cifar10_exact.npz", data_dir)
  if not path.exists():
    raise DatasetNotFoundError(
        f"cifar10_exact: {path} not found. It is a 5,085-train / 4,599-test-image subset of the real "
        f"CIFAR-10 (the cpu preset's data); pass data_dir=DIR (or set ${DATA_DIR_ENV}=DIR) with the "
        "folder that holds cifar10_exact.npz, or build it "
        "from the official CIFAR-10 python pickles (cifar-10-python.tar.gz, extracted) in a clone: "
        "the repository's python -m train.make_cifar10_exact; or use dataset=cifar10_sample offline.")
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
  return np.stack([_to_rgb(_pil().fromarray(np.asarray(im)), size, "stretch") for im in images])


def _pil():
  from PIL import Image

  return Image


def _to_rgb(im, size: int | None, crop: str):
  """A PIL image as uint8 ``(size, size, 3)`` RGB (grey repeated), bilinear.

  ``crop="stretch"`` resizes the whole image to ``size x size``; ``crop="center"`` resizes its shorter side
  to ``round(size * 256 / 224)`` and takes the central ``size x size`` (torchvision's ``Resize(256)`` +
  ``CenterCrop(224)``, the ImageNet evaluation transform). ``size=None`` keeps the image's size.
  """
  image = _pil()
  im = im.convert("RGB")
  if size and crop == "center":
    w, h = im.size
    short = round(size * 256 / 224)
    nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    im = im.resize((nw, nh), image.BILINEAR)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
  elif size:
    im = im.resize((size, size), image.BILINEAR)
  return np.asarray(im, np.uint8)


def _read_files(files, size: int | None, crop: str):
  """Decodes (and resizes) image files on a thread pool (PIL releases the GIL), in the given order.

  Returns uint8 ``(N, size, size, 3)``, decoded straight into one array (no second copy of a large
  dataset), or, with ``size=None``, a list of the images at their own sizes.
  """
  from concurrent.futures import ThreadPoolExecutor

  def one(f):
    with _pil().open(f) as im:
      return _to_rgb(im, size, crop)

  with ThreadPoolExecutor(max(1, min(32, os.cpu_count() or 1))) as pool:
    if not size:
      return list(pool.map(one, files))
    out = np.empty((len(files), size, size, 3), np.uint8)

    def put(i):
      out[i] = one(files[i])

    list(pool.map(put, range(len(files))))
    return out


def _class_files(root: Path, classes=None) -> dict[str, list[Path]]:
  """``{class: its image files in name order}`` of the class sub-folders of ``root`` (all, sorted, or
  ``classes``)."""
  if classes is None:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
  return {c: sorted(f for f in (root / c).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
          for c in classes}


def _read_classes(by_class: dict[str, list], size: int | None, crop: str, source: str):
  """``(x, y)`` of ``{class: image files (or uint8 arrays)}``, class ``i`` of the dict's order labelled
  ``i``; images of one size required (``size`` resizes them)."""
  items = [f for fs in by_class.values() for f in fs]
  labels = np.asarray([i for i, fs in enumerate(by_class.values()) for _ in fs])
  if not items:
    raise ValueError(f"{source}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders.")
  if isinstance(items[0], np.ndarray):  # decoded already (the miniImageNet pickle)
    items = [im if not size or im.shape[:2] == (size, size) else _to_rgb(_pil().fromarray(im), size, crop)
             for im in items]
  else:
    items = _read_files(items, size, crop)
  if isinstance(items, list):
    shapes = {im.shape for im in items}
    if len(shapes) > 1:
      raise ValueError(f"{source}: images have different sizes {sorted(shapes)[:3]}...; "
                       "pass image_size to resize them all.")
    items = np.stack(items)
  return _finish(items, labels, source)


def _load_npz(path: Path, split):
  if not path.exists():
    raise DatasetNotFoundError(f"npz dataset: {path} not found; pass dataset=npz:/path/file.npz.")
  with np.load(path) as d:
    if f"x_{split}" in d:
      return _finish(d[f"x_{split}"], d[f"y_{split}"], str(path))
    if "x" in d and "y" in d:
      return _finish(d["x"], d["y"], str(path))
    raise ValueError(f"{path}: expected arrays 'x_{split}' and 'y_{split}', or 'x' and 'y'; "
                     f"found {sorted(d.files)}.")


def _load_folder(root: Path, split, image_size):
  if not root.is_dir():
    raise DatasetNotFoundError(f"image folder {root} not found; pass dataset=folder:/path with one "
                               "sub-folder per class (optionally under train/ and test/ or val/).")
  subs = ("train",) if split == "train" else ("test", "val")
  sub = next((root / s for s in subs if (root / s).is_dir()), None)
  if sub is None and (root / "train").is_dir():
    raise DatasetNotFoundError(f"image folder {root} has train/ but no test/ or val/ for the test split; "
                               "pass dataset=folder:/path whose test/ (or val/) holds the test images "
                               "in the same class sub-folders.")
  root = sub or root
  files = _class_files(root)
  if not files:
    raise ValueError(f"{root}: expected one sub-folder per class; found none.")
  return _read_classes(files, image_size, "stretch", str(root))


def _dataset_root(name: str, data_dir: str | None) -> Path:
  """``data_dir/name`` if that is a folder, else ``data_dir``; without ``data_dir``,
  ``$ISS_JAX_DATA_DIR/name`` or ``./data/name``."""
  if data_dir and (Path(data_dir) / name).is_dir():
    return Path(data_dir) / name
  return Path(data_dir) if data_dir else find_data_file(name)


def miniimagenet_test_indices(class_name: str, count: int) -> np.ndarray:
  """Which images of a miniImageNet class the ``miniimagenet`` test split holds: the split rule.

  The main paper (Sec. 4: "we split the train set and randomly chose 100 images of each class as our new
  test set, and others as our training set") does not publish its draw; ours is fixed and reproducible:
  the first 100 of a permutation of the class's images (in file-name order) drawn by
  ``np.random.default_rng(zlib.crc32(class_name))``, so a class's split depends on its own images only.

  Args:
    class_name: the class (its folder name, a wnid such as ``"n01532829"``).
    count: the number of images of the class; more than 100.

  Returns:
    The 100 held-out positions, sorted, int64 ``(100,)``.

  Raises:
    ValueError: ``count`` is at most 100.
  """
  import zlib

  k = MINIIMAGENET_TEST_PER_CLASS
  if count <= k:
    raise ValueError(f"miniimagenet: class {class_name} has {count} images; the split holds out {k} per "
                     f"class for testing, so each class needs more than {k} (miniImageNet has 600).")
  perm = np.random.default_rng(zlib.crc32(class_name.encode())).permutation(count)
  return np.sort(perm[:k])


def _miniimagenet_sources(root: Path):
  """``{class: its image files (or uint8 arrays) in file order}`` for the miniImageNet layout found in
  ``root``, or None."""
  if (root / "train").is_dir():  # class folders of the 64 training classes, e.g. train/n01532829/*.jpg
    return _class_files(root / "train")
  if (root / "train.csv").exists() and (root / "images").is_dir():  # Ravi & Larochelle's csv + images/
    by_class: dict[str, list[Path]] = {}
    for line in (root / "train.csv").read_text().splitlines()[1:]:  # header: filename,label
      if line.strip():
        filename, label = line.strip().split(",")[:2]
        by_class.setdefault(label, []).append(root / "images" / filename)
    return {c: sorted(by_class[c]) for c in sorted(by_class)}
  pkl = root / "mini-imagenet-cache-train.pkl"
  if pkl.exists():  # {"image_data": uint8 (38400, 84, 84, 3), "class_dict": {wnid: [indices]}}
    d = _unpickle(pkl)
    data = np.asarray(_get(d, "image_data"))
    classes = {(k.decode() if isinstance(k, bytes) else k): v for k, v in _get(d, "class_dict").items()}
    return {c: [data[i] for i in sorted(classes[c])] for c in sorted(classes)}
  if root.is_dir():
    files = _class_files(root)
    if files and any(files.values()):  # class folders directly in root
      return files
  return None


def _load_miniimagenet(split, data_dir, image_size):
  root = _dataset_root("miniimagenet", data_dir)
  found = _miniimagenet_sources(root)
  if found is None:
    raise DatasetNotFoundError(
        f"miniimagenet: no miniImageNet in {root}; pass data_dir=DIR where DIR (or DIR/miniimagenet) "
        "holds the training classes as train/<wnid>/*.jpg or <wnid>/*.jpg folders, Ravi & Larochelle's "
        "images/ with train.csv, or mini-imagenet-cache-train.pkl.")
  chosen = {}
  for cls, members in found.items():
    held = np.zeros(len(members), bool)
    held[miniimagenet_test_indices(cls, len(members))] = True
    chosen[cls] = [m for m, h in zip(members, held, strict=True) if h == (split == "test")]
  return _read_classes(chosen, image_size or MINIIMAGENET_SIZE, "stretch", f"miniimagenet:{root}")


def imagenet100_classes(data_dir: str | None = None) -> tuple[str, ...]:
  """The ImageNet-100 classes, sorted (class ``i`` is label ``i``).

  Args:
    data_dir: a folder; its ``imagenet100.txt`` (one wnid a line; blank lines and ``#`` comments skipped)
      is the class list if present.

  Returns:
    The wnids of ``data_dir/imagenet100.txt``, else ``IMAGENET100_CLASSES`` (CMC's ImageNet-100).

  Raises:
    ValueError: the list is empty or names a class twice.
  """
  path = Path(data_dir) / IMAGENET100_LIST if data_dir else None
  if path is None or not path.exists():
    return IMAGENET100_CLASSES
  names = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
  names = [n for n in names if n]
  if not names or len(set(names)) != len(names):
    raise ValueError(f"{path}: expected one class (wnid) a line, each once; got {len(names)} lines with "
                     f"{len(set(names))} different classes.")
  return tuple(sorted(names))


def _load_tfds_imagenet_subset(split, data_dir, classes, size):
  """The classes of TFDS ``imagenet2012`` (prepared: it needs a manual download), or None."""
  try:
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    names = builder.info.features["label"].names
    ds = builder.as_dataset(split="train" if split == "train" else "validation", as_supervised=True,
                            shuffle_files=False)
  except Exception:  # noqa: BLE001 - missing / not prepared: the caller raises the clear error.
    return None
  missing = [c for c in classes if c not in names]
  if missing:
    raise DatasetNotFoundError(f"imagenet100: TFDS imagenet2012 has no classes {', '.join(missing[:3])}; "
                               f"list ImageNet wnids in data_dir/{IMAGENET100_LIST}.")
  label_of = {names.index(c): i for i, c in enumerate(classes)}
  keep = tf.constant(sorted(label_of), tf.int64)
  ds = ds.filter(lambda image, label: tf.reduce_any(tf.equal(tf.cast(label, tf.int64), keep)))
  images, labels = [], []
  for image, label in tfds.as_numpy(ds):
    images.append(_to_rgb(_pil().fromarray(image), size, "center"))
    labels.append(label_of[int(label)])
  return _finish(np.stack(images), np.asarray(labels), "tfds:imagenet2012")


def _load_imagenet100(split, data_dir, image_size):
  root = _dataset_root("imagenet100", data_dir)
  classes = imagenet100_classes(str(root))
  size = image_size or IMAGENET100_SIZE
  sub = root / ("train" if split == "train" else "val")
  if sub.is_dir():
    missing = [c for c in classes if not (sub / c).is_dir()]
    if missing:
      source = root / IMAGENET100_LIST if (root / IMAGENET100_LIST).exists() else "the CMC class list"
      raise DatasetNotFoundError(
          f"imagenet100: {len(missing)} of the {len(classes)} classes of {source} have no folder in {sub} "
          f"(e.g. {', '.join(missing[:3])}); pass data_dir=DIR whose train/ and val/ hold a <wnid>/ "
          f"folder per class (val/ sorted into class folders, as ImageNet's valprep.sh does), with your "
          f"class list in DIR/{IMAGENET100_LIST}.")
    return _read_classes(_class_files(sub, classes), size, "center", f"imagenet100:{sub}")
  out = _load_tfds_imagenet_subset(split, data_dir, classes, size)
  if out is not None:
    return out
  raise DatasetNotFoundError(
      f"imagenet100: {sub} not found and TFDS imagenet2012 is not prepared; pass data_dir=DIR with "
      "ImageNet's train/ and val/ folders of <wnid>/ class sub-folders (the 100 classes listed in "
      f"DIR/{IMAGENET100_LIST}, else CMC's ImageNet-100), or prepare TFDS imagenet2012 (a manual "
      "download) in data_dir.")


def load_dataset(name: str, split: str = "train", data_dir: str | None = None, *,
                 image_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Loads a dataset split into host memory, in the official order.

  Args:
    name: ``"cifar10_sample"`` (1,000 train / 500 test real CIFAR-10 images shipped in
      ``data/cifar10_sample.npz``; the offline default), ``"cifar10_exact"`` (5,085 real train images;
      test = official test images 0..1016; from ``cifar10_exact.npz`` in ``data_dir``,
      ``$ISS_JAX_DATA_DIR`` or ``./data``),
      ``"cifar10"``, ``"cifar100"`` (the official python pickle folder, ``cifar-10-batches-py`` /
      ``cifar-100-python`` or its parent, in ``data_dir`` if given, else TFDS; CIFAR-100 labels are the
      100 fine labels), ``"imagenette"`` (an image folder in ``data_dir`` with ``train/`` and
      ``val``/``test`` sub-folders, else TFDS; resized to ``image_size``, default 160),
      ``"miniimagenet"`` (the main paper's split of miniImageNet's 64 training classes (Vinyals et al.
      2016; Ravi & Larochelle's class split): 100 images of each class held out for testing by
      :func:`miniimagenet_test_indices`, 500 for training; 84x84; from ``data_dir`` or
      ``data_dir/miniimagenet`` holding ``train/<wnid>/*.jpg`` or ``<wnid>/*.jpg`` class folders,
      ``images/`` with ``train.csv``, or ``mini-imagenet-cache-train.pkl``), ``"imagenet100"`` (100
      ImageNet classes at 224x224: the wnids of ``data_dir/imagenet100.txt`` if present, else CMC's
      ImageNet-100 (:func:`imagenet100_classes`); train from ``data_dir/train/<wnid>/``, test from
      ``data_dir/val/<wnid>/`` (also ``data_dir/imagenet100/``), else TFDS ``imagenet2012``;
      shorter side resized to 256 and centre-cropped to 224, as torchvision's evaluation transform),
      ``"npz:/path/file.npz"`` (arrays ``x_train``/``y_train``/``x_test``/``y_test``, or ``x``/``y``
      for every split; ``x`` uint8 NHWC) or ``"folder:/path"`` (one sub-folder per class, optionally
      under ``train/`` and ``test/`` (or ``val/``); grey images become RGB). Image-folder classes are
      numbered in sorted order and files read in name order. Without ``data_dir``, miniImageNet and
      ImageNet-100 are looked for in ``$ISS_JAX_DATA_DIR/<name>`` or ``./data/<name>``.
    split: ``"train"`` or ``"test"``.
    data_dir: folder holding the files (see ``name``); for TFDS, its ``data_dir``.
    image_size: resize images to ``image_size x image_size`` (image folders, miniImageNet, ImageNet-100
      and TFDS only); ``None``: the dataset's size (84 for miniImageNet, 224 for ImageNet-100, the
      native size of a ``folder:``).

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
    folder, files, tar = (("cifar-10-batches-py", "data_batch_1..5 and test_batch", "cifar-10-python.tar.gz")
                          if name == "cifar10" else ("cifar-100-python", "train and test",
                                                     "cifar-100-python.tar.gz"))
    raise DatasetNotFoundError(
        f"{name}: no local copy in data_dir and TFDS is unavailable or offline; pass data_dir=DIR with "
        f"the official python folder {folder} (files {files}, extracted from {tar}) or its parent, or use "
        f"TFDS {name} where it can download, such as on Colab"
        + (", or dataset=cifar10_exact / cifar10_sample offline." if name == "cifar10" else "."))
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
        "imagenette: TFDS is unavailable or offline; pass data_dir=DIR with the extracted imagenette2 "
        "folder (train/ and val/, one sub-folder per class), or install tensorflow-datasets online.")
  if name == "miniimagenet":
    return _load_miniimagenet(split, data_dir, image_size)
  if name == "imagenet100":
    return _load_imagenet100(split, data_dir, image_size)
  raise ValueError(f"dataset must be one of {sorted(NUM_CLASSES)}, 'npz:/path.npz' or 'folder:/path'; "
                   f"got {name!r}.")


def num_classes_of(name: str, y_train: np.ndarray | None = None) -> int:
  """Number of classes of a dataset: ``max(y) + 1`` for ``npz:``/``folder:`` data and for miniImageNet /
  ImageNet-100 given the labels (their classes are the folders or the class list found), else
  ``NUM_CLASSES[name]``."""
  if name in NUM_CLASSES and (name not in _CLASSES_FROM_DATA or y_train is None):
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
