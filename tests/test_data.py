"""Dataset loaders on tiny files written in tmp_path: npz, CIFAR pickle folders, image folders."""

import pickle

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
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="--dataset=npz"):
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
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="--dataset=folder"):
    iss_jax.training.load_dataset(f"folder:{tmp_path / 'nope'}", "train")


def test_missing_dataset_names_the_flag(tmp_path, monkeypatch):
  monkeypatch.setattr(data_lib, "_load_tfds", lambda *a: None)  # as offline / without TFDS
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="--data_dir"):
    iss_jax.training.load_dataset("cifar10", "train")
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="--data_dir"):
    iss_jax.training.load_dataset("cifar10", "train", str(tmp_path))  # an empty folder
  with pytest.raises(iss_jax.training.DatasetNotFoundError,
                     match=r"--data_dir.*python -m train\.make_cifar10_exact --cifar10_dir=DIR"):
    iss_jax.training.load_dataset("cifar10_exact", "train", str(tmp_path))  # names the script that makes it
  with pytest.raises(iss_jax.training.DatasetNotFoundError, match="--data_dir"):
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
                                  text=True, cwd=str(REPO))
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
