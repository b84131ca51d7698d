"""The controls of part (c): the selectors' channels, the SI curve on other data, the control
trainings and the latency measurement."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from sicompress import compression, latency, scoring, trainings
from sicompress.model import build_model, checkpoint_payload, load_checkpoint, load_model
from sicompress.networks import vgg_arch
from sicompress.pruning import compressed_arch
from sicompress.selection import forward_select_naive
from sicompress.criteria import NAMES, k_of_fraction
from sicompress.scoring import choose, random_channels, si_channels, top_k
from sicompress.si import si_curve
from sicompress.engine import TrainSettings

from conftest import macs_by_hooks, random_batchnorm, synthetic_study

QUIET = {"log": lambda m: None}


# ----------------------------------------------------------------------------------------
# Selectors


def test_top_k_by_hand():
    # scores 6, 9, 9, 1.5: a tie between 1 and 2 goes to the lower index
    assert top_k(torch.tensor([6.0, 9.0, 9.0, 1.5]), 1) == [1]
    assert top_k([6.0, 9.0, 9.0, 1.5], 3) == [1, 2, 0]
    assert top_k(np.array([6.0, 9.0, 9.0, 1.5]), 4) == [1, 2, 0, 3]
    with pytest.raises(ValueError, match="k must be an integer in"):
        top_k([1.0, 2.0], 3)


def test_l1_of_a_tiny_conv_by_hand():
    """L1 through Torch-Pruning's importance on a conv whose filters' sums of |w| are set by
    hand: 6, 9, 9, 1.5 (the tie to the lower index)."""
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10, [0.5] * 3, [0.25] * 3))
    w = torch.zeros(4, 3, 3, 3)
    w[0, 0, 0, 0], w[0, 1, 2, 2] = 2.0, -4.0       # |2| + |-4| = 6
    w[1, 0, 1, 1], w[1, 1, 0, 1] = -5.0, 4.0       # 9
    w[2, :2, 0, 0] = torch.tensor([4.5, -4.5])      # 9 (a tie with filter 1: lower index first)
    w[3, 1] = 1.5 / 9                               # 9 values of 1/6: 1.5
    with torch.no_grad():
        model.features.conv1_1.conv.weight.copy_(w)
    assert choose("l1", model, "conv1_1", {"conv1_1": 3}) == {"conv1_1": [1, 2, 0]}
    assert choose("l1", model, "pool1", {"conv1_1": 4}) == {"conv1_1": [1, 2, 0, 3]}


def batchnorm_gammas(model, conv: str, gammas: list[float]) -> None:
    with torch.no_grad():
        getattr(model.features, conv).bn.weight.copy_(torch.tensor(gammas))


def test_bn_scale_is_the_largest_absolute_gamma():
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10, [0.5] * 3, [0.25] * 3))
    batchnorm_gammas(model, "conv1_2", [0.5, -2.0, 1.0, 0.1])  # |gamma|: 0.5, 2, 1, 0.1
    assert choose("bn_scale", model, "conv1_2", {"conv1_2": 2}) == {"conv1_2": [1, 2]}
    # a ResNet stage: |gamma| averaged over the BatchNorms writing its channels
    from sicompress.networks import network_arch
    net = build_model(network_arch("resnet20", 0.125, hidden=[], dropout=0.0))  # 2, 4, 8
    mods = dict(net.named_modules())
    values = {"features.conv1.bn": [1.0, 0.2], "features.block1_1.bn2": [0.1, 0.3],
              "features.block1_2.bn2": [0.1, 0.3], "features.block1_3.bn2": [0.1, -0.3]}
    with torch.no_grad():
        for path, g in values.items():
            mods[path].weight.copy_(torch.tensor(g))
    # channel 0: (1 + .1 + .1 + .1) / 4 = 0.325; channel 1: (.2 + .3 + .3 + .3) / 4 = 0.275
    assert choose("bn_scale", net, "block1_3", {"stage1": 1}) == {"stage1": [0]}
    values["features.conv1.bn"] = [0.1, 0.2]  # now 0.1 against 0.275
    with torch.no_grad():
        mods["features.conv1.bn"].weight.copy_(torch.tensor(values["features.conv1.bn"]))
    assert choose("bn_scale", net, "block1_3", {"stage1": 1}) == {"stage1": [1]}


def test_taylor_by_hand():
    """Taylor: sum over a filter of |w x dL/dw|, the cross-entropy of the whole network on the
    batch, gradients by autograd on a copy of the network (not through the library)."""
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10, [0.5] * 3, [0.25] * 3)).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (12,), generator=g)
    copy_ = build_model(model.arch).eval()
    copy_.load_state_dict(model.state_dict())
    loss = torch.nn.functional.cross_entropy(copy_(x), y)
    loss.backward()
    w = copy_.features.conv2_1.conv.weight
    scores = (w * w.grad).abs().sum(dim=(1, 2, 3)).detach().double()
    expected = [int(i) for i in np.lexsort((np.arange(8), -scores.numpy()))[:3]]
    got = choose("taylor", model, "conv2_1", {"conv2_1": 3}, batch=(x, y))
    assert got == {"conv2_1": expected}
    with pytest.raises(ValueError, match="needs a batch"):
        choose("taylor", model, "conv2_1", {"conv2_1": 3})


def test_feature_map_rank_by_hand():
    """Maps of known rank: zeros 0, ones 1, a sum of two outer products 2, the identity 4;
    the score is the mean over images."""
    u, v = torch.tensor([1.0, 2.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 3.0, 1.0])
    a, b = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([2.0, 1.0, 0.0, 0.0])
    rank2 = torch.outer(u, v) + torch.outer(a, b)
    maps = torch.stack([torch.stack([torch.zeros(4, 4), torch.ones(4, 4), rank2, torch.eye(4)]),
                        torch.stack([torch.eye(4), torch.ones(4, 4), torch.ones(4, 4),
                                     torch.eye(4)])])  # (2 images, 4 channels, 4, 4)
    assert scoring.feature_map_rank(maps).tolist() == [2.0, 1.0, 1.5, 4.0]
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        scoring.feature_map_rank(torch.ones(3, 4, 4))


def hooked_maps(model, module_path: str, images) -> np.ndarray:
    """The output of one module in a forward pass of the whole model, by a hook (eval mode)."""
    seen = {}
    module = dict(model.named_modules())[module_path]
    handle = module.register_forward_hook(lambda m, i, o: seen.update(out=o.detach().clone()))
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        handle.remove()
    return seen["out"].numpy()


def numpy_hrank(maps: np.ndarray) -> np.ndarray:
    """HRank's score by numpy: matrix_rank of every (H, W) float32 map, mean over images."""
    n, c = maps.shape[:2]
    return np.array([[np.linalg.matrix_rank(maps[i, j]) for j in range(c)]
                     for i in range(n)], dtype=np.float64).mean(axis=0)


def test_hrank_against_numpy_matrix_rank():
    """HRank on a tiny VGG with random BatchNorm statistics: each group's channels ranked by
    numpy's matrix_rank of the maps a hook reads after the block's ReLU, the second group on
    the network with the first already pruned to HRank's choice; and a ResNet stage read at
    its last block's output up to the cut."""
    from sicompress.networks import network_arch
    from sicompress.pruning import prune_network

    torch.manual_seed(0)
    model = random_batchnorm(build_model(vgg_arch(0.0625, [8], 0.0, 10)), spread=0.5).eval()
    # images of a flat grey with a random patch of 2 to 9 pixels a side: maps of low and
    # differing ranks (random full images give every live channel full rank)
    g = torch.Generator().manual_seed(2)
    x = torch.full((10, 3, 32, 32), 128, dtype=torch.uint8)
    for i in range(10):
        side, top, left = (int(v) for v in torch.randint(2, 10, (3,), generator=g))
        x[i, :, top:top + side, left:left + side] = torch.randint(0, 256, (3, side, side),
                                                                  dtype=torch.uint8, generator=g)
    batch = (x, torch.zeros(10, dtype=torch.long))
    got = choose("hrank", model, "conv2_1", {"conv1_1": 2, "conv2_1": 5}, batch=batch)
    first = numpy_hrank(hooked_maps(model, "features.conv1_1", x))
    assert got["conv1_1"] == [int(i) for i in np.lexsort((np.arange(4), -first))[:2]]
    pruned, _ = prune_network(model.arch, model.state_dict(), {"conv1_1": got["conv1_1"]})
    second = numpy_hrank(hooked_maps(pruned, "features.conv2_1", x))
    assert len(set(second.tolist())) > 2  # the ranks differ between channels: a real order
    assert got["conv2_1"] == [int(i) for i in np.lexsort((np.arange(8), -second))[:5]]
    with pytest.raises(ValueError, match="needs a batch"):
        choose("hrank", model, "conv2_1", {"conv2_1": 3})
    net = random_batchnorm(build_model(network_arch("resnet20", 0.25, hidden=[], dropout=0.0)),
                           spread=0.5).eval()
    stage = numpy_hrank(hooked_maps(net, "features.block1_2", x))  # the cut's last block
    assert choose("hrank", net, "block1_2", {"stage1": 2}, batch=batch) == \
        {"stage1": [int(i) for i in np.lexsort((np.arange(4), -stage))[:2]]}


# L1 norms given by hand to the 8 filters of conv2_1 and of conv2_2 of the tiny VGG below, and
# the order they put the filters in, largest norm first (distinct norms: no tie to break).
# Each norm is spread over a given number of weights, so that the order by L2 norm or by the
# largest weight is another: only the L1 norm gives this order.
CONV2_1_NORMS, CONV2_1_ORDER = [5.0, 3.0, 8.0, 1.0, 7.0, 2.0, 6.0, 4.0], [2, 4, 6, 0, 7, 1, 5, 3]
CONV2_1_SPREAD = [36, 1, 36, 2, 9, 1, 36, 4]  # of 4 x 3 x 3 weights
CONV2_2_NORMS, CONV2_2_ORDER = [2.0, 7.0, 4.0, 9.0, 1.0, 6.0, 3.0, 8.0], [3, 7, 1, 5, 2, 6, 0, 4]
CONV2_2_SPREAD = [1, 72, 4, 72, 1, 18, 2, 72]  # of 8 x 3 x 3 weights


def set_filter_norms(model: torch.nn.Module, conv: str, norms: list[float], spread: list[int],
                     seed: int) -> None:
    """Give filter o of `conv` the L1 norm norms[o]: its first spread[o] weights are
    +-norms[o] / spread[o] (random signs), the others 0."""
    w = getattr(model.features, conv).conv.weight
    signs = torch.randn(w.shape, generator=torch.Generator().manual_seed(seed)).sign()
    values = torch.zeros(w.shape[0], w[0].numel())
    for o, (norm, m) in enumerate(zip(norms, spread)):
        values[o, :m] = norm / m
    with torch.no_grad():
        w.copy_(signs * values.reshape(w.shape))


def test_l1_of_every_conv_over_the_input_channels_kept(tmp_path):
    """L1 norms set by hand on conv2_1 and conv2_2: the filters of conv2_1 in order of their
    norm; layer by layer, conv2_2's norms over the input channels conv2_1 keeps."""
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10, [0.5] * 3, [0.25] * 3))
    set_filter_norms(model, "conv2_1", CONV2_1_NORMS, CONV2_1_SPREAD, seed=1)
    set_filter_norms(model, "conv2_2", CONV2_2_NORMS, CONV2_2_SPREAD, seed=2)
    assert choose("l1", model, "pool2", {"conv2_2": 3}) == {"conv2_2": [3, 7, 1]}
    assert choose("l1", model, "pool2", {"conv2_2": 8}) == {"conv2_2": CONV2_2_ORDER}
    assert choose("l1", model, "conv2_1", {"conv2_1": 4}) == {"conv2_1": CONV2_1_ORDER[:4]}
    # both: conv2_2's norms by hand over the 4 inputs conv2_1 keeps
    w = model.features.conv2_2.conv.weight.detach()[:, sorted(CONV2_1_ORDER[:4])]
    norms = w.double().abs().sum(dim=(1, 2, 3)).numpy()
    # by hand: 2, 3.5, 4, 4.5, 1, 3, 3, 4 (to float rounding: the sums of 1/72s are not exact)
    np.testing.assert_allclose(norms, [2.0, 3.5, 4.0, 4.5, 1.0, 3.0, 3.0, 4.0], rtol=1e-6)
    got = choose("l1", model, "pool2", {"conv2_1": 4, "conv2_2": 4})
    # the four largest (4.5, then 4 twice, then 3.5): a set no rounding changes
    assert got["conv2_1"] == CONV2_1_ORDER[:4]
    assert got["conv2_2"][0] == 3 and sorted(got["conv2_2"]) == [1, 2, 3, 7]
    with pytest.raises(ValueError, match="'fc1' is not a layer of the feature extractor"):
        choose("l1", model, "fc1", {"conv2_1": 4})


def test_random_channels_are_reproducible_by_seed():
    def draw(n, k, seed):
        return random_channels(np.random.default_rng(seed), n, k)
    a = draw(64, 16, seed=3)
    assert a == draw(64, 16, seed=3)
    assert a != draw(64, 16, seed=4)
    assert len(set(a)) == 16 and all(0 <= c < 64 for c in a)
    assert sorted(draw(5, 5, seed=0)) == [0, 1, 2, 3, 4]
    # uniform: over many seeds every channel is drawn about k/n of the time
    counts = np.bincount(np.concatenate([draw(8, 2, seed=s) for s in range(4000)]),
                         minlength=8)
    assert np.all(np.abs(counts / 4000 - 2 / 8) < 0.03), counts
    # part (c)'s draw is the first of the generator; the layer-wise one goes on layer by layer
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10))
    rng = np.random.default_rng(7)
    first, second = draw(4, 2, seed=7), None
    rng.choice(4, size=2, replace=False)
    second = [int(i) for i in rng.choice(4, size=3, replace=False)]
    assert choose("random", model, "conv1_2", {"conv1_1": 2, "conv1_2": 3}, seed=7) == \
        {"conv1_1": first, "conv1_2": second}


def test_si_selector_and_k_of_fraction():
    assert si_channels([4, 0, 2], 2) == [4, 0]
    with pytest.raises(ValueError, match="holds 3"):
        si_channels([4, 0, 2], 4)
    assert [k_of_fraction(f, 64) for f in (0.125, 0.25, 0.5, 1.0)] == [8, 16, 32, 64]
    assert k_of_fraction(0.01, 10) == 1 and k_of_fraction(0.25, 10) == 3  # 2.5 rounds up
    # by hand: 0.5 of 5 = 2.5 -> 3; 0.3 of 10 = 3; 0.34 of 10 = 3.4 -> 3; 0.9 of 5 = 4.5 -> 5;
    # 1/3 of 8 = 2.67 -> 3; 0.05 of 8 = 0.4 -> at least 1
    assert [k_of_fraction(f, n) for f, n in ((0.5, 5), (0.3, 10), (0.34, 10), (0.9, 5),
                                             (1 / 3, 8), (0.05, 8))] == [3, 3, 3, 5, 3, 1]
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            k_of_fraction(bad, 10)
    with pytest.raises(ValueError, match=r"unknown channel criterion 'fpgm'; the criteria are"):
        choose("fpgm", build_model(vgg_arch(0.0625, [8], 0.0, 10)), "conv1_1", {"conv1_1": 1})


# ----------------------------------------------------------------------------------------
# SI along an order, on any data


def sklearn_si(x, y):
    idx = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(x).kneighbors(
        x, return_distance=False)
    nn = np.where(idx[:, 0] == np.arange(len(x)), idx[:, 1], idx[:, 0])
    return float(np.mean(y[nn] == y))


@pytest.mark.parametrize("unit", ["channel", "element"])
def test_si_curve_against_sklearn_and_the_selection(unit, device):
    g = torch.Generator().manual_seed(5)
    x = torch.rand(90, 5, 2, 2, generator=g, dtype=torch.float64)
    x[:, 2] += torch.arange(90, dtype=torch.float64)[:, None, None] % 3  # an informative channel
    y = np.arange(90) % 3
    # sklearn on each prefix of a random order (continuous data: no distance ties)
    n_features = 5 if unit == "channel" else 20
    order = torch.randperm(n_features, generator=g).tolist()
    curve = si_curve(x.to(device), y, order, unit)
    flat = x.reshape(90, 5, 4) if unit == "channel" else x.reshape(90, 20, 1)
    for i in range(n_features):
        assert curve[i] == sklearn_si(flat[:, order[:i + 1]].reshape(90, -1).numpy(), y), i
    # on the data the ranking was chosen on, the ranking's own curve (ties included)
    xq = (x * 4).round() / 4  # coarse values: many tied distances
    ref = forward_select_naive(xq, y, unit=unit)
    assert si_curve(xq.to(device), y, ref.order, unit, memory_budget=5000) == ref.si
    assert si_curve(xq, y, [], unit) == []


# ----------------------------------------------------------------------------------------
# Control trainings


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A synthetic data set and split, a tiny VGG checkpoint, its cut and a ranking."""
    d = synthetic_study(tmp_path_factory.mktemp("controls"), train_per_class=30, si_fraction=0.5)
    torch.manual_seed(99)  # not the trainings' seed: "e2e" weights unlike a fresh seed-0 init
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10, [0.5] * 3, [0.25] * 3))
    # the cut conv (pool2 follows conv2_2): filters in a known L1 order
    set_filter_norms(model, "conv2_2", CONV2_2_NORMS, CONV2_2_SPREAD, seed=3)
    torch.save(checkpoint_payload(model), d / "model.pt")
    (d / "cut.json").write_text(json.dumps({"layer": "pool2"}))
    compression.rank_features(model_path=d / "model.pt", data_npz=d / "data.npz",
                              split_npz=d / "split.npz", cut_json=d / "cut.json",
                              ranking_csv=d / "ranking.csv", info_json=d / "ranking.json", **QUIET)
    compression.choose_features(ranking_csv=d / "ranking.csv", info_json=d / "ranking.json",
                                selected_json=d / "selected.json", tolerance=0.02, **QUIET)
    return d


def job(d, out, settings):
    """A training on the study files of `d`, writing into `out`."""
    return trainings.Training.in_folders(d, out, settings, **QUIET)


@pytest.mark.parametrize("selector,fraction", [("l1", None), ("random", 0.5), ("si", 0.25)])
def test_a_control_keeps_its_selectors_channels(study, tmp_path, selector, fraction):
    settings = TrainSettings(epochs=1, lr=0.01, step_size=1, batch_size=64, seed=7,
                             train_only="classifier")
    out = trainings.train_control(
        job(study, tmp_path, settings), e2e_model=study / "model.pt",
        cut_json=study / ("selected.json" if fraction is None else "ranking.json"),
        ranking_csv=study / "ranking.csv", selector=selector, fraction=fraction, repeat=7,
        hidden=[8], dropout=0.0)
    sel = json.loads((study / "selected.json").read_text())
    assert sel["n_candidates"] == 8  # pool2 of width 1/16: 128 / 16 channels
    k = {None: sel["k"], 0.5: 4, 0.25: 2}[fraction]  # half and a quarter of 8
    ckpt = load_checkpoint(study / "model.pt")
    comp = out["compression"]
    if selector == "l1":
        expected = CONV2_2_ORDER[:k]  # the norms the fixture gave the filters
    elif selector == "random":
        # the run's seed (7) drawn by the selector, whose uniformity is tested above
        expected = random_channels(np.random.default_rng(7), 8, k)
        assert len(set(comp["selected"])) == k and set(comp["selected"]) <= set(range(8))
    else:
        expected = pd.read_csv(study / "ranking.csv")["feature"].tolist()[:k]
    assert comp["selected"] == expected and comp["kept"] == sorted(expected)
    assert (comp["selector"], comp["fraction"], comp["repeat"], comp["seed"], comp["k"]) == \
        (selector, fraction, 7, 7, k)
    # the trained model's cut conv holds exactly those filters of the e2e model, unchanged
    model = load_model(tmp_path / "model.pt")
    torch.testing.assert_close(model.state_dict()["features.conv2_2.conv.weight"],
                               ckpt["state_dict"]["features.conv2_2.conv.weight"][sorted(expected)])
    # predictions: the test labels in stored order, and the accuracy the metrics report
    pred = np.load(tmp_path / "predictions.npz")
    assert pred["label"].tolist() == np.load(study / "data.npz")["y_test"].tolist()
    assert np.mean(pred["predicted"] == pred["label"]) == pytest.approx(out["test_acc"])


def test_scratch_starts_from_random_weights_of_the_compressed_architecture(study, tmp_path):
    settings = TrainSettings(epochs=1, lr=0.01, step_size=1, batch_size=64, seed=0)
    out = trainings.train_scratch(
        job(study, tmp_path, settings), e2e_model=study / "model.pt",
        selected_json=study / "selected.json", hidden=[8], dropout=0.0)
    sel = json.loads((study / "selected.json").read_text())
    e2e = load_checkpoint(study / "model.pt")
    arch = compressed_arch(e2e["arch"], "pool2", "channel", sel["selected"], [8], 0.0)
    trained = load_checkpoint(tmp_path / "model.pt")
    assert trained["arch"]["features"] == arch["features"]
    assert out["compression"]["from_scratch"] and out["settings"]["train_only"] == "all"
    # conv1_1 was trained from its own random start, not from the e2e weights: it is far from
    # them (one epoch of SGD moves a weight by much less than the spread of two inits)
    w_e2e = e2e["state_dict"]["features.conv1_1.conv.weight"]
    w = trained["state_dict"]["features.conv1_1.conv.weight"]
    assert (w - w_e2e).abs().mean() > 0.5 * w_e2e.abs().mean()


def test_finetune_trains_every_layer_of_the_compressed_model(study, tmp_path):
    comp = tmp_path / "compressed"
    comp.mkdir()
    trainings.train_compressed(
        job(study, comp, TrainSettings(epochs=1, lr=0.01, step_size=1, batch_size=64,
                                       train_only="classifier")),
        e2e_model=study / "model.pt", selected_json=study / "selected.json", hidden=[8],
        dropout=0.0)
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    trainings.finetune(job(study, tuned, TrainSettings(epochs=1, lr=0.001, step_size=1,
                                                      batch_size=64)),
                       compressed_model=comp / "model.pt", e2e_model=study / "model.pt")
    before = load_checkpoint(comp / "model.pt")["state_dict"]
    after = load_checkpoint(tuned / "model.pt")["state_dict"]
    assert set(before) == set(after)
    assert not torch.equal(before["features.conv1_1.conv.weight"],
                           after["features.conv1_1.conv.weight"])  # the extractor moved too


# ----------------------------------------------------------------------------------------
# Latency


def test_latency_table_and_speedups(study, tmp_path):
    table = latency.measure_latency({"e2e": study / "model.pt", "again": study / "model.pt"},
                                    study / "data.npz", tmp_path / "latency.csv",
                                    batch_sizes=(1, 64), min_run_time=0.05, **QUIET)
    assert pd.read_csv(tmp_path / "latency.csv").shape == (4, len(latency.COLUMNS))
    assert list(table["model"]) == ["e2e", "e2e", "again", "again"]
    assert list(table["batch_size"]) == [1, 64, 1, 64]
    # the cost columns against counts made apart: torch's parameters, MACs by forward hooks
    model = load_model(study / "model.pt")
    assert set(table["parameters"]) == {sum(p.numel() for p in model.parameters())}
    assert set(table["macs"]) == {macs_by_hooks(model)["total"]}
    # speed-up by hand on a made-up table
    t = pd.DataFrame({"model": ["e2e", "e2e", "small", "small"], "batch_size": [1, 256, 1, 256],
                      "seconds_per_image": [4e-3, 1e-3, 1e-3, 5e-4]})
    assert latency.speedups(t)["speedup"].tolist() == [1.0, 1.0, 4.0, 2.0]


def test_the_selector_list_is_the_schemas_and_the_figures():
    """criteria.CRITERIA is the one list; the config schema (which cannot import it) and the
    frontier's colours name the same criteria; the default is the study's three."""
    import yaml

    from sicompress.figures import SELECTOR_COLORS
    SELECTORS = NAMES

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml")
                            .read_text())
    sel = schema["properties"]["controls"]["properties"]["selectors"]
    assert sel["items"]["enum"] == list(SELECTORS)
    assert sel["default"] == ["si", "l1", "random"]
    assert set(SELECTOR_COLORS) == set(SELECTORS)
