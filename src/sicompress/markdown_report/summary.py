"""The summary: one row per trained model (summary.csv, and its table in the report), and the
accuracy-size figure of the controls beside it."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from .. import artifacts
from ..cost import macs_per_image, parameter_counts
from ..model import build_model, load_checkpoint
from .cells import count, frame, num, pct, pp
from .controls import TITLE as CONTROLS_TITLE
from .inputs import ReportInputs

NAME = "summary"  # the section's template: templates/summary.md.j2
TITLE = "Summary"

# Column order of summary.csv (and of the summary table in the report).
SUMMARY_COLUMNS = [
    "model", "test_acc", "val_acc", "best_epoch", "epochs_run",
    "params_features", "params_classifier", "params_total",
    "macs_features", "macs_classifier", "macs_total",
    "test_acc_change_vs_e2e", "test_acc_change_vs_head", "train_seconds",
]


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE]


def model_counts(checkpoint: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(parameter counts, MACs per image) of a saved model, from its arch alone."""
    arch = load_checkpoint(checkpoint)["arch"]
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        params = parameter_counts(build_model(arch))
    macs = macs_per_image(arch)
    return params, {k: macs[k] for k in ("features", "classifier", "total")}


def summary_table(inputs: ReportInputs) -> pd.DataFrame:
    """One row per model (in the order of `inputs.models`) with the columns SUMMARY_COLUMNS.

    Accuracies and their changes are fractions (0.9 = 90%); a change is the model's test
    accuracy minus that of e2e (or head), NaN when that model is not among the inputs.
    Parameters and MACs per image come from each checkpoint's arch.
    """
    rows = []
    for m in inputs.models:
        metrics = artifacts.read_json(m.metrics)
        params, macs = model_counts(m.model)
        rows.append({
            "model": m.name,
            "test_acc": float(metrics["test_acc"]),
            "val_acc": float(metrics["val_acc"]),
            "best_epoch": int(metrics["best_epoch"]),
            "epochs_run": int(metrics["epochs_run"]),
            "params_features": params["features"],
            "params_classifier": params["classifier"],
            "params_total": params["total"],
            "macs_features": macs["features"],
            "macs_classifier": macs["classifier"],
            "macs_total": macs["total"],
            "train_seconds": float(metrics.get("train_seconds", math.nan)),
        })
    table = pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS
                                        if not c.startswith("test_acc_change")])
    acc = dict(zip(table["model"], table["test_acc"]))
    for ref in ("e2e", "head"):
        # rounded: accuracies are fractions with a few decimals, keep the CSV free of float noise
        table[f"test_acc_change_vs_{ref}"] = (table["test_acc"] - acc.get(ref, math.nan)).round(8)
    return table[SUMMARY_COLUMNS]


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    """The summary table's cells, and the frontier figure when the controls made it."""
    rows = [[r["model"], pct(r["test_acc"]), pct(r["val_acc"]), count(r["best_epoch"]),
             count(r["epochs_run"]), count(r["params_features"]), count(r["params_classifier"]),
             count(r["params_total"]), count(r["macs_features"]), count(r["macs_classifier"]),
             count(r["macs_total"]), pp(r["test_acc_change_vs_e2e"]),
             pp(r["test_acc_change_vs_head"]), num(r["train_seconds"], 1)]
            for _, r in table.iterrows()]
    return {"table": frame(rows, ["model", "test acc", "val acc", "best epoch", "epochs run",
                                  "params features", "params classifier", "params total",
                                  "MACs features", "MACs classifier", "MACs total",
                                  "Δ test vs e2e", "Δ test vs head", "train s"]),
            "frontier_plot": inputs.frontier_plot, "controls_title": CONTROLS_TITLE}
