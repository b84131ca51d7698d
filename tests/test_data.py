import io
import os
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sicompress.data import (CIFAR10_CLASSES, DataError, image_format, load_dataset,
                             make_synthetic, prepare_data)
from sicompress.splits import write_split

QUIET = dict(log=lambda m: None)
CLASSES = ["cat", "ant", "bee"]  # deliberately not sorted: labels must follow this order


# ----------------------------------------------------------------------------------------
# Fixtures: a tiny image folder built with PIL


def pixels(seed, size=(32, 32), channels=3):
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save_png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path, format="PNG")


def make_tree(root, classes=CLASSES, n_train=2, n_test=1):
    """root/{train,test}/<class>/NN.png (lossless), and the expected arrays in label order."""
    expected = {}
    for s, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        xs, ys = [], []
        for label, c in enumerate(classes):
            seeds = [1000 * s + 10 * label + i for i in range(n)]
            for i in reversed(range(n)):  # written in reverse: reading must sort by name
                save_png(root / split / c / f"{i:02d}.png", pixels(seeds[i]))
            xs += [pixels(seed) for seed in seeds]
            ys += [label] * n
        expected[split] = (np.stack(xs), np.array(ys))
    return expected


def make_tar(src_root, out, top=None):
    mode = "w:gz" if out.name.endswith(("gz", "tgz")) else "w"
    with tarfile.open(out, mode) as tf:
        for split in ("train", "test"):
            tf.add(src_root / split, arcname=f"{top}/{split}" if top else split)
    return out


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "imgs"
    return root, make_tree(root)


def assert_matches(d, expected, classes):
    assert d.classes == classes
    for split in ("train", "test"):
        x, y = getattr(d, f"x_{split}"), getattr(d, f"y_{split}")
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, expected[split][0])
        np.testing.assert_array_equal(y, expected[split][1])


def assert_nothing_written(out):
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


# ----------------------------------------------------------------------------------------
# Folder source


def test_folder_directory(tree, tmp_path):
    root, expected = tree
    out = tmp_path / "out" / "data.npz"
    lines = []
    summary = prepare_data("folder", str(root), out, classes=CLASSES, log=lines.append)
    assert_matches(load_dataset(out), expected, CLASSES)
    assert summary["n_train"] == 6 and summary["n_test"] == 3
    assert summary["image_format"] == image_format(out) == load_dataset(out).image_format == "PNG"
    assert summary["train_per_class"] == {"cat": 2, "ant": 2, "bee": 2}
    assert any("read 6/6 train images" in m for m in lines)


@pytest.mark.parametrize("name,top", [("d.tar.gz", None), ("d.tgz", "cifar"), ("d.tar", "cifar")])
def test_folder_archive_equals_directory(tree, tmp_path, name, top):
    root, expected = tree
    archive = make_tar(root, tmp_path / name, top=top)
    out = tmp_path / "out" / "data.npz"
    prepare_data("folder", str(archive), out, classes=CLASSES, **QUIET)
    assert_matches(load_dataset(out), expected, CLASSES)


def test_default_classes_sorted_or_canonical(tmp_path):
    make_tree(tmp_path / "abc", classes=["zeta", "alpha", "mid"], n_train=1)
    prepare_data("folder", str(tmp_path / "abc"), tmp_path / "a.npz", **QUIET)
    assert load_dataset(tmp_path / "a.npz").classes == ["alpha", "mid", "zeta"]
    # the CIFAR-10 class set keeps its canonical order (which happens to be alphabetical)
    make_tree(tmp_path / "cifar", classes=sorted(CIFAR10_CLASSES), n_train=1)
    prepare_data("folder", str(tmp_path / "cifar"), tmp_path / "c.npz", **QUIET)
    d = load_dataset(tmp_path / "c.npz")
    assert d.classes == CIFAR10_CLASSES
    assert d.y_train.tolist() == list(range(10))


def test_jpeg_is_read(tmp_path):
    make_tree(tmp_path / "d", n_train=1)
    (tmp_path / "d/train/ant/00.png").unlink()
    Image.fromarray(np.full((32, 32, 3), 50, np.uint8)).save(tmp_path / "d/train/ant/00.jpg")
    # the content decides the format, not the suffix
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(
        tmp_path / "d/train/cat/00.png", format="JPEG")
    prepare_data("folder", str(tmp_path / "d"), tmp_path / "o.npz", classes=CLASSES, **QUIET)
    x = load_dataset(tmp_path / "o.npz").x_train
    assert abs(int(x[0].mean()) - 200) <= 2 and abs(int(x[1].mean()) - 50) <= 2
    # the format recorded is the one read, every one of them (not guessed from names)
    assert image_format(tmp_path / "o.npz") == "JPEG, PNG"
    for p in (tmp_path / "d").rglob("*.png"):
        with Image.open(p) as im:
            rgb = np.asarray(im)
        p.unlink()
        Image.fromarray(rgb).save(p.with_suffix(".jpeg"), format="JPEG")
    prepare_data("folder", str(tmp_path / "d"), tmp_path / "j.npz", classes=CLASSES, **QUIET)
    assert image_format(tmp_path / "j.npz") == "JPEG"


# ----------------------------------------------------------------------------------------
# Folder source: every bad input is an error that names the culprit, and writes nothing


def expect_error(path, out, match, classes=CLASSES):
    with pytest.raises(DataError, match=match):
        prepare_data("folder", str(path), out, classes=classes, **QUIET)
    assert_nothing_written(out)


@pytest.mark.parametrize("arr,mode,shown", [
    (pixels(1, size=(28, 28)), None, "28x28 RGB"),
    (pixels(1, channels=1), "L", "32x32 L"),
    (pixels(1, channels=4), "RGBA", "32x32 RGBA"),
    (pixels(1, size=(64, 32)), None, "64x32 RGB"),
])
def test_wrong_image_shape_or_mode(tree, tmp_path, arr, mode, shown):
    root, _ = tree
    save_png(root / "train/ant/01.png", arr, mode)
    expect_error(root, tmp_path / "out" / "d.npz", rf"train/ant/01\.png is {shown}")


def test_wrong_image_in_archive_names_file_and_archive(tree, tmp_path):
    root, _ = tree
    save_png(root / "test/bee/00.png", pixels(1, channels=1), "L")
    archive = make_tar(root, tmp_path / "d.tar.gz", top="top")
    expect_error(archive, tmp_path / "out" / "d.npz",
                 r"archive .*d\.tar\.gz: image test/bee/00\.png")


def test_corrupt_jpeg(tree, tmp_path):
    root, _ = tree
    buf = io.BytesIO()
    Image.fromarray(pixels(2)).save(buf, format="JPEG")
    (root / "train/cat/bad.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    expect_error(root, tmp_path / "out" / "d.npz", r"cannot read image train/cat/bad\.jpg")


def test_not_an_image(tree, tmp_path):
    root, _ = tree
    (root / "test/cat/notes.txt").write_text("hello")
    expect_error(root, tmp_path / "out" / "d.npz", r"cannot read image test/cat/notes\.txt")


def test_missing_class_folder(tree, tmp_path):
    root, _ = tree
    for f in (root / "test/bee").iterdir():
        f.unlink()
    (root / "test/bee").rmdir()
    expect_error(root, tmp_path / "out" / "d.npz", r"class folder test/bee/ is missing")


def test_unknown_class_folder(tree, tmp_path):
    root, _ = tree
    save_png(root / "test/wasp/00.png", pixels(3))
    expect_error(root, tmp_path / "out" / "d.npz", r"unknown class folder test/wasp/")
    # a class folder outside the given class list, in train
    expect_error(root, tmp_path / "out" / "d.npz", r"unknown class folder train/cat/",
                 classes=["ant", "bee"])


def test_test_set_with_other_number_of_classes(tmp_path):
    root = tmp_path / "imgs"
    make_tree(root, classes=["a", "b", "c"])
    for f in (root / "test/c").iterdir():
        f.unlink()
    (root / "test/c").rmdir()
    expect_error(root, tmp_path / "out" / "d.npz", r"class folder test/c/ is missing", classes=None)


def test_empty_class_folder_and_empty_split(tree, tmp_path):
    root, _ = tree
    (root / "train/ant/00.png").unlink()
    (root / "train/ant/01.png").unlink()
    expect_error(root, tmp_path / "out" / "d.npz", r"class folder train/ant/ is empty")
    empty = tmp_path / "empty"
    make_tree(empty)
    for c in CLASSES:
        (empty / "test" / c / "00.png").unlink()
        (empty / "test" / c).rmdir()
    expect_error(empty, tmp_path / "out" / "d.npz", r"the test split is empty")


def test_missing_split_folder(tmp_path):
    make_tree(tmp_path / "d")
    archive = tmp_path / "train_only.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "d/train", arcname="train")
    expect_error(archive, tmp_path / "out" / "d.npz", r"has no test/ folder")


def test_missing_path_and_not_a_tar(tmp_path):
    expect_error(tmp_path / "nowhere", tmp_path / "out" / "d.npz", r"nowhere does not exist")
    (tmp_path / "data.tar.gz").write_text("not an archive")
    expect_error(tmp_path / "data.tar.gz", tmp_path / "out" / "d.npz",
                 r"data\.tar\.gz is neither a directory nor a readable \.tar")


# ----------------------------------------------------------------------------------------
# Other sources and the npz


def test_unknown_source_and_bad_synthetic_key(tmp_path):
    with pytest.raises(DataError, match=r"data\.source .*'mnist'.*torchvision, folder, synthetic"):
        prepare_data("mnist", None, tmp_path / "d.npz", **QUIET)
    with pytest.raises(DataError, match=r"data\.synthetic\.colour"):
        prepare_data("synthetic", None, tmp_path / "d.npz", synthetic={"colour": 1}, **QUIET)
    assert not (tmp_path / "d.npz").exists()


def test_torchvision_download_failure_suggests_folder(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise RuntimeError("no route to host")

    # a stand-in torchvision whose download fails, as it does without internet access
    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR10 = offline
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(DataError, match=r"could not download .*no route to host.*'folder'"):
        prepare_data("torchvision", str(tmp_path / "dl"), tmp_path / "out" / "d.npz", **QUIET)
    assert_nothing_written(tmp_path / "out" / "d.npz")


def test_synthetic_shape_balance_determinism(tmp_path):
    s = prepare_data("synthetic", None, tmp_path / "a.npz",
                     synthetic={"train_per_class": 12, "test_per_class": 3, "num_classes": 4,
                                "seed": 5, "noise": 0.2}, **QUIET)
    a = load_dataset(tmp_path / "a.npz")
    assert a.x_train.shape == (48, 32, 32, 3) and a.x_train.dtype == np.uint8
    assert a.x_test.shape == (12, 32, 32, 3) and a.y_test.dtype == np.int64
    assert np.bincount(a.y_train).tolist() == [12] * 4 and np.bincount(a.y_test).tolist() == [3] * 4
    assert a.classes == ["class0", "class1", "class2", "class3"]
    assert s["source"] == "synthetic" and s["n_train"] == 48
    assert s["image_format"] == a.image_format == image_format(tmp_path / "a.npz") == "synthetic"
    b = make_synthetic(12, 3, num_classes=4, seed=5, noise=0.2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    c = make_synthetic(12, 3, num_classes=4, seed=6, noise=0.2)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.std() > 20  # not flat images


def test_synthetic_learnable_but_not_trivial():
    """1-nearest-neighbour on raw pixels: far above chance (learnable), below perfect."""
    d = make_synthetic(100, 20, seed=0, noise=0.25)
    xtr = d.x_train.reshape(len(d.x_train), -1).astype(np.float32)
    xte = d.x_test.reshape(len(d.x_test), -1).astype(np.float32)
    dist = (xte**2).sum(1)[:, None] - 2 * xte @ xtr.T + (xtr**2).sum(1)[None]
    acc = (d.y_train[dist.argmin(1)] == d.y_test).mean()
    assert 0.5 < acc < 0.97, acc  # chance is 0.1
    # the class mean image alone is a weak cue (shifted patterns, distractors)
    means = np.stack([xtr[d.y_train == k].mean(0) for k in range(10)])
    dc = ((xte[:, None] - means[None]) ** 2).sum(-1)
    assert (dc.argmin(1) == d.y_test).mean() < acc


def test_load_dataset_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.npz does not exist"):
        load_dataset(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"partial\.npz lacks the key\(s\) y_train, x_test"):
        load_dataset(tmp_path / "partial.npz")
    # an npz written before the format was recorded still loads, its format "unknown"
    np.savez(tmp_path / "old.npz", x_train=np.zeros((1, 32, 32, 3), np.uint8), y_train=[0],
             x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=[0], classes=np.array(["a"]))
    assert load_dataset(tmp_path / "old.npz").image_format == image_format(tmp_path / "old.npz") \
        == "unknown"


# ----------------------------------------------------------------------------------------
# The real CIFAR-10 JPEG archive (decoded once for the module)


@pytest.fixture(scope="module")
def real_npz(tmp_path_factory):
    archive = os.environ.get("CIFAR10_JPEG")
    if not archive or not Path(archive).is_file():
        pytest.skip("set CIFAR10_JPEG to the CIFAR-10 JPEG archive (cifar10-jpeg.tar.gz) "
                    "to run the real-data tests")
    out = tmp_path_factory.mktemp("real") / "cifar10.npz"
    summary = prepare_data("folder", archive, out, **QUIET)
    return out, summary


@pytest.mark.realdata
def test_real_archive(real_npz):
    out, summary = real_npz
    d = load_dataset(out)
    assert d.classes == CIFAR10_CLASSES
    assert summary["image_format"] == d.image_format == "JPEG"  # the shared archive is a JPEG copy
    assert d.x_train.shape == (50_000, 32, 32, 3) and d.x_test.shape == (10_000, 32, 32, 3)
    assert np.bincount(d.y_train).tolist() == [5000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10
    assert summary["train_per_class"]["truck"] == 5000
    assert 0.4 < d.x_train.mean() / 255 < 0.55  # real photos, not blank decodes


@pytest.mark.realdata
def test_real_split(real_npz, tmp_path):
    out, _ = real_npz
    s = write_split(out, tmp_path / "split.npz", tmp_path / "summary.json", val_fraction=0.1,
                    si_fraction=0.1, si_test_fraction=0.1, seed=0, **QUIET)
    assert s["totals"] == {"train": 45_000, "val": 5_000, "si_train": 5_000, "si_test": 1_000}
    assert set(s["per_class"]["val"].values()) == {500}
    assert set(s["per_class"]["si_train"].values()) == {500}
    assert set(s["per_class"]["si_test"].values()) == {100}
    assert set(s["per_class"]["train"].values()) == {4500}
    # close to the published CIFAR-10 statistics (JPEG shifts them slightly)
    np.testing.assert_allclose(s["train_mean"], [0.491, 0.482, 0.447], atol=0.01)
    np.testing.assert_allclose(s["train_std"], [0.247, 0.243, 0.261], atol=0.01)
