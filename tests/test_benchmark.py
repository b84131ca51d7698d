"""The criteria benchmark's building blocks: the whole network pruned with its classifier
kept, and each allocation's counts within its budget, counted on the built network."""

import json

import pytest
import torch

from conftest import random_batchnorm

from sicompress import benchmark
from sicompress.model import build_model
from sicompress.networks import network_arch
from sicompress.pruning import build_whole_pruned, group_sizes, prune_network


def _arch(name):
    return network_arch(name, 0.125 if name == "vgg16" else 0.25, [16] if name == "vgg16" else [],
                        0.0, 10, [0.5] * 3, [0.25] * 3)


def test_whole_pruned_keeps_the_classifier_and_counts_by_hand():
    arch = _arch("vgg16")
    torch.manual_seed(0)
    model = random_batchnorm(build_model(arch)).eval()
    sizes = group_sizes(arch)
    kept = {g: list(range(0, n, 2)) for g, n in sizes.items()}
    pruned = build_whole_pruned({"arch": arch, "state_dict": model.state_dict()}, kept)
    ref, _ = prune_network(arch, model.state_dict(), kept)
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(pruned(x), ref(x))
    # the classifier's first layer keeps the columns of the kept channels of the last conv
    # (5 pools: 1 x 1 maps), its weights e2e's
    fc = [m for m in pruned.classifier.modules() if isinstance(m, torch.nn.Linear)][0]
    fc0 = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)][0]
    torch.testing.assert_close(fc.weight, fc0.weight[:, kept["conv5_3"]])
    # parameters by hand: each conv k_in x k_out x 9 + bias k_out, BN 2 k_out; fc 4 x 16 + 16,
    # 16 x 10 + 10
    counts = [len(kept[g]) for g in sizes]
    convs = sum(a * b * 9 + b + 2 * b for a, b in zip([3] + counts[:-1], counts))
    total = convs + counts[-1] * 16 + 16 + 16 * 10 + 10
    assert sum(p.numel() for p in pruned.parameters()) == total


def test_nothing_removed_is_the_network_itself():
    """The unpruned reference starts from the network every channel of which is kept: the
    same parameters, in the same order, and the same outputs as e2e (VGG16 and a ResNet)."""
    for name in ("vgg16", "resnet20"):
        arch = _arch(name)
        torch.manual_seed(0)
        model = random_batchnorm(build_model(arch)).eval()
        kept = {g: list(range(n)) for g, n in group_sizes(arch).items()}
        whole = build_whole_pruned({"arch": arch, "state_dict": model.state_dict()}, kept)
        assert [p.shape for p in whole.parameters()] == [p.shape for p in model.parameters()]
        x = torch.rand(4, 3, 32, 32)
        torch.testing.assert_close(whole(x), model(x))


def _saved_and_ranked(tmp_path, name):
    """A network of `name` with spread BatchNorms (|gamma| differ: a global threshold), saved,
    and a made-up ranking beside it: SI rising to its best at half of each group's channels."""
    arch = _arch(name)
    torch.manual_seed(1)
    model = random_batchnorm(build_model(arch)).eval()
    path = tmp_path / "e2e.pt"
    torch.save({"arch": arch, "state_dict": model.state_dict()}, path)
    ranking = {"groups": {g: {"order": list(range(n)), "seconds": 1.0,
                              "si": [min(i + 1, max(1, n // 2)) / n for i in range(n)]}
                          for g, n in group_sizes(arch).items()}}
    (tmp_path / "ranking.json").write_text(json.dumps(ranking))
    return model, path


def test_allocations_fit_their_budget(tmp_path):
    model, path = _saved_and_ranked(tmp_path, "resnet20")
    out = benchmark.allocate(model_path=path, ranking_json=tmp_path / "ranking.json",
                             budget=0.5, global_criterion="bn_scale",
                             out_json=tmp_path / "alloc.json", log=lambda s: None)
    total = sum(p.numel() for p in model.parameters())
    assert out["e2e_parameters"] == total
    for name, a in out["allocations"].items():
        kept = {g: list(range(k)) for g, k in a["counts"].items()}
        built = build_whole_pruned(path, kept)
        n = sum(p.numel() for p in built.parameters())
        assert n == a["parameters"] <= 0.5 * total, name
    assert len(set(out["allocations"]["uniform"]["counts"].values())) > 1  # 2, 4, 8 channels


def test_a_macs_budget_holds_every_allocation_by_hooks(tmp_path):
    """budget_of macs: each allocation's network, built, does at most budget x e2e's
    multiply-accumulates per image (counted by hooks on a forward pass), and its recorded
    parameters and MACs are the built network's."""
    import pytest

    from conftest import macs_by_hooks

    model, path = _saved_and_ranked(tmp_path, "vgg16")
    out = benchmark.allocate(model_path=path, ranking_json=tmp_path / "ranking.json",
                             budget=0.3, global_criterion="bn_scale", budget_of="macs",
                             out_json=tmp_path / "alloc.json", log=lambda s: None)
    e2e_macs = macs_by_hooks(model)["total"]
    assert out["budget_of"] == "macs" and out["e2e_macs"] == e2e_macs
    assert out["limit"] == pytest.approx(0.3 * e2e_macs)
    for name, a in out["allocations"].items():
        built = build_whole_pruned(path, {g: list(range(k)) for g, k in a["counts"].items()})
        assert a["macs"] == macs_by_hooks(built.eval())["total"] <= 0.3 * e2e_macs, name
        assert a["parameters"] == sum(p.numel() for p in built.parameters())
    with pytest.raises(ValueError, match="benchmark.budget_of must be one of"):
        benchmark.allocate(model_path=path, ranking_json=tmp_path / "ranking.json", budget=0.3,
                           global_criterion=None, budget_of="flops",
                           out_json=tmp_path / "x.json", log=lambda s: None)


def test_cells_and_runs_of_a_config_section():
    """The grid by hand: every criterion at SI's counts and the uniform share, the global
    criterion at its threshold, scratch at the uniform share; budgets x cells x repeats."""
    from sicompress.benchmark import cells, runs

    section = {"budgets": [0.2, 0.125], "criteria": ["si", "l1"],
               "allocations": ["si", "uniform", "global"], "global_criterion": "bn_scale",
               "scratch": True, "repeats": 2}
    assert cells(section) == [("si", "si"), ("si", "l1"), ("uniform", "si"), ("uniform", "l1"),
                              ("global", "bn_scale"), ("uniform", "scratch")]
    r = runs(section)
    assert len(r) == 2 * 6 * 2 + 2  # and the unpruned reference's 2 repeats, once
    assert r[0] == {"budget": "0.2", "allocation": "si", "criterion": "si", "repeat": 0}
    assert r[-3] == {"budget": "0.125", "allocation": "uniform", "criterion": "scratch",
                     "repeat": 1}
    assert r[-2:] == [{"budget": "1", "allocation": "unpruned", "criterion": "unpruned",
                       "repeat": i} for i in (0, 1)]
    assert len(runs({**section, "unpruned": False})) == 2 * 6 * 2
    # fewer criteria at the uniform share than at SI's counts
    assert cells({**section, "uniform_criteria": ["l1"]}) == [
        ("si", "si"), ("si", "l1"), ("uniform", "l1"), ("global", "bn_scale"),
        ("uniform", "scratch")]
    # none at the uniform share: only the network from scratch there
    assert cells({**section, "uniform_criteria": []}) == [
        ("si", "si"), ("si", "l1"), ("global", "bn_scale"), ("uniform", "scratch")]
    # without the uniform share, scratch takes SI's counts
    assert cells({**section, "allocations": ["si"]})[-1] == ("si", "scratch")
    # SI's architecture from scratch too, in the order given; none without scratch
    assert cells({**section, "scratch_allocations": ["uniform", "si"]})[-2:] == [
        ("uniform", "scratch"), ("si", "scratch")]
    assert len(runs({**section, "scratch_allocations": ["uniform", "si"]})) == 2 * 7 * 2 + 2
    assert cells({**section, "scratch": False, "scratch_allocations": ["si"]})[-1] == (
        "global", "bn_scale")
    with pytest.raises(ValueError, match="scratch_allocations: global not among"):
        cells({**section, "allocations": ["si", "uniform"], "scratch_allocations": ["global"]})


def test_scratch_trains_as_long_as_e2e_and_its_fine_tune():
    """Scratch-B in epochs: e2e's 8 + the fine-tune's 14 = 22, the search's StepLR step 6 (of
    8) scaled to 22 * 6 / 8 = 16.5, rounded half to even: 16; or the configured length."""
    from sicompress.benchmark import scratch_epochs
    from sicompress.trainings import e2e_settings

    section = {"finetune": {"epochs": 14}, "scratch_epochs": None}
    train = {"epochs": 8, "batch_size": 128}
    assert scratch_epochs(section, train) == 22
    assert scratch_epochs({**section, "scratch_epochs": 30}, train) == 30
    best = {"lr": 0.05, "step_size": 6}
    s = e2e_settings(train, best, seed=3, epochs=22)
    assert (s.epochs, s.step_size, s.lr, s.seed) == (22, 16, 0.05, 3)
    s = e2e_settings(train, best, seed=3)  # e2e's own schedule, untouched
    assert (s.epochs, s.step_size) == (8, 6)


def test_the_claim_at_equal_training_reads_paired_differences():
    """SI at its counts minus the unpruned reference, seed by seed, by hand: seeds 0, 1, 2 give
    differences -0.004, -0.010, -0.007: mean -0.007, sd 0.003, half-width
    t(0.975, 2) * 0.003 / sqrt(3) = 4.302653 * 0.0017321 = 0.0074524; the interval
    [-0.01445, +0.00045] straddles the allowed loss of -0.01: undecided. Differences -0.004,
    -0.005, -0.003 (sd 0.001, half-width 0.0024841: [-0.00648, -0.00152]): met. Differences
    -0.016, -0.017, -0.016 (half-width 0.0014343: [-0.01777, -0.01490]): not met."""
    import pandas as pd
    from sicompress.markdown_report.criteria_benchmark import unpruned_claim

    si = pd.DataFrame({"seed": [0, 1, 2], "test_acc": [0.700, 0.690, 0.695]})

    def claim(unpruned_by_seed):  # the reference's runs listed in another order than SI's
        ref = pd.DataFrame({"seed": [2, 0, 1], "test_acc": [unpruned_by_seed[s] for s in (2, 0, 1)],
                            "allocation": "unpruned", "criterion": "unpruned"})
        return unpruned_claim(pd.concat([si.assign(allocation="si", criterion="si"), ref]), si)

    c = claim({0: 0.704, 1: 0.700, 2: 0.702})
    assert c["n"] == 3 and c["mean"] == pytest.approx(-0.007)
    assert c["lo"] == pytest.approx(-0.007 - 0.0074524, abs=1e-6)
    assert c["hi"] == pytest.approx(-0.007 + 0.0074524, abs=1e-6)
    assert c["reading"] == "undecided" and c["acc"] == pytest.approx(0.702)
    met = claim({0: 0.704, 1: 0.695, 2: 0.698})
    assert met["lo"] == pytest.approx(-0.004 - 0.0024841, abs=1e-6) and met["reading"] == "met"
    worse = claim({0: 0.716, 1: 0.707, 2: 0.711})
    assert worse["hi"] == pytest.approx(-0.016333 + 0.0014343, abs=1e-5)
    assert worse["reading"] == "not met"
    assert unpruned_claim(si.assign(allocation="si", criterion="si"), si) is None
