"""Dataset loaders on tiny files written in tmp_path (npz, CIFAR pickle folders, image folders, miniImageNet
layouts) and on the real crops shipped in tests/data/folder_sample (image folder, ImageNet-100 class list)."""

import pickle
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from sample_data import EXACT_PATH, REPO, SAMPLE_PATH

import iss_jax
from iss_jax.training import _data as data_lib


def _images(n, h=4, w=4, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_npz_split_arrays(tmp_path):
  xtr, xte = _images(6), _images(3, seed=1)
  path = tmp_path / "d.npz"
  np.savez(path, x_train=xtr, y_train=np.arange(6) % 2, x_test=xte, y_test=np.array([1, 0, 1]))
  x, y = iss_jax.training.load_dataset(f"npz:{path}", "train")
  np.testing.assert_array_equal(x, xtr)
  assert y.dtype == np.int32 and y.tolist() == [0, 1, 0, 1, 0, 1]
  x, y = iss_jax.training.load_dataset(f"npz:{path}", "test")
  np.testing.assert_array_equal(x, xte)


def test_npz_plain_and_errors(tmp_path):
  path = tmp_path / "plain.npz"
  np.savez(path, x=_images(4), y=np.array([3, 2, 1, 0]))
  for split in ("train", "test"):
    x, y = iss_jax.training.load_dataset(f"npz:{path}", split)
    assert x.shape == (4, 4, 4, 3) and y.tolist() == [3, 2, 1, 0]
  bad = tmp_path / "bad.npz"
  np.savez(bad, x=_images(4).astype(np.float32), y=np.zeros(4))
  with pytest.raises(ValueError, match="uint8"):
    iss_jax.training.load_dataset(f"npz:{bad}", "train")
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="dataset=npz"):
    iss_jax.training.load_dataset(f"npz:{tmp_path / 'missing.npz'}", "train")


def _write_cifar10_pickles(folder, per_batch=3):
  """The official format: rows of 3072 bytes in channel-major (CHW) order, b'data' and b'labels'."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  expected = {"train": [], "test": []}
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    chw = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, per_batch).tolist()
    with open(folder / name, "wb") as f:
      pickle.dump({b"data": chw.reshape(per_batch, 3072), b"labels": labels}, f)
    split = "test" if name == "test_batch" else "train"
    expected[split].append((chw.transpose(0, 2, 3, 1), labels))
  return expected


def test_cifar10_pickle_folder(tmp_path):
  expected = _write_cifar10_pickles(tmp_path / "cifar-10-batches-py")
  for split in ("train", "test"):
    # Both the folder itself and its parent are accepted as data_dir.
    for data_dir in (tmp_path, tmp_path / "cifar-10-batches-py"):
      x, y = iss_jax.training.load_dataset("cifar10", split, str(data_dir))
      np.testing.assert_array_equal(x, np.concatenate([e[0] for e in expected[split]]))
      assert y.tolist() == sum((e[1] for e in expected[split]), [])


def test_cifar100_pickle_folder(tmp_path):
  folder = tmp_path / "cifar-100-python"
  folder.mkdir()
  chw = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
  for name in ("train", "test"):
    with open(folder / name, "wb") as f:
      pickle.dump({b"data": chw.reshape(2, 3072), b"fine_labels": [57, 3], b"coarse_labels": [1, 2]}, f)
  x, y = iss_jax.training.load_dataset("cifar100", "test", str(tmp_path))
  np.testing.assert_array_equal(x, chw.transpose(0, 2, 3, 1))
  assert y.tolist() == [57, 3]


def test_image_folder(tmp_path):
  root = tmp_path / "imgs"
  imgs = _images(4, 6, 5)
  for i, cls in enumerate(["zebra", "ant", "ant", "moth"]):
    (root / "train" / cls).mkdir(parents=True, exist_ok=True)
    Image.fromarray(imgs[i]).save(root / "train" / cls / f"{i}.png")
  x, y = iss_jax.training.load_dataset(f"folder:{root}", "train")
  # Classes numbered in sorted order: ant=0, moth=1, zebra=2; files sorted within a class.
  assert y.tolist() == [0, 0, 1, 2]
  np.testing.assert_array_equal(x, imgs[[1, 2, 3, 0]])
  x, _ = iss_jax.training.load_dataset(f"folder:{root}", "train", image_size=8)
  assert x.shape == (4, 8, 8, 3)
  Image.fromarray(_images(1, 7, 7)[0]).save(root / "train" / "ant" / "big.png")
  with pytest.raises(ValueError, match="image_size"):
    iss_jax.training.load_dataset(f"folder:{root}", "train")
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="dataset=folder"):
    iss_jax.training.load_dataset(f"folder:{tmp_path / 'nope'}", "train")


def test_missing_dataset_names_the_flag(tmp_path, monkeypatch):
  monkeypatch.setattr(data_lib, "_load_tfds", lambda *a: None)  # as offline / without TFDS
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="data_dir="):
    iss_jax.training.load_dataset("cifar10", "train")
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="data_dir="):
    iss_jax.training.load_dataset("cifar10", "train", str(tmp_path))  # an empty folder
  with pytest.raises(iss_jax.training.DatasetNotFoundError,
                     match=r"data_dir=DIR.*python -m train\.make_cifar10_exact"):
    iss_jax.training.load_dataset("cifar10_exact", "train", str(tmp_path))  # names the script that makes it
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="data_dir="):
    iss_jax.training.load_dataset("imagenette", "train")


def test_make_cifar10_exact_from_the_official_pickles(tmp_path):
  """The script writes the cifar10_exact arrays that the loader reads, from (fake) official pickles."""
  from train import make_cifar10_exact

  expected = _write_cifar10_pickles(tmp_path / "cifar-10-batches-py", per_batch=4)
  x_train = np.concatenate([e[0] for e in expected["train"]])
  y_train = np.asarray(sum((e[1] for e in expected["train"]), []))
  x_test, y_test = expected["test"][0][0], np.asarray(expected["test"][0][1])
  out = tmp_path / "data" / "cifar10_exact.npz"
  n = make_cifar10_exact.build(tmp_path, out, per_batch=2, test_prefix=1)  # the parent folder works too
  idx_train = np.array([0, 1, 4, 5, 8, 9, 12, 13, 16, 17])  # the first 2 of each batch of 4
  idx_test = np.union1d([0], np.flatnonzero(np.isin(y_test, [0, 1, 8, 9])))
  assert n == {"num_train": 10, "num_test": len(idx_test), "of_train": 20, "of_test": 4}
  with np.load(out) as d:
    assert {k: d[k].dtype for k in ("idx_train", "idx_test", "y_train_full", "y_test_full")} == {
        "idx_train": np.int32, "idx_test": np.int32, "y_train_full": np.uint8, "y_test_full": np.uint8}
    np.testing.assert_array_equal(d["idx_train"], idx_train)
    np.testing.assert_array_equal(d["idx_test"], idx_test)
  x, y = iss_jax.training.load_dataset("cifar10_exact", "train", str(out.parent))
  np.testing.assert_array_equal(x, x_train[idx_train])
  assert y.tolist() == y_train[idx_train].tolist()
  x, y = iss_jax.training.load_dataset("cifar10_exact", "test", str(out.parent))
  np.testing.assert_array_equal(x, x_test[idx_test])
  assert y.tolist() == y_test[idx_test].tolist()
  if EXACT_PATH.exists():  # the same arrays as the shared file
    with np.load(EXACT_PATH) as shared, np.load(out) as made:
      kinds = lambda d: {k: (d[k].dtype.str if d[k].dtype.kind != "U" else "str", d[k].ndim) for k in d.files}
      assert kinds(shared) == kinds(made)
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="--cifar10_dir"):
    make_cifar10_exact.build(tmp_path / "data", tmp_path / "other.npz")


def test_make_cifar10_exact_command(tmp_path):
  import subprocess
  import sys

  _write_cifar10_pickles(tmp_path / "cifar-10-batches-py")
  out = tmp_path / "data" / "cifar10_exact.npz"
  run = lambda *a: subprocess.run([sys.executable, "-m", "train.make_cifar10_exact", *a], capture_output=True,
                                  text=True)
  done = run(f"--cifar10_dir={tmp_path / 'cifar-10-batches-py'}", f"--out={out}")
  assert done.returncode == 0, done.stderr
  assert done.stdout.startswith(f"wrote {out}: 15 train / 3 test images (of 15 / 3)")
  x, _ = iss_jax.training.load_dataset("cifar10_exact", "train", str(out.parent))
  assert x.shape == (15, 32, 32, 3)
  missing = run(f"--cifar10_dir={tmp_path / 'data'}")
  lines = missing.stderr.strip().splitlines()
  assert missing.returncode == 2 and len(lines) == 1 and "no official CIFAR-10 python pickles" in lines[0]


@pytest.mark.skipif(not EXACT_PATH.exists(), reason="needs ../shared/data/cifar10_exact.npz")
def test_make_cifar10_exact_keeps_the_images_of_the_shared_file():
  from train import make_cifar10_exact

  with np.load(EXACT_PATH) as d:
    idx_train, idx_test = make_cifar10_exact.select_indices(d["y_train_full"], d["y_test_full"])
    np.testing.assert_array_equal(idx_train, d["idx_train"])
    np.testing.assert_array_equal(idx_test, d["idx_test"])


def test_bad_names():
  with pytest.raises(ValueError, match="split"):
    iss_jax.training.load_dataset("cifar10_sample", "val")
  with pytest.raises(ValueError, match="dataset must be one of"):
    iss_jax.training.load_dataset("mnist", "train")


def test_shipped_sample_official_order():
  x, y = iss_jax.training.load_dataset("cifar10_sample", "test")
  assert x.shape == (500, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (500,)
  with np.load(SAMPLE_PATH) as d:
    assert np.all(np.diff(d["idx_test"]) > 0)  # stored in the official test order


@pytest.mark.skipif(not EXACT_PATH.exists(), reason="needs ../shared/data/cifar10_exact.npz")
def test_cifar10_exact_test_split_is_official_prefix():
  x, y = iss_jax.training.load_dataset("cifar10_exact", "test", str(EXACT_PATH.parent))
  assert x.shape == (1017, 32, 32, 3)
  with np.load(EXACT_PATH) as d:
    keep = d["idx_test"] < 1017
    order = np.argsort(d["idx_test"][keep])
    np.testing.assert_array_equal(np.sort(d["idx_test"][keep]), np.arange(1017))
    np.testing.assert_array_equal(x, d["x_test"][keep][order])
    np.testing.assert_array_equal(y, d["y_test_full"][:1017])
  assert np.bincount(y, minlength=10).min() > 50  # natural class mix


# --------------------------------------------------------------------------------------------------
# Image folders, miniImageNet, ImageNet-100 and CIFAR-100 (the later paper's datasets).

FOLDER_SAMPLE = REPO / "tests" / "data" / "folder_sample"  # real crops of Kodak24 / Set12 (PROVENANCE.md)
SAMPLE_CLASSES = ["kodim03", "kodim05", "kodim15", "kodim23", "set12_05"]


def _one_sentence(message, *needles):
  assert message.endswith(".") and not re.search(r"[.;]\s+[A-Z]", message), message
  for needle in needles:
    assert needle in message, (needle, message)


def _pil_rgb(path, size=None):
  with Image.open(path) as im:
    im = im.convert("RGB")
    return np.asarray(im.resize((size, size), Image.BILINEAR) if size else im)


def test_folder_sample_labels_sizes_and_resize_match_pil():
  files = sorted((FOLDER_SAMPLE / "train").glob("*/*.jpg"))
  assert [f.parent.name for f in files] == [c for c in SAMPLE_CLASSES for _ in range(4)]
  x, y = iss_jax.training.load_dataset(f"folder:{FOLDER_SAMPLE}", "train")
  assert x.shape == (20, 96, 128, 3) and y.tolist() == [i for i in range(5) for _ in range(4)]
  np.testing.assert_array_equal(x, np.stack([_pil_rgb(f) for f in files]))
  grey = x[y == SAMPLE_CLASSES.index("set12_05")]
  assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()  # grey read as RGB
  for size in (84, 224):
    x, _ = iss_jax.training.load_dataset(f"folder:{FOLDER_SAMPLE}", "train", image_size=size)
    np.testing.assert_array_equal(x, np.stack([_pil_rgb(f, size) for f in files]))
  x, y = iss_jax.training.load_dataset(f"folder:{FOLDER_SAMPLE}", "test", image_size=84)  # test = val/
  assert x.shape == (5, 84, 84, 3) and y.tolist() == [0, 1, 2, 3, 4]
  np.testing.assert_array_equal(x, np.stack([_pil_rgb(f, 84) for f in sorted(FOLDER_SAMPLE.glob("val/*/*"))]))


def test_folder_without_a_test_split_is_refused(tmp_path):
  (tmp_path / "train" / "a").mkdir(parents=True)
  Image.fromarray(_images(1)[0]).save(tmp_path / "train" / "a" / "0.png")
  with pytest.raises(iss_jax.training.DatasetNotFoundError) as e:
    iss_jax.training.load_dataset(f"folder:{tmp_path}", "test")
  _one_sentence(str(e.value), "dataset=folder:", "test/", "val/")


def test_imagenet100_class_list_and_center_crop():
  """The classes of imagenet100.txt (3 of the 5 folders), labelled in sorted order, each image resized
  to a 256 shorter side and centre-cropped to 224 (a 128x96 crop becomes 341x256, then the box
  (58, 16, 282, 240))."""
  listed = sorted(["kodim15", "set12_05", "kodim03"])
  for split, sub, per_class in (("train", "train", 4), ("test", "val", 1)):
    x, y = iss_jax.training.load_dataset("imagenet100", split, str(FOLDER_SAMPLE))
    files = [f for c in listed for f in sorted((FOLDER_SAMPLE / sub / c).glob("*.jpg"))]
    assert x.shape == (3 * per_class, 224, 224, 3)
    assert y.tolist() == [i for i in range(3) for _ in range(per_class)]
    expected = []
    for f in files:
      with Image.open(f) as im:
        im = im.convert("RGB").resize((341, 256), Image.BILINEAR)
        expected.append(np.asarray(im.crop((58, 16, 282, 240))))
    np.testing.assert_array_equal(x, np.stack(expected))
  assert data_lib.num_classes_of("imagenet100", y) == 3  # the classes found, not 100
  assert iss_jax.training.imagenet100_classes(str(FOLDER_SAMPLE)) == tuple(listed)
  cmc = iss_jax.training.imagenet100_classes()
  assert len(cmc) == len(set(cmc)) == 100 and list(cmc) == sorted(cmc)
  assert all(re.fullmatch(r"n\d{8}", c) for c in cmc) and {"n01558993", "n13040303"} <= set(cmc)


def test_imagenet100_errors(tmp_path, monkeypatch):
  monkeypatch.setattr(data_lib, "_load_tfds_imagenet_subset", lambda *a: None)  # as without TFDS
  with pytest.raises(iss_jax.training.DatasetNotFoundError) as e:
    iss_jax.training.load_dataset("imagenet100", "train", str(tmp_path))
  _one_sentence(str(e.value), "data_dir=", "train/", "val/", "imagenet100.txt", "imagenet2012")
  shutil.copytree(FOLDER_SAMPLE / "train", tmp_path / "train")  # no class list: CMC's 100 classes
  with pytest.raises(iss_jax.training.DatasetNotFoundError) as e:
    iss_jax.training.load_dataset("imagenet100", "train", str(tmp_path))
  _one_sentence(str(e.value), "100 of the 100 classes of the CMC class list", "data_dir=", "imagenet100.txt")
  (tmp_path / "imagenet100.txt").write_text("kodim03\nkodim03\n")
  with pytest.raises(ValueError, match="each once"):
    iss_jax.training.load_dataset("imagenet100", "train", str(tmp_path))


def _write_mini_class(root, name, count, offset):
  """``count`` 4x4 constant PNGs whose grey level ``offset + i`` survives any resize, named in order."""
  (root / name).mkdir(parents=True, exist_ok=True)
  for i in range(count):
    Image.fromarray(np.full((4, 4, 3), offset + i, np.uint8)).save(root / name / f"{name}_{i:04d}.png")


def _ids(x):
  return x[:, 0, 0, 0].astype(int).tolist()


def test_miniimagenet_split_rule_and_layouts(tmp_path):
  import zlib

  counts = {"n01532829": (103, 0), "n09246464": (105, 120)}
  for name, (count, offset) in counts.items():
    _write_mini_class(tmp_path / "miniimagenet" / "train", name, count, offset)
  x_tr, y_tr = iss_jax.training.load_dataset("miniimagenet", "train", str(tmp_path))
  x_te, y_te = iss_jax.training.load_dataset("miniimagenet", "test", str(tmp_path))
  assert x_tr.shape == (8, 84, 84, 3) and x_te.shape == (200, 84, 84, 3)
  assert y_te.tolist() == [0] * 100 + [1] * 100 and y_tr.tolist() == [0] * 3 + [1] * 5
  for label, (name, (count, offset)) in enumerate(counts.items()):
    # The documented rule, written out: the first 100 of a permutation seeded by the class name.
    held = np.sort(np.random.default_rng(zlib.crc32(name.encode())).permutation(count)[:100])
    np.testing.assert_array_equal(iss_jax.training.miniimagenet_test_indices(name, count), held)
    assert _ids(x_te[y_te == label]) == (offset + held).tolist()
    assert _ids(x_tr[y_tr == label]) == [offset + i for i in range(count) if i not in set(held)]
  assert data_lib.num_classes_of("miniimagenet", y_tr) == 2
  # A class's split depends on its own images only: adding a class leaves the others' unchanged.
  _write_mini_class(tmp_path / "miniimagenet" / "train", "n01234567", 101, 150)
  x3, y3 = iss_jax.training.load_dataset("miniimagenet", "test", str(tmp_path))
  assert _ids(x3[y3 == 1]) == _ids(x_te[y_te == 0]) and _ids(x3[y3 == 2]) == _ids(x_te[y_te == 1])
  # Ravi & Larochelle's images/ + train.csv, and the pickled cache, give the same split.
  csv_root = tmp_path / "csv"
  (csv_root / "images").mkdir(parents=True)
  rows = ["filename,label"]
  for f in [f for name in counts for f in sorted((tmp_path / "miniimagenet" / "train" / name).iterdir())]:
    shutil.copy(f, csv_root / "images" / f.name)
    rows.append(f"{f.name},{f.parent.name}")
  (csv_root / "train.csv").write_text("\n".join(rows) + "\n")
  pkl_root = tmp_path / "pkl"
  pkl_root.mkdir()
  ids = [(offset + i, name) for name, (count, offset) in counts.items() for i in range(count)]
  with open(pkl_root / "mini-imagenet-cache-train.pkl", "wb") as f:
    class_dict = {name: [j for j, (_, n) in enumerate(ids) if n == name] for name in counts}
    pickle.dump({"image_data": np.stack([np.full((84, 84, 3), v, np.uint8) for v, _ in ids]),
                 "class_dict": class_dict}, f)
  for root in (csv_root, pkl_root):
    for split, (x, y) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
      x2, y2 = iss_jax.training.load_dataset("miniimagenet", split, str(root))
      np.testing.assert_array_equal(x2, x)
      np.testing.assert_array_equal(y2, y)


def test_miniimagenet_errors(tmp_path):
  with pytest.raises(iss_jax.training.DatasetNotFoundError) as e:
    iss_jax.training.load_dataset("miniimagenet", "train", str(tmp_path / "none"))
  _one_sentence(str(e.value), "data_dir=", "train/<wnid>/", "train.csv", "mini-imagenet-cache-train.pkl")
  _write_mini_class(tmp_path / "train", "n01532829", 100, 0)
  with pytest.raises(ValueError) as e:
    iss_jax.training.load_dataset("miniimagenet", "test", str(tmp_path))
  _one_sentence(str(e.value), "n01532829 has 100 images", "more than 100")


def test_cifar100_official_pickles_fine_labels(tmp_path):
  """The official cifar-100-python format (b'data' rows of 3072 CHW bytes, b'fine_labels' next to
  b'coarse_labels', a meta file), read from the folder or its parent: fine labels, NHWC."""
  folder = tmp_path / "cifar-100-python"
  folder.mkdir()
  rng = np.random.default_rng(1)
  expected = {}
  for split, n in (("train", 5), ("test", 3)):
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
    with open(folder / split, "wb") as f:
      pickle.dump({b"filenames": [b"x.png"] * n, b"batch_label": split.encode(), b"fine_labels": fine,
                   b"coarse_labels": coarse, b"data": chw.reshape(n, 3072)}, f)
    expected[split] = (np.stack([np.dstack(list(img)) for img in chw]), fine)  # CHW -> HWC per image
  with open(folder / "meta", "wb") as f:
    pickle.dump({b"fine_label_names": [b"apple"] * 100, b"coarse_label_names": [b"fish"] * 20}, f)
  for data_dir in (tmp_path, folder):
    for split in ("train", "test"):
      x, y = iss_jax.training.load_dataset("cifar100", split, str(data_dir))
      np.testing.assert_array_equal(x, expected[split][0])
      assert y.tolist() == expected[split][1]


def test_cifar100_missing_names_the_folder_and_tfds(tmp_path, monkeypatch):
  monkeypatch.setattr(data_lib, "_load_tfds", lambda *a: None)  # as offline / without TFDS
  with pytest.raises(iss_jax.training.DatasetNotFoundError) as e:
    iss_jax.training.load_dataset("cifar100", "train", str(tmp_path))
  _one_sentence(str(e.value), "data_dir=", "cifar-100-python", "train and test", "TFDS", "Colab")


def test_dataset_presets_validate_with_every_procedure():
  from train.configs import adversarial, datasets, default, finetune, fixed, iterative, vanilla

  expected = {"cifar100": ("cifar100", "resnet18", "cifar", 100),
              "miniimagenet": ("miniimagenet", "resnet34", "imagenet", 64),
              "imagenet100": ("imagenet100", "resnet50", "imagenet", 100)}
  assert set(datasets.PRESET_FIELDS) == set(expected) and set(expected) <= set(default.PRESETS)
  for preset, (dataset, model, stem, classes) in expected.items():
    assert data_lib.NUM_CLASSES[dataset] == classes
    for module in (vanilla, fixed, iterative, finetune, adversarial):
      c = module.get_config(preset)
      if module is finetune:
        c.init_checkpoint = "workdirs/vanilla_" + preset
      iss_jax.training.validate_config(c)
      assert (c.preset, c.dataset, c.model, c.stem) == (preset, dataset, model, stem)
