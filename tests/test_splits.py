import numpy as np
import pytest

from sicompress import splits
from sicompress.artifacts import read_json
from sicompress.data import Dataset, save_dataset
from sicompress.splits import load_split, load_summary, make_split, split_summary, write_split

QUIET = dict(log=lambda m: None)


def labels(per_class, seed=0):
    """Shuffled labels with the given count for each class."""
    y = np.repeat(np.arange(len(per_class)), per_class)
    return np.random.default_rng(seed).permutation(y)


Y_TRAIN = labels([100] * 10)        # 1000 official training images
Y_TEST = labels([20] * 10, seed=1)   # 200 test images


def test_sizes_balance_and_types():
    s = make_split(Y_TRAIN, Y_TEST, val_fraction=0.1, si_fraction=0.2, si_test_fraction=0.5)
    assert {k: len(v) for k, v in s.items()} == {"train": 900, "val": 100, "si_train": 200,
                                                 "si_test": 100}
    assert np.bincount(Y_TRAIN[s["val"]]).tolist() == [10] * 10
    assert np.bincount(Y_TRAIN[s["si_train"]]).tolist() == [20] * 10
    assert np.bincount(Y_TEST[s["si_test"]]).tolist() == [10] * 10
    for v in s.values():
        assert v.dtype == np.int64
        assert np.all(np.diff(v) > 0)  # sorted, no repeats


def test_unequal_classes_still_give_equal_val_counts():
    y = labels([150, 80, 120, 50])  # N = 400
    s = make_split(y, labels([10] * 4), val_fraction=0.1, si_fraction=0.1, si_test_fraction=0.4)
    assert np.bincount(y[s["val"]]).tolist() == [10] * 4
    assert np.bincount(y[s["train"]]).tolist() == [140, 70, 110, 40]


def test_disjoint_coverage_and_si_inside_train():
    s = make_split(Y_TRAIN, Y_TEST, seed=3)
    assert len(np.intersect1d(s["train"], s["val"])) == 0
    np.testing.assert_array_equal(np.union1d(s["train"], s["val"]), np.arange(len(Y_TRAIN)))
    assert np.isin(s["si_train"], s["train"]).all()
    assert s["si_test"].max() < len(Y_TEST)


def test_deterministic_by_seed():
    a = make_split(Y_TRAIN, Y_TEST, seed=7)
    b = make_split(Y_TRAIN, Y_TEST, seed=7)
    c = make_split(Y_TRAIN, Y_TEST, seed=8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k]), k


@pytest.mark.parametrize("key", ["val_fraction", "si_fraction", "si_test_fraction"])
@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5])
def test_fraction_outside_open_interval(key, value):
    with pytest.raises(ValueError, match=rf"data\.{key} must lie strictly between 0 and 1"):
        make_split(Y_TRAIN, Y_TEST, **{key: value})


@pytest.mark.parametrize("kw,key", [
    (dict(val_fraction=0.105), "val_fraction"),         # 105 images, 10 classes
    (dict(si_fraction=0.013), "si_fraction"),           # 13
    (dict(si_test_fraction=0.04), "si_test_fraction"),  # 8 < 10 classes
])
def test_counts_not_divisible_by_classes(kw, key):
    with pytest.raises(ValueError,
                       match=rf"data\.{key} gives \d+ images, which is not a positive multiple"):
        make_split(Y_TRAIN, Y_TEST, **kw)


def test_class_too_small():
    y = labels([100, 106, 4])  # val_fraction 0.1 of 210 = 21 = 7 per class > 4
    with pytest.raises(ValueError,
                       match=r"data\.val_fraction asks for 7 images of class 2.* only 4"):
        make_split(y, labels([10] * 3), val_fraction=0.1)
    # si_train is drawn from what val left in train: 30 - 3 = 27 per class
    y = labels([30, 30, 30])
    with pytest.raises(ValueError, match=r"data\.si_fraction asks for 28 images of class 0, "
                                         r"but the training subset has only 27"):
        make_split(y, labels([10] * 3), val_fraction=0.1, si_fraction=84 / 90)
    make_split(y, labels([10] * 3), val_fraction=0.1, si_fraction=81 / 90)  # 27: just enough


def test_summary_counts_and_stats_match_numpy(monkeypatch):
    monkeypatch.setattr(splits, "STATS_CHUNK", 7)  # force many chunks and a ragged last one
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8)
    x[..., 2] //= 3  # channels with different statistics
    s = make_split(Y_TRAIN, Y_TEST, seed=1)
    classes = [f"c{k}" for k in range(10)]
    summ = split_summary(x, Y_TRAIN, Y_TEST, s, classes)
    ref = x[s["train"]].astype(np.float64) / 255
    np.testing.assert_allclose(summ["train_mean"], ref.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(summ["train_std"], ref.std(axis=(0, 1, 2)), rtol=1e-10)
    assert summ["train_std"][2] < summ["train_std"][0]
    assert summ["totals"] == {"train": 900, "val": 100, "si_train": 100, "si_test": 20}
    assert summ["per_class"]["train"] == {c: 90 for c in classes}
    assert summ["per_class"]["si_test"] == {c: 2 for c in classes}
    assert summ["classes"] == classes


@pytest.fixture
def data_npz(tmp_path):
    rng = np.random.default_rng(0)
    ds = Dataset(rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8), labels([50] * 4),
                 rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), labels([10] * 4),
                 ["a", "b", "c", "d"])
    path = tmp_path / "data.npz"
    save_dataset(path, ds)
    return path


def test_write_and_load(data_npz, tmp_path):
    out, summ_path = tmp_path / "s" / "split.npz", tmp_path / "s" / "summary.json"
    summ = write_split(data_npz, out, summ_path, val_fraction=0.2, si_fraction=0.4,
                       si_test_fraction=0.5, seed=4, **QUIET)
    split = load_split(out)
    expected = make_split(labels([50] * 4), labels([10] * 4), val_fraction=0.2, si_fraction=0.4,
                          si_test_fraction=0.5, seed=4)
    for k in expected:
        np.testing.assert_array_equal(split[k], expected[k])
    on_disk = load_summary(summ_path)
    assert on_disk == read_json(summ_path) == summ
    assert (on_disk["val_fraction"], on_disk["si_fraction"], on_disk["si_test_fraction"],
            on_disk["seed"]) == (0.2, 0.4, 0.5, 4)
    assert on_disk["totals"] == {"train": 160, "val": 40, "si_train": 80, "si_test": 20}
    assert sorted(p.name for p in out.parent.iterdir()) == ["split.npz", "summary.json"]


def test_failed_split_writes_nothing(data_npz, tmp_path):
    out = tmp_path / "s" / "split.npz"
    with pytest.raises(ValueError, match=r"data\.val_fraction"):
        write_split(data_npz, out, tmp_path / "s" / "summary.json", val_fraction=0.11,
                    si_fraction=0.1, si_test_fraction=0.1, seed=0, **QUIET)
    assert not (tmp_path / "s").exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"split\.npz does not exist"):
        load_split(tmp_path / "split.npz")
    np.savez(tmp_path / "bad.npz", train=np.arange(3))
    with pytest.raises(ValueError, match=r"bad\.npz lacks the key\(s\) val, si_train, si_test"):
        load_split(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match=r"summary\.json does not exist"):
        load_summary(tmp_path / "summary.json")
