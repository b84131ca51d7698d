"""The controls of part (c) (files written by sicompress.controls and the latency rule): SI's
channels against L1's and random ones at the chosen k, the pruned architecture trained from
scratch and fine-tuned, McNemar's test against e2e, latency, and the accuracy-size frontier."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .. import artifacts
from ..comparisons import point_label
from ..stats import mean_sd
from .cells import acc_sd, count, frame, p_value, pct, pp, seconds
from .inputs import ReportInputs
from .names import (CONTROL_NAMES, CONTROL_TRAINED, LATENCY_ORDER, OTHER_MODEL_METRICS,
                    SELECTOR_NAMES, selector_order)
from . import reading
from .reading import SIGNIFICANCE

NAME = "controls"  # the section's template: templates/controls.md.j2
TITLE = "Controls of the compression"
SELECTORS_TITLE = "Selectors at the chosen k"  # its ### headings, linked from the answers
MCNEMAR_TITLE = "McNemar's test against e2e"
FILES = ("selectors_csv", "frontier_csv", "frontier_plot", "mcnemar_csv", "comparisons_csv",
         "latency_csv", "scratch_metrics", "finetuned_metrics")  # the fields it shows


def has_controls(inputs: ReportInputs) -> bool:
    return any(getattr(inputs, name) is not None for name in FILES)


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE] if has_controls(inputs) else []


def selectors(path: Path, comparisons: Path | None = None) -> dict:
    """SI, l1 and random at the chosen k: mean ± sd over repeats, the values, and SI against
    each other selector read from comparisons.csv (`reading.verdict`) where it is given."""
    runs = pd.read_csv(path)
    stats, rows = {}, []
    for sel in selector_order(runs["selector"]):
        part = runs[runs["selector"] == sel].sort_values("repeat")
        mean, sd = mean_sd(part["test_acc"])
        stats[sel] = {"mean": mean, "sd": sd, "n": len(part)}
        ks = sorted(set(int(k) for k in part["k"]))
        rows.append([sel, ", ".join(map(str, ks)), count(len(part)), acc_sd(mean, sd),
                     ", ".join(pct(a) for a in part["test_acc"])])
    compared = reading.table_of(comparisons) if comparisons is not None else {}
    verdicts = {}
    for row, sel in zip(rows, stats):
        hit = next((r for (a, b, what), r in compared.items()
                    if a == "si" and b == sel and what.startswith("chosen")), None)
        if hit is not None:
            verdicts[sel] = reading.verdict(hit, "SI", SELECTOR_NAMES.get(sel, sel))
        row.insert(4, "" if hit is None else
                   f"{pp(-hit['delta'])} [{pp(-hit['hi'])}, {pp(-hit['lo'])}]")
        row.insert(5, "" if hit is None or math.isnan(float(hit["p_holm"]))
                   else p_value(hit["p_holm"]))
    n = sorted(set(st["n"] for st in stats.values()))
    ks = sorted(set(int(k) for k in runs["k"]))
    return {"table": frame(rows, ["selector", "k", "repeats", "test acc mean ± sd",
                                  "minus si: Δ mean [95% interval]", "exact test vs si, p (Holm)",
                                  "each repeat"]),
            "sentences": [v["words"] for v in verdicts.values()], "verdicts": verdicts,
            "repeats": n, "stats": stats, "k": ks, "family": len(compared),
            "n_candidates": sorted(set(int(c) for c in runs["n_candidates"]))}


def frontier(path: Path, comparisons: Path | None = None) -> pd.DataFrame | None:
    """Mean ± sd over repeats per selector and k, and each selector minus SI with its interval
    (comparisons.csv, where given); None when the frontier has no run."""
    runs = pd.read_csv(path)
    if runs.empty:
        return None
    compared = reading.table_of(comparisons) if comparisons is not None else {}
    rows = []
    for sel in selector_order(runs["selector"]):
        part = runs[runs["selector"] == sel]
        for k, g in sorted(part.groupby("k"), key=lambda kg: kg[0]):
            mean, sd = mean_sd(g["test_acc"])
            fractions = ", ".join(f"{f:g}" for f in sorted(set(g["fraction"])))
            g = g.sort_values("repeat")
            hit = compared.get(("si", sel, point_label(g["fraction"].iloc[0], k)))
            versus = "" if hit is None else (f"{pp(-hit['delta'])} [{pp(-hit['hi'])}, "
                                             f"{pp(-hit['lo'])}]: "
                                             f"{reading.verdict(hit, 'si', sel)['reading']}")
            rows.append([sel, fractions, count(k), count(g["params_total"].iloc[0]),
                         count(g["macs_total"].iloc[0]), count(len(g)), acc_sd(mean, sd),
                         versus, ", ".join(pct(a) for a in g["test_acc"])])
    return frame(rows, ["selector", "fraction", "k", "params total", "MACs total", "repeats",
                        "test acc mean ± sd", "minus si: Δ [95% interval], reading",
                        "each repeat"])


def other_model(path: Path | None) -> dict | None:
    """test_acc, params and MACs (total) of a training's metrics.json."""
    if path is None:
        return None
    m = artifacts.read_json(path)
    if "test_acc" not in m:
        raise ValueError(f"{path} has no test_acc")
    return {"test_acc": float(m["test_acc"]),
            "params_total": (m.get("parameters") or {}).get("total", math.nan),
            "macs_total": (m.get("macs") or {}).get("total", math.nan)}


def model_costs(inputs: ReportInputs, table: pd.DataFrame) -> dict[str, dict]:
    """test_acc, params_total and macs_total of every model the report has, by its name in
    latency.csv and mcnemar.csv: the summary's, and each of OTHER_MODEL_METRICS given."""
    costs = {r["model"]: {"test_acc": float(r["test_acc"]), "params_total": r["params_total"],
                          "macs_total": r["macs_total"]} for _, r in table.iterrows()}
    for name, key in OTHER_MODEL_METRICS.items():
        other = other_model(getattr(inputs, key))
        if other is not None:
            costs[name] = other
    return costs


def versus(inputs: ReportInputs, costs: dict) -> dict | None:
    """The pruned model (classifier only) against the same architecture trained from scratch,
    and against the fine-tuned model: one run each, compared by the exact test on the test
    images (comparisons.csv)."""
    if inputs.scratch_metrics is None and inputs.finetuned_metrics is None:
        return None
    rows = []
    e2e_acc = costs["e2e"]["test_acc"] if "e2e" in costs else math.nan
    for name in ("compressed", "scratch", "finetuned"):
        if name not in costs:
            continue
        c = costs[name]
        rows.append([name, CONTROL_TRAINED[name], pct(c["test_acc"]),
                     pp(c["test_acc"] - e2e_acc), count(c["params_total"]),
                     count(c["macs_total"])])
    sentences = []
    compared = reading.table_of(inputs.comparisons_csv) if inputs.comparisons_csv else {}
    for name in ("scratch", "finetuned"):
        hit = compared.get((name, "compressed", "one run each"))
        if hit is not None:
            sentences.append(reading.verdict(hit, CONTROL_NAMES[name], "the compressed model")
                             ["words"] + ".")
    return {"table": frame(rows, ["model", "trained", "test acc", "Δ vs e2e", "params total",
                                  "MACs total"]),
            "sentences": sentences, "heading": versus_title(inputs)}


def versus_title(inputs: ReportInputs) -> str:
    """The ### heading of the pruned model against the same architecture trained otherwise."""
    return ", ".join(["Pruned"] + ["from scratch"] * (inputs.scratch_metrics is not None)
                     + ["fine-tuned"] * (inputs.finetuned_metrics is not None))


def mcnemar(path: Path) -> dict:
    t = pd.read_csv(path)
    if "p_holm" not in t.columns:
        raise ValueError(f"{path} has no p_holm column: McNemar's tests against e2e are read "
                         "as one family, Holm-adjusted (rerun summarize_controls)")
    rows = [[r["model"], count(r["n"]), count(r["both_correct"]), count(r["only_model"]),
             count(r["only_e2e"]), count(r["both_wrong"]), p_value(r["p_value"]),
             p_value(r["p_holm"]), pct(r["test_acc_model"]), pct(r["test_acc_e2e"])]
            for _, r in t.iterrows()]
    below = [str(m) for m, p in zip(t["model"], t["p_holm"]) if float(p) < SIGNIFICANCE]
    above = [str(m) for m, p in zip(t["model"], t["p_holm"]) if float(p) >= SIGNIFICANCE]
    return {"title": MCNEMAR_TITLE,
            "table": frame(rows, ["model", "images", "both right", "only model right",
                                  "only e2e right", "both wrong", "p-value", "p (Holm)",
                                  "test acc model", "test acc e2e"]),
            "below": below, "above": above, "level": SIGNIFICANCE, "family": len(t),
            "p": {str(m): float(p) for m, p in zip(t["model"], t["p_holm"])},
            "n": [count(n) for n in sorted(set(int(n) for n in t["n"]))]}


def latency(path: Path, costs: dict) -> dict:
    t = pd.read_csv(path)
    for col in ("model", "batch_size", "seconds_per_image", "iqr_seconds_per_image",
                "measurements", "device", "threads"):
        if col not in t.columns:
            raise ValueError(f"{path} has no column {col!r} (has {list(t.columns)})")
    batches = sorted(int(b) for b in set(t["batch_size"]))
    models = [m for m in LATENCY_ORDER if m in set(t["model"])] + \
        sorted(set(t["model"]) - set(LATENCY_ORDER))
    e2e = {int(r["batch_size"]): float(r["seconds_per_image"])
           for _, r in t[t["model"] == "e2e"].iterrows()}
    rows = []
    for m in models:
        part = t[t["model"] == m]
        c = costs.get(m, {})
        row = [m, count(c.get("params_total")), count(c.get("macs_total"))]
        for b in batches:
            hit = part[part["batch_size"] == b]
            if hit.empty:
                row += ["–", "–"]
                continue
            r = hit.iloc[0]
            sec = float(r["seconds_per_image"])
            row += [f"{seconds(sec)} (IQR {seconds(r['iqr_seconds_per_image'])}, "
                    f"{count(r['measurements'])} runs)",
                    f"{e2e[b] / sec:.2f}×" if b in e2e and sec > 0 else "–"]
        row += [", ".join(sorted(set(map(str, part["device"])))),
                ", ".join(str(x) for x in sorted(set(int(x) for x in part["threads"])))]
        if "precision" in t.columns:  # how the model was timed: as its trainings evaluated it
            row.append(", ".join(sorted(set(map(str, part["precision"])))))
        rows.append(row)
    columns = ["model", "params total", "MACs total"]
    for b in batches:
        columns += [f"batch {b}: time per image (median)", f"batch {b}: speed-up vs e2e"]
    columns += ["device", "threads"] + (["precision"] if "precision" in t.columns else [])
    return {"table": frame(rows, columns),
            "align": "lrr" + "rr" * len(batches) + "lr" + ("l" if "precision" in t.columns else ""),
            "batches": batches}


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """Everything the section shows; None without its inputs."""
    if not has_controls(inputs):
        return None
    costs = model_costs(inputs, table)
    sel = (selectors(inputs.selectors_csv, inputs.comparisons_csv)
           if inputs.selectors_csv is not None else None)
    return {
        "title": TITLE,
        "cut_layer": artifacts.read_json(inputs.selected)["cut_layer"],
        "selectors": sel,
        "selectors_title": SELECTORS_TITLE,
        "versus": versus(inputs, costs),
        "mcnemar": mcnemar(inputs.mcnemar_csv) if inputs.mcnemar_csv is not None else None,
        "latency": latency(inputs.latency_csv, costs) if inputs.latency_csv is not None else None,
        "frontier": (frontier(inputs.frontier_csv, inputs.comparisons_csv)
                     if inputs.frontier_csv is not None else None),
        "frontier_plot": inputs.frontier_plot,
        "finetuned_layer_si_plot": inputs.finetuned_layer_si_plot,
    }
