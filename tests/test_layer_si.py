"""The layer table over all layers: the classifier's rows against a forward pass by hand and
scikit-learn, and the rows a model shares with another, copied only when the weights are equal."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

from sicompress import layer_si
from sicompress.layer_si import (LAYER_COLUMNS, identical_rows, layer_separation,
                                 read_layer_table, write_layer_table)
from sicompress.model import build_model, checkpoint_payload, classifier_spec
from sicompress.networks import vgg_arch
from sicompress.pruning import build_compressed

from conftest import synthetic_study

VALUES = ["si", "center_si", "si_high", "si_soft"]
EXTRACTOR_ROWS = 19  # the input and the 18 layers of VGG16's extractor


def sklearn_si(x, y):
    """Leave-one-out accuracy of 1-NN (Euclidean, brute force)."""
    knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute")
    return float(np.mean(cross_val_predict(knn, x, y, cv=LeaveOneOut()) == y))


def sklearn_csi(x, y):
    """Training accuracy of a nearest-centroid classifier."""
    return float(np.mean(NearestCentroid().fit(x, y).predict(x) == y))


def trained_like(arch: dict, seed: int) -> torch.nn.Module:
    """A model of `arch` with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = build_model(arch)
    model.train()
    with torch.no_grad():
        model(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8))
    return model.eval()


def labelled_images(seed: int, n: int, classes: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 200, (n, 32, 32, 3)) + 12 * labels[:, None, None, None]
    return images.astype(np.uint8), labels  # (N, H, W, C) as on disk


def by_hand(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """The classifier's outputs, each Linear and ReLU written out (float64): fc1, fc2, ...
    after their ReLU, and the logits; dropout is the identity in eval mode."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        h = model.features(model.normalize(x)).flatten(1)  # (N, C*H*W)
        if model.classifier.input_index is not None:
            h = h[:, model.classifier.input_index]  # (N, k)
        out = {}
        layers = dict(model.classifier.layers.named_children())
        for i in range(1, len(model.arch["classifier"]["hidden"]) + 1):
            fc = layers[f"fc{i}"]
            h = torch.clamp(h @ fc.weight.T + fc.bias, min=0)  # (N, hidden_i)
            out[f"fc{i}"] = h.numpy()
        out["logits"] = (h @ layers["out"].weight.T + layers["out"].bias).numpy()  # (N, 10)
    return out


# ----------------------------------------------------------------------------------------
# The classifier's rows


# a ReLU unit that is 0 on every image has no spread: NearestCentroid warns, and is right
@pytest.mark.filterwarnings("ignore:self.within_class_std_dev_:UserWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
@pytest.mark.parametrize("selection", [None, [5, 0, 17, 30, 2, 9, 11, 3]])
def test_classifier_rows_match_sklearn_on_a_forward_pass_by_hand(selection):
    arch = vgg_arch(width=0.0625, hidden=[16, 8], dropout=0.5)
    if selection is not None:  # unit "element": a fixed selection before fc1, not a row
        arch["classifier"] = classifier_spec(32, [16, 8], 0.5, 10, input_index=selection)
    # float64: the hand-written layers round otherwise than nn.Linear, and a near-tie in
    # float32 could flip a neighbour
    model = trained_like(arch, seed=4).double()
    images, labels = labelled_images(21, 60)
    table = layer_separation(model, images, labels, order=3, batch_size=16, dtype=torch.float64)

    assert list(table.columns) == LAYER_COLUMNS
    assert table["layer_index"].tolist() == list(range(EXTRACTOR_ROWS + 3))
    head = table.iloc[EXTRACTOR_ROWS:]
    assert head["layer"].tolist() == ["fc1", "fc2", "logits"]
    assert head["kind"].tolist() == ["fc", "fc", "logits"]
    assert head["channels"].tolist() == head["features"].tolist() == [16, 8, 10]
    assert (head["height"] == 1).all() and (head["width"] == 1).all()
    assert (table["reused_from"] == "").all() and (table["order"] == 3).all()
    assert table.iloc[EXTRACTOR_ROWS - 1]["layer"] == "pool5"

    acts = by_hand(model, images)
    for row in head.itertuples():
        x = acts[row.layer]
        assert row.si == sklearn_si(x, labels), row.layer
        assert row.center_si == sklearn_csi(x, labels), row.layer
    assert head["si"].nunique() > 1  # the rows are not all alike


# ----------------------------------------------------------------------------------------
# Which rows two models share (no SI computed)


@pytest.fixture(scope="module")
def e2e():
    return trained_like(vgg_arch(width=0.0625, hidden=[16]), seed=5)


def perturbed(model, key: str, delta: float = 1e-3):
    """A copy of `model` with one value of the state tensor `key` changed."""
    other = copy.deepcopy(model)
    tensor = other.state_dict()[key]  # shares storage with the module
    flat = tensor.view(-1)
    flat[flat.numel() // 2] += delta if tensor.is_floating_point() else 1
    return other


def test_identical_rows_counts_equal_weights_from_the_input_on(e2e):
    assert identical_rows(e2e, copy.deepcopy(e2e)) == EXTRACTOR_ROWS
    # another classifier on the same extractor (part b): every extractor row is shared
    head_arch = copy.deepcopy(e2e.arch)
    head_arch["classifier"] = classifier_spec(32, [12], 0.0, 10)
    head = build_model(head_arch)
    state = {k: v for k, v in e2e.state_dict().items() if not k.startswith("classifier.")}
    head.load_state_dict({**head.state_dict(), **state})
    assert identical_rows(head.eval(), e2e) == EXTRACTOR_ROWS


@pytest.mark.parametrize("key, rows", [
    ("features.conv2_1.conv.weight", 4),          # conv2_1 is layer 4: rows 0..3 shared
    ("features.conv2_1.bn.running_var", 4),      # a buffer counts as a weight
    ("features.conv2_1.bn.num_batches_tracked", 4),
    ("features.conv1_1.bn.bias", 1),
    ("features.conv5_3.conv.bias", 17),          # conv5_3 is layer 17
    ("normalize.mean", 0),                       # another input: nothing is shared
    ("classifier.layers.fc1.weight", EXTRACTOR_ROWS),  # the classifier is never shared
])
def test_identical_rows_refuses_a_layer_one_value_off(e2e, key, rows):
    assert identical_rows(perturbed(e2e, key), e2e) == rows
    assert identical_rows(e2e, perturbed(e2e, key)) == rows


def test_identical_rows_at_the_cut_of_a_compressed_model(e2e):
    # 3 of conv3_2's 16 channels: the sliced conv differs from e2e's
    comp = build_compressed(e2e, "conv3_2", "channel", [2, 0, 1], hidden=[8], dropout=0.0,
                            seed=0)
    assert identical_rows(comp, e2e) == 8  # input + conv1_1 .. conv3_1; conv3_2 is layer 8
    # a cut at a pool slices the conv before it (conv2_2, layer 5); the pool is measured too
    comp = build_compressed(e2e, "pool2", "channel", [1, 3], hidden=[8], dropout=0.0, seed=0)
    assert identical_rows(comp, e2e) == 5
    # unit "element" slices no conv: the whole kept prefix is shared
    comp = build_compressed(e2e, "conv4_1", "element", [0, 7, 3], hidden=[8], dropout=0.0,
                            seed=0)
    assert identical_rows(comp, e2e) == 12  # input + 11 layers up to conv4_1


# ----------------------------------------------------------------------------------------
# The tables on disk: rows copied, and only those


@pytest.fixture(scope="module")
def tables(tmp_path_factory, e2e):
    """Checkpoints of e2e, a head (b) and a compressed model (c) on a synthetic study, and
    e2e's layer table."""
    d = synthetic_study(tmp_path_factory.mktemp("layers"), train_per_class=30, si_fraction=0.5)
    torch.save(checkpoint_payload(e2e), d / "e2e.pt")
    head_arch = copy.deepcopy(e2e.arch)
    head_arch["classifier"] = classifier_spec(32, [12], 0.0, 10)
    head = trained_like(head_arch, seed=6)  # its own extractor for now
    state = {k: v for k, v in e2e.state_dict().items() if not k.startswith("classifier.")}
    head.load_state_dict({**head.state_dict(), **state})
    torch.save(checkpoint_payload(head), d / "head.pt")
    comp = build_compressed(e2e, "conv3_2", "channel", [3, 1], hidden=[8], dropout=0.0, seed=1)
    torch.save(checkpoint_payload(comp), d / "compressed.pt")
    write(d, "e2e")
    return d


def write(d, name: str, source: bool = False, **kwargs) -> pd.DataFrame:
    extra = {"source_table": d / "e2e.csv", "source_model": d / "e2e.pt"} if source else {}
    write_layer_table(model_path=kwargs.pop("model", d / f"{name}.pt"), data_npz=d / "data.npz",
                      split_npz=d / "split.npz", out_csv=d / f"{name}.csv", order=2,
                      batch_size=16, device="cpu", log=lambda m: None, **extra, **kwargs)
    return read_layer_table(d / f"{name}.csv")


def counting_neighbour_searches(monkeypatch) -> list:
    calls = []
    search = layer_si.nearest_neighbors

    def counted(*args, **kwargs):
        calls.append(1)
        return search(*args, **kwargs)
    monkeypatch.setattr(layer_si, "nearest_neighbors", counted)
    return calls


def test_head_reuses_every_extractor_row_of_e2e(tables, monkeypatch):
    d = tables
    e2e = read_layer_table(d / "e2e.csv")
    calls = counting_neighbour_searches(monkeypatch)
    head = write(d, "head", source=True)
    assert len(calls) == 2 * 2  # fc1 and logits, on si_train and si_test: nothing else

    for split in ("train", "test"):
        a = e2e[e2e["split"] == split].reset_index(drop=True)
        b = head[head["split"] == split].reset_index(drop=True)
        assert len(a) == EXTRACTOR_ROWS + 2 == len(b)
        shared = b.iloc[:EXTRACTOR_ROWS]
        assert (shared["reused_from"] == str(d / "e2e.csv")).all()
        assert (b.iloc[EXTRACTOR_ROWS:]["reused_from"] == "").all()
        cols = [c for c in LAYER_COLUMNS if c != "reused_from"]
        pd.testing.assert_frame_equal(shared[cols], a.iloc[:EXTRACTOR_ROWS][cols])
        # another classifier: its rows are its own
        assert b.iloc[EXTRACTOR_ROWS:]["channels"].tolist() == [12, 10]
        assert a.iloc[EXTRACTOR_ROWS:]["channels"].tolist() == [16, 10]
        if split == "train":  # (si_test holds one image per class here: SI 0, CSI 1 anywhere)
            assert not np.array_equal(a.iloc[EXTRACTOR_ROWS:][VALUES].to_numpy(),
                                      b.iloc[EXTRACTOR_ROWS:][VALUES].to_numpy())

    # measured in full, the head's table is the same: the copied rows are the right ones
    full = write(d, "head_full", model=d / "head.pt")
    pd.testing.assert_frame_equal(full[["split", "layer"] + VALUES], head[["split", "layer"] + VALUES])
    side = json.loads((d / "head.json").read_text())["settings"]
    assert side["reused_rows"] == {"train": EXTRACTOR_ROWS, "test": EXTRACTOR_ROWS}
    assert side["computed_rows"] == {"train": 2, "test": 2}
    assert side["reused_from"] == str(d / "e2e.csv") and side["source_model"] == str(d / "e2e.pt")


def test_compressed_model_reuses_exactly_the_rows_before_its_cut_conv(tables, monkeypatch):
    d = tables
    calls = counting_neighbour_searches(monkeypatch)
    comp = write(d, "compressed", source=True)
    train = comp[comp["split"] == "train"].reset_index(drop=True)
    # input + conv1_1 .. conv3_1 reused; conv3_2 (sliced), fc1, logits measured
    assert train["layer"].tolist()[7:] == ["conv3_1", "conv3_2", "fc1", "logits"]
    assert (train["reused_from"] != "").tolist() == [True] * 8 + [False] * 3
    assert train.loc[8, "channels"] == 2
    assert len(calls) == 2 * 3
    e2e = read_layer_table(d / "e2e.csv")
    a = e2e[e2e["split"] == "train"].reset_index(drop=True)
    assert train.loc[:7, VALUES].equals(a.loc[:7, VALUES])


def test_one_weight_off_and_that_layer_and_all_after_it_are_measured(tables, e2e):
    d = tables
    model = perturbed(e2e, "features.conv2_1.bn.running_mean", 1e-6)
    torch.save(checkpoint_payload(model), d / "tweaked.pt")
    t = write(d, "tweaked", source=True)
    for split in ("train", "test"):
        part = t[t["split"] == split]
        assert (part["reused_from"] != "").tolist() == [True] * 4 + [False] * (len(part) - 4)
    assert json.loads((d / "tweaked.json").read_text())["settings"]["reused_rows"] == \
        {"train": 4, "test": 4}


def test_a_table_of_other_settings_is_not_reused(tables):
    d = tables
    side = json.loads((d / "e2e.json").read_text())
    side["settings"]["split"] = "another/split.npz"
    (d / "e2e.json").write_text(json.dumps(side))
    try:
        lines = []
        write_layer_table(model_path=d / "head.pt", data_npz=d / "data.npz",
                          split_npz=d / "split.npz", out_csv=d / "refused.csv", order=2,
                          batch_size=16, device="cpu", log=lines.append,
                          source_table=d / "e2e.csv", source_model=d / "e2e.pt")
    finally:
        side["settings"]["split"] = str(d / "split.npz")
        (d / "e2e.json").write_text(json.dumps(side))
    assert (read_layer_table(d / "refused.csv")["reused_from"] == "").all()
    assert any("no row reused" in line and "another/split.npz" in line for line in lines)


def test_reuse_checks_the_rows_it_is_given(e2e):
    images, labels = labelled_images(3, 20)
    table = layer_separation(e2e, images, labels, order=2)
    with pytest.raises(ValueError, match="reused_from"):
        layer_separation(e2e, images, labels, order=2, reuse=table.head(3))
    with pytest.raises(ValueError, match="order"):
        layer_separation(e2e, images, labels, order=3, reuse=table.head(3), reused_from="x")
    shifted = table.head(3).assign(channels=99)
    with pytest.raises(ValueError, match="is not layer"):
        layer_separation(e2e, images, labels, order=2, reuse=shifted, reused_from="x")
    copied = layer_separation(e2e, images, labels, order=2, reuse=table.head(5),
                              reused_from="x")
    assert copied[VALUES].equals(table[VALUES])
    assert copied["reused_from"].tolist() == ["x"] * 5 + [""] * (len(table) - 5)


# ----------------------------------------------------------------------------------------
# The plot


def test_plot_marks_the_extractor_end_and_the_reused_rows(tables, monkeypatch, tmp_path):
    from sicompress import figures

    shown = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: shown.append(fig))
    head = write(tables, "head_plot", source=True, model=tables / "head.pt")
    head["reused_from"] = head["reused_from"].str.replace(str(tables / "e2e.csv"),
                                                          "results/e2e/layer_si.csv")
    figures.plot_layer_si(head, tmp_path / "head.png", title="head")
    figures.plot_layer_si(read_layer_table(tables / "e2e.csv"), tmp_path / "e2e.png",
                          title="e2e")
    for fig, reused in zip(shown, (True, False)):
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "end of the extractor (classifier to the right)" in labels
        assert any(label.startswith("reused: e2e's values") for label in labels) == reused
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks[0] == "input" and ticks[-3:] == ["pool5", "fc1", "logits"]
        assert fig.get_size_inches()[0] * figures.DPI <= 1440
