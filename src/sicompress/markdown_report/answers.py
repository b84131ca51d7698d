"""The report's first screen: the study's questions, each answered from this run's numbers,
with a link to the table it rests on.

- What does the compression (c) cost against e2e? Parameters and MACs per image removed, the
  change in test accuracy, McNemar's test against e2e.
- Do SI's channels beat L1's and random ones? At (c)'s cut and k; and layer-wise, at the same
  channel counts per layer.
- Pruned, or trained from scratch? (c)'s architecture; and the layer-wise one.
- Does the layer-wise pruning reach the published claim?

The numbers are those of the sections below, computed by the same functions; "beats" is said
only as `reading` allows (a 95% interval that excludes 0), and every answer states its n and
its interval. An answer whose inputs are absent (its switch in the config off)
says what was not run.
"""

from __future__ import annotations

import re

import pandas as pd

from .. import artifacts
from . import compression, controls, layerwise
from .cells import reduction
from .inputs import ReportInputs
from . import reading
from .reading import SIGNIFICANCE

NAME = "answers"  # the section's template: templates/answers.md.j2
TITLE = "Answers"
CITES = True  # it cites the numbers of the other parts' tables: rendered after them


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE]


def anchor(title: str) -> str:
    """The link target of a heading, as GitHub (and most Markdown viewers) make it: lower
    case, punctuation dropped, spaces as hyphens ("McNemar's test" -> "mcnemars-test")."""
    return "#" + re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def cost(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """(c) against e2e: size and cost removed, the change in test accuracy, McNemar's p."""
    rows = {r["model"]: r for _, r in table.iterrows()}
    e2e, comp = rows.get("e2e"), rows.get("compressed")
    if e2e is None or comp is None:
        return None
    sel = artifacts.read_json(inputs.selected)
    p = None
    if inputs.mcnemar_csv is not None:
        p = controls.mcnemar(inputs.mcnemar_csv)["p"].get("compressed")
    return {"cut_layer": sel["cut_layer"], "k": sel["k"], "n_candidates": sel["n_candidates"],
            "unit": sel["unit"],
            "params_removed": reduction(e2e["params_total"], comp["params_total"]),
            "macs_removed": reduction(e2e["macs_total"], comp["macs_total"]),
            "test_acc": comp["test_acc"], "e2e_acc": e2e["test_acc"],
            "delta": comp["test_acc_change_vs_e2e"], "p": p,
            "anchor": anchor(compression.SIZE_TITLE)}


def selectors(inputs: ReportInputs) -> dict | None:
    """SI's channels against every other selector's at (c)'s chosen k (comparisons.csv)."""
    if inputs.selectors_csv is None:
        return None
    s = controls.selectors(inputs.selectors_csv, inputs.comparisons_csv)
    others = list(s["verdicts"].values())
    return {"k": s["k"], "repeats": s["repeats"], "others": others,
            "anchor": anchor(controls.SELECTORS_TITLE)}


def layerwise_runs(inputs: ReportInputs) -> dict | None:
    """The layer-wise recipes: SI's channels against the others' in each recipe, and SI's
    pruned network fine-tuned against its architecture from scratch (comparisons.csv)."""
    if inputs.layerwise_pruned is None or inputs.layerwise_recipes is None:
        return None  # no layer-wise section, or no recipes table in it
    r = layerwise.recipes(inputs.layerwise_recipes, None, None, None,
                          inputs.layerwise_comparisons)
    by_recipe = []
    for recipe in ("classifier only", "fine-tuned"):
        others = [v for (what, _), v in r["verdicts"].items() if what == recipe]
        if others:
            by_recipe.append({"recipe": recipe, "others": others})
    return {"selectors": by_recipe, "scratch": r["verdicts"].get(("scratch", "")),
            "anchor": anchor(layerwise.TITLE)}


def scratch(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """(c)'s architecture trained from scratch, and the model fine-tuned, against the pruned
    network with a new classifier: one run each, the exact test on the test images."""
    if inputs.scratch_metrics is None:
        return None
    compared = reading.table_of(inputs.comparisons_csv) if inputs.comparisons_csv else {}
    out = [reading.verdict(compared[(name, "compressed", "one run each")],
                           "(c)'s architecture from scratch" if name == "scratch"
                           else "the compressed model fine-tuned", "the compressed model")
           for name in ("scratch", "finetuned") if (name, "compressed", "one run each") in compared]
    return {"verdicts": out, "anchor": anchor(controls.versus_title(inputs))}


def claim(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """The layer-wise network (classifier only, and fine-tuned where it was) against the
    published share of parameters removed, within the study's bound on accuracy lost."""
    rows = {r["model"]: r for _, r in table.iterrows()}
    e2e = rows.get("e2e")
    if inputs.layerwise_pruned is None or inputs.layerwise_metrics is None or e2e is None:
        return None  # no layer-wise section, or no result table in it
    trained = [("classifier only", artifacts.read_json(inputs.layerwise_metrics))]
    if inputs.layerwise_finetuned_metrics is not None:
        trained.append(("fine-tuned", artifacts.read_json(inputs.layerwise_finetuned_metrics)))
    models = [dict(g, params_removed=reduction(e2e["params_total"], m["parameters"]["total"]),
                   macs_removed=reduction(e2e["macs_total"], m["macs"]["total"]),
                   delta=-g["loss"], delta_lo=-g["loss_hi"], delta_hi=-g["loss_lo"])
              for g, (_, m) in zip(layerwise.goals(e2e, trained, inputs.layerwise_recipes),
                                   trained)]
    # the recipes share the pruned architecture: its size is said once where it is the same
    same = len({(m["params_removed"], m["macs_removed"]) for m in models}) == 1
    return {"goal": layerwise.LAYERWISE_GOAL, "max_loss": layerwise.LAYERWISE_MAX_LOSS,
            "models": models, "same_size": same, "met": [m["name"] for m in models if m["met"]],
            "undecided": [m["name"] for m in models if m["verdict"] == "undecided"],
            "anchor": anchor(layerwise.TITLE)}


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    return {
        "title": TITLE, "level": SIGNIFICANCE,
        "cost": cost(inputs, table),
        "selectors": selectors(inputs),
        "layerwise": layerwise_runs(inputs),
        "scratch": scratch(inputs, table),
        "claim": claim(inputs, table),
        "layerwise_on": inputs.layerwise_pruned is not None,
    }
