"""The whole study on a ResNet (tests/smoke-resnet.yaml: ResNet-20 at width 1/4, cut forced
inside stage 2), end to end through the real snakemake command, checked against what the
network's structure says by hand."""

import json

import pandas as pd
import torch

from sicompress.model import load_model
from sicompress.networks import network_arch
from sicompress.pruning import channel_groups

from conftest import macs_by_hooks


def read(path):
    return json.loads(path.read_text())


def test_the_resnet_study_runs_end_to_end(resnet_smoke_run):
    r = resnet_smoke_run / "results"
    report = (r / "report" / "report.md").read_text()
    assert report.startswith("# Compressing ResNet-20 on CIFAR-10 with the Separation Index")
    assert "The network is ResNet-20 (He et al. 2016" in report
    assert "VGG16" not in report.split("Saffar")[0]  # the published claim is VGG16's, said so
    # the layer table: every block's two convs a row of their own, before the block's row
    table = pd.read_csv(r / "e2e" / "layer_si.csv")
    train = table[table["split"] == "train"].sort_values("layer_index")
    names = train["layer"].tolist()
    assert names[:6] == ["input", "conv1", "block1_1.conv1", "block1_1.conv2", "block1_1",
                         "block1_2.conv1"]
    assert "avgpool" in names and names[-1] == "logits"
    assert set(train.loc[train["layer"].str.contains(r"\."), "kind"]) == {"inner"}
    assert len(train) == 1 + 1 + 9 * 3 + 1 + 1  # input, conv1, 9 blocks x 3, avgpool, logits


def test_the_resnet_cut_reads_the_chosen_channels_of_its_stage(resnet_smoke_run):
    """Cut inside stage 2: the blocks keep every channel (the shortcuts carry them), the new
    classifier reads the k chosen channels' values, e2e's at the cut (`pruning` notes)."""
    r = resnet_smoke_run / "results"
    cut = read(r / "compress" / "cut.json")
    assert cut["layer"] == "block2_2" and cut["forced"] and cut["rule_layer"] != "block2_2"
    sel = read(r / "compress" / "selected.json")
    model = load_model(r / "compressed" / "model.pt")
    e2e = load_model(r / "e2e" / "model.pt")
    assert list(dict(model.features.named_children())) == [
        "conv1", "block1_1", "block1_2", "block1_3", "block2_1", "block2_2"]
    for name, module in model.features.named_children():  # e2e's weights, every channel
        want = dict(e2e.features.named_children())[name].state_dict()
        assert all(torch.equal(v, want[k]) for k, v in module.state_dict().items()), name
    kept = sorted(sel["selected"])
    assert model.arch["compression"]["kept"] == kept
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        at_cut = e2e.features[:6](e2e.normalize(x))  # (3, 8, 16, 16)
        got = model.classifier.flat_input(model.features(model.normalize(x)))
    torch.testing.assert_close(got, at_cut[:, kept].flatten(1), rtol=0, atol=0)
    macs = read(r / "compressed" / "metrics.json")["macs"]
    assert macs["total"] == macs_by_hooks(model)["total"]


def test_the_resnet_layerwise_pruning_prunes_every_group_to_the_cut(resnet_smoke_run):
    r = resnet_smoke_run / "results"
    pruned = read(r / "layerwise" / "pruned.json")
    e2e = load_model(r / "e2e" / "model.pt")
    groups = [g.name for g in channel_groups(e2e.arch, "block2_2")]
    assert groups == ["block1_1.conv1", "block1_2.conv1", "block1_3.conv1", "stage1",
                      "block2_1.conv1", "block2_2.conv1", "stage2"]
    assert [row["layer"] for row in pruned["layers"]] == groups
    model = load_model(r / "layerwise" / "model.pt")
    sizes = {g.name: g.channels for g in channel_groups(model.arch)}
    assert sizes == {g: len(pruned["kept"][g]) for g in groups}
    # every choice written once, with its seed; the controls read the same counts
    for choice in ("si", "l1", "random~0"):  # one repeat (smoke-resnet.yaml)
        kept = read(r / "layerwise" / "kept" / f"{choice}.json")
        assert {g: len(v) for g, v in kept["kept"].items()} == {g: len(pruned["kept"][g])
                                                               for g in groups}
        assert kept["seed"] == (None if "~" not in choice else int(choice[-1]))
    recipes = pd.read_csv(r / "layerwise" / "recipes.csv")
    assert {"classifier only", "fine-tuned", "from scratch"} <= set(recipes["recipe"])
    # the unpruned registry network at this width, for the record of what was removed
    full = network_arch("resnet20", 0.25, hidden=[], dropout=0.0)
    assert [g.channels for g in channel_groups(full, "block2_2")] == [4, 4, 4, 4, 8, 8, 8]
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 10)
