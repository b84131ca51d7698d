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
from .names import LAYERWISE_RECIPES, selector_order
from .reading import ONE_REPEAT, WITHIN, spread

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
            e2e_acc: float | None) -> dict:
    """The section's first table, recipe x selector: test accuracy mean ± sd over repeats and
    every repeat, cost, budget, McNemar against e2e (Holm-adjusted over every run of the
    table); and the sentences the numbers allow (`reading.spread`)."""
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
    sentences = []

    def compare(a: tuple, b: tuple, what: str) -> None:
        if a not in stats or b not in stats:
            return
        x, y = stats[a], stats[b]
        delta = x["mean"] - y["mean"]
        text = (f"{what}: {pp(delta)} ({acc_sd(x['mean'], x['sd'])} against "
                f"{acc_sd(y['mean'], y['sd'])})")
        reading, larger = spread(x, y)
        if reading == ONE_REPEAT:
            text += "; one repeat gives no spread to read the difference against."
        elif reading == WITHIN:
            text += f"; within the spread (the larger sd is {100 * larger:.2f} pp)."
        else:
            text += (f"; {'better' if delta > 0 else 'worse'}, outside the spread (the larger sd "
                     f"is {100 * larger:.2f} pp, {min(x['n'], y['n'])} repeats).")
        sentences.append(text)

    for recipe in ("classifier only", "fine-tuned"):
        for other in ("l1", "random"):
            compare((recipe, "si"), (recipe, other), f"{recipe}, SI's channels minus {other}'s")
    compare(("fine-tuned", "si"), ("from scratch", "architecture"),
            "SI's pruned network fine-tuned minus the same architecture from scratch")
    compare(("fine-tuned", "si"), ("classifier only", "si"),
            "SI's pruned network fine-tuned minus classifier only")
    return {"table": frame(rows, ["recipe", "selector", "repeats", "test acc mean ± sd",
                                  "each repeat", "Δ mean vs e2e", "params total", "MACs total",
                                  "latency", "epochs", "images seen",
                                  "McNemar vs e2e, p (Holm)"]),
            "sentences": sentences, "recipes": LAYERWISE_RECIPES,
            "family": len(holm_p), "stats": stats}


def goals(e2e: pd.Series, trained: list[tuple[str, dict]]) -> list[dict]:
    """Each layer-wise model (name, metrics.json) against the published claim: the share of
    e2e's parameters it removes and the test accuracy it loses."""
    out = []
    for name, m in trained:
        removed = 1 - m["parameters"]["total"] / e2e["params_total"]
        loss = e2e["test_acc"] - m["test_acc"]
        out.append({"name": name, "removed": removed, "loss": loss, "goal": LAYERWISE_GOAL,
                    "max_loss": LAYERWISE_MAX_LOSS,
                    "met": removed >= LAYERWISE_GOAL and loss <= LAYERWISE_MAX_LOSS})
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
           "layer_si_plot": inputs.layerwise_layer_si_plot}
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
                                 + ([("fine-tuned", ft)] if ft else []))
    if inputs.layerwise_recipes is not None:
        out["recipes"] = recipes(inputs.layerwise_recipes, inputs.layerwise_mcnemar,
                                 inputs.latency_csv,
                                 None if e2e is None else float(e2e["test_acc"]))
    return out
