"""One section per trained model of the summary (the search's chosen trial, e2e, head, the
compressed model): its training, curves, and SI and Center SI per layer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import artifacts
from ..figures import source_name
from ..layer_si import read_layer_table
from .cells import count, frame, num
from .inputs import ModelArtefacts, ReportInputs
from .names import MODEL_TITLES

NAME = "trained"  # the section's template: templates/trained.md.j2


def headings(inputs: ReportInputs) -> list[str]:
    return [MODEL_TITLES.get(m.name, m.name) for m in inputs.models]


def layer_si_cells(path: Path) -> pd.DataFrame:
    """SI and Center SI per layer on si_train and si_test, one row per layer."""
    table = read_layer_table(path)
    layers = (table[["layer_index", "layer", "kind", "features"]]
              .drop_duplicates("layer_index").sort_values("layer_index"))
    rows = []
    for _, layer in layers.iterrows():
        vals = []
        for metric in ("si", "center_si"):
            for split in ("train", "test"):
                hit = table[(table["layer_index"] == layer["layer_index"]) & (table["split"] == split)]
                vals.append(num(hit[metric].iloc[0]) if len(hit) else "–")
        rows.append([count(layer["layer_index"]), layer["layer"], layer["kind"],
                     count(layer["features"])] + vals)
    return frame(rows, ["#", "layer", "kind", "features", "SI train", "SI test", "CSI train",
                        "CSI test"])


def layer_reuse(path: Path) -> str:
    """Which rows of a layer table were copied from another model's table, in words."""
    table = read_layer_table(path)
    rows = table[(table["split"] == "train") & (table["reused_from"] != "")]
    if rows.empty:
        return "every row measured on this model"
    rows = rows.sort_values("layer_index")
    first, last = rows.iloc[0], rows.iloc[-1]
    src = " and ".join(sorted({source_name(r) for r in table["reused_from"] if r}))
    if len(rows) == 1:
        which = (f"row {count(first['layer_index'])} ({first['layer']}) is {src}'s, copied from "
                 f"its table (this model's input normalisation is {src}'s)")
    else:
        which = (f"rows {count(first['layer_index'])}–{count(last['layer_index'])} "
                 f"({first['layer']} to {last['layer']}) are {src}'s, copied from its table "
                 f"(this model's normalisation and layers up to {last['layer']} have {src}'s "
                 "weights, every tensor compared)")
    return which + "; the other rows are measured on this model"


def model_context(m: ModelArtefacts, row: pd.Series) -> dict:
    return {
        "name": m.name,
        "title": MODEL_TITLES.get(m.name, m.name),
        "metrics": artifacts.read_json(m.metrics),
        "history_rows": len(pd.read_csv(m.history)),
        "change_vs_e2e": row["test_acc_change_vs_e2e"],
        "curves": m.curves,
        "layer_si_plot": m.layer_si_plot,
        "layer_table": layer_si_cells(m.layer_si),
        "layer_reuse": layer_reuse(m.layer_si),
    }


def context(inputs: ReportInputs, table: pd.DataFrame) -> list[dict]:
    """One entry per model, in the order of `inputs.models`; `table` is the summary's."""
    rows = {r["model"]: r for _, r in table.iterrows()}
    return [model_context(m, rows[m.name]) for m in inputs.models]
