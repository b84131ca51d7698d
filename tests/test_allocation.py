"""Allocations under a budget (`allocation`), each against a hand computation on a tiny case."""

from fractions import Fraction

import pytest
import torch

from sicompress import allocation
from sicompress.cost import parameter_counts
from sicompress.layerwise import build_layerwise
from sicompress.model import build_model
from sicompress.networks import vgg_arch


def linear_cost(weights):
    return lambda counts: sum(weights[g] * k for g, k in counts.items())


def test_uniform_by_hand():
    """Groups of 4 and 8 channels, a channel of the first costing 10 and of the second 3.
    The shares where a count changes: (k - 1/2) / 4 and (k - 1/2) / 8. At 3/8: 2 and 3
    (29); at 7/16: 2 and 4 (32); at 9/16: 2 and 5 (35); at 5/8: 3 and 5 (45). Budget 40:
    share 9/16."""
    cost = linear_cost({"a": 10, "b": 3})
    got = allocation.uniform({"a": 4, "b": 8}, cost, 40)
    assert got == {"counts": {"a": 2, "b": 5}, "share": 9 / 16, "cost": 35}
    assert allocation.uniform({"a": 4, "b": 8}, cost, 1e9)["counts"] == {"a": 4, "b": 8}
    assert allocation.uniform({"a": 4, "b": 8}, cost, 13)["counts"] == {"a": 1, "b": 1}
    with pytest.raises(ValueError, match="smallest network .13. costs more than the budget .12."):
        allocation.uniform({"a": 4, "b": 8}, cost, 12)
    # round(q n), halves up, exact: 5/16 of 8 = 2.5 -> 3; 1/8 of 4 = 0.5 -> 1; at least 1
    assert allocation.uniform_counts({"a": 8, "b": 4, "c": 2}, Fraction(5, 16)) == \
        {"a": 3, "b": 1, "c": 1}
    assert allocation.uniform_counts({"a": 4}, 0.125) == {"a": 1}
    with pytest.raises(ValueError, match="share must lie in"):
        allocation.uniform_counts({"a": 4}, 0)
    with pytest.raises(ValueError, match="group 'a': 0 channels"):
        allocation.uniform({"a": 0}, cost, 10)


def test_si_tolerance_by_hand():
    """Curves a: 0.5, 0.8, 0.9, 0.9 (best 0.9) and b: 0.2, 0.7, 0.75 (best 0.75); a channel
    costs 1. Tolerance 0.55: 1 + 1; 0.4: 1 + 2; 0.1: 2 + 2; 0.05: 3 + 2; 0: 3 + 3."""
    curves = {"a": [0.5, 0.8, 0.9, 0.9], "b": [0.2, 0.7, 0.75]}
    cost = linear_cost({"a": 1, "b": 1})
    for budget, counts, t in ((4, {"a": 2, "b": 2}, 0.1), (5, {"a": 3, "b": 2}, 0.05),
                              (2, {"a": 1, "b": 1}, 0.55), (100, {"a": 3, "b": 3}, 0.0)):
        got = allocation.si_tolerance(curves, cost, budget)
        assert got["counts"] == counts and got["tolerance"] == pytest.approx(t, abs=1e-12)
        assert got["cost"] == sum(counts.values())
        # the study's own rule at that tolerance gives the same counts
        assert allocation.tolerance_counts(curves, got["tolerance"]) == counts
    with pytest.raises(ValueError, match="SI allocation: even the smallest"):
        allocation.si_tolerance(curves, cost, 1)


def test_global_threshold_by_hand():
    """Scores a: 0.9, 0.1, 0.5 and b: 0.3, 0.05; a channel of a costs 10, of b 1. Thresholds
    0.9: 1 + 1 (b keeps one at least) = 11; 0.5: 2 + 1 = 21; 0.3: 21; 0.1: 31; 0.05: 32."""
    scores = {"a": [0.9, 0.1, 0.5], "b": [0.3, 0.05]}
    cost = linear_cost({"a": 10, "b": 1})
    assert allocation.global_threshold(scores, cost, 25) == \
        {"counts": {"a": 2, "b": 1}, "threshold": 0.3, "cost": 21}
    assert allocation.global_threshold(scores, cost, 32)["counts"] == {"a": 3, "b": 2}
    assert allocation.global_threshold(scores, cost, 31)["threshold"] == 0.1


def test_parameter_cost_is_the_built_networks():
    """The meta-device count of the layer-wise pruned arch equals the parameters of the
    network built with real weights, whichever channels are kept."""
    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10))
    cost = allocation.parameter_cost(model.arch, "pool2", [16], 0.0)
    kept = {"conv1_1": [0, 3], "conv1_2": [1, 2, 3], "conv2_1": [0, 2, 4, 6, 7],
            "conv2_2": [5, 6, 7, 1]}
    built = build_layerwise(model, "pool2", kept, hidden=[16], dropout=0.0, seed=0)
    assert cost({g: len(v) for g, v in kept.items()}) == parameter_counts(built)["total"]
    full = {"conv1_1": 4, "conv1_2": 4, "conv2_1": 8, "conv2_2": 8}
    # the whole prefix with the new classifier: more than any pruned one
    assert cost(full) > cost({g: len(v) for g, v in kept.items()})
    got = allocation.uniform(full, cost, 0.5 * cost(full))
    assert got["cost"] <= 0.5 * cost(full) and set(got["counts"]) == set(full)


def test_macs_cost_is_the_built_networks_by_hooks():
    """The meta-device MACs (Torch-Pruning's counter) of the layer-wise pruned arch equal a
    forward pass's operations counted by hooks on the network built with real weights."""
    from conftest import macs_by_hooks

    torch.manual_seed(0)
    model = build_model(vgg_arch(0.0625, [8], 0.0, 10))
    cost = allocation.macs_cost(model.arch, "pool2", [16], 0.0)
    kept = {"conv1_1": [0, 3], "conv1_2": [1, 2, 3], "conv2_1": [0, 2, 4, 6, 7],
            "conv2_2": [5, 6, 7, 1]}
    built = build_layerwise(model, "pool2", kept, hidden=[16], dropout=0.0, seed=0).eval()
    assert cost({g: len(v) for g, v in kept.items()}) == macs_by_hooks(built)["total"]
    # by hand, the convs' multiply-accumulates alone: 3x3 kernels, 32x32 then 16x16 maps
    convs = 9 * (3 * 2 + 2 * 3) * 32 * 32 + 9 * (3 * 5 + 5 * 4) * 16 * 16
    assert macs_by_hooks(built, convs_and_linears_only=True)["features"] == convs
