"""The Separation Index against scikit-learn and slow pure-Python references."""

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid, NearestNeighbors
from sklearn.preprocessing import StandardScaler

import sicompress.compression as compression
from sicompress.model import build_model
from sicompress.networks import vgg_arch
from sicompress.layer_si import LAYER_COLUMNS, layer_separation
from sicompress.selection import forward_select
from sicompress.si import (center_separation_index, center_si_curve, exact_float32,
                           nearest_neighbors, separation_index, separation_indices,
                           si_all_features, si_curve)

from conftest import on_cuda_only

# ----------------------------------------------------------------------------------------
# References


def sklearn_loo_neighbor(x):
    """Index of each sample's nearest other sample, from sklearn (self dropped by index)."""
    idx = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(x).kneighbors(
        x, return_distance=False)  # (N, 2)
    is_self = idx[:, 0] == np.arange(len(x))
    return np.where(is_self, idx[:, 1], idx[:, 0])


def sklearn_si(x, y):
    return float(np.mean(y[sklearn_loo_neighbor(x)] == y))


def sklearn_csi(x, y):
    return float(np.mean(NearestCentroid().fit(x, y).predict(x) == y))


def brute_neighbors(x, k):
    """Pure Python: the k nearest others of each sample by (squared distance, index)."""
    rows = x.tolist()
    out = []
    for i, a in enumerate(rows):
        d = [(sum((p - q) ** 2 for p, q in zip(a, b)), j) for j, b in enumerate(rows) if j != i]
        out.append([j for _, j in sorted(d)[:k]])
    return out


def random_data(seed, n, d, classes, scale=1.0):
    """Gaussian class blobs (overlapping, so SI is neither 0 nor 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d))
    x = (centres[y] + 1.5 * rng.normal(size=(n, d))) * scale
    return x, y


# ----------------------------------------------------------------------------------------
# Agreement with scikit-learn


@pytest.mark.parametrize("seed,n,d,classes", [(0, 50, 2, 2), (1, 120, 10, 3), (2, 200, 64, 5),
                                              (3, 257, 7, 10)])
def test_si_and_csi_match_sklearn_on_random_data(seed, n, d, classes, device):
    x, y = random_data(seed, n, d, classes)
    expected_nn = sklearn_loo_neighbor(x)
    xd = torch.from_numpy(x).to(device)
    for dtype in (torch.float32, torch.float64):
        nn = nearest_neighbors(xd, 1, dtype=dtype, chunk_size=37)
        assert nn.device == xd.device
        np.testing.assert_array_equal(nn[:, 0].cpu().numpy(), expected_nn)
        assert separation_index(xd, y, dtype=dtype) == sklearn_si(x, y)
    assert center_separation_index(xd, y) == sklearn_csi(x, y)
    assert center_separation_index(x, torch.as_tensor(y, device=device), device=device) \
        == sklearn_csi(x, y)
    assert 0.0 < sklearn_si(x, y) < 1.0  # a test that can tell wrong from right


def test_si_is_leave_one_out_1nn_accuracy(device):
    x, y = random_data(4, 60, 5, 3)
    pred = cross_val_predict(KNeighborsClassifier(n_neighbors=1, algorithm="brute"), x, y,
                             cv=LeaveOneOut())
    assert separation_index(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) \
        == np.mean(pred == y)


def test_csi_with_unbalanced_non_contiguous_labels(device):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(90, 6)) + 100.0
    y = rng.choice([2, 5, 9], size=90, p=[0.6, 0.3, 0.1])
    x[y == 5] += 0.3
    csi = center_separation_index(torch.from_numpy(x).to(device), y)
    assert csi == sklearn_csi(x, y)
    assert 0.0 < csi < 1.0


def test_csi_ties_go_to_lowest_class():
    # Sample 4 sits exactly between the means of class 0 (at -1) and class 1 (at +1).
    x = np.array([[-1.0], [-1.0], [1.0], [1.0], [0.0], [0.0]])
    y = np.array([0, 0, 1, 1, 1, 0])  # means: class 0 at -2/3, class 1 at +2/3
    # 4 (class 1) and 5 (class 0) are at equal distance: both go to class 0.
    assert center_separation_index(x, y) == 5 / 6


def near_tie_centroids(seed, sides=(1, -1), per_class=20, d=5, classes=3, gap=1e-9):
    """Class blobs mirrored about their centres (so each class mean is its centre, to
    rounding), plus samples at `gap` from the bisector of two centres, on the `sides` given
    (1: towards the other class's mean, a miss; -1: towards its own, a hit)."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(classes, d))
    x, y = [], []
    for k in range(classes):
        blob = centres[k] + rng.normal(size=(per_class, d))
        x += [blob, 2 * centres[k] - blob]
        y += [k] * 2 * per_class
        for j in range(classes):
            if j == k:
                continue
            normal = (centres[j] - centres[k]) / np.linalg.norm(centres[j] - centres[k])
            for side in sides:
                along = 0.3 * rng.normal(size=d)
                p = (centres[k] + centres[j]) / 2 + along - (along @ normal) * normal \
                    + side * gap * normal
                x += [p[None], 2 * centres[k] - p[None]]
                y += [k, k]
    return np.concatenate(x), np.array(y)


def test_center_si_near_ties_without_atomic_adds(monkeypatch, device):
    """Class means by a reduction that gives the same bits on every run: index_add_ adds
    with atomics on CUDA, and near ties to the means could flip from run to run."""
    def atomic_adds(*args, **kwargs):
        raise AssertionError("class means summed by index_add_ (atomic adds on CUDA)")

    monkeypatch.setattr(torch.Tensor, "index_add_", atomic_adds)
    seen = []
    for sides in [(1, -1), (1, 1), (-1, -1)]:
        x, y = near_tie_centroids(11, sides)
        expected = sklearn_csi(x, y)
        xd = torch.from_numpy(x).to(device)
        assert center_separation_index(xd, y) == expected, sides
        assert center_si_curve(xd, y, range(x.shape[1]), "element")[-1] == expected, sides
        assert center_si_curve(xd[:, None], y, [0])[-1] == expected, sides  # one channel
        seen.append(expected)
    assert 0.5 < seen[1] < seen[0] < seen[2]  # the near ties decide the count


def test_standardize_matches_sklearn_on_scaled_data(device):
    x, y = random_data(6, 150, 8, 4)
    x = x * np.array([1e-3, 1, 10, 1e3, 1, 1, 5, 1]) + 50.0
    x[:, 6] = 7.0  # a constant feature must not give NaN
    scaled = StandardScaler().fit_transform(x)
    expected = sklearn_loo_neighbor(scaled)
    nn = nearest_neighbors(x, 1, standardize=True, device=device)[:, 0].cpu().numpy()
    np.testing.assert_array_equal(nn, expected)
    assert separation_index(x, y, standardize=True) == sklearn_si(scaled, y)
    assert separation_index(x, y, standardize=True) != separation_index(x, y)


# ----------------------------------------------------------------------------------------
# SI of all features: exact, and the last point of the SI curve


def far_near_ties(seed, triplets=24):
    """float32 activations (N, 3, 1, 2) and labels: blobs near the origin, and triplets ~300
    away whose nearest-neighbour distances differ by 0.1% (q's nearest is q + u, of another
    class; q - 1.001 u is of q's class), where float32 expanded distances err."""
    rng = np.random.default_rng(seed)
    x, y = [rng.normal(size=(40, 6))], list(rng.integers(0, 3, 40))
    for t in range(triplets):
        q = rng.normal(size=6)
        q *= 300 / np.linalg.norm(q)
        u = rng.normal(size=6)
        u /= np.linalg.norm(u)
        x.append(np.stack([q, q + u, q - u * np.sqrt(1.002)]))
        y += [t % 3, (t + 1) % 3, t % 3]
    return torch.from_numpy(np.concatenate(x).astype(np.float32).reshape(-1, 3, 1, 2)), np.array(y)


def exact_si(x, y):
    """scikit-learn's leave-one-out 1-NN accuracy on the float32 values, in float64."""
    return sklearn_si(x.reshape(len(x), -1).double().cpu().numpy(), y)


@pytest.mark.parametrize("unit", ["channel", "element"])
def test_si_of_all_features_is_exact_and_ends_the_curve(unit, device):
    x, y = far_near_ties(0)
    expected = exact_si(x, y)
    # float32 expanded distances (the layer tables' SI) choose other neighbours here
    assert separation_index(x, y) != expected
    x = x.to(device)
    sel = forward_select(x, y, unit=unit, device=device)
    assert sel.si[-1] == expected
    assert si_all_features(x, y, unit, first=sel.order) == expected
    assert si_all_features(x, y, unit) == expected
    assert si_curve(x, y, sel.order, unit, memory_budget=1000) == sel.si  # one row at a time
    with pytest.raises(ValueError, match="first must list distinct feature indices"):
        si_all_features(x, y, unit, first=[0, 0])


@pytest.mark.parametrize("max_features", [None, 2])  # every channel ranked, or only two
def test_rank_features_reports_the_exact_si_of_all_features(tmp_path, monkeypatch, device,
                                                           max_features):
    x, y = far_near_ties(1)
    monkeypatch.setattr(compression, "subset_activations",
                        lambda *args, **kwargs: (x.to(device), y))
    (tmp_path / "cut.json").write_text(json.dumps({"layer": "conv5_3"}))
    info = compression.rank_features(
        model_path=tmp_path / "model.pt", data_npz=tmp_path / "data.npz",
        split_npz=tmp_path / "split.npz", cut_json=tmp_path / "cut.json",
        ranking_csv=tmp_path / "ranking.csv", info_json=tmp_path / "ranking.json",
        max_features=max_features, device=str(device), log=lambda m: None)
    expected = exact_si(x, y)
    assert info["si_all"] == expected
    assert json.loads((tmp_path / "ranking.json").read_text())["si_all"] == expected
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert len(ranking) == (max_features or 3)
    if max_features is None:
        assert ranking["si"].iloc[-1] == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------------------
# Real CIFAR-10 pixels


def read_cifar_jpegs(archive, split="train", per_class=100):
    """uint8 (N, 32, 32, 3) images and int labels: the first `per_class` files of each class."""
    from PIL import Image

    found = {}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] != split:
                continue
            files = found.setdefault(parts[1], {})
            if len(files) < per_class:
                files[parts[2]] = tar.extractfile(member).read()
            if len(found) == 10 and all(len(f) == per_class for f in found.values()):
                break
    images, labels = [], []
    for label, cls in enumerate(sorted(found)):
        for name in sorted(found[cls]):
            with Image.open(io.BytesIO(found[cls][name])) as im:
                images.append(np.asarray(im.convert("RGB")))
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def cifar_pixels():
    path = os.environ.get("CIFAR10_JPEG")
    if not path:
        pytest.skip("CIFAR10_JPEG is not set (path of the CIFAR-10 JPEG .tar.gz)")
    if not Path(path).is_file():
        pytest.skip(f"CIFAR10_JPEG={path} does not exist")
    return read_cifar_jpegs(path)


@pytest.mark.realdata
def test_si_and_csi_match_sklearn_on_cifar_pixels(cifar_pixels, device):
    pixels, y = cifar_pixels
    assert pixels.shape == (1000, 32, 32, 3) and pixels.dtype == np.uint8
    assert np.bincount(y).tolist() == [100] * 10
    x = pixels.reshape(len(pixels), -1).astype(np.float64)  # (1000, 3072)
    images = torch.from_numpy(pixels).to(device)
    expected_nn = sklearn_loo_neighbor(x)
    for dtype in (torch.float32, torch.float64):
        nn = nearest_neighbors(images, 1, dtype=dtype, chunk_size=300)[:, 0].cpu().numpy()
        np.testing.assert_array_equal(nn, expected_nn)
        assert separation_index(images, y, dtype=dtype) == sklearn_si(x, y)
    assert center_separation_index(images, y) == sklearn_csi(x, y)
    scaled = StandardScaler().fit_transform(x)
    assert separation_index(images, y, standardize=True) == sklearn_si(scaled, y)
    assert 0.1 < sklearn_si(x, y) < 0.5  # raw pixels separate CIFAR-10 classes poorly


# ----------------------------------------------------------------------------------------
# Chunking, self exclusion, ties, precision


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 36, 37, 1000])
def test_chunked_equals_unchunked_and_brute_force(chunk, device):
    x, _ = random_data(7, 37, 4, 3)
    whole = nearest_neighbors(x, 4, chunk_size=37, device=device)
    assert torch.equal(nearest_neighbors(x, 4, chunk_size=chunk, device=device), whole)
    assert whole.tolist() == brute_neighbors(x, 4)


@pytest.mark.parametrize("chunk", [1, 3, 8, 40])
def test_self_excluded_in_every_chunk(chunk, device):
    # Tight, well-separated classes: counting a sample as its own neighbour would show up
    # as neighbour == self, and would not change SI (1), so check the indices directly.
    x, y = random_data(8, 40, 3, 2, scale=1.0)
    nn = nearest_neighbors(x, 3, chunk_size=chunk, device=device).cpu()
    assert not (nn == torch.arange(40)[:, None]).any()
    assert nn.tolist() == brute_neighbors(x, 3)


def test_duplicate_is_a_neighbor_and_ties_go_to_lowest_index(device):
    # Symmetric integer data: the mean is exactly 0, so every distance is exact.
    pts = np.array([[1, 0], [0, 1], [0, 0], [-1, 0], [0, -1]], dtype=np.float64)
    nn = nearest_neighbors(pts, 4, device=device)
    assert nn[2].tolist() == [0, 1, 3, 4]  # the centre: four corners at distance 1
    assert nn[0].tolist() == [2, 1, 4, 3]  # 1, then sqrt(2) twice (1 before 4), then 2

    base = np.array([[3, 1], [-3, -1], [5, 5], [-5, -5]], dtype=np.float64)
    x = np.concatenate([base[[0, 1, 2, 3]], base[[0, 1]], base[[0, 1]]])  # 4,6 = 0; 5,7 = 1
    nn = nearest_neighbors(x, 2, dtype=torch.float64, device=device)
    assert nn[0].tolist() == [4, 6]   # duplicates at distance 0, not itself
    assert nn[4].tolist() == [0, 6]
    assert nn[6].tolist() == [0, 4]
    assert nn[7].tolist() == [1, 5]
    # First neighbours 4, 5, 0, 1, 0, 1, 0, 1: samples 2, 3 and 6 differ in label.
    assert separation_index(x, np.array([0, 1, 2, 3, 0, 1, 9, 1])) == 5 / 8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_many_exact_ties_are_broken_by_lowest_index(dtype, device):
    # 300 copies of one point and 300 of its mirror: topk alone picks arbitrary copies.
    side = np.random.default_rng(9).permutation(np.repeat([1.0, -1.0], 300))  # (600,)
    x = 2.0 * side[:, None] * np.ones((600, 3))
    nn = nearest_neighbors(x, 5, dtype=dtype, chunk_size=64, device=device).cpu().numpy()
    for i in range(600):
        same = np.flatnonzero(side == side[i])
        assert nn[i].tolist() == same[same != i][:5].tolist()


def test_float32_centred_equals_float64_far_from_origin(device):
    x, y = random_data(10, 300, 50, 4)
    x = x + 1000.0
    nn32 = nearest_neighbors(x, 3, device=device).cpu()
    nn64 = nearest_neighbors(x, 3, dtype=torch.float64, device=device).cpu()
    assert torch.equal(nn32, nn64)
    assert nn64[:, 0].numpy().tolist() == sklearn_loo_neighbor(x).tolist()
    assert separation_index(x, y, device=device) == separation_index(x, y, dtype=torch.float64)
    # Without centring float32 would be wrong here, so the test above can fail.
    t = torch.from_numpy(x).float()
    sq = t.square().sum(1)
    naive = (sq[:, None] + sq[None, :] - 2 * t @ t.T).fill_diagonal_(float("inf"))
    assert not torch.equal(naive.argmin(1), nn64[:, 0])


def test_tf32_settings_are_restored():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        nearest_neighbors(np.random.default_rng(0).normal(size=(10, 3)), 1)
        assert torch.backends.cuda.matmul.allow_tf32 is True
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])


# ----------------------------------------------------------------------------------------
# High-order and soft SI


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_high_order_and_soft_si_against_brute_force(order, device):
    x, y = random_data(11, 45, 3, 3)
    x = torch.from_numpy(x).to(device)
    neighbors = brute_neighbors(x.cpu(), order)
    high = np.mean([all(y[j] == y[i] for j in nb) for i, nb in enumerate(neighbors)])
    soft = np.mean([np.mean([y[j] == y[i] for j in nb]) for i, nb in enumerate(neighbors)])
    assert separation_index(x, y, order) == pytest.approx(high, abs=1e-12)
    assert separation_index(x, y, order, soft=True) == pytest.approx(soft, abs=1e-12)
    values = separation_indices(x, y, order, chunk_size=4)
    assert values["si_high"] == pytest.approx(high, abs=1e-12)
    assert values["si_soft"] == pytest.approx(soft, abs=1e-12)
    assert values["si"] == sklearn_si(x.cpu().numpy(), y)
    if order > 1:
        assert high < soft  # distinct numbers, so swapping them would fail


def test_invalid_inputs_raise():
    x = np.random.default_rng(0).normal(size=(10, 3))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="labels"):
        separation_index(x, y[:9])
    with pytest.raises(ValueError, match="at least 2"):
        separation_index(x[:1], y[:1])
    for bad in (0, -1, 10, 11):
        with pytest.raises(ValueError, match="order|k "):
            separation_index(x, y, order=bad)
    bad_x = x.copy()
    bad_x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        separation_index(bad_x, y)
    bad_x[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        center_separation_index(bad_x, y)
    with pytest.raises(ValueError, match="chunk_size"):
        nearest_neighbors(x, 1, chunk_size=0)


# ----------------------------------------------------------------------------------------
# Per-layer SI of a VGG


EXPECTED_LAYERS = [
    ("input", "input", 3, 32), ("conv1_1", "conv", 4, 32), ("conv1_2", "conv", 4, 32),
    ("pool1", "pool", 4, 16), ("conv2_1", "conv", 8, 16), ("conv2_2", "conv", 8, 16),
    ("pool2", "pool", 8, 8), ("conv3_1", "conv", 16, 8), ("conv3_2", "conv", 16, 8),
    ("conv3_3", "conv", 16, 8), ("pool3", "pool", 16, 4), ("conv4_1", "conv", 32, 4),
    ("conv4_2", "conv", 32, 4), ("conv4_3", "conv", 32, 4), ("pool4", "pool", 32, 2),
    ("conv5_1", "conv", 32, 2), ("conv5_2", "conv", 32, 2), ("conv5_3", "conv", 32, 2),
    ("pool5", "pool", 32, 1), ("fc1", "fc", 16, 1), ("logits", "logits", 10, 1),
]


def test_layer_separation_on_tiny_vgg(device):
    torch.manual_seed(0)
    model = build_model(vgg_arch(width=0.0625, hidden=[16])).to(device)
    # Non-trivial BatchNorm statistics, so train-mode and eval-mode outputs differ.
    model.train()
    with torch.no_grad():
        model(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=device))
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 4, 42)
    images = (rng.integers(0, 200, (42, 32, 32, 3)) + 12 * labels[:, None, None, None])
    images = images.astype(np.uint8)  # (N, H, W, C) as on disk

    seen = []
    table = layer_separation(model, images, labels, order=3, batch_size=16, progress=seen.append)
    assert model.training  # mode restored
    assert [r["layer"] for r in seen] == table["layer"].tolist()  # one call per row, in order
    assert seen[-1]["si"] == table["si"].iloc[-1]
    assert list(table.columns) == LAYER_COLUMNS
    assert len(table) == 21  # input, 18 layers of the extractor, fc1 and the logits
    assert table["layer_index"].tolist() == list(range(21))
    got = list(zip(table["layer"], table["kind"], table["channels"], table["height"]))
    assert got == EXPECTED_LAYERS
    assert (table["height"] == table["width"]).all()
    assert (table["features"] == table["channels"] * table["height"] ** 2).all()
    assert (table["si_high"] <= table["si_soft"]).all()
    assert (table["order"] == 3).all()
    assert (table["precision"] == "float32, TF32 off, no autocast").all()
    assert (table["reused_from"] == "").all()

    # The first rows against scikit-learn: the normalised images and the first block's outputs
    # in eval mode (deeper layers of this untrained net have near-ties that float32 rounding
    # can flip, see the next test)
    model.eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(device)
    with torch.no_grad(), exact_float32(device):
        rows = {"input": model.normalize(x)}
        rows["conv1_1"] = model.features.conv1_1(rows["input"])
        rows["pool1"] = model.features.pool1(model.features.conv1_2(rows["conv1_1"]))
    for name, acts in rows.items():
        flat = acts.flatten(1).double().cpu().numpy()
        row = table.set_index("layer").loc[name]
        assert row["si"] == sklearn_si(flat, labels), name
        assert row["center_si"] == sklearn_csi(flat, labels), name
        idx = NearestNeighbors(n_neighbors=4, algorithm="brute").fit(flat).kneighbors(
            flat, return_distance=False)
        assert (idx[:, 0] == np.arange(len(flat))).all()  # no duplicate images
        same = labels[idx[:, 1:]] == labels[:, None]  # the 3 nearest others share the label?
        assert row["si_high"] == pytest.approx(same.all(1).mean(), abs=1e-12), name
        assert row["si_soft"] == pytest.approx(same.mean(), abs=1e-12), name

    # Tensor input (N, 3, 32, 32) gives the same table; eval mode stays eval.
    as_tensor = layer_separation(model, torch.from_numpy(images).permute(0, 3, 1, 2),
                                 labels, order=3, batch_size=16)
    assert not model.training
    cols = ["si", "center_si", "si_high", "si_soft", "features"]
    assert as_tensor[cols].equals(table[cols])


def test_layer_separation_equals_plain_forward(device):
    # float64 model: in float32 a random deep layer has near-ties that rounding differences
    # of 1e-8 between two ways of running the same convolution can flip.
    torch.manual_seed(1)
    model = build_model(vgg_arch(width=0.0625, hidden=[16])).double().to(device)
    model.train()
    with torch.no_grad():
        model(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=device))
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 3, 30)
    images = torch.from_numpy(rng.integers(0, 256, (30, 3, 32, 32)).astype(np.uint8)).to(device)
    table = layer_separation(model, images, labels, order=2, batch_size=7,
                             dtype=torch.float64)
    assert model.training

    # Reference: eval mode (train-mode BatchNorm would give other numbers), whole batch.
    model.eval()
    with torch.no_grad():
        h = model.normalize(images)
        reference = [h]
        for module in model.features:
            h = module(h)
            reference.append(h)
        h = model.classifier.layers.relu1(model.classifier.layers.fc1(h.flatten(1)))  # fc1
        reference += [h, model.classifier.layers.out(h)]  # and the logits
    assert len(table) == len(reference)
    for row, acts in zip(table.itertuples(), reference):
        values = separation_indices(acts, labels, 2, dtype=torch.float64)
        assert (row.si, row.si_high, row.si_soft) == (
            values["si"], values["si_high"], values["si_soft"]), row.layer
        assert row.center_si == center_separation_index(acts, labels), row.layer
    assert table["si"].nunique() > 1


def test_layer_separation_rejects_bad_images():
    model = build_model(vgg_arch(width=0.0625, hidden=[16]))
    with pytest.raises(ValueError, match="uint8"):
        layer_separation(model, np.zeros((4, 32, 32, 3), dtype=np.float32), np.arange(4))
    with pytest.raises(ValueError, match="order"):
        layer_separation(model, np.zeros((4, 32, 32, 3), dtype=np.uint8), np.arange(4), order=4)


# ----------------------------------------------------------------------------------------
# The GPU measures the same SI as the CPU (CUDA test mode)


@on_cuda_only("compares a CUDA convolution with a float64 one")
def test_exact_float32_turns_tf32_off_for_convolutions(device):
    # TF32 keeps 10 bits of mantissa: a 3x3x256 convolution is then off by about 1e-3 of
    # its scale; in float32 by about 1e-6.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 256, 16, 16, generator=g)
    w = torch.randn(256, 256, 3, 3, generator=g) / 48
    ref = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
    saved = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True  # the default of PyTorch for convolutions
        with exact_float32(device):
            exact = torch.nn.functional.conv2d(x.to(device), w.to(device), padding=1)
            with torch.autocast("cuda", dtype=torch.bfloat16):  # a caller's autocast is undone
                inner = torch.nn.functional.conv2d(x.to(device), w.to(device), padding=1)
        assert torch.backends.cudnn.allow_tf32  # restored
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    scale = ref.abs().max().item()
    assert (exact.cpu().double() - ref).abs().max().item() < 1e-5 * scale
    assert inner.dtype == torch.float32


@on_cuda_only("compares SI on CUDA with SI on the CPU")
def test_layer_si_on_cuda_equals_cpu_to_one_sample(device):
    torch.manual_seed(2)
    model = build_model(vgg_arch(width=0.25, hidden=[32]))
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model(torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8))
    rng = np.random.default_rng(14)
    n = 600
    labels = rng.integers(0, 10, n)
    images = (rng.integers(0, 180, (n, 32, 32, 3)) + 7 * labels[:, None, None, None])
    images = images.astype(np.uint8)
    cpu = layer_separation(model.eval(), images, labels, order=3, batch_size=256)
    gpu = layer_separation(model.to(device), images, labels, order=3, batch_size=256)
    for col in ("si", "center_si", "si_high", "si_soft"):
        diff = (cpu[col] - gpu[col]).abs()
        assert (diff <= 1 / n + 1e-12).all(), (col, diff.max(), cpu["layer"][diff.idxmax()])
    assert cpu["si"].nunique() > 1
