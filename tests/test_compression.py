"""Part (c) from files to files: the cut decision, the feature ranking and the Center SI curve."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from sicompress import compression
from sicompress.decisions import choose_k
from sicompress.activations import layer_activations, subset_activations
from sicompress.model import build_model, checkpoint_payload, load_model, vgg_arch
from sicompress.pruning import build_compressed
from sicompress.selection import forward_select
from sicompress.si import center_separation_index, center_si_curve, separation_index

from conftest import synthetic_study


@pytest.mark.parametrize("unit", ["channel", "element"])
def test_center_si_curve_equals_the_direct_value_on_every_prefix(unit, device):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(120, 6, 2, 2, generator=g) + torch.arange(6.0)[None, :, None, None]
    x = x.to(device)
    y = np.repeat(np.array([7, 2, 5]), 40)  # labels need not be 0..C-1
    n_features = 6 if unit == "channel" else 24
    order = torch.randperm(n_features, generator=g).tolist()
    curve = center_si_curve(x, y, order, unit)
    flat = x.reshape(120, 6, 4) if unit == "channel" else x.reshape(120, 24, 1)
    for i in range(n_features):
        direct = center_separation_index(flat[:, order[:i + 1]].reshape(120, -1), y)
        assert curve[i] == direct, (i, curve[i], direct)


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


@pytest.mark.parametrize("unit,layer", [("channel", "pool2"), ("element", "pool4")])
def test_rank_features_then_choose_k(study, tmp_path, unit, layer, device):
    (tmp_path / "cut.json").write_text(json.dumps({"layer": layer}))
    out = rank_and_choose(study, tmp_path, unit=unit)
    acts, labels = subset_activations(study / "model.pt", study / "data.npz",
                                                    study / "split.npz", layer)
    assert acts.device.type == device.type  # the jobs' device: SICOMPRESS_DEVICE
    assert len(labels) == 150  # si_fraction 0.5 of 300 training images
    ref = forward_select(acts, labels, unit=unit)
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert list(ranking.columns) == ["step", "feature", "si", "center_si", "si_test",
                                     "center_si_test"]
    assert ranking["feature"].tolist() == ref.order and ranking["si"].tolist() == ref.si
    assert ranking["center_si"].tolist() == center_si_curve(acts, labels, ref.order, unit)
    # the same order on si_test, each prefix's SI and Center SI computed directly
    test_acts, test_labels = subset_activations(study / "model.pt", study / "data.npz",
                                                  study / "split.npz", layer, subset="si_test")
    assert len(test_labels) == 10  # si_test_fraction 0.2 of 50 test images
    flat = test_acts.reshape(10, test_acts.shape[1], -1) if unit == "channel" \
        else test_acts.reshape(10, -1, 1)
    for i in (0, len(ref.order) // 2, len(ref.order) - 1):
        prefix = flat[:, ref.order[:i + 1]].reshape(10, -1)
        assert ranking["si_test"][i] == separation_index(prefix, test_labels), i
        assert ranking["center_si_test"][i] == center_separation_index(prefix, test_labels), i
    k = choose_k(ref.si, 0.02)["k"]
    assert out == json.loads((tmp_path / "selected.json").read_text())
    assert out["k"] == k and out["selected"] == ref.order[:k] and out["kept"] == sorted(ref.order[:k])
    assert out["si_test_at_k"] == ranking["si_test"][k - 1]
    assert out["si_all"] == separation_index(acts, labels)
    assert out["n_candidates"] == (acts.shape[1] if unit == "channel" else acts[0].numel())
    assert out["cut_layer"] == layer and out["shape"] == list(acts.shape[1:])

    # another tolerance: k from the same ranking, nothing ranked again
    loose = compression.choose_features(
        ranking_csv=tmp_path / "ranking.csv", info_json=tmp_path / "ranking.json",
        selected_json=tmp_path / "loose.json", tolerance=0.2, log=lambda m: None)
    assert loose["k"] == choose_k(ref.si, 0.2)["k"] and loose["selected"] == ref.order[:loose["k"]]

    # the compressed extractor computes exactly the kept part of the cut layer's output
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
