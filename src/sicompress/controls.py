"""The controls of part (c), summarised: files of the control trainings in, tables and a plot out.

Part (c) cuts the e2e model after one layer, keeps k channels of it chosen by SI forward
selection and trains a new classifier on the frozen, pruned extractor. The controls ask
whether SI's choice matters and what the compression costs:

- "chosen" runs: the study's cut and k, channels chosen by each selector ("si": the study's,
  "l1": the largest L1 norms of the cut conv's filters, "random": drawn with the run's seed),
  each trained several times (repeats differ in their seed);
- "frontier" runs: the same, for several fractions of the cut layer's channels;
- references: e2e (a), head (b), and, when configured, the compressed architecture trained
  from scratch and a fine-tuned model.

Every training wrote metrics.json (test_acc a fraction, parameters, and for the control
trainings macs and a "compression" record: cut_layer, unit, k, n_candidates, selector,
fraction, repeat, seed, kept) and predictions.npz (int64 `label` and `predicted`, (N,), the
test set in its fixed order). This module writes

- selectors.csv: one row per chosen-group run (selector, repeat);
- frontier.csv: one row per frontier run (selector, fraction, repeat);
- mcnemar.csv: McNemar's exact test of each compared model against e2e on the test images,
  Holm-adjusted over the file (one family);
- comparisons.csv: SI's channels against each other selector's at the chosen k and at every
  frontier fraction, and the compressed model against its architecture from scratch and
  fine-tuned (`comparisons.compare`: Δ with its 95% interval, paired by seed, and the exact
  test pooled over the seeds), Holm-adjusted over the file (one family);
- frontier.png: test accuracy against parameters and against MACs (`figures.plot_frontier`).

Accuracies are fractions (0.9 = 90%) in every table; MACs are per image.

    summarize_controls(runs, {"e2e": {...}, "head": {...}, "scratch": None, "finetuned": None},
                       selectors_csv=..., frontier_csv=..., mcnemar_csv=..., plot=...)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import artifacts, comparisons, figures, study
from .comparisons import read_predictions
from .cost import macs_per_image
from .model import load_checkpoint
from .criteria import NAMES as SELECTORS
from .stats import holm, mcnemar_exact

GROUPS = ("chosen", "frontier")
# The models the compressed ones are compared with (`study.MODELS` with reference=True): e2e
# and head required, the others optional
REFERENCES = tuple(m.name for m in study.MODELS if m.reference)
STUDY = "compressed"  # the name of the study's compressed model: chosen, selector si, repeat 0

RUN_COLUMNS = ["selector", "repeat", "seed", "k", "n_candidates", "test_acc", "params_total",
               "macs_total"]
FRONTIER_COLUMNS = ["selector", "fraction", "k", "repeat", "seed", "n_candidates", "test_acc",
                    "params_total", "macs_total"]
MCNEMAR_COLUMNS = ["model", "n", "both_correct", "only_model", "only_e2e", "both_wrong",
                   "p_value", "test_acc_model", "test_acc_e2e"]


# ----------------------------------------------------------------------------------------
# Reading one training's files


def cost(metrics: dict, model: str | Path | None, where: str | Path) -> tuple[int, int]:
    """(parameters, MACs per image) in all: from metrics.json, MACs from the checkpoint's arch
    when the metrics have none (e2e and head record no MACs)."""
    try:
        params = int(metrics["parameters"]["total"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where} has no parameters.total") from e
    if isinstance(metrics.get("macs"), dict) and "total" in metrics["macs"]:
        return params, int(metrics["macs"]["total"])
    if model is None:
        raise ValueError(f"{where} has no macs.total and no model.pt was given to count them")
    return params, int(macs_per_image(load_checkpoint(model)["arch"])["total"])


def _run_row(run: Mapping) -> dict:
    """One control run as a table row, checked against the record in its metrics.json."""
    where = run["metrics"]
    metrics = artifacts.read_json(where)
    record = metrics.get("compression")
    if not isinstance(record, dict):
        raise ValueError(f"{where} has no 'compression' record: not a control training")
    for key in ("selector", "k", "n_candidates", "repeat", "seed"):
        if key not in record:
            raise ValueError(f"{where}: compression record lacks {key!r}")
    # the workflow's list of runs and the files must say the same
    same = (record["selector"] == run["selector"] and int(record["repeat"]) == int(run["repeat"])
            and _same_fraction(record.get("fraction"), run.get("fraction")))
    if not same:
        raise ValueError(
            f"{where} records selector {record['selector']!r}, fraction {record.get('fraction')!r}, "
            f"repeat {record['repeat']!r}, but the run list says selector {run['selector']!r}, "
            f"fraction {run.get('fraction')!r}, repeat {run['repeat']!r}")
    params, macs = cost(metrics, run.get("model"), where)
    return {"selector": str(record["selector"]), "fraction": record.get("fraction"),
            "k": int(record["k"]), "repeat": int(record["repeat"]), "seed": int(record["seed"]),
            "n_candidates": int(record["n_candidates"]), "test_acc": float(metrics["test_acc"]),
            "params_total": params, "macs_total": macs}


def _same_fraction(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _selector_key(selector: str) -> tuple:
    return (SELECTORS.index(selector) if selector in SELECTORS else len(SELECTORS),
            selector)


# ----------------------------------------------------------------------------------------
# Tables


def run_tables(runs: Sequence[Mapping]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selectors, frontier): one row per chosen-group run and per frontier run, sorted by
    selector (si, l1, random, others), fraction and repeat. A run listed twice is an error."""
    rows: dict[str, list[dict]] = {g: [] for g in GROUPS}
    seen: dict[tuple, str] = {}
    for run in runs:
        if run.get("group") not in GROUPS:
            raise ValueError(f"run {run.get('metrics')}: group must be one of {GROUPS}, got "
                             f"{run.get('group')!r}")
        row = _run_row(run)
        frac = None if row["fraction"] is None else round(float(row["fraction"]), 9)
        key = (run["group"], row["selector"], frac, row["repeat"])
        if key in seen:
            raise ValueError(f"{run['metrics']} and {seen[key]} are the same run "
                             f"(group, selector, fraction, repeat) = {key}")
        seen[key] = str(run["metrics"])
        rows[run["group"]].append(row)

    def table(group: str, columns: list[str]) -> pd.DataFrame:
        part = sorted(rows[group], key=lambda r: (_selector_key(r["selector"]),
                                                  r["fraction"] or 0.0, r["repeat"]))
        return pd.DataFrame(part, columns=columns)

    return table("chosen", RUN_COLUMNS), table("frontier", FRONTIER_COLUMNS)


RECIPES = ("classifier only", "fine-tuned", "from scratch")  # the layer-wise recipes, in order
RECIPE_COLUMNS = ["recipe", "selector", "repeat", "seed", "test_acc", "val_acc",
                  "params_total", "macs_total", "epochs", "images_seen"]


def recipe_table(runs: Sequence[Mapping]) -> pd.DataFrame:
    """One row per run of the layer-wise recipes (run: recipe, selector, repeat, metrics,
    model), in recipe, selector and repeat order; each checked against its metrics.json's
    compression record. epochs and images_seen are the run's budget (a fine-tuned run's own,
    not counting the classifier-only training it starts from)."""
    rows, seen = [], {}
    for run in runs:
        if run.get("recipe") not in RECIPES:
            raise ValueError(f"run {run.get('metrics')}: recipe must be one of {RECIPES}, got "
                             f"{run.get('recipe')!r}")
        where = run["metrics"]
        metrics = artifacts.read_json(where)
        record = metrics.get("compression") or {}
        if record.get("selector") != run["selector"] or \
                int(record.get("repeat", -1)) != int(run["repeat"]):
            raise ValueError(f"{where} records selector {record.get('selector')!r}, repeat "
                             f"{record.get('repeat')!r}, but the run list says "
                             f"{run['selector']!r}, repeat {run['repeat']!r}")
        key = (run["recipe"], run["selector"], int(run["repeat"]))
        if key in seen:
            raise ValueError(f"{where} and {seen[key]} are the same run {key}")
        seen[key] = str(where)
        params, macs = cost(metrics, run.get("model"), where)
        rows.append({"recipe": run["recipe"], "selector": run["selector"],
                     "repeat": int(run["repeat"]), "seed": int(record["seed"]),
                     "test_acc": float(metrics["test_acc"]),
                     "val_acc": float(metrics["val_acc"]), "params_total": params,
                     "macs_total": macs, "epochs": int(metrics["epochs_run"]),
                     "images_seen": int(metrics["images_seen"])})
    rows.sort(key=lambda r: (RECIPES.index(r["recipe"]), _selector_key(r["selector"]),
                             r["repeat"]))
    return pd.DataFrame(rows, columns=RECIPE_COLUMNS)


def recipe_comparisons(runs: Sequence[Mapping]) -> pd.DataFrame:
    """The layer-wise recipes' comparisons, one family (`comparisons.compare`, paired by
    seed): in each recipe but from scratch, SI's channels against every other selector's at
    the same counts; SI's network fine-tuned against the architecture from scratch, and
    against its own classifier-only training (each fine-tune starts from that repeat's model).
    runs: recipe, selector, repeat and the paths metrics, predictions."""
    sides: dict[tuple, list[dict]] = {}
    for run in runs:
        side = comparisons.runs_of([run["metrics"]], [run["predictions"]])[0]
        sides.setdefault((run["recipe"], run["selector"]), []).append(side)
    rows = []
    for recipe in RECIPES:
        si = sides.get((recipe, "si"))
        if not si or recipe == "from scratch":
            continue
        for sel in sorted({s for r, s in sides if r == recipe and s != "si"}, key=_selector_key):
            rows.append(comparisons.compare(si, sides[(recipe, sel)], a="si", b=sel,
                                            what=recipe))
    finetuned = sides.get(("fine-tuned", "si"))
    if finetuned:
        scratch = [v for (r, _), v in sides.items() if r == "from scratch"]
        if scratch:
            rows.append(comparisons.compare(finetuned, scratch[0], a="si fine-tuned",
                                            b="from scratch", what="the pruned architecture"))
        if sides.get(("classifier only", "si")):
            rows.append(comparisons.compare(finetuned, sides[("classifier only", "si")],
                                            a="si fine-tuned", b="si classifier only",
                                            what="fine-tuned from each repeat's model"))
    return comparisons.comparison_table(rows)


def mcnemar_table(compared: Sequence[tuple[str, str | Path]], e2e_predictions: str | Path, *,
                  family: bool = False,
                  log: Callable[[str], None] = print) -> pd.DataFrame:
    """McNemar's exact test of each (name, predictions.npz) against e2e's, in the given order;
    family: the tests are one family, and a column p_holm holds their Holm-adjusted p-values.

    The test images must be the same, in the same order: the labels of both files must be
    equal (a ValueError names the two files otherwise). Accuracies here are those of the
    predictions, so that they agree with the counts.
    """
    labels, e2e_pred = read_predictions(e2e_predictions)
    e2e_correct = e2e_pred == labels
    rows = []
    for name, path in compared:
        label, pred = read_predictions(path)
        if label.shape != labels.shape or not np.array_equal(label, labels):
            where = ("different lengths " f"{label.size} and {labels.size}"
                     if label.shape != labels.shape
                     else f"{int(np.sum(label != labels))} of {labels.size} labels differ")
            raise ValueError(f"{path} and {e2e_predictions} do not hold the same test images in "
                             f"the same order ({where}): McNemar's test needs paired images")
        t = mcnemar_exact(pred == label, e2e_correct)
        rows.append({"model": name, "n": t["n"], "both_correct": t["both_correct"],
                     "only_model": t["only_a"], "only_e2e": t["only_b"],
                     "both_wrong": t["both_wrong"], "p_value": t["p_value"],
                     "test_acc_model": (t["both_correct"] + t["only_a"]) / t["n"] if t["n"] else math.nan,
                     "test_acc_e2e": (t["both_correct"] + t["only_b"]) / t["n"] if t["n"] else math.nan})
        log(f"McNemar {name} vs e2e: {t['only_a']} only {name}, {t['only_b']} only e2e, "
            f"p = {t['p_value']:.3g}")
    table = pd.DataFrame(rows, columns=MCNEMAR_COLUMNS)
    if family:
        table.insert(MCNEMAR_COLUMNS.index("p_value") + 1, "p_holm",
                     holm(table["p_value"]) if len(table) else [])
    return table


def _check_accuracy(name: str, metrics_path, predictions_path, log) -> None:
    """Say so in the log when metrics.json's test accuracy is not that of predictions.npz."""
    label, pred = read_predictions(predictions_path)
    recorded = float(artifacts.read_json(metrics_path)["test_acc"])
    counted = float(np.mean(pred == label)) if label.size else math.nan
    if not math.isclose(recorded, counted, abs_tol=0.5 / max(label.size, 1)):
        log(f"WARNING: {name}: test_acc {recorded:.6f} in {metrics_path} but "
            f"{counted:.6f} counted from {predictions_path}")


# ----------------------------------------------------------------------------------------
# Entry point


def control_comparisons(runs: Sequence[Mapping], references: Mapping[str, Mapping | None]
                        ) -> pd.DataFrame:
    """comparisons.csv (module notes): SI against every other selector at the chosen k and at
    each frontier fraction, then the compressed model (SI, repeat 0) against scratch and the
    fine-tuned model; one family."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        row = _run_row(run)
        frac = None if row["fraction"] is None else round(float(row["fraction"]), 9)
        groups.setdefault((run["group"], frac, row["selector"]), []).append(
            {"seed": row["seed"], "test_acc": row["test_acc"], "predictions": run["predictions"],
             "repeat": row["repeat"], "k": row["k"]})
    rows = []
    points = sorted({(g, f) for g, f, _ in groups}, key=lambda gf: (gf[0] != "chosen", gf[1] or 0))
    for group, frac in points:
        si = groups.get((group, frac, "si"))
        if not si:
            continue
        where = comparisons.point_label(None if group == "chosen" else frac, si[0]["k"])
        for sel in sorted({s for g, f, s in groups if (g, f) == (group, frac) and s != "si"},
                          key=_selector_key):
            rows.append(comparisons.compare(si, groups[(group, frac, sel)], a="si", b=sel,
                                            what=where))
    study_run = [r for r in groups.get(("chosen", None, "si"), []) if r["repeat"] == 0]
    if study_run:
        for name in ("scratch", "finetuned"):
            ref = references.get(name)
            if ref:
                other = comparisons.runs_of([ref["metrics"]], [ref["predictions"]])
                rows.append(comparisons.compare(other, study_run, a=name, b=STUDY,
                                                what="one run each"))
    return comparisons.comparison_table(rows)


def summarize_controls(runs: Sequence[Mapping], references: Mapping[str, Mapping | None], *,
                       selectors_csv: str | Path, frontier_csv: str | Path,
                       mcnemar_csv: str | Path, plot: str | Path,
                       comparisons_csv: str | Path | None = None,
                       log: Callable[[str], None] = print) -> dict[str, pd.DataFrame]:
    """Write selectors.csv, frontier.csv, mcnemar.csv, comparisons.csv (when a path is given)
    and frontier.png; return the tables.

    runs: one dict per control training: group ("chosen" or "frontier"), selector, fraction
    (None in the chosen group), repeat, and the paths metrics, predictions, model.
    references: {"e2e": {"metrics", "predictions", "model"}, "head": {...}, "scratch": ... or
    None, "finetuned": ... or None}.
    -> {"selectors", "frontier", "mcnemar": DataFrame} as written.
    """
    for name in ("e2e", "head"):
        if not references.get(name):
            raise ValueError(f"summarize_controls needs the {name} reference (metrics, "
                             "predictions, model)")
    unknown = set(references) - set(REFERENCES)
    if unknown:
        raise ValueError(f"unknown reference(s) {sorted(unknown)}; known: {REFERENCES}")
    selectors, frontier = run_tables(runs)
    log(f"{len(selectors)} chosen-k runs, {len(frontier)} frontier runs")

    # compared with e2e: the study's compressed, the other chosen runs, scratch, finetuned, head
    chosen = [r for r in runs if r["group"] == "chosen"]
    chosen.sort(key=lambda r: (_selector_key(r["selector"]), int(r["repeat"])))
    compared = []
    for r in chosen:
        study = r["selector"] == "si" and int(r["repeat"]) == 0
        name = STUDY if study else f"{r['selector']} repeat {int(r['repeat'])}"
        compared.append((name, r["predictions"], r["metrics"]))
    compared.sort(key=lambda c: c[0] != STUDY)  # stable: the study's first
    for name in [n for n in REFERENCES if n not in ("e2e", "head")] + ["head"]:
        ref = references.get(name)
        if ref:
            compared.append((name, ref["predictions"], ref["metrics"]))
    for name, predictions, metrics in compared + [("e2e", references["e2e"]["predictions"],
                                                   references["e2e"]["metrics"])]:
        _check_accuracy(name, metrics, predictions, log)
    mcnemar = mcnemar_table([(n, p) for n, p, _ in compared], references["e2e"]["predictions"],
                            family=True, log=log)
    tables = {"selectors": selectors, "frontier": frontier, "mcnemar": mcnemar}
    written = [(selectors, selectors_csv), (frontier, frontier_csv), (mcnemar, mcnemar_csv)]
    if comparisons_csv is not None:
        tables["comparisons"] = control_comparisons(runs, references)
        written.append((tables["comparisons"], comparisons_csv))
        for _, r in tables["comparisons"].iterrows():
            log(f"{r['a']} minus {r['b']} ({r['what']}, {r['kind']}, n = {r['n']}): "
                f"{100 * r['delta']:+.2f} pp, 95% interval [{100 * r['lo']:+.2f}, "
                f"{100 * r['hi']:+.2f}] pp, pooled exact p = {r['p_value']:.3g}")

    refs = {}
    for name in REFERENCES:
        ref = references.get(name)
        if ref:
            metrics = artifacts.read_json(ref["metrics"])
            params, macs = cost(metrics, ref.get("model"), ref["metrics"])
            refs[name] = {"test_acc": float(metrics["test_acc"]), "params_total": params,
                          "macs_total": macs}

    for table, path in written:
        with artifacts.atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    figures.plot_frontier(frontier, plot, chosen=selectors, references=refs)
    log(f"wrote {', '.join(str(p) for _, p in written)} and {plot}")
    return tables
