import math

import pandas as pd
import pytest

from sicompress.decisions import choose_cut, choose_k


def layer_table(values, input_value=0.3, split=None):
    """A layer SI table: the input row, then one layer per value (conv, conv, pool, ...)."""
    rows = [{"layer_index": 0, "layer": "input", "kind": "input", "si": input_value,
             "center_si": input_value}]
    kinds = ["conv", "conv", "pool"]
    for i, v in enumerate(values, start=1):
        rows.append({"layer_index": i, "layer": f"layer{i}", "kind": kinds[(i - 1) % 3],
                     "si": v, "center_si": 1 - v})
    table = pd.DataFrame(rows)
    if split is not None:
        table.insert(0, "split", split)
    return table


# ----------------------------------------------------------------------------------------
# choose_cut


@pytest.mark.parametrize("values, tolerance, layer_index", [
    ([0.3, 0.4, 0.5, 0.6, 0.7], 0.01, 5),              # monotone, best at the end
    ([0.3, 0.4, 0.5, 0.6, 0.7], 0.10, 4),              # ... 0.6 is within 0.1 of 0.7
    ([0.5, 0.5, 0.5, 0.5], 0.01, 1),                   # flat: the first layer
    ([0.5, 0.5, 0.5, 0.5], 0.0, 1),
    ([0.4, 0.81, 0.6, 0.8, 0.5], 0.01, 2),             # best in the middle
    ([0.4, 0.80, 0.6, 0.81, 0.5], 0.01, 2),            # 0.80 reaches 0.81 - 0.01 exactly
    ([0.4, 0.80, 0.6, 0.81, 0.5], 0.0, 4),             # tolerance 0: only the best
    ([0.42, 0.38, 0.55, 0.51, 0.61, 0.58, 0.62], 0.005, 7),  # noisy
    ([0.42, 0.38, 0.55, 0.51, 0.61, 0.58, 0.62], 0.01, 5),
    ([0.42, 0.38, 0.55, 0.51, 0.61, 0.58, 0.62], 0.08, 3),
])
def test_choose_cut(values, tolerance, layer_index):
    got = choose_cut(layer_table(values), tolerance=tolerance)
    assert got["layer_index"] == layer_index
    assert got["layer"] == f"layer{layer_index}"
    assert got["value"] == values[layer_index - 1]
    assert got["best_value"] == max(values)
    assert got["best_layer_index"] == values.index(max(values)) + 1
    assert got["best_value"] - got["value"] <= tolerance + 1e-12
    assert (got["metric"], got["tolerance"]) == ("si", tolerance)


def test_choose_cut_ignores_the_input_row_and_row_order():
    table = layer_table([0.5, 0.6, 0.7], input_value=0.99)  # the input is never a cut
    got = choose_cut(table.iloc[::-1], tolerance=0.05)
    assert (got["layer_index"], got["best_layer"]) == (3, "layer3")


def with_classifier(table, values):
    """`table` with classifier rows after it: hidden outputs fc1, fc2, ... and the logits."""
    n = int(table["layer_index"].max())
    names = [f"fc{i}" for i in range(1, len(values))] + ["logits"]
    rows = [{"layer_index": n + i, "layer": name, "kind": "logits" if name == "logits" else "fc",
             "si": v, "center_si": v} for i, (name, v) in enumerate(zip(names, values), start=1)]
    extra = pd.DataFrame(rows)
    if "split" in table.columns:
        extra.insert(0, "split", table["split"].iloc[0])
    return pd.concat([table, extra], ignore_index=True)


@pytest.mark.parametrize("metric", ["si", "center_si"])
def test_choose_cut_ignores_the_classifier_rows(metric):
    # the classifier separates far better than any layer of the extractor (as a trained one
    # does): counted, its rows would be the best and the cut, which cannot cut an extractor
    table = layer_table([0.4, 0.81, 0.6, 0.8, 0.5], split="train")
    both = with_classifier(table, [0.97, 0.99])
    assert choose_cut(both, metric=metric) == choose_cut(table, metric=metric)
    assert choose_cut(both.iloc[::-1], metric=metric)["layer"] != "logits"
    only_classifier = both[both["kind"].isin(["input", "fc", "logits"])]
    with pytest.raises(ValueError, match="no layer of the feature extractor"):
        choose_cut(only_classifier)


def test_choose_cut_other_metric_and_one_split():
    table = layer_table([0.3, 0.4, 0.7], split="train")  # center_si = 1 - si: best at layer1
    assert choose_cut(table, metric="center_si")["layer"] == "layer1"
    both = pd.concat([table, layer_table([0.9, 0.9, 0.9], split="test")])
    with pytest.raises(ValueError, match="one split"):
        choose_cut(both)
    assert choose_cut(both[both["split"] == "train"])["layer"] == "layer3"


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "accuracy"}, "metric"),
    ({"metric": "layer"}, "metric"),
    ({"tolerance": -0.01}, "tolerance"),
    ({"tolerance": math.nan}, "tolerance"),
])
def test_choose_cut_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        choose_cut(layer_table([0.5, 0.6]), **kwargs)


def test_choose_cut_rejects_bad_tables():
    with pytest.raises(ValueError, match="no layer"):
        choose_cut(layer_table([]))
    with pytest.raises(ValueError, match="lacks"):
        choose_cut(layer_table([0.5]).drop(columns="si"))
    with pytest.raises(ValueError, match="non-finite"):
        choose_cut(layer_table([0.5, math.nan]))


# ----------------------------------------------------------------------------------------
# choose_k


@pytest.mark.parametrize("curve, tolerance, k, best_k", [
    ([0.3, 0.5, 0.6, 0.65, 0.7], 0.01, 5, 5),          # monotone, best at the end
    ([0.3, 0.5, 0.6, 0.65, 0.7], 0.05, 4, 5),
    ([0.6, 0.6, 0.6], 0.01, 1, 1),                     # flat
    ([0.6, 0.6, 0.6], 0.0, 1, 1),
    ([0.3, 0.72, 0.70, 0.66, 0.6], 0.01, 2, 2),        # best in the middle
    ([0.3, 0.70, 0.72, 0.71, 0.6], 0.02, 2, 3),        # 0.70 reaches 0.72 - 0.02 exactly
    ([0.3, 0.70, 0.72, 0.71, 0.6], 0.0, 3, 3),         # tolerance 0: the first best
    ([0.40, 0.55, 0.52, 0.63, 0.61, 0.64, 0.62], 0.005, 6, 6),  # noisy
    ([0.40, 0.55, 0.52, 0.63, 0.61, 0.64, 0.62], 0.01, 4, 6),
    ([0.5], 0.01, 1, 1),
])
def test_choose_k(curve, tolerance, k, best_k):
    got = choose_k(curve, tolerance)
    assert (got["k"], got["best_k"]) == (k, best_k)
    assert got["si_at_k"] == curve[k - 1]
    assert got["best_si"] == max(curve)
    assert got["tolerance"] == tolerance


@pytest.mark.parametrize("curve, tolerance, match", [
    ([], 0.01, "empty"),
    ([0.5, math.inf], 0.01, "non-finite"),
    ([[0.5, 0.6]], 0.01, "1-D"),
    ([0.5], -1, "tolerance"),
    ([0.5], True, "tolerance"),
])
def test_choose_k_rejects_bad_arguments(curve, tolerance, match):
    with pytest.raises(ValueError, match=match):
        choose_k(curve, tolerance)
