"""The choices of the study, made on SI curves of the training data: part (c)'s two, and the
width of the layer-wise pruned network's classifier.

1. `choose_cut`: which layer of the feature extractor to cut after. Trailing layers that do
   not raise SI significantly are dropped: the cut is the first layer (the shortest prefix)
   whose value reaches the best layer's value minus `tolerance`.
2. `choose_k`: how many of the features selected at the cut to keep. Later additions that do
   not raise SI significantly are dropped: k is the smallest count whose SI reaches the best
   SI on the curve minus `tolerance` (also each layer's count in the layer-wise pruning).
3. `choose_width`: the layer-wise pruned network's classifier width, from the Center SI of
   each trained width's hidden layer.

"Significantly" is one absolute tolerance in SI units (SI is a fraction in [0, 1]; 0.01 is
one point of leave-one-out 1-NN accuracy). A value counts as reaching the threshold up to
`SLACK`, so that 0.80 reaches 0.81 - 0.01 despite float rounding. Early stopping of the
selection itself (`patience`) is `selection.forward_select`'s business.

The functions are pure and return plain dicts (ints, floats, strings) ready for JSON.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

METRICS = ("si", "center_si", "si_high", "si_soft")  # columns of a layer SI table
EXTRACTOR_KINDS = ("conv", "pool", "block", "avgpool")  # rows a cut can be after (not input,
#                                                         a block's inner rows, fc, logits)
SLACK = 1e-12  # float rounding allowed when comparing with best - tolerance


def _check_tolerance(tolerance: float) -> float:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.number)):
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    return float(tolerance)


def _first_within(values: np.ndarray, tolerance: float) -> tuple[int, int]:
    """(first position reaching max - tolerance, first position of the max)."""
    best = int(np.argmax(values))
    within = np.flatnonzero(values >= values[best] - tolerance - SLACK)
    return int(within[0]), best


def choose_cut(table: pd.DataFrame, metric: str = "si", tolerance: float = 0.01) -> dict:
    """The last layer to keep: the shortest prefix whose `metric` is within `tolerance` of the best.

    table: the rows of one split of a layer SI table (e.g. the train rows of layer_si.csv),
    with columns layer_index, layer, kind and `metric`. Only layers of the feature extractor
    compete (`extractor_rows`: EXTRACTOR_KINDS, layer_index >= 1): neither the input row,
    nor the rows inside a residual block (a cut there would leave its shortcut open), nor the
    classifier's rows (fc*, logits), whose SI says nothing about where to cut.
    -> {"layer", "layer_index", "value", "best_layer", "best_layer_index", "best_value",
        "metric", "tolerance"}; the best layer is the first with the highest value.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    tolerance = _check_tolerance(tolerance)
    missing = [c for c in ("layer_index", "layer", "kind", metric) if c not in table.columns]
    if missing:
        raise ValueError(f"layer table lacks columns {missing}")
    if "split" in table.columns and table["split"].nunique() > 1:
        raise ValueError(f"pass the rows of one split, got splits {sorted(table['split'].unique())}")
    rows = extractor_rows(table)
    if rows.empty:
        raise ValueError(f"layer table has no layer of the feature extractor (kinds "
                         f"{list(EXTRACTOR_KINDS)}, layer_index >= 1)")
    if rows["layer_index"].duplicated().any():
        raise ValueError("layer table repeats a layer_index: pass the rows of one split")
    values = rows[metric].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"layer table has non-finite {metric} values")
    cut, best = _first_within(values, tolerance)
    return {
        "layer": str(rows["layer"].iloc[cut]),
        "layer_index": int(rows["layer_index"].iloc[cut]),
        "value": float(values[cut]),
        "best_layer": str(rows["layer"].iloc[best]),
        "best_layer_index": int(rows["layer_index"].iloc[best]),
        "best_value": float(values[best]),
        "metric": metric,
        "tolerance": tolerance,
    }


def extractor_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the feature extractor's layers (EXTRACTOR_KINDS, layer_index >= 1), in
    order: what a cut is chosen among and plotted on."""
    keep = table["kind"].isin(EXTRACTOR_KINDS) & (table["layer_index"] >= 1)
    return table[keep].sort_values("layer_index")


def choose_k(si_curve: Sequence[float], tolerance: float = 0.01) -> dict:
    """The number of selected features to keep: the smallest count within `tolerance` of the best.

    si_curve[i]: SI of the first i + 1 selected features (`Selection.si`).
    -> {"k", "si_at_k", "best_si", "best_k", "tolerance"}; best_k is the smallest count
    with the highest SI.
    """
    tolerance = _check_tolerance(tolerance)
    values = np.asarray(si_curve, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"SI curve must be 1-D, got shape {values.shape}")
    if values.size == 0:
        raise ValueError("SI curve is empty")
    if not np.isfinite(values).all():
        raise ValueError("SI curve has non-finite values")
    k, best = _first_within(values, tolerance)
    return {
        "k": k + 1,
        "si_at_k": float(values[k]),
        "best_si": float(values[best]),
        "best_k": best + 1,
        "tolerance": tolerance,
    }


def choose_width(records: Sequence[dict], tolerance: float) -> dict:
    """The classifier's hidden width: the smallest whose hidden layer's Center SI on si_train
    is within `tolerance` of the largest width's (more units separate at least as well, up to
    noise; the largest width is the reference, not the best, so that a lucky small one does
    not set the bar). records: {"width", "center_si", ...} per trained width."""
    if not records:
        raise ValueError("no width was trained")
    recs = sorted(records, key=lambda r: r["width"])
    widths = [r["width"] for r in recs]
    if len(set(widths)) != len(widths):
        raise ValueError(f"widths repeat: {widths}")
    reference = recs[-1]
    for r in recs:
        if r["center_si"] >= reference["center_si"] - tolerance - 1e-12:
            return {"width": r["width"], "center_si": r["center_si"],
                    "reference_width": reference["width"],
                    "reference_center_si": reference["center_si"], "tolerance": tolerance}
    raise AssertionError("the reference width always qualifies")  # pragma: no cover
