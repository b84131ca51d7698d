"""Layer-wise SI pruning of every conv layer (sicompress.layerwise): its recipes against each
other and e2e, the channels kept per layer, the classifier's width, and the result against the
published claim."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import artifacts
from ..stats import mean_sd
from .cells import acc_sd, count, frame, num, p_value, pct, pp, reduction, seconds
from .inputs import ReportInputs
from . import reading
from .names import LAYERWISE_RECIPES, SELECTOR_NAMES, selector_order

NAME = "layerwise"  # the section's template: templates/layerwise.md.j2
TITLE = "Layer-wise SI pruning of every conv layer"

# The published claim the layer-wise network is held against (Saffar, Kalhor, Habibnia, Sci.
# Rep. 2024: SI-guided filter selection in every conv layer of VGG16 on CIFAR-10): the share of
# VGG16's parameters removed. The paper gives the share; the bound on the test accuracy lost
# against e2e is this study's, so that a share bought with a broken network does not count.
LAYERWISE_GOAL = 0.875  # share of e2e's parameters removed
LAYERWISE_MAX_LOSS = 0.01  # test accuracy lost against e2e, at most (1 point)


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE] if inputs.layerwise_pruned is not None else []


def recipes(recipes_csv: Path, mcnemar_csv: Path | None, latency_csv: Path | None,
            e2e_acc: float | None, comparisons_csv: Path | None = None) -> dict:
    """The section's first table, recipe x selector: test accuracy mean ± sd over repeats and
    every repeat, cost, budget, McNemar against e2e (Holm-adjusted over every run of the
    table); and the recipes compared (comparisons.csv, `reading.verdict`)."""
    runs = pd.read_csv(recipes_csv)
    holm_p: dict[tuple, float] = {}
    if mcnemar_csv is not None:
        mc = pd.read_csv(mcnemar_csv)
        names = {f"layerwise {r['recipe']} {r['selector']} repeat {int(r['repeat'])}":
                 (r["recipe"], r["selector"], int(r["repeat"])) for _, r in runs.iterrows()}
        for _, r in mc.iterrows():
            if r["model"] in names and "p_holm" in mc.columns:
                holm_p[names[r["model"]]] = float(r["p_holm"])
    latency = "–"
    if latency_csv is not None:
        lat = pd.read_csv(latency_csv)
        hit = lat[(lat["model"] == "layerwise") & (lat["batch_size"] == lat["batch_size"].min())]
        if not hit.empty:
            latency = (f"{seconds(hit['seconds_per_image'].iloc[0])} "
                       f"(batch {int(hit['batch_size'].iloc[0])})")
    rows, stats = [], {}
    for recipe in [r for r in LAYERWISE_RECIPES if r in set(runs["recipe"])]:
        part_r = runs[runs["recipe"] == recipe]
        for sel in selector_order(part_r["selector"]):
            g = part_r[part_r["selector"] == sel].sort_values("repeat")
            mean, sd = mean_sd(g["test_acc"])
            stats[(recipe, sel)] = {"mean": mean, "sd": sd, "n": len(g)}
            ps = [holm_p.get((recipe, sel, int(rep))) for rep in g["repeat"]]
            rows.append([recipe, sel, count(len(g)), acc_sd(mean, sd),
                         ", ".join(pct(a) for a in g["test_acc"]),
                         "" if e2e_acc is None else pp(mean - e2e_acc),
                         count(g["params_total"].iloc[0]), count(g["macs_total"].iloc[0]), latency,
                         ", ".join(sorted({str(int(e)) for e in g["epochs"]})),
                         ", ".join(sorted({count(e) for e in g["images_seen"]})),
                         ", ".join("–" if p is None else p_value(p) for p in ps)])
    compared = reading.table_of(comparisons_csv) if comparisons_csv is not None else {}
    verdicts = {}
    for (a, b, what), row in compared.items():
        if a == "si":
            verdicts[(what, b)] = reading.verdict(row, "SI", SELECTOR_NAMES.get(b, b),
                                                  context=what)
        elif b == "from scratch":
            verdicts[("scratch", "")] = reading.verdict(
                row, "SI's pruned network fine-tuned", "the same architecture from scratch")
        elif b == "si classifier only":
            verdicts[("finetuned", "")] = reading.verdict(
                row, "SI's pruned network fine-tuned", "its classifier-only training")
    sentences = [v["words"] + "." for v in verdicts.values()]
    return {"table": frame(rows, ["recipe", "selector", "repeats", "test acc mean ± sd",
                                  "each repeat", "Δ mean vs e2e", "params total", "MACs total",
                                  "latency", "epochs", "images seen",
                                  "McNemar vs e2e, p (Holm)"]),
            "sentences": sentences, "verdicts": verdicts, "recipes": LAYERWISE_RECIPES,
            "family": len(holm_p), "comparisons": len(compared), "stats": stats,
            "repeats": {k: v["n"] for k, v in stats.items()}}


def goals(e2e: pd.Series, trained: list[tuple[str, dict]],
          recipes_csv: Path | None = None) -> list[dict]:
    """Each layer-wise model (name, metrics.json) against the published claim: the share of
    e2e's parameters it removes and the test accuracy it loses, read on the mean of SI's
    repeats of that recipe (recipes.csv, where given) with its 95% interval
    (`reading.bound`): met where the share is reached and the whole interval of the loss is
    within the bound, not met where the share is not reached or the whole interval is beyond
    the bound, undecided otherwise. e2e is one run: its own run-to-run variation is not in
    the interval."""
    runs = pd.read_csv(recipes_csv) if recipes_csv is not None else None
    out = []
    for name, m in trained:
        removed = 1 - m["parameters"]["total"] / e2e["params_total"]
        losses = [e2e["test_acc"] - m["test_acc"]]
        if runs is not None:
            part = runs[(runs["recipe"] == name) & (runs["selector"] == "si")]
            if len(part):
                losses = [e2e["test_acc"] - float(a) for a in part.sort_values("repeat")["test_acc"]]
        b = reading.bound(losses, LAYERWISE_MAX_LOSS, below=True)
        if removed < LAYERWISE_GOAL:
            verdict = "not met"
        elif b["reading"] == reading.ONE_REPEAT:
            verdict = "met (one run, no interval)" if b["met_point"] else "not met (one run)"
        else:
            verdict = b["reading"]
        out.append({"name": name, "removed": removed, "loss": b["mean"], "loss_lo": b["lo"],
                    "loss_hi": b["hi"], "n": b["n"], "goal": LAYERWISE_GOAL,
                    "max_loss": LAYERWISE_MAX_LOSS, "verdict": verdict,
                    "met": verdict == "met"})
    return out


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """The layer-wise pruned network: kept channels per layer, the width's design, the result
    against e2e and (c), its selectors' controls and McNemar's tests; None when it is off."""
    if inputs.layerwise_pruned is None:
        return None
    pruned = artifacts.read_json(inputs.layerwise_pruned)
    layers = [[r["layer"], count(r["before"]), count(r["after"]), reduction(r["before"], r["after"]),
               " x ".join(str(v) for v in r["map"]), num(r["si_at_k"]), num(r["best_si"]),
               count(r["best_k"]), num(r["seconds"], 1)] for r in pruned["layers"]]
    out = {"title": TITLE, "pruned": pruned, "kept_plot": inputs.layerwise_kept_plot,
           "layers": frame(layers, ["layer", "channels before", "after", "removed", "map",
                                    "SI at kept", "best SI", "at", "ranking s"]),
           "width_plot": inputs.layerwise_width_plot,
           "layer_si_plot": inputs.layerwise_layer_si_plot,
           "finetuned_layer_si_plot": inputs.layerwise_finetuned_layer_si_plot}
    if inputs.layerwise_width is not None:
        w = artifacts.read_json(inputs.layerwise_width)
        rows = [[count(r["width"]), num(r["si"]), num(r["center_si"]), pct(r["val_acc"]),
                 count(r["parameters"]), "**yes**" if r["width"] == w["width"] else ""]
                for r in w["widths"]]
        out["width"] = {"choice": w, "table": frame(rows, ["width", "hidden SI",
                                                           "hidden Center SI", "val acc",
                                                           "params total", "chosen"])}
    rows_by = {r["model"]: r for _, r in table.iterrows()}
    e2e = rows_by.get("e2e")
    if inputs.layerwise_metrics is not None:
        m = artifacts.read_json(inputs.layerwise_metrics)
        ft = (artifacts.read_json(inputs.layerwise_finetuned_metrics)
              if inputs.layerwise_finetuned_metrics is not None else None)
        result = []
        for name, acc, params, macs in (
                [(n, rows_by[n]["test_acc"], rows_by[n]["params_total"], rows_by[n]["macs_total"])
                 for n in ("e2e", "compressed") if n in rows_by]
                + [("layerwise", m["test_acc"], m["parameters"]["total"], m["macs"]["total"])]
                + ([("layerwise, fine-tuned", ft["test_acc"], ft["parameters"]["total"],
                     ft["macs"]["total"])] if ft else [])):
            result.append([name, pct(acc), "" if e2e is None or name == "e2e"
                           else pp(acc - e2e["test_acc"]), count(params),
                           "" if e2e is None or name == "e2e"
                           else reduction(e2e["params_total"], params), count(macs),
                           "" if e2e is None or name == "e2e"
                           else reduction(e2e["macs_total"], macs)])
        out["result"] = frame(result, ["model", "test acc", "Δ vs e2e", "params total",
                                       "params removed", "MACs total", "MACs removed"])
        if e2e is not None:
            out["goals"] = goals(e2e, [("classifier only", m)]
                                 + ([("fine-tuned", ft)] if ft else []),
                                 inputs.layerwise_recipes)
    if inputs.layerwise_recipes is not None:
        out["recipes"] = recipes(inputs.layerwise_recipes, inputs.layerwise_mcnemar,
                                 inputs.latency_csv,
                                 None if e2e is None else float(e2e["test_acc"]),
                                 inputs.layerwise_comparisons)
    return out
