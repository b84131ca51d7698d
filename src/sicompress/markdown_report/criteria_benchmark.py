"""The criteria benchmark (`sicompress.benchmark`): SI against the field's channel criteria at
matched budgets (parameters or MACs), the whole network pruned and fine-tuned. Its numbers (one table per
budget, the allocations, the decide seconds) and one sentence per question, each read by
`reading` (a paired interval excludes 0, or no difference is detected). Shown as a part of
report.md and alone as results/benchmark/benchmark.md (`render.write_benchmark_report`)."""

from __future__ import annotations

import math

import pandas as pd

from .. import artifacts
from ..benchmark import (ALLOCATION_TITLES, BUDGET_OF, LAST_EPOCHS, SCRATCH, UNPRUNED, budget_name,
                         cell_title, criteria_at, scratch_allocations, scratch_epochs)
from ..criteria import NAMES, criterion
from . import reading
from .cells import count, frame, num, p_value, pct, pp
from .inputs import ReportInputs
from .layerwise import LAYERWISE_GOAL, LAYERWISE_MAX_LOSS

NAME = "criteria_benchmark"  # the section's template: templates/criteria_benchmark.md.j2
TITLE = "SI against the field's criteria at matched budgets"
CITES = False


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE] if inputs.benchmark_table is not None else []


def _interval(mean, lo, hi) -> str:
    if any(math.isnan(float(v)) for v in (lo, hi)):
        return pct(mean)
    return f"{pct(mean)} [{100 * float(lo):.2f}, {100 * float(hi):.2f}]"


def _delta(d, lo, hi) -> str:
    if math.isnan(float(d)):
        return "–"
    if any(math.isnan(float(v)) for v in (lo, hi)):
        return pp(d)
    return f"{pp(d)} [{100 * float(lo):+.2f}, {100 * float(hi):+.2f}]"


def budget_cells(cells: pd.DataFrame, e2e_parameters: int) -> pd.DataFrame:
    """One budget's cells as the report's table."""
    rows = [[r["cell"], count(r["n"]), count(r["parameters"]),
             f"{100 * r['parameters'] / e2e_parameters:.1f}%", count(r["macs"]),
             _interval(r["mean"], r["lo"], r["hi"]),
             "reference" if (r["allocation"], r["criterion"]) == ("si", "si")
             else _delta(r["delta_to_si"], r["delta_lo"], r["delta_hi"]),
             p_value(r["p_holm"]), "–" if r["criterion"] == SCRATCH else num(r["decide_seconds"], 2),
             pp(r.get("val_gain_last", math.nan))]
            for _, r in cells.iterrows()]
    return frame(rows, ["cell", "n", "parameters", "of e2e", "MACs", "test acc [95% interval]",
                        "vs SI at SI's counts, pp [95%]", "Holm p", "decide s",
                        f"val acc, last {LAST_EPOCHS} epochs"])


def _verdicts(compared: pd.DataFrame, budget: float, question: str) -> list[dict]:
    rows = compared[(compared["budget"] == budget) & (compared["question"] == question)]
    return [reading.verdict(r, r["a"], r["b"]) for _, r in rows.iterrows()]


def _tally(verdicts: list[dict], name: str) -> dict:
    """How often `name` is ahead, behind, or not told apart among the verdicts."""
    ahead = [v for v in verdicts if v["reading"] == reading.BEATS and v["first"] == name]
    behind = [v for v in verdicts if v["reading"] == reading.BEATS and v["second"] == name]
    return {"ahead": [v["second"] for v in ahead], "behind": [v["first"] for v in behind],
            "open": [v["first"] if v["second"] == name else v["second"] for v in verdicts
                     if v["reading"] != reading.BEATS]}


def _criteria_words(section: dict, allocation: str) -> str:
    """"every criterion" where every criterion the package has runs at `allocation`, else
    their titles ("SI, BN scale and random"); "" where none does."""
    at = criteria_at(section, allocation)
    if set(at) == set(NAMES):
        return "every criterion"
    if not at:
        return ""
    titles = [criterion(n).title for n in at]
    return titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"


def unpruned_cell(cells: pd.DataFrame) -> dict | None:
    """The unpruned reference's row of table.csv (mean, lo, hi, n), None where it was not run."""
    u = cells[cells["allocation"] == UNPRUNED]
    return None if u.empty else u.iloc[0].to_dict()


def unpruned_claim(runs: pd.DataFrame, si: pd.DataFrame) -> dict | None:
    """The published claim at equal training: SI's test accuracy minus the unpruned
    reference's, per seed (the runs that share one), against the loss the claim allows
    (-LAYERWISE_MAX_LOSS), read by `reading.bound`; with the reference's mean accuracy. None
    where the reference was not run."""
    u = runs[runs["allocation"] == UNPRUNED]
    if u.empty:
        return None
    paired = si.merge(u, on="seed", suffixes=("_si", "_u"))
    diffs = (paired["test_acc_si"] - paired["test_acc_u"]).to_numpy(float)
    return {"acc": float(u["test_acc"].mean()),
            **reading.bound(diffs, -LAYERWISE_MAX_LOSS, below=False)}


def benchmark_context(*, table_csv, runs_csv, comparisons_csv, ranking_json, allocations_jsons,
                      e2e_metrics, cfg: dict, figures: dict) -> dict:
    """The part's numbers from the benchmark's files (`benchmark.summarize`,
    `benchmark.rank_groups`, `benchmark.allocate`) and e2e's metrics.json."""
    cells = pd.read_csv(table_csv)
    compared = pd.read_csv(comparisons_csv)
    ranking = artifacts.read_json(ranking_json)
    e2e = artifacts.read_json(e2e_metrics)
    e2e_params = int(e2e["parameters"]["total"])
    si_ref = cell_title("si", "si")
    budgets = []
    budget_of = "parameters"
    for path in allocations_jsons:
        a = artifacts.read_json(path)
        b = float(a["budget"])
        budget_of = a.get("budget_of", "parameters")  # files before MACs budgets: parameters
        here = cells[cells["budget"] == b]

        def share(x, key):
            of = a.get(f"e2e_{key}")
            return f"{100 * x[key] / of:.1f}%" if key in x and of else "–"

        alloc_rows = [[ALLOCATION_TITLES[name], ", ".join(f"{k} {v:g}" if isinstance(v, float)
                                                        else f"{k} {v}"
                                                        for k, v in x["knob"].items()),
                       count(sum(x["counts"].values())), count(x["parameters"]),
                       share(x, "parameters"), count(x["macs"]) if "macs" in x else "–",
                       share(x, "macs")]
                      for name, x in a["allocations"].items()]
        selection = _verdicts(compared, b, "selection")
        allocation = _verdicts(compared, b, "allocation")
        against = _verdicts(compared, b, "against SI")
        pruning = _verdicts(compared, b, "pruning")
        frontier = _tally(selection + allocation + against, si_ref)
        ranked = here.sort_values("mean", ascending=False)["cell"].tolist()
        tuned = here[here["criterion"] != SCRATCH].dropna(subset=["val_gain_last"]) \
            if "val_gain_last" in here else here.iloc[:0]
        flat = None
        if len(tuned):
            top = tuned.loc[tuned["val_gain_last"].idxmax()]
            flat = {"max": float(top["val_gain_last"]), "cell": top["cell"],
                    "mean": float(tuned["val_gain_last"].mean())}
        budgets.append({
            "budget": b, "name": budget_name(b), "limit": a["limit"],
            "table": budget_cells(here, e2e_params),
            "allocations": frame(alloc_rows, ["allocation", "knob", "channels", "parameters",
                                              "of e2e", "MACs", "of e2e's"]),
            "selection": selection, "allocation": allocation, "against": against,
            "pruning": pruning,
            "selection_tally": _tally(selection, si_ref), "frontier": frontier,
            "si_rank": ranked.index(si_ref) + 1 if si_ref in ranked else None,
            "cells": len(ranked), "flat": flat,
            "si_cost": int(a["allocations"]["si"][budget_of])
            if "si" in a["allocations"] else None})
    budgets.sort(key=lambda r: -r["budget"])
    claim = None
    # the claim is a share of the parameters: read at a parameter budget only
    at = [r for r in budgets if r["budget"] <= 1 - LAYERWISE_GOAL + 1e-12
          and budget_of == "parameters"]
    if at and len(cells):
        b = at[0]["budget"]  # the largest budget that removes the claimed share
        runs = pd.read_csv(runs_csv)
        si = runs[(runs["budget"] == b) & (runs["allocation"] == "si")
                  & (runs["criterion"] == "si")]
        if len(si):
            bound = float(e2e["test_acc"]) - LAYERWISE_MAX_LOSS
            claim = {"budget": b, "bound": bound, "e2e_acc": float(e2e["test_acc"]),
                     "share": 1 - float(si["parameters"].iloc[0]) / e2e_params,
                     **reading.bound(si["test_acc"].to_numpy(float), bound, below=False)}
            claim["unpruned"] = unpruned_claim(runs, si)
    section = cfg["benchmark"]
    schedule = section["finetune"]
    return {"title": TITLE, "budgets": budgets, "claim": claim, "goal": LAYERWISE_GOAL,
            "budget_of": budget_of, "measure": BUDGET_OF[budget_of],
            "max_loss": LAYERWISE_MAX_LOSS, "e2e_acc": float(e2e["test_acc"]),
            "e2e_parameters": e2e_params, "ranking": ranking, "section": section,
            "schedule": schedule, "figures": figures,
            "scratch_epochs": scratch_epochs(section, cfg["train"]),
            "scratch_at": scratch_allocations(section),  # allocation keys
            "at_si": _criteria_words(section, "si"),
            "at_uniform": _criteria_words(section, "uniform"),
            "global_title": criterion(section["global_criterion"]).title,
            "unpruned": unpruned_cell(cells),
            "network": e2e.get("network", "vgg16"), "width": e2e.get("width"),
            "last_epochs": LAST_EPOCHS,
            "comparisons": len(compared)}


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """The benchmark's numbers; None when it is off."""
    if inputs.benchmark_table is None:
        return None
    e2e = next(m for m in inputs.models if m.name == "e2e")
    return benchmark_context(table_csv=inputs.benchmark_table, runs_csv=inputs.benchmark_runs,
                             comparisons_csv=inputs.benchmark_comparisons,
                             ranking_json=inputs.benchmark_ranking,
                             allocations_jsons=inputs.benchmark_allocations,
                             e2e_metrics=e2e.metrics, cfg=inputs.config,
                             figures={"frontier_parameters": inputs.benchmark_frontier_parameters,
                                      "frontier_macs": inputs.benchmark_frontier_macs,
                                      "curves": inputs.benchmark_curves})
