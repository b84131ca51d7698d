"""Part (c)'s decisions and their result: the cut of the extractor, the forward selection of
features at the cut, and size, cost and accuracy before and after."""

from __future__ import annotations

import pandas as pd

from .. import artifacts
from .cells import count, frame, num, pct, pp, reduction
from .inputs import ReportInputs
from .names import METRIC_NAMES

NAME = "compression"  # the section's template: templates/compression.md.j2
TITLE = "Compression"
SIZE_TITLE = "Size, cost and accuracy before and after"  # its third part (### heading)

RANKING_ROWS = 10  # rows of the feature ranking shown in the report


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE]


def ranking_cells(inputs: ReportInputs, sel: dict) -> dict:
    """The first RANKING_ROWS steps of the forward selection, and how to align them."""
    unit, shape = sel["unit"], sel.get("shape") or []
    ranking = pd.read_csv(inputs.ranking).sort_values("step")
    head = ranking.head(RANKING_ROWS)
    hw = int(shape[1]) * int(shape[2]) if len(shape) == 3 else None
    where = unit == "element" and hw
    with_test = "si_test" in ranking.columns  # rankings made before it was recorded lack it
    rows = []
    for _, r in head.iterrows():
        f = int(r["feature"])
        row = [count(r["step"]), str(f), num(r["si"]), num(r["center_si"])]
        if with_test:
            row += [num(r["si_test"]), num(r["center_si_test"])]
        row.append("yes" if int(r["step"]) <= int(sel["k"]) else "no")
        if where:
            row.insert(2, f"({f // hw}, {f % hw // int(shape[2])}, {f % int(shape[2])})")
        rows.append(row)
    columns = ["step", unit, "SI", "Center SI"] + (["SI test", "CSI test"] if with_test else []) \
        + ["kept"]
    if where:
        columns.insert(2, "(c, y, x)")
    return {"ranking": frame(rows, columns),
            "ranking_align": ("rrl" if where else "rr") + "rr" + "rr" * with_test + "l",
            "ranking_with_test": with_test,
            "ranking_shown": len(head), "ranking_steps": len(ranking)}


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    cut = artifacts.read_json(inputs.cut)
    sel = artifacts.read_json(inputs.selected)
    by_model = {r["model"]: r for _, r in table.iterrows()}
    unit, shape = sel["unit"], sel.get("shape") or []

    e2e, comp = by_model.get("e2e"), by_model.get("compressed")
    size = {}
    if e2e is not None and comp is not None:
        for what in ("params", "macs"):
            size[what] = frame(
                [[part, count(e2e[f"{what}_{part}"]), count(comp[f"{what}_{part}"]),
                  reduction(e2e[f"{what}_{part}"], comp[f"{what}_{part}"])]
                 for part in ("features", "classifier", "total")],
                ["part", "before (e2e)", "after (compressed)", "reduction"])
    acc = frame([[name, pct(r["test_acc"]),
                  "" if name == "e2e" else pp(r["test_acc_change_vs_e2e"]),
                  "" if name in ("e2e", "head") else pp(r["test_acc_change_vs_head"])]
                 for name in ("e2e", "head", "compressed")
                 if (r := by_model.get(name)) is not None],
                ["model", "test acc", "change vs e2e", "change vs head"])

    record = None  # what the compressed model's metrics say it was built from
    if comp is not None:
        record = artifacts.read_json(next(m.metrics for m in inputs.models
                                          if m.name == "compressed")).get("compression") or None
    if record:
        record = dict(record, same=(record.get("cut_layer") == sel["cut_layer"]
                                    and record.get("unit") == unit
                                    and record.get("k") == sel["k"]))
    return {
        "title": TITLE, "size_title": SIZE_TITLE,
        "cut": cut, "metric": METRIC_NAMES.get(cut["metric"], cut["metric"]),
        "cut_plot": inputs.cut_plot, "sel": sel, "unit": unit,
        "shape": " × ".join(str(s) for s in shape),
        "feature_si_plot": inputs.feature_si_plot,
        **ranking_cells(inputs, sel),
        "params": size.get("params"), "macs": size.get("macs"), "accuracy": acc,
        "record": record,
    }
