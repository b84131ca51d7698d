"""Layer-wise SI pruning: the pruned network against a hand-sliced one, each layer's channels
from its own ranking, resuming, the controls' channels and the choice of the width."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestCentroid, NearestNeighbors

from sicompress import layerwise
from sicompress import decisions
from sicompress.decisions import choose_k
from sicompress.model import build_model, checkpoint_payload
from sicompress.networks import vgg_arch
from sicompress.scoring import training_batch
from sicompress.selection import forward_select_naive

from conftest import synthetic_study

QUIET = {"log": lambda m: None}


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10, [0.5] * 3, [0.25] * 3))
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for name, module in model.features.named_children():
            if name.startswith("conv"):
                module.bn.running_mean.uniform_(-0.2, 0.2)
                module.bn.running_var.uniform_(0.5, 2.0)
                module.bn.weight.uniform_(0.5, 1.5)
                module.bn.bias.uniform_(-0.1, 0.1)
    return model.eval()


def hand_features(model, kept, cut_layer, x, stats=None):
    """The pruned extractor's output computed with plain torch functions on weights sliced by
    numpy indexing: conv, BatchNorm (eval), ReLU, max-pool, layer by layer. stats: {conv:
    (mean, var)} to use instead of the model's running statistics."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    x = (x.float() / 255 - torch.tensor(model.arch["mean"]).view(1, 3, 1, 1)) \
        / torch.tensor(model.arch["std"]).view(1, 3, 1, 1)
    prev = None
    for layer in model.arch["features"]:
        name = layer["name"]
        if layer["kind"] == "pool":
            x = F.max_pool2d(x, 2)
        else:
            k = kept[name]
            w = sd[f"features.{name}.conv.weight"][k]
            if prev is not None:
                w = w[:, prev]
            p = {key: torch.from_numpy(sd[f"features.{name}.{key}"][k].copy())
                 for key in ("conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                             "bn.running_var")}
            if stats and name in stats:
                p["bn.running_mean"], p["bn.running_var"] = (t.float() for t in stats[name])
            x = F.conv2d(x, torch.from_numpy(w.copy()), p["conv.bias"], padding=1)
            x = (x - p["bn.running_mean"].view(1, -1, 1, 1)) / torch.sqrt(
                p["bn.running_var"].view(1, -1, 1, 1) + 1e-5)
            x = x * p["bn.weight"].view(1, -1, 1, 1) + p["bn.bias"].view(1, -1, 1, 1)
            x = torch.relu(x)
            prev = k
        if name == cut_layer:
            return x
    raise AssertionError(cut_layer)


def test_the_pruned_network_equals_a_hand_sliced_copy():
    model = tiny_model()
    rng = np.random.default_rng(0)
    convs = layerwise.prefix_groups(model.arch, "pool3")
    assert convs == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3"]
    sizes = {c["name"]: c["out"] for c in model.arch["features"] if c["kind"] == "conv"}
    kept = {n: sorted(rng.choice(sizes[n], size=max(1, sizes[n] // 2), replace=False).tolist())
            for n in convs}
    pruned = layerwise.build_layerwise(model, "pool3", kept, hidden=[8], dropout=0.0, seed=1)
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        got = pruned.features(pruned.normalize(x))
    torch.testing.assert_close(got, hand_features(model, kept, "pool3", x), rtol=1e-5, atol=1e-5)
    assert got.shape[1] == len(kept["conv3_3"])
    assert pruned.arch["classifier"]["in_features"] == len(kept["conv3_3"]) * 4 * 4
    assert pruned.arch["compression"]["kept"] == kept
    # every conv shrank to its kept channels, its input to the previous conv's
    specs = {c["name"]: c for c in pruned.arch["features"] if c["kind"] == "conv"}
    assert [specs[n]["out"] for n in convs] == [len(kept[n]) for n in convs]
    assert [specs[n]["in"] for n in convs] == [3] + [len(kept[n]) for n in convs[:-1]]
    # a group not named keeps every channel; a name that is no group up to the cut is an error
    whole = layerwise.build_layerwise(model, "pool3", {"conv1_1": [0]}, hidden=[8], dropout=0.0,
                                      seed=0)
    assert whole.arch["compression"]["kept"]["conv2_1"] == list(range(8))
    with pytest.raises(ValueError, match=r"\['conv4_1'\], which are not prunable groups"):
        layerwise.build_layerwise(model, "pool3", {"conv4_1": [0]}, hidden=[8], dropout=0.0,
                                  seed=0)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = synthetic_study(tmp_path_factory.mktemp("layerwise"), train_per_class=20, si_fraction=0.5)
    torch.save(checkpoint_payload(tiny_model()), d / "model.pt")
    (d / "cut.json").write_text(json.dumps({"layer": "pool2"}))
    return d


def prune(study, out, **options):
    out.mkdir(exist_ok=True)
    return layerwise.prune_layers(model_path=study / "model.pt", data_npz=study / "data.npz",
                                  split_npz=study / "split.npz", cut_json=study / "cut.json",
                                  out_json=out / "pruned.json", ranking_csv=out / "ranking.csv",
                                  **{"pool": 2, "tolerance": 0.02, **QUIET, **options})


@pytest.mark.parametrize("batchnorm", ["copy", "reestimate"])
def test_every_layers_channels_come_from_its_own_ranking(study, tmp_path, batchnorm):
    out = prune(study, tmp_path, batchnorm=batchnorm, bn_images=60, seed=2)
    assert out["batchnorm"] == batchnorm and out["bn_images"] == 60 and out["bn_seed"] == 2
    assert json.loads((tmp_path / "pruned.json").read_text())["kept"] == out["kept"]
    model = torch.load(study / "model.pt", weights_only=True)
    from sicompress.model import load_model
    e2e = load_model(study / "model.pt")
    z = np.load(study / "data.npz")
    idx = np.load(study / "split.npz")["si_train"]
    images = torch.from_numpy(z["x_train"][idx]).permute(0, 3, 1, 2)
    labels = z["y_train"][idx]
    bn_set = layerwise.batchnorm_images(study / "data.npz", study / "split.npz", 60, seed=2)
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    kept = {}
    for rec in out["layers"]:
        name = rec["layer"]
        # the layer's input: the earlier layers pruned to what they kept, by hand
        partial = {**kept, name: list(range(rec["before"]))}
        stats = hand_batchnorm_statistics(e2e, partial, name, bn_set) \
            if batchnorm == "reestimate" else None
        acts = F.adaptive_avg_pool2d(hand_features(e2e, partial, name, images, stats), 2)
        ref = forward_select_naive(acts.double(), labels)
        part = ranking[ranking["layer"] == name]
        assert part["channel"].tolist() == ref.order, name
        assert part["si"].tolist() == ref.si, name
        k = choose_k(ref.si, 0.02)["k"]
        assert rec["after"] == k and rec["kept"] == sorted(ref.order[:k]), name
        kept[name] = rec["kept"]
    assert model["arch"]["features"][0]["name"] == "conv1_1"
    assert out["channels_after"] == sum(len(v) for v in kept.values())


def test_an_interrupted_pruning_goes_on_where_it_stopped(study, tmp_path, monkeypatch):
    whole = prune(study, tmp_path / "whole")

    class Killed(Exception):
        pass

    real = layerwise.forward_select
    calls = []

    def dies_in_the_third_layer(*args, progress=None, **kwargs):
        calls.append(1)

        def p(order, si, steps):
            progress(order, si, steps)
            if len(calls) == 3 and len(order) == 2:
                raise Killed
        return real(*args, progress=p, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(layerwise, "forward_select", dies_in_the_third_layer)
        with pytest.raises(Killed):
            prune(study, tmp_path / "killed")
    partial = json.loads((tmp_path / "killed" / layerwise.PARTIAL).read_text())
    assert list(partial["layers"]) == ["conv1_1", "conv1_2"]
    assert partial["current"]["layer"] == "conv2_1" and len(partial["current"]["order"]) == 2
    logs = []
    again = prune(study, tmp_path / "killed", log=logs.append)
    assert any("conv1_1: resumed" in line for line in logs)
    assert any("conv2_1: resume: continuing the ranking after 2 channels" in line for line in logs)
    assert again["kept"] == whole["kept"]
    assert pd.read_csv(tmp_path / "killed" / "ranking.csv").equals(
        pd.read_csv(tmp_path / "whole" / "ranking.csv"))
    assert not (tmp_path / "killed" / layerwise.PARTIAL).exists()
    # other options: not resumed
    (tmp_path / "killed" / layerwise.PARTIAL).write_text(json.dumps({**partial, "pool": 1}))
    logs.clear()
    prune(study, tmp_path / "killed", log=logs.append)
    assert any("another model, data or options" in line for line in logs)


def test_the_controls_keep_the_counts_and_their_own_channels():
    model = tiny_model()
    convs = layerwise.prefix_groups(model.arch, "pool2")
    counts = {"conv1_1": 2, "conv1_2": 3, "conv2_1": 4, "conv2_2": 5}
    l1 = layerwise.control_kept("l1", model, "pool2", counts)
    sd = model.state_dict()
    prev = None
    for name in convs:  # by hand: norms over the input channels kept before
        w = sd[f"features.{name}.conv.weight"].numpy()
        if prev is not None:
            w = w[:, prev]
        norms = np.abs(w).sum(axis=(1, 2, 3))
        expected = sorted(sorted(range(len(norms)), key=lambda o: (-norms[o], o))[:counts[name]])
        assert l1[name] == expected, name
        prev = expected
    r1 = layerwise.control_kept("random", model, "pool2", counts, seed=4)
    assert r1 == layerwise.control_kept("random", model, "pool2", counts, seed=4)
    assert r1 != layerwise.control_kept("random", model, "pool2", counts, seed=5)
    assert {n: len(v) for n, v in r1.items()} == counts
    si = {n: list(range(c)) for n, c in counts.items()}
    assert layerwise.control_kept("si", model, "pool2", counts, si_kept=si) == si


def test_choose_width_by_hand():
    recs = [{"width": 16, "center_si": 0.70}, {"width": 64, "center_si": 0.80},
            {"width": 32, "center_si": 0.795}, {"width": 128, "center_si": 0.805}]
    out = decisions.choose_width(recs, 0.01)
    assert (out["width"], out["reference_width"]) == (32, 128)  # 0.795 >= 0.805 - 0.01
    assert decisions.choose_width(recs, 0.0)["width"] == 128
    assert decisions.choose_width(recs, 0.2)["width"] == 16


def test_hidden_separation_against_sklearn(study):
    model = layerwise.build_layerwise(tiny_model(), "pool2",
                                      {"conv1_1": [0, 1], "conv1_2": [0, 2, 3],
                                       "conv2_1": [1, 2], "conv2_2": [0, 3, 5]},
                                      hidden=[12], dropout=0.0, seed=3)
    z = np.load(study / "data.npz")
    images = torch.from_numpy(z["x_train"][:90]).permute(0, 3, 1, 2)
    y = z["y_train"][:90]
    got = layerwise.hidden_separation(model, images, y)
    with torch.no_grad():  # by hand: flatten, fc1, ReLU
        h = torch.relu(model.classifier.layers.fc1(torch.flatten(
            model.features(model.normalize(images)), 1))).numpy().astype(np.float64)
    idx = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(h).kneighbors(
        h, return_distance=False)
    nn = np.where(idx[:, 0] == np.arange(len(h)), idx[:, 1], idx[:, 0])
    assert got["si"] == pytest.approx(np.mean(y[nn] == y))
    assert got["center_si"] == pytest.approx(np.mean(NearestCentroid().fit(h, y).predict(h) == y))
    assert got["width"] == 12


# ----------------------------------------------------------------------------------------
# BatchNorm statistics after slicing


def hand_batchnorm_statistics(model, kept, cut_layer, x):
    """Per block of the pruned network, in order: the per-channel mean and (unbiased)
    variance of its conv's output over every image and position, computed with F.conv2d on
    weights sliced by numpy indexing, each block normalised with the statistics computed
    here for it (the first block, whose input is the image, keeps the model's own)."""
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    h = (x.double() / 255 - torch.tensor(model.arch["mean"], dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(model.arch["std"], dtype=torch.float64).view(1, 3, 1, 1)
    stats, prev = {}, None
    for layer in model.arch["features"]:
        name = layer["name"]
        if layer["kind"] == "pool":
            h = F.max_pool2d(h, 2)
        else:
            k = kept[name]
            w = sd[f"features.{name}.conv.weight"][k]
            if prev is not None:
                w = w[:, prev]
            y = F.conv2d(h, torch.from_numpy(w.copy()),
                         torch.from_numpy(sd[f"features.{name}.conv.bias"][k].copy()), padding=1)
            if prev is None:
                mean = torch.from_numpy(sd[f"features.{name}.bn.running_mean"][k].copy())
                var = torch.from_numpy(sd[f"features.{name}.bn.running_var"][k].copy())
            else:
                flat = y.permute(1, 0, 2, 3).reshape(y.shape[1], -1)
                mean, var = flat.mean(1), flat.var(1, unbiased=True)
                stats[name] = (mean, var)
            g = torch.from_numpy(sd[f"features.{name}.bn.weight"][k].copy()).view(1, -1, 1, 1)
            b = torch.from_numpy(sd[f"features.{name}.bn.bias"][k].copy()).view(1, -1, 1, 1)
            h = torch.relu((y - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
                           * g + b)
            prev = k
        if name == cut_layer:
            return stats
    raise AssertionError(cut_layer)


def test_reestimated_batchnorm_statistics_equal_a_hand_computation():
    model = tiny_model()
    rng = np.random.default_rng(3)
    convs = layerwise.prefix_groups(model.arch, "conv3_2")
    sizes = {c["name"]: c["out"] for c in model.arch["features"] if c["kind"] == "conv"}
    kept = {n: sorted(rng.choice(sizes[n], size=max(1, sizes[n] // 2), replace=False).tolist())
            for n in convs}
    x = torch.randint(0, 256, (37, 3, 32, 32), dtype=torch.uint8)
    expected = hand_batchnorm_statistics(model, kept, "conv3_2", x)
    assert list(expected) == convs[1:]  # every block after the first has a sliced input

    pruned = layerwise.build_layerwise(model, "conv3_2", kept, hidden=[8], dropout=0.0, seed=1)
    copied = {n: (getattr(pruned.features, n).bn.running_mean.clone(),
                  getattr(pruned.features, n).bn.running_var.clone()) for n in convs}
    start = layerwise.first_sliced_input(pruned.arch, kept)
    assert start == "conv1_2"
    # batches of 10 (37 images: the last batch is short): the statistics are over all of them
    done = layerwise.reestimate_batchnorm(pruned, x, start=start, batch_size=10, device="cpu")
    assert done == convs[1:]
    for name in convs:
        bn = getattr(pruned.features, name).bn
        if name == "conv1_1":  # its input is the image: e2e's statistics, untouched
            assert torch.equal(bn.running_mean, copied[name][0])
            continue
        mean, var = expected[name]
        torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-4, atol=1e-5)
        # the statistics copied from e2e fail the same check
        assert not torch.allclose(copied[name][0].double(), mean, rtol=1e-2, atol=1e-3)
        assert not torch.allclose(copied[name][1].double(), var, rtol=1e-2, atol=1e-3)
    assert not pruned.training and all(not m.training for m in pruned.modules())


def test_part_c_slices_no_conv_input_so_no_statistic_changes():
    model = tiny_model()
    sizes = {c["name"]: c["out"] for c in model.arch["features"] if c["kind"] == "conv"}
    convs = layerwise.prefix_groups(model.arch, "conv3_3")
    # (c): every conv whole, the cut conv's output channels sliced
    kept = {n: list(range(sizes[n])) for n in convs}
    kept["conv3_3"] = [0, 3, 5]
    assert layerwise.first_sliced_input(model.arch, kept) is None
    pruned = layerwise.build_layerwise(model, "conv3_3", kept, hidden=[8], dropout=0.0, seed=1)
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    assert layerwise.reestimate_batchnorm(pruned, x, start=None) == []
    after = pruned.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # and the layer-wise network with one sliced conv re-estimates from the next one only
    kept["conv2_1"] = [1, 2]
    assert layerwise.first_sliced_input(model.arch, kept) == "conv2_2"


def test_batchnorm_images_are_a_fixed_seeded_subset_of_train(study):
    x = layerwise.batchnorm_images(study / "data.npz", study / "split.npz", 50, seed=4)
    again = layerwise.batchnorm_images(study / "data.npz", study / "split.npz", 50, seed=4)
    other = layerwise.batchnorm_images(study / "data.npz", study / "split.npz", 50, seed=5)
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x, again) and not torch.equal(x, other)
    from sicompress.data import load_dataset
    from sicompress.splits import load_split
    ds, split = load_dataset(study / "data.npz"), load_split(study / "split.npz")
    train = {bytes(ds.x_train[i].tobytes()) for i in split["train"]}
    assert all(bytes(img.permute(1, 2, 0).numpy().tobytes()) in train for img in x)
    with pytest.raises(ValueError, match="bn_images"):
        layerwise.batchnorm_images(study / "data.npz", study / "split.npz", 0, seed=4)


def test_each_choice_is_written_once_and_read_by_the_network(study, tmp_path):
    """kept.json: random~R drawn with seed + R, l1 at the layer-wise counts (the same
    `control_kept` gives by hand), and the network built from the file keeps those channels;
    a file of another pruning is refused."""
    out = prune(study, tmp_path, batchnorm="reestimate", bn_images=60, seed=2)
    counts = {n: len(v) for n, v in out["kept"].items()}
    files = {}
    for choice in ("si", "l1", "random~1", "hrank"):
        files[choice] = tmp_path / f"{choice}.json"
        layerwise.write_kept(model_path=study / "model.pt", pruned_json=tmp_path / "pruned.json",
                             choice=choice, seed=2, data_npz=study / "data.npz",
                             split_npz=study / "split.npz", out_json=files[choice], **QUIET)
    rec = {c: json.loads(f.read_text()) for c, f in files.items()}
    assert rec["si"]["kept"] == out["kept"] and rec["si"]["seed"] is None
    assert rec["random~1"]["seed"] == 3
    assert rec["random~1"]["kept"] == layerwise.control_kept("random", study / "model.pt", "pool2",
                                                             counts, seed=3)
    assert rec["l1"]["kept"] == layerwise.control_kept("l1", study / "model.pt", "pool2", counts)
    assert {n: len(v) for n, v in rec["l1"]["kept"].items()} == counts
    # hrank's maps: the split's training images drawn with the BatchNorm images' seed
    batch = training_batch(study / "data.npz", study / "split.npz", seed=2)
    assert rec["hrank"]["kept"] == layerwise.control_kept("hrank", study / "model.pt", "pool2",
                                                          counts, batch=batch)
    assert rec["hrank"]["seed"] is None
    assert {n: len(v) for n, v in rec["hrank"]["kept"].items()} == counts
    pruned = json.loads((tmp_path / "pruned.json").read_text())
    model = layerwise.pruned_network(study / "model.pt", pruned, rec["random~1"], seed=0,
                                     hidden=[], dropout=0.0, data_npz=study / "data.npz",
                                     split_npz=study / "split.npz")
    assert model.arch["compression"]["kept"] == rec["random~1"]["kept"]
    other = dict(rec["l1"], kept={**rec["l1"]["kept"], "conv1_1": [0]})
    with pytest.raises(ValueError, match="does not hold pruned.json's counts"):
        layerwise.pruned_network(study / "model.pt", pruned, other, seed=0, hidden=[],
                                 dropout=0.0, data_npz=study / "data.npz",
                                 split_npz=study / "split.npz")
