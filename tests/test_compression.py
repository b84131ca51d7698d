"""Part (c) from files to files: the cut decision, the feature ranking and the Center SI curve."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.neighbors import NearestCentroid, NearestNeighbors

from sicompress import compression
from sicompress.activations import layer_activations, subset_activations
from sicompress.model import build_model, checkpoint_payload, load_model
from sicompress.networks import vgg_arch
from sicompress.pruning import build_compressed
from sicompress.si import center_si_curve

from conftest import synthetic_study


# ----------------------------------------------------------------------------------------
# References: scikit-learn, on float64 copies of the features


def sklearn_si(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out accuracy of a 1-nearest-neighbour classifier (the definition of SI)."""
    idx = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(x).kneighbors(
        x, return_distance=False)
    assert (idx[:, 0] == np.arange(len(x))).all()  # continuous data: no other point at 0
    return float(np.mean(y[idx[:, 1]] == y))


def sklearn_csi(x: np.ndarray, y: np.ndarray) -> float:
    """Training accuracy of a nearest-centroid classifier (the definition of Center SI)."""
    return float(NearestCentroid().fit(x, y).score(x, y))


@pytest.mark.parametrize("unit", ["channel", "element"])
def test_center_si_curve_equals_sklearns_nearest_centroid_on_every_prefix(unit, device):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(120, 6, 2, 2, generator=g) + torch.arange(6.0)[None, :, None, None]
    x = x.to(device)
    y = np.repeat(np.array([7, 2, 5]), 40)  # labels need not be 0..C-1
    n_features = 6 if unit == "channel" else 24
    order = torch.randperm(n_features, generator=g).tolist()
    curve = center_si_curve(x, y, order, unit)
    flat = x.cpu().double().numpy()
    flat = flat.reshape(120, 6, 4) if unit == "channel" else flat.reshape(120, 24, 1)
    for i in range(n_features):
        expected = sklearn_csi(flat[:, order[:i + 1]].reshape(120, -1), y)
        assert curve[i] == pytest.approx(expected, abs=1e-12), (i, curve[i], expected)


def _layer_table() -> pd.DataFrame:
    layers = ["input", "conv1_1", "pool1", "conv2_1", "pool2"]
    train = [0.30, 0.40, 0.62, 0.70, 0.705]
    test = [0.30, 0.40, 0.90, 0.95, 0.99]  # higher, and must be ignored
    rows = []
    for split, values in (("test", test), ("train", train)):
        for i, (name, v) in enumerate(zip(layers, values)):
            rows.append({"split": split, "layer_index": i, "layer": name,
                         "kind": "input" if i == 0 else name[:4], "si": v, "center_si": v / 2})
    return pd.DataFrame(rows)


def test_cut_layers_decides_on_train_rows_only(tmp_path):
    csv = tmp_path / "layer_si.csv"
    _layer_table().to_csv(csv, index=False)
    cut = compression.cut_layers(layer_si_csv=csv, out_json=tmp_path / "cut.json",
                                 out_plot=tmp_path / "cut.png", metric="si", tolerance=0.01,
                                 log=lambda m: None)
    assert json.loads((tmp_path / "cut.json").read_text()) == cut
    assert (cut["layer"], cut["best_layer"], cut["split"]) == ("conv2_1", "pool2", "train")
    assert cut["value"] == 0.70 and cut["n_layers"] == 4
    assert (tmp_path / "cut.png").read_bytes()[:4] == b"\x89PNG"
    cut = compression.cut_layers(layer_si_csv=csv, out_json=tmp_path / "cut2.json",
                                 metric="center_si", tolerance=0.2, log=lambda m: None)
    assert cut["layer"] == "conv1_1"  # 0.20 >= 0.3525 - 0.2


def test_the_cut_layers_si_is_the_tables_number_everywhere(tmp_path, monkeypatch):
    """The cut layer's SI is computed once, by the layer table: cut.json carries the table's
    SI and Center SI of that row (the numbers the decision read, whatever its metric), and the
    ranking reports them as its all-feature values without computing them again."""
    csv = tmp_path / "layer_si.csv"
    table = _layer_table()
    table.to_csv(csv, index=False)
    cut = compression.cut_layers(layer_si_csv=csv, out_json=tmp_path / "cut.json",
                                 metric="center_si", tolerance=0.01, log=lambda m: None)
    row = table[(table["split"] == "train") & (table["layer"] == cut["layer"])].iloc[0]
    assert (cut["si"], cut["center_si"]) == (row["si"], row["center_si"])
    x, y = fake_activations(60, seed=5)

    def activations(*args, subset="si_train", **kwargs):
        return torch.from_numpy(x), y

    def not_again(*args, **kwargs):
        raise AssertionError("the cut layer's SI was computed a second time")

    monkeypatch.setattr(compression, "subset_activations", activations)
    monkeypatch.setattr(compression, "si_all_features", not_again)
    monkeypatch.setattr(compression, "center_separation_index", not_again)
    info = compression.rank_features(
        model_path=tmp_path / "model.pt", data_npz=tmp_path / "data.npz",
        split_npz=tmp_path / "split.npz", cut_json=tmp_path / "cut.json",
        ranking_csv=tmp_path / "ranking.csv", info_json=tmp_path / "ranking.json",
        max_features=2, log=lambda m: None)
    assert (info["si_all"], info["center_si_all"]) == (row["si"], row["center_si"])
    assert info["all_from"] == "layer table"


def test_cut_layers_leaves_the_classifier_rows_out(tmp_path):
    t = _layer_table()
    rows = [{"split": split, "layer_index": 4 + i, "layer": name, "kind": kind, "si": 0.99,
             "center_si": 0.99}
            for split in ("test", "train")
            for i, (name, kind) in enumerate((("fc1", "fc"), ("logits", "logits")), start=1)]
    with_classifier = pd.concat([t, pd.DataFrame(rows)], ignore_index=True)
    plain, both = tmp_path / "plain.csv", tmp_path / "both.csv"
    t.to_csv(plain, index=False)
    with_classifier.to_csv(both, index=False)
    got = {}
    for name, csv in (("plain", plain), ("both", both)):
        got[name] = compression.cut_layers(layer_si_csv=csv, out_json=tmp_path / f"{name}.json",
                                           out_plot=tmp_path / f"{name}.png", log=lambda m: None)
        del got[name]["provenance"], got[name]["source"]
    assert got["both"] == got["plain"]
    assert (got["both"]["layer"], got["both"]["n_layers"]) == ("conv2_1", 4)
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"


def test_cut_layers_names_a_table_without_train_rows(tmp_path):
    csv = tmp_path / "layer_si.csv"
    t = _layer_table()
    t[t["split"] == "test"].to_csv(csv, index=False)
    with pytest.raises(ValueError, match="no train rows"):
        compression.cut_layers(layer_si_csv=csv, out_json=tmp_path / "cut.json", log=lambda m: None)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic data set, its split and an (untrained) tiny VGG checkpoint."""
    d = synthetic_study(tmp_path_factory.mktemp("study"), train_per_class=30, si_fraction=0.5)
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10, [0.5] * 3, [0.25] * 3))
    torch.save(checkpoint_payload(model), d / "model.pt")
    return d


def rank_and_choose(study, out, *, unit="channel", tolerance=0.02, log=lambda m: None,
                    **options) -> dict:
    """rank_features then choose_features on the study's model, files in `out`."""
    compression.rank_features(
        model_path=study / "model.pt", data_npz=study / "data.npz", split_npz=study / "split.npz",
        cut_json=out / "cut.json", ranking_csv=out / "ranking.csv", info_json=out / "ranking.json",
        unit=unit, log=log, **options)
    return compression.choose_features(
        ranking_csv=out / "ranking.csv", info_json=out / "ranking.json",
        selected_json=out / "selected.json", plot=out / "feature_si.png", tolerance=tolerance,
        log=log)


def fake_activations(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 5, 1, 2) float32 "activations" of 3 classes labelled 9, 2, 5: normal noise, class
    signal in value (3, 0, 0) and some in (1, 0, 1); continuous, so no two distances tie."""
    rng = np.random.default_rng(seed)
    code = np.arange(n) % 3
    x = rng.normal(size=(n, 5, 1, 2))
    x[:, 3, 0, 0] += 1.2 * code
    x[:, 1, 0, 1] += 0.8 * (code == 2)
    return x.astype(np.float32), np.array([9, 2, 5])[code]


def candidates(x: np.ndarray, unit: str) -> list[np.ndarray]:
    """The features of (N, C, H, W) activations, each (N, L) float64: a channel's H*W values,
    or one value of the flattened output."""
    n = len(x)
    flat = x.reshape(n, x.shape[1], -1) if unit == "channel" else x.reshape(n, -1, 1)
    return [flat[:, f].astype(np.float64) for f in range(flat.shape[1])]


def greedy_by_sklearn(features: list[np.ndarray],
                      y: np.ndarray) -> tuple[list[int], list[float], int]:
    """Forward selection written plainly: at every step the candidate whose addition gives
    the highest leave-one-out 1-NN accuracy, ties to the lowest index.
    -> (order, SI curve, steps where two or more candidates shared the highest SI)."""
    order, curve, ties, left = [], [], 0, list(range(len(features)))
    while left:
        scores = [sklearn_si(np.hstack([features[f] for f in order + [c]]), y) for c in left]
        best = int(np.argmax(scores))  # the first of the highest: `left` stays ascending
        ties += scores.count(scores[best]) > 1
        order.append(left.pop(best))
        curve.append(scores[best])
    return order, curve, ties


def along(features: list[np.ndarray], y: np.ndarray, order: list[int], score) -> list[float]:
    """score(features of order[:i + 1], y) for every prefix of `order`."""
    return [score(np.hstack([features[f] for f in order[:i + 1]]), y) for i in range(len(order))]


@pytest.mark.parametrize("unit,n_candidates", [("channel", 5), ("element", 10)])
def test_ranking_and_k_against_sklearn(tmp_path, monkeypatch, unit, n_candidates, device):
    """rank_features and choose_features on activations made up here, every number checked
    against scikit-learn: the order, the SI and Center SI curves on si_train and on si_test,
    the all-feature values, and k by its rule (fewest features within tolerance of the best)."""
    train, test = fake_activations(60, seed=5), fake_activations(30, seed=6)
    calls = []

    def activations(model_path, data_npz, split_npz, layer, *, batch_size=500, device=None,
                    subset="si_train"):
        calls.append((layer, subset, torch.device(device).type))
        x, y = train if subset == "si_train" else test
        return torch.from_numpy(x).to(device), y

    monkeypatch.setattr(compression, "subset_activations", activations)
    (tmp_path / "cut.json").write_text(json.dumps({"layer": "pool2"}))
    info = compression.rank_features(
        model_path=tmp_path / "model.pt", data_npz=tmp_path / "data.npz",
        split_npz=tmp_path / "split.npz", cut_json=tmp_path / "cut.json",
        ranking_csv=tmp_path / "ranking.csv", info_json=tmp_path / "ranking.json", unit=unit,
        log=lambda m: None)
    # decided on si_train, the same order only measured on si_test, on the jobs' device
    assert calls == [("pool2", "si_train", device.type), ("pool2", "si_test", device.type)]

    features, test_features = candidates(train[0], unit), candidates(test[0], unit)
    order, si, ties = greedy_by_sklearn(features, train[1])
    assert ties > 0  # the data exercise the rule "ties to the lowest index"
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert list(ranking.columns) == ["step", "feature", "si", "center_si", "si_test",
                                     "center_si_test"]
    assert ranking["step"].tolist() == list(range(1, n_candidates + 1))
    assert ranking["feature"].tolist() == order
    assert ranking["si"].tolist() == pytest.approx(si, abs=1e-12)
    assert ranking["center_si"].tolist() == pytest.approx(
        along(features, train[1], order, sklearn_csi), abs=1e-12)
    assert ranking["si_test"].tolist() == pytest.approx(
        along(test_features, test[1], order, sklearn_si), abs=1e-12)
    assert ranking["center_si_test"].tolist() == pytest.approx(
        along(test_features, test[1], order, sklearn_csi), abs=1e-12)
    everything = np.hstack(features)
    assert info["si_all"] == pytest.approx(sklearn_si(everything, train[1]), abs=1e-12)
    assert info["center_si_all"] == pytest.approx(sklearn_csi(everything, train[1]), abs=1e-12)
    assert (info["n_candidates"], info["shape"], info["n_samples"], info["n_samples_test"]) == \
        (n_candidates, [5, 1, 2], 60, 30)
    assert (info["steps"], info["stopped"], info["cut_layer"]) == \
        (n_candidates, "exhausted", "pool2")

    for tolerance in (0.02, 0.1):
        # k: the fewest features whose SI reaches the best SI minus the tolerance
        k = next(i + 1 for i, v in enumerate(si) if v >= max(si) - tolerance - 1e-12)
        out = compression.choose_features(
            ranking_csv=tmp_path / "ranking.csv", info_json=tmp_path / "ranking.json",
            selected_json=tmp_path / f"selected-{tolerance}.json", plot=tmp_path / "si.png",
            tolerance=tolerance, log=lambda m: None)
        assert out == json.loads((tmp_path / f"selected-{tolerance}.json").read_text())
        assert out["k"] == k and out["selected"] == order[:k] and out["kept"] == sorted(order[:k])
        assert out["si_at_k"] == pytest.approx(si[k - 1], abs=1e-12)
        assert out["best_si"] == pytest.approx(max(si), abs=1e-12)
        assert out["best_k"] == si.index(max(si)) + 1
        assert out["si_test_at_k"] == ranking["si_test"][k - 1]
        assert (out["cut_layer"], out["n_candidates"], out["shape"]) == \
            ("pool2", n_candidates, [5, 1, 2])
    assert (tmp_path / "si.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("unit,layer,shape", [("channel", "pool2", [8, 8, 8]),
                                              ("element", "pool4", [32, 2, 2])])
def test_rank_features_on_a_model(study, tmp_path, unit, layer, shape, device):
    """The ranking on a real checkpoint: the cut layer's output on si_train (150 images: 0.5
    of 300, 15 per class) and si_test (10: 0.2 of 50), every candidate ranked once, and the
    compressed extractor computes exactly the kept part of the cut layer's output."""
    acts, labels = subset_activations(study / "model.pt", study / "data.npz",
                                        study / "split.npz", layer)
    assert acts.device.type == device.type  # the jobs' device: SICOMPRESS_DEVICE
    assert (tuple(acts.shape), acts.dtype) == ((150, *shape), torch.float32)
    assert np.bincount(labels, minlength=10).tolist() == [15] * 10
    (tmp_path / "cut.json").write_text(json.dumps({"layer": layer}))
    out = rank_and_choose(study, tmp_path, unit=unit)
    n_candidates = shape[0] if unit == "channel" else shape[0] * shape[1] * shape[2]
    info = json.loads((tmp_path / "ranking.json").read_text())
    assert (info["n_samples"], info["n_samples_test"], info["shape"], info["n_candidates"]) == \
        (150, 10, shape, n_candidates)
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert sorted(ranking["feature"]) == list(range(n_candidates))
    assert out["cut_layer"] == layer and out["selected"] == ranking["feature"].tolist()[:out["k"]]

    model = build_compressed(study / "model.pt", layer, unit, out["selected"], hidden=[8],
                             dropout=0.0, seed=0)
    images = torch.from_numpy(np.load(study / "data.npz")["x_train"][:20]).permute(0, 3, 1, 2)
    with torch.no_grad():
        got = model.features(model.normalize(images))
    full = layer_activations(load_model(study / "model.pt"), images, layer)
    if unit == "channel":
        torch.testing.assert_close(got, full[:, out["kept"]])
    else:
        torch.testing.assert_close(got, full)


def test_an_interrupted_ranking_goes_on_where_it_stopped(study, tmp_path, monkeypatch):
    for name in ("whole", "killed"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cut.json").write_text(json.dumps({"layer": "pool2"}))

    def run(out, log):
        return rank_and_choose(study, out, log=log)

    whole = run(tmp_path / "whole", lambda m: None)

    class Killed(Exception):
        pass

    def dies_after_three(seconds, unit, log):
        def progress(order, si, steps):
            if len(order) == 3:
                raise Killed
        return progress

    out = tmp_path / "killed"
    with monkeypatch.context() as m:
        m.setattr(compression, "progress_every", dies_after_three)
        with pytest.raises(Killed):
            run(out, lambda m: None)
    partial = json.loads((out / compression.PARTIAL_RANKING).read_text())
    first = pd.read_csv(tmp_path / "whole" / "ranking.csv")["feature"].tolist()[:3]
    assert partial["order"] == first and len(partial["si"]) == 3
    assert not (out / "ranking.csv").exists()

    logs = []
    again = run(out, logs.append)
    assert any("continuing the ranking after 3 channels" in line for line in logs)
    assert {k: v for k, v in again.items() if k not in ("seconds", "provenance")} == \
        {k: v for k, v in whole.items() if k not in ("seconds", "provenance")}
    assert pd.read_csv(out / "ranking.csv").equals(pd.read_csv(tmp_path / "whole" / "ranking.csv"))
    assert not (out / compression.PARTIAL_RANKING).exists()

    # a partial ranking made with other options is not taken
    (out / compression.PARTIAL_RANKING).write_text(json.dumps({**partial, "max_features": 5}))
    logs.clear()
    run(out, logs.append)
    assert any("other activations or options; ranking from the start" in line for line in logs)
