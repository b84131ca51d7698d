"""The pruning engine (`pruning`, over Torch-Pruning's dependency graph) on every network.

Independent sources: the outputs and counts of the home-made VGG slicer the engine replaced
(tests/data/slicer_vgg16.pt, written by the slicer of commit 54b9bdd before it was removed:
a VGG16 at width 1/16 with random BatchNorm statistics, pruned layer-wise up to pool4 and as
part (c) at pool3), and, on a ResNet, the unpruned network with the removed channels' outputs
set to zero by hand (forward hooks): removing a channel is zeroing it, where every reader of
it is linear before the next nonlinearity.
"""

from pathlib import Path

import pytest
import torch

from sicompress.cost import parameter_counts
from sicompress.layerwise import build_layerwise
from sicompress.model import build_model
from sicompress.networks import NETWORKS, network_arch
from sicompress.pruning import build_compressed, channel_groups, cut_group, pruned_features

from conftest import random_batchnorm

FIXTURE = Path(__file__).parent / "data" / "slicer_vgg16.pt"


@pytest.fixture(scope="module")
def slicer():
    return torch.load(FIXTURE, weights_only=True)


def source_of(fix):
    model = build_model(fix["arch"])
    model.load_state_dict(fix["state_dict"])
    return model.eval()


def test_layerwise_vgg_equals_the_slicer(slicer):
    case = slicer["cases"]["layerwise"]
    model = build_layerwise(source_of(slicer), case["cut_layer"], case["kept"],
                            hidden=case["hidden"], dropout=0.0, seed=case["seed"]).eval()
    assert model.arch["features"] == case["arch"]["features"]
    assert parameter_counts(model) == case["parameters"]
    with torch.no_grad():
        out = model.features(model.normalize(slicer["images"]))
        torch.testing.assert_close(out, case["features_out"], rtol=0, atol=1e-6)
        # the new classifier is initialised by the seed alone, as before
        torch.testing.assert_close(model(slicer["images"]), case["logits"], rtol=0, atol=1e-6)


def test_compressed_vgg_equals_the_slicer(slicer):
    case = slicer["cases"]["compressed"]
    model = build_compressed(source_of(slicer), case["cut_layer"], "channel", case["selected"],
                             hidden=case["hidden"], dropout=0.0, seed=case["seed"]).eval()
    assert model.arch["features"] == case["arch"]["features"]
    assert model.arch["compression"] == case["arch"]["compression"]
    assert parameter_counts(model) == case["parameters"]
    with torch.no_grad():
        torch.testing.assert_close(model.features(model.normalize(slicer["images"])),
                                   case["features_out"], rtol=0, atol=1e-6)
        torch.testing.assert_close(model(slicer["images"]), case["logits"], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------
# ResNet: coupled channels


@pytest.fixture(scope="module")
def resnet():
    """ResNet-20 at width 1/4 (4, 8, 16 channels) with random BatchNorm statistics."""
    torch.manual_seed(0)
    model = build_model(network_arch("resnet20", 0.25, hidden=[], dropout=0.0))
    return random_batchnorm(model, spread=0.3).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=g)


def test_resnet_groups_by_hand(resnet):
    groups = {g.name: g for g in channel_groups(resnet.arch)}
    assert list(groups) == [
        "block1_1.conv1", "block1_2.conv1", "block1_3.conv1", "stage1",
        "block2_1.conv1", "block2_2.conv1", "block2_3.conv1", "stage2",
        "block3_1.conv1", "block3_2.conv1", "block3_3.conv1", "stage3"]
    assert groups["stage1"].convs == ("features.conv1.conv", "features.block1_1.conv2",
                                      "features.block1_2.conv2", "features.block1_3.conv2")
    assert groups["stage2"].root == "features.block2_1.shortcut.conv"
    assert groups["stage2"].layer == "block2_3" and groups["stage2"].channels == 8
    assert groups["block3_2.conv1"].channels == 16
    # up to a cut inside stage 2, the stage ends at the cut
    assert [g.name for g in channel_groups(resnet.arch, "block2_2")][-1] == "stage2"
    assert channel_groups(resnet.arch, "block2_2")[-1].layer == "block2_2"
    assert cut_group(resnet.arch, "block2_2").name == "stage2"


def masked_features(model, zero: dict[str, list[int]], images, upto: int | None = None):
    """The extractor's output (its first `upto` layers; None: all) with channels
    `zero[module path]` of each named module's output set to 0 by forward hooks."""
    modules = dict(model.named_modules())
    handles = []
    for path, chans in zero.items():
        def hook(_m, _i, out, chans=chans):
            out = out.clone()
            out[:, chans] = 0
            return out
        handles.append(modules[path].register_forward_hook(hook))
    try:
        with torch.no_grad():
            return model.features[:upto](model.normalize(images))
    finally:
        for h in handles:
            h.remove()


def test_resnet_stage_channels_go_together(resnet, images):
    kept = [0, 2, 3, 5, 7]  # of stage 2's 8
    removed = sorted(set(range(8)) - set(kept))
    model = build_layerwise(resnet, "avgpool", {"stage2": kept}, hidden=[], dropout=0.0, seed=0)
    f = dict(model.features.named_children())
    # every conv that writes the stage's channels, and every one that reads them
    for b in ("block2_1", "block2_2", "block2_3"):
        assert f[b].conv2.out_channels == 5 and f[b].bn2.num_features == 5
    assert f["block2_1"].shortcut.conv.out_channels == 5
    assert f["block2_2"].conv1.in_channels == 5 and f["block2_3"].conv1.in_channels == 5
    assert f["block3_1"].conv1.in_channels == 5 and f["block3_1"].shortcut.conv.in_channels == 5
    assert f["block2_1"].conv1.out_channels == 8  # the block's own channels are another group
    assert [l["out"] for l in model.arch["features"] if l["kind"] == "block"] == [4] * 3 + [5] * 3 + [16] * 3
    # the hand-masked forward: the stage's removed channels zeroed at every block's output
    want = masked_features(resnet, {f"features.{b}": removed
                                    for b in ("block2_1", "block2_2", "block2_3")}, images)
    with torch.no_grad():
        got = model.features(model.normalize(images))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_resnet_block_channels_match_the_masked_forward(resnet, images):
    kept = {"block1_2.conv1": [1, 3], "block3_1.conv1": [0, 4, 5, 9, 15]}
    model = build_layerwise(resnet, "block3_2", kept, hidden=[], dropout=0.0, seed=0)
    zero = {"features.block1_2.relu1": [0, 2],
            "features.block3_1.relu1": sorted(set(range(16)) - set(kept["block3_1.conv1"]))}
    want = masked_features(resnet, zero, images, upto=9)  # conv1 .. block3_2
    with torch.no_grad():
        got = model.features(model.normalize(images))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert model.features.block3_1.conv1.out_channels == 5
    assert model.features.block3_1.conv2.in_channels == 5
    assert model.features.block1_2.conv2.in_channels == 2


def test_resnet_part_c_cut_inside_a_stage(resnet, images):
    """Part (c) at a block inside a stage: the blocks keep every channel (their shortcuts carry
    them; removing one would change the others), the classifier reads the chosen channels'
    values, so the compressed network's classifier input is e2e's output at those channels."""
    model = build_compressed(resnet, "block2_2", "channel", [6, 1, 4], hidden=[], dropout=0.0,
                             seed=0)
    assert model.arch["features"] == resnet.arch["features"][:6]  # conv1 .. block2_2, whole
    assert model.arch["compression"]["kept"] == [1, 4, 6]
    with torch.no_grad():
        full = resnet.features[:6](resnet.normalize(images))  # (N, 8, 16, 16)
        got = model.classifier.flat_input(model.features(model.normalize(images)))
    torch.testing.assert_close(got, full[:, [1, 4, 6]].flatten(1), rtol=0, atol=0)
    assert model.classifier.layers.out.in_features == 3 * 16 * 16
    # cut at the stem (no block before it): its conv is pruned, as on a VGG
    stem = build_compressed(resnet, "conv1", "channel", [3, 0], hidden=[], dropout=0.0, seed=0)
    assert stem.features.conv1.conv.out_channels == 2
    assert stem.arch["classifier"]["input_index"] is None


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_prunes_every_group(name):
    """Each group of each network at a tiny width keeps one channel in two: the pruned arch
    rebuilds with the pruned weights (shapes agree) and runs."""
    arch = network_arch(name, 0.0625, hidden=[], dropout=0.0)
    groups = channel_groups(arch)
    kept = {g.name: list(range(0, g.channels, 2)) for g in groups}
    last = arch["features"][-1]["name"]
    model = build_layerwise(build_model(arch), last, kept, hidden=[], dropout=0.0, seed=0)
    assert model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 10)
    sizes = {g.name: g.channels for g in channel_groups(model.arch)}
    assert sizes == {g.name: len(kept[g.name]) for g in groups}
    assert pruned_features(arch, last, kept) == model.arch["features"]
