"""The study's report in Markdown (results/report/report.md): every table and figure the
study must hand in, and summary.csv with a row per trained model. (The figures themselves are
drawn by `figures`; the HTML report is Snakemake's own, from the `report:` captions.)

Code computes, templates write: this module reads the workflow's artefacts (metrics, histories,
SI tables, decisions, checkpoints, Snakemake benchmark files), computes every number and every
table (as pandas DataFrames), and fills the Jinja2 template `templates/report.md.j2`, which
holds all the prose, the section order and the captions. The assumptions are written once, in
`templates/assumptions.md`, included here and copied verbatim into the README (a test fails
when the two drift apart). A key the template needs and the context lacks is an error
(StrictUndefined), never an empty gap. Figures are linked relative to the report's folder, so
the report renders where it is written.

    inputs = ReportInputs(config=..., split_summary=..., ..., benchmarks=[...])
    write_report(inputs, out_md="results/report/report.md",
                 out_csv="results/report/summary.csv")
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jinja2
import pandas as pd
import torch

from . import artifacts
from .data import image_format
from .cost import macs_per_image, parameter_counts
from .figures import source_name
from .layer_si import read_layer_table
from .model import build_model, load_checkpoint
from .stats import format_mean_sd, mean_sd
from .training import scaled_step

TEMPLATES = Path(__file__).with_name("templates")  # report.md.j2, assumptions.md
ASSUMPTIONS = TEMPLATES / "assumptions.md"

# Column order of summary.csv (and of the summary table in the report).
SUMMARY_COLUMNS = [
    "model", "test_acc", "val_acc", "best_epoch", "epochs_run",
    "params_features", "params_classifier", "params_total",
    "macs_features", "macs_classifier", "macs_total",
    "test_acc_change_vs_e2e", "test_acc_change_vs_head", "train_seconds",
]

# Section headings of report.md, in order (the per-model ones are filled from MODEL_TITLES).
MODEL_TITLES = {
    "search": "Learning-rate search: the chosen trial's model",
    "e2e": "End-to-end training (a)",
    "head": "Frozen features, new classifier (b)",
    "compressed": "Compressed model (c)",
}
SECTIONS = [
    "Summary",
    "Learning-rate search",
    MODEL_TITLES["search"],
    MODEL_TITLES["e2e"],
    MODEL_TITLES["head"],
    MODEL_TITLES["compressed"],
    "Compression",
    "Wall time per job",
    "Assumptions",
]
# The section of the controls of (c), after "Compression", when any of their files is an input.
CONTROLS_TITLE = "Controls of the compression"
LAYERWISE_TITLE = "Layer-wise SI pruning of every conv layer"
LAYERWISE_GOAL = 0.875  # the published share of VGG16's parameters removed (Saffar et al. 2024)

# Order of the Snakemake rules in the workflow, for the wall-time table; others come last.
WORKFLOW_ORDER = [
    "prepare_data", "split", "lr_trial", "select_lr", "train_e2e", "train_head", "layer_si",
    "plot_layer_si", "cut_layers", "rank_features", "choose_features", "train_compressed",
    "train_control", "train_scratch", "finetune", "measure_latency", "summarize_controls",
]

RANKING_ROWS = 10  # rows of the feature ranking shown in the report
METRIC_NAMES = {"si": "SI", "center_si": "Center SI"}


@dataclass
class ModelArtefacts:
    """The artefacts of one training: e2e, head or compressed."""

    name: str            # "search" (the chosen trial), "e2e", "head" or "compressed"
    metrics: Path        # metrics.json
    history: Path        # history.csv (epoch, lr, train_loss, train_acc, val_loss, val_acc, seconds)
    curves: Path         # curves.png
    model: Path          # model.pt (checkpoint with "arch")
    layer_si: Path       # layer_si.csv (split, layer_index, layer, kind, ..., si, center_si, ...)
    layer_si_plot: Path  # layer_si.png


@dataclass
class ReportInputs:
    """Every artefact the report reads, plus the resolved config."""

    config: dict                  # the resolved config (config.yaml plus a "compress" section)
    split_summary: Path           # results/split/summary.json
    lr_summary: Path              # results/lr_search/summary.csv
    lr_best: Path                 # results/lr_search/best.json
    lr_heatmap: Path              # results/lr_search/heatmap.png
    trial_curves: list[Path]      # results/lr_search/lr~{lr}/step~{step}/curves.png, one per trial
    models: list[ModelArtefacts]  # search, e2e, head, compressed (in that order)
    cut: Path                     # results/compress/cut.json
    cut_plot: Path                # results/compress/cut.png
    selected: Path                # results/compress/selected.json
    ranking: Path                 # results/compress/feature_ranking.csv (step, feature, si, center_si)
    feature_si_plot: Path         # results/compress/feature_si.png
    benchmarks: list[Path] = field(default_factory=list)  # Snakemake benchmark TSVs, one per job
    data: Path | None = None      # results/data/cifar10.npz (its recorded image format)
    # The controls of (c) (see sicompress.controls); each optional, the section shows what is given.
    selectors_csv: Path | None = None  # selectors.csv: one row per (selector, repeat) at the chosen k
    frontier_csv: Path | None = None   # frontier.csv: one row per (selector, fraction, repeat)
    frontier_plot: Path | None = None  # frontier.png: accuracy against parameters and MACs
    mcnemar_csv: Path | None = None    # mcnemar.csv: McNemar's exact test of each model vs e2e
    latency_csv: Path | None = None    # latency.csv: model, batch_size, seconds_per_image, ...
    scratch: Path | None = None        # metrics.json of the compressed arch trained from scratch
    finetuned: Path | None = None      # metrics.json of the fine-tuned model
    finetuned_layer_si_plot: Path | None = None  # layer_si.png of the fine-tuned model
    # Layer-wise SI pruning (sicompress.layerwise); all None when it is off
    layerwise_pruned: Path | None = None      # pruned.json: kept channels per conv layer
    layerwise_kept_plot: Path | None = None   # kept.png
    layerwise_width: Path | None = None       # width.json: the classifier width's design
    layerwise_width_plot: Path | None = None  # width.png
    layerwise_metrics: Path | None = None     # metrics.json of the layer-wise model (chosen width)
    layerwise_layer_si_plot: Path | None = None  # its layer_si.png
    layerwise_recipes: Path | None = None     # recipes.csv: recipe x selector x repeat
    layerwise_mcnemar: Path | None = None     # mcnemar.csv: each run against e2e, Holm-adjusted
    layerwise_finetuned_metrics: Path | None = None  # metrics.json of it fine-tuned


def sections(inputs: "ReportInputs") -> list[str]:
    """The `## ` headings of report.md for these inputs, in order."""
    out = list(SECTIONS)
    if _has_controls(inputs):
        out.insert(out.index("Compression") + 1, CONTROLS_TITLE)
    if inputs.layerwise_pruned is not None:
        out.insert(out.index("Wall time per job"), LAYERWISE_TITLE)
    return out


# ----------------------------------------------------------------------------------------
# Summary table


def _model_counts(checkpoint: Path) -> tuple[dict[str, int], dict[str, int]]:
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
        params, macs = _model_counts(m.model)
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


# ----------------------------------------------------------------------------------------
# Formatting helpers


def _pct(x: Any) -> str:
    return "–" if _missing(x) else f"{100 * float(x):.2f}%"


def _pp(x: Any) -> str:
    return "–" if _missing(x) else f"{100 * float(x):+.2f} pp"


def _num(x: Any, digits: int = 4) -> str:
    return "–" if _missing(x) else f"{float(x):.{digits}f}"


def _int(x: Any) -> str:
    return "–" if _missing(x) else f"{int(x):,}"


def _reduction(before: float, after: float) -> str:
    if not before:
        return "–"
    return f"{100 * (before - after) / before:.2f}%"


def _missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def _hms(seconds: float) -> str:
    if _missing(seconds):
        return "–"
    s = int(round(float(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _value(v: Any, none: str = "null") -> str:
    """A config value as text: None -> `none`, floats in short form, lists in brackets."""
    if v is None:
        return none
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


# ----------------------------------------------------------------------------------------
# Benchmarks


def benchmark_label(path: str | Path, root: str | Path | None = None) -> tuple[str, str]:
    """(rule, job label) of a Snakemake benchmark file, from its path below the `benchmarks`
    folder (or below `root`): benchmarks/train_e2e.tsv -> ("train_e2e", "train_e2e"),
    benchmarks/layer_si/e2e.tsv -> ("layer_si", "layer_si e2e")."""
    path = Path(path)
    parts = list(path.parts)
    if root is not None:
        rel = list(path.relative_to(root).parts)
    elif "benchmarks" in parts:
        last = len(parts) - 1 - parts[::-1].index("benchmarks")
        rel = parts[last + 1:]
    else:
        rel = [path.name]
    rel[-1] = re.sub(r"\.tsv$", "", rel[-1])
    rule = rel[0]
    if len(rel) == 1:
        return rule, rule
    return rule, f"{rule} {'/'.join(rel[1:])}"


def read_benchmarks(paths: Sequence[str | Path], model_order: Sequence[str] = ()) -> pd.DataFrame:
    """job, rule, seconds, max_rss (MiB) of every benchmark file, in workflow order."""
    paths = [Path(p) for p in paths]
    # Files outside a folder named "benchmarks": label them below their common folder.
    outside = [p for p in paths if "benchmarks" not in p.parts]
    root = Path(os.path.commonpath([p.parent for p in outside])) if outside else None
    rows = []
    for p in paths:
        rule, job = benchmark_label(p, None if "benchmarks" in p.parts else root)
        bench = pd.read_csv(p, sep="\t", na_values=["NA", "-", ""])
        first = bench.iloc[0] if len(bench) else pd.Series(dtype=float)
        rest = job[len(rule):].strip()
        numbers = tuple(float(v) for v in re.findall(r"~([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)", rest))
        rows.append({
            "job": job,
            "rule": rule,
            "seconds": pd.to_numeric(first.get("s"), errors="coerce"),
            "max_rss": pd.to_numeric(first.get("max_rss"), errors="coerce"),
            "_key": (WORKFLOW_ORDER.index(rule) if rule in WORKFLOW_ORDER else len(WORKFLOW_ORDER),
                     rule if rule not in WORKFLOW_ORDER else "",
                     list(model_order).index(rest) if rest in model_order else len(model_order),
                     numbers, rest),
        })
    rows.sort(key=lambda r: r["_key"])
    return pd.DataFrame(rows, columns=["job", "rule", "seconds", "max_rss"])


def _plural(count: Any, word: str) -> str:
    """`word` or `word`s, to follow the number `count` (1 epoch, 2 epochs)."""
    try:
        return word if float(count) == 1 else word + "s"
    except (TypeError, ValueError):
        return word + "s"


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v) and not _missing(v)


def md_table(table: pd.DataFrame, align: str) -> str:
    """A DataFrame of cells as an aligned Markdown table; `align` holds "l" or "r" per column."""
    headers = [str(c) for c in table.columns]
    rows = [[str(c) for c in r] for r in table.itertuples(index=False)]
    widths = [max([len(h)] + [len(r[i]) for r in rows] + [3]) for i, h in enumerate(headers)]

    def line(cells):
        return "| " + " | ".join(
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align)
        ) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else ("-" * w)
                            for w, a in zip(widths, align)) + " |"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def _frame(rows: list[list[Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns), dtype=object)


# ----------------------------------------------------------------------------------------
# Data source


def _data_path(config: dict) -> str | None:
    data = config.get("data", {})
    path = data.get("path")
    if data.get("source") == "folder" and not path:
        path = os.environ.get("CIFAR10_JPEG") or "$CIFAR10_JPEG"
    return path


def _data_context(inputs: ReportInputs) -> dict:
    """Source, file name and image format of the data; the format is the one prepare_data
    recorded in the npz ("unknown" when the npz predates that record or is not an input)."""
    data = inputs.config.get("data", {})
    fmt = image_format(inputs.data) if inputs.data is not None else "unknown"
    return {"source": data.get("source"), "name": Path(str(_data_path(inputs.config))).name,
            "image_format": fmt, "jpeg": "JPEG" in fmt.split(", ")}


# ----------------------------------------------------------------------------------------
# The numbers and tables of each section


def _summary_cells(table: pd.DataFrame) -> pd.DataFrame:
    rows = [[r["model"], _pct(r["test_acc"]), _pct(r["val_acc"]), _int(r["best_epoch"]),
             _int(r["epochs_run"]), _int(r["params_features"]), _int(r["params_classifier"]),
             _int(r["params_total"]), _int(r["macs_features"]), _int(r["macs_classifier"]),
             _int(r["macs_total"]), _pp(r["test_acc_change_vs_e2e"]),
             _pp(r["test_acc_change_vs_head"]), _num(r["train_seconds"], 1)]
            for _, r in table.iterrows()]
    return _frame(rows, ["model", "test acc", "val acc", "best epoch", "epochs run",
                         "params features", "params classifier", "params total", "MACs features",
                         "MACs classifier", "MACs total", "Δ test vs e2e", "Δ test vs head",
                         "train s"])


def _trial_name(path: Path) -> tuple[str, str]:
    lr = next((p.split("~", 1)[1] for p in path.parts if p.startswith("lr~")), "?")
    step = next((p.split("~", 1)[1] for p in path.parts if p.startswith("step~")), "?")
    return lr, step


def _search(inputs: ReportInputs) -> dict:
    grid = pd.read_csv(inputs.lr_summary)
    best = artifacts.read_json(inputs.lr_best)
    shown = grid.sort_values(["lr", "step_size"], ascending=[False, True])
    rows = [[f"{r['lr']:g}", _int(r["step_size"]), _int(r.get("trial_step")),
             _pct(r["val_acc"]), "yes" if _truthy(r["diverged"]) else "no",
             "**yes**" if _truthy(r.get("chosen", False)) else ""]
            for _, r in shown.iterrows()]
    trials = []
    for path in inputs.trial_curves:
        lr, step = _trial_name(Path(path))
        trials.append({"curves": path, "lr": lr, "step": step})
    return {
        "n_trials_run": len(grid),
        "table": _frame(rows, ["lr", "step", "trial step", "val acc", "diverged", "chosen"]),
        "best": best,
        "n_diverged": best.get("n_diverged", int(grid["diverged"].map(_truthy).sum())),
        "n_trials": best.get("n_trials", len(grid)),
        "heatmap": inputs.lr_heatmap,
        "trials": trials,
    }


def _layer_si_cells(path: Path) -> pd.DataFrame:
    table = read_layer_table(path)
    layers = (table[["layer_index", "layer", "kind", "features"]]
              .drop_duplicates("layer_index").sort_values("layer_index"))
    rows = []
    for _, layer in layers.iterrows():
        vals = []
        for metric in ("si", "center_si"):
            for split in ("train", "test"):
                hit = table[(table["layer_index"] == layer["layer_index"]) & (table["split"] == split)]
                vals.append(_num(hit[metric].iloc[0]) if len(hit) else "–")
        rows.append([_int(layer["layer_index"]), layer["layer"], layer["kind"],
                     _int(layer["features"])] + vals)
    return _frame(rows, ["#", "layer", "kind", "features", "SI train", "SI test", "CSI train",
                         "CSI test"])


def _model(m: ModelArtefacts, row: pd.Series) -> dict:
    return {
        "name": m.name,
        "title": MODEL_TITLES.get(m.name, m.name),
        "metrics": artifacts.read_json(m.metrics),
        "history_rows": len(pd.read_csv(m.history)),
        "change_vs_e2e": row["test_acc_change_vs_e2e"],
        "curves": m.curves,
        "layer_si_plot": m.layer_si_plot,
        "layer_table": _layer_si_cells(m.layer_si),
        "layer_reuse": _layer_reuse(m.layer_si),
    }


def _layer_reuse(path: Path) -> str:
    """Which rows of a layer table were copied from another model's table, in words."""
    table = read_layer_table(path)
    rows = table[(table["split"] == "train") & (table["reused_from"] != "")]
    if rows.empty:
        return "every row measured on this model"
    rows = rows.sort_values("layer_index")
    first, last = rows.iloc[0], rows.iloc[-1]
    src = " and ".join(sorted({source_name(r) for r in table["reused_from"] if r}))
    if len(rows) == 1:
        which = (f"row {_int(first['layer_index'])} ({first['layer']}) is {src}'s, copied from "
                 f"its table (this model's input normalisation is {src}'s)")
    else:
        which = (f"rows {_int(first['layer_index'])}–{_int(last['layer_index'])} "
                 f"({first['layer']} to {last['layer']}) are {src}'s, copied from its table "
                 f"(this model's normalisation and layers up to {last['layer']} have {src}'s "
                 "weights, every tensor compared)")
    return which + "; the other rows are measured on this model"


def _compression(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    cut = artifacts.read_json(inputs.cut)
    sel = artifacts.read_json(inputs.selected)
    by_model = {r["model"]: r for _, r in table.iterrows()}
    unit, shape = sel["unit"], sel.get("shape") or []

    ranking = pd.read_csv(inputs.ranking).sort_values("step")
    head = ranking.head(RANKING_ROWS)
    hw = int(shape[1]) * int(shape[2]) if len(shape) == 3 else None
    where = unit == "element" and hw
    with_test = "si_test" in ranking.columns  # rankings made before it was recorded lack it
    rows = []
    for _, r in head.iterrows():
        f = int(r["feature"])
        row = [_int(r["step"]), str(f), _num(r["si"]), _num(r["center_si"])]
        if with_test:
            row += [_num(r["si_test"]), _num(r["center_si_test"])]
        row.append("yes" if int(r["step"]) <= int(sel["k"]) else "no")
        if where:
            row.insert(2, f"({f // hw}, {f % hw // int(shape[2])}, {f % int(shape[2])})")
        rows.append(row)
    columns = ["step", unit, "SI", "Center SI"] + (["SI test", "CSI test"] if with_test else []) \
        + ["kept"]
    if where:
        columns.insert(2, "(c, y, x)")

    e2e, comp = by_model.get("e2e"), by_model.get("compressed")
    size = {}
    if e2e is not None and comp is not None:
        for what in ("params", "macs"):
            size[what] = _frame(
                [[part, _int(e2e[f"{what}_{part}"]), _int(comp[f"{what}_{part}"]),
                  _reduction(e2e[f"{what}_{part}"], comp[f"{what}_{part}"])]
                 for part in ("features", "classifier", "total")],
                ["part", "before (e2e)", "after (compressed)", "reduction"])
    acc = _frame([[name, _pct(r["test_acc"]),
                   "" if name == "e2e" else _pp(r["test_acc_change_vs_e2e"]),
                   "" if name in ("e2e", "head") else _pp(r["test_acc_change_vs_head"])]
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
        "cut": cut, "metric": METRIC_NAMES.get(cut["metric"], cut["metric"]),
        "cut_plot": inputs.cut_plot, "sel": sel, "unit": unit,
        "shape": " × ".join(str(s) for s in shape),
        "feature_si_plot": inputs.feature_si_plot,
        "ranking": _frame(rows, columns), "ranking_align": ("rrl" if where else "rr") + "rr" + "rr" * with_test + "l",
        "ranking_with_test": with_test,
        "ranking_shown": len(head), "ranking_steps": len(ranking),
        "params": size.get("params"), "macs": size.get("macs"), "accuracy": acc,
        "record": record,
    }


# ----------------------------------------------------------------------------------------
# Controls of the compression (files written by sicompress.controls and the latency rule)

SIGNIFICANCE = 0.05  # the level McNemar's p-values are read at; a reading, not a ranking
LATENCY_ORDER = ("e2e", "head", "compressed", "scratch", "finetuned")
CONTROL_TRAINED = {
    "compressed": "classifier only, on the frozen pruned extractor (SI's channels)",
    "scratch": "end to end from random initial weights, same architecture",
    "finetuned": "the compressed model, fine-tuned",
}


def _has_controls(inputs: ReportInputs) -> bool:
    return any(getattr(inputs, name) is not None for name in (
        "selectors_csv", "frontier_csv", "frontier_plot", "mcnemar_csv", "latency_csv",
        "scratch", "finetuned"))


def _p_value(p: Any) -> str:
    if _missing(p):
        return "–"
    p = float(p)
    if p < 1e-300:  # below what a float holds: the exact value underflowed to 0
        return "< 1e-300"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _seconds(s: Any) -> str:
    """A time per image in a readable unit (s, ms or µs), three significant digits."""
    if _missing(s):
        return "–"
    s = float(s)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= scale or unit == "µs":
            v = s / scale
            return f"{v:.{2 if v < 10 else 1 if v < 100 else 0}f} {unit}"
    return "–"  # not reached


def _acc_sd(mean: float, sd: float) -> str:
    return format_mean_sd(mean, sd, scale=100, digits=2, unit="%")


def _selector_order(names) -> list[str]:
    first = [s for s in ("si", "l1", "random") if s in set(names)]
    return first + sorted(set(names) - set(first))


def _selectors(path: Path) -> dict:
    """SI, l1 and random at the chosen k: mean ± sd over repeats, the values, sentences."""
    runs = pd.read_csv(path)
    stats, rows = {}, []
    for sel in _selector_order(runs["selector"]):
        part = runs[runs["selector"] == sel].sort_values("repeat")
        mean, sd = mean_sd(part["test_acc"])
        stats[sel] = {"mean": mean, "sd": sd, "n": len(part)}
        ks = sorted(set(int(k) for k in part["k"]))
        rows.append([sel, ", ".join(map(str, ks)), _int(len(part)), _acc_sd(mean, sd),
                     ", ".join(_pct(a) for a in part["test_acc"])])
    ref = stats.get("si")
    for row, sel in zip(rows, stats):
        row.insert(4, "" if ref is None or sel == "si" else _pp(stats[sel]["mean"] - ref["mean"]))
    sentences = []
    for sel, st in stats.items():
        if ref is None or sel == "si":
            continue
        delta = ref["mean"] - st["mean"]
        text = (f"SI minus {sel}: {_pp(delta)} in mean test accuracy (SI {_acc_sd(ref['mean'], ref['sd'])} "
                f"over {ref['n']} {_plural(ref['n'], 'repeat')}, {sel} {_acc_sd(st['mean'], st['sd'])} "
                f"over {st['n']} {_plural(st['n'], 'repeat')})")
        if min(ref["n"], st["n"]) < 2:
            text += "; one repeat cannot separate them (it gives no sd to compare the difference with)."
        else:
            larger = max(ref["sd"], st["sd"])
            if abs(delta) <= larger:
                text += f"; within the spread (|Δ| ≤ the larger sd, {100 * larger:.2f} pp)."
            else:
                text += (f"; |Δ| is larger than either sd (the larger is {100 * larger:.2f} pp), "
                         f"over {min(ref['n'], st['n'])} repeats.")
        sentences.append(text)
    n = sorted(set(st["n"] for st in stats.values()))
    return {"table": _frame(rows, ["selector", "k", "repeats", "test acc mean ± sd",
                                   "Δ mean vs si", "each repeat"]),
            "sentences": sentences, "repeats": n, "stats": stats,
            "n_candidates": sorted(set(int(c) for c in runs["n_candidates"]))}


def _frontier(path: Path) -> pd.DataFrame | None:
    """Mean ± sd over repeats per selector and k; None when the frontier has no run."""
    runs = pd.read_csv(path)
    if runs.empty:
        return None
    rows = []
    for sel in _selector_order(runs["selector"]):
        part = runs[runs["selector"] == sel]
        for k, g in sorted(part.groupby("k"), key=lambda kg: kg[0]):
            mean, sd = mean_sd(g["test_acc"])
            fractions = ", ".join(f"{f:g}" for f in sorted(set(g["fraction"])))
            g = g.sort_values("repeat")
            rows.append([sel, fractions, _int(k), _int(g["params_total"].iloc[0]),
                         _int(g["macs_total"].iloc[0]), _int(len(g)), _acc_sd(mean, sd),
                         ", ".join(_pct(a) for a in g["test_acc"])])
    return _frame(rows, ["selector", "fraction", "k", "params total", "MACs total", "repeats",
                         "test acc mean ± sd", "each repeat"])


def _other_model(path: Path | None) -> dict | None:
    """test_acc, params and MACs (total) of a control training's metrics.json."""
    if path is None:
        return None
    m = artifacts.read_json(path)
    if "test_acc" not in m:
        raise ValueError(f"{path} has no test_acc")
    return {"test_acc": float(m["test_acc"]),
            "params_total": (m.get("parameters") or {}).get("total", math.nan),
            "macs_total": (m.get("macs") or {}).get("total", math.nan)}


def _versus(inputs: ReportInputs, costs: dict, acc: dict, selectors: dict | None) -> dict | None:
    """The pruned model (classifier only) against the same architecture trained from scratch,
    and against the fine-tuned model: one run each."""
    if inputs.scratch is None and inputs.finetuned is None:
        return None
    rows, e2e_acc = [], acc.get("e2e", math.nan)
    for name in ("compressed", "scratch", "finetuned"):
        if name not in costs:
            continue
        c = costs[name]
        rows.append([name, CONTROL_TRAINED[name], _pct(c["test_acc"]),
                     _pp(c["test_acc"] - e2e_acc), _int(c["params_total"]),
                     _int(c["macs_total"])])
    sentences = []
    if "compressed" in costs:
        for name in ("scratch", "finetuned"):
            if name in costs:
                delta = costs[name]["test_acc"] - costs["compressed"]["test_acc"]
                text = (f"{name} minus compressed: {_pp(delta)} ({_pct(costs[name]['test_acc'])} "
                        f"against {_pct(costs['compressed']['test_acc'])}), one run each")
                si = (selectors or {}).get("stats", {}).get("si")
                if si and si["n"] > 1 and not _missing(si["sd"]):
                    text += (f"; the sd of SI's repeats at the chosen k, {100 * si['sd']:.2f} pp, "
                             f"is the scale of run-to-run variation to read it against.")
                else:
                    text += "; one run each gives no spread to read the difference against."
                sentences.append(text)
    heading = ", ".join(["Pruned"] + ["from scratch"] * (inputs.scratch is not None)
                        + ["fine-tuned"] * (inputs.finetuned is not None))
    return {"table": _frame(rows, ["model", "trained", "test acc", "Δ vs e2e", "params total",
                                   "MACs total"]),
            "sentences": sentences, "heading": heading}


def _mcnemar(path: Path) -> dict:
    t = pd.read_csv(path)
    rows = [[r["model"], _int(r["n"]), _int(r["both_correct"]), _int(r["only_model"]),
             _int(r["only_e2e"]), _int(r["both_wrong"]), _p_value(r["p_value"]),
             _pct(r["test_acc_model"]), _pct(r["test_acc_e2e"])] for _, r in t.iterrows()]
    below = [str(m) for m, p in zip(t["model"], t["p_value"]) if float(p) < SIGNIFICANCE]
    above = [str(m) for m, p in zip(t["model"], t["p_value"]) if float(p) >= SIGNIFICANCE]
    return {"table": _frame(rows, ["model", "images", "both right", "only model right",
                                   "only e2e right", "both wrong", "p-value", "test acc model",
                                   "test acc e2e"]),
            "below": below, "above": above, "level": SIGNIFICANCE,
            "n": [_int(n) for n in sorted(set(int(n) for n in t["n"]))]}


def _latency(path: Path, costs: dict) -> dict:
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
        row = [m, _int(c.get("params_total")), _int(c.get("macs_total"))]
        for b in batches:
            hit = part[part["batch_size"] == b]
            if hit.empty:
                row += ["–", "–"]
                continue
            r = hit.iloc[0]
            sec = float(r["seconds_per_image"])
            row += [f"{_seconds(sec)} (IQR {_seconds(r['iqr_seconds_per_image'])}, "
                    f"{_int(r['measurements'])} runs)",
                    f"{e2e[b] / sec:.2f}×" if b in e2e and sec > 0 else "–"]
        row += [", ".join(sorted(set(map(str, part["device"])))),
                ", ".join(str(x) for x in sorted(set(int(x) for x in part["threads"])))]
        rows.append(row)
    columns = ["model", "params total", "MACs total"]
    for b in batches:
        columns += [f"batch {b}: time per image (median)", f"batch {b}: speed-up vs e2e"]
    columns += ["device", "threads"]
    return {"table": _frame(rows, columns), "align": "lrr" + "rr" * len(batches) + "lr",
            "batches": batches}


def _controls(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """Everything the section "Controls of the compression" shows; None without its inputs."""
    if not _has_controls(inputs):
        return None
    acc = dict(zip(table["model"], table["test_acc"]))
    costs = {r["model"]: {"test_acc": float(r["test_acc"]), "params_total": r["params_total"],
                          "macs_total": r["macs_total"]} for _, r in table.iterrows()}
    for name in ("scratch", "finetuned"):
        other = _other_model(getattr(inputs, name))
        if other is not None:
            costs[name] = other
    selectors = _selectors(inputs.selectors_csv) if inputs.selectors_csv is not None else None
    return {
        "title": CONTROLS_TITLE,
        "selectors": selectors,
        "versus": _versus(inputs, costs, acc, selectors),
        "mcnemar": _mcnemar(inputs.mcnemar_csv) if inputs.mcnemar_csv is not None else None,
        "latency": _latency(inputs.latency_csv, costs) if inputs.latency_csv is not None else None,
        "frontier": _frontier(inputs.frontier_csv) if inputs.frontier_csv is not None else None,
        "frontier_plot": inputs.frontier_plot,
        "finetuned_layer_si_plot": inputs.finetuned_layer_si_plot,
    }


def _wall_time(inputs: ReportInputs) -> pd.DataFrame:
    bench = read_benchmarks(inputs.benchmarks, [m.name for m in inputs.models])
    rows = [[r["job"], _num(r["seconds"], 1), _hms(r["seconds"]), _num(r["max_rss"], 1)]
            for _, r in bench.iterrows()]
    total = bench["seconds"].sum(min_count=1) if len(bench) else math.nan
    peak = bench["max_rss"].max() if len(bench) else math.nan
    rows.append(["**total**", _num(total, 1), _hms(total), _num(peak, 1)])
    return _frame(rows, ["job", "seconds", "h:m:s", "max RSS (MiB)"])


def _run_settings(inputs: ReportInputs, data: dict) -> pd.DataFrame:
    """The values the assumptions name, as this run resolved and used them: one row each."""
    cfg = inputs.config
    train, ls = cfg.get("train", {}), cfg.get("lr_search", {})
    head_cfg, comp_cfg, dcfg = cfg.get("head", {}), cfg.get("compress", {}), cfg.get("data", {})
    best = artifacts.read_json(inputs.lr_best)
    split = artifacts.read_json(inputs.split_summary)
    totals = split.get("totals", {})
    metrics = {m.name: artifacts.read_json(m.metrics) for m in inputs.models}
    full = train.get("epochs")

    def per_class(name: str) -> str:
        counts = list(split.get("per_class", {}).get(name, {}).values())
        if counts and min(counts) == max(counts):
            return f", {counts[0]:,} per class"
        if counts:
            return f", {min(counts):,} to {max(counts):,} per class"
        return ""

    def schedule(key: str, section: dict, label: str) -> str:
        m = metrics.get(key, {})
        epochs = section.get("epochs")
        lr_txt = (f"lr {_value(section['lr'])} (config {label}.lr)" if section.get("lr") is not None
                  else f"lr {best['lr']:g}, the search's choice ({label}.lr is null)")
        if section.get("step_size") is not None:
            step_txt = f"step {_value(section['step_size'])} (config {label}.step_size)"
        elif epochs and full:
            step_txt = (f"step {scaled_step(int(best['step_size']), int(epochs), int(full))}, the "
                        f"search's step {int(best['step_size'])} scaled by {epochs}/{full} "
                        f"({label}.step_size is null)")
        else:
            step_txt = f"the search's step scaled to {epochs} epochs ({label}.step_size is null)"
        used = (f"; the run used lr {_value(m.get('lr'))} and step {_value(m.get('step_size'))}"
                if m else "")
        return (f"{_value(epochs)} {_plural(epochs, 'epoch')}; {lr_txt}; {step_txt}{used}; "
                f"classifier hidden {_value(section.get('classifier_hidden'))}, dropout "
                f"{_value(section.get('dropout'))}")

    norm = (f"mean {_value([round(x, 4) for x in split['train_mean']])}, std "
            f"{_value([round(x, 4) for x in split['train_std']])}"
            if "train_mean" in split and "train_std" in split else "–")
    layer_metric = comp_cfg.get("layer_metric")
    rows = [
        ["data", f"source {data['source']}, image format {data['image_format']}",
         "`data.source`; prepare_data"],
        ["learning-rate grid", f"lr ∈ {_value(ls.get('lrs'))}, StepLR step ∈ "
         f"{_value(ls.get('step_sizes'))} epochs of the {_value(full)}-epoch schedule",
         "`lr_search.lrs`, `lr_search.step_sizes`"],
        ["trial length", f"{_value(ls.get('epochs'))} {_plural(ls.get('epochs'), 'epoch')}, "
         f"step scaled by {_value(ls.get('epochs'))}/{_value(full)} (rounded, at least 1)",
         "`lr_search.epochs`"],
        ["end-to-end (a)", f"{_value(full)} {_plural(full, 'epoch')} from random initial "
         f"weights; the search's lr {best['lr']:g} and step {int(best['step_size'])}",
         "`train.epochs`; the search"],
        ["frozen features (b)", schedule("head", head_cfg, "head"), "`head.*`"],
        ["compressed (c)", schedule("compressed", comp_cfg, "compress"), "`compress.*`"],
        ["optimiser", f"SGD, momentum {_value(train.get('momentum'))}, weight decay "
         f"{_value(train.get('weight_decay'))}, batch {_value(train.get('batch_size'))}, StepLR "
         f"factor {_value(train.get('gamma'))}", "`train.*`"],
        ["augmentation", "random crop with 4-px zero padding, horizontal flip"
         if train.get("augment") else "none", "`train.augment`"],
        ["classifier-only inputs", _classifier_inputs(cfg, metrics.get("head", {})),
         "`classifier_features.source`, `classifier_features.dtype`"],
        ["val", f"{_int(totals.get('val'))} of {_int(split.get('n_official_train'))} images "
         f"({_value(dcfg.get('val_fraction'))}){per_class('val')}", "`data.val_fraction`"],
        ["train", f"{_int(totals.get('train'))} images{per_class('train')}", "the rest of the official training set"],
        ["si_train", f"{_int(totals.get('si_train'))} images ({_value(dcfg.get('si_fraction'))} "
         f"× {_int(split.get('n_official_train'))}){per_class('si_train')}", "`data.si_fraction`"],
        ["si_test", f"{_int(totals.get('si_test'))} of {_int(split.get('n_official_test'))} "
         f"images ({_value(dcfg.get('si_test_fraction'))}){per_class('si_test')}",
         "`data.si_test_fraction`"],
        ["input normalisation", norm, "the train subset"],
        ["cut rule", f"{METRIC_NAMES.get(layer_metric, _value(layer_metric))} within "
         f"{_value(comp_cfg.get('layer_tolerance'))} of the best layer's",
         "`compress.layer_metric`, `compress.layer_tolerance`"],
        ["k rule", f"{_value(comp_cfg.get('feature_unit'))}s; SI within "
         f"{_value(comp_cfg.get('feature_tolerance'))} of the best on the curve; patience "
         f"{_value(comp_cfg.get('patience'), none='none')}; most features selected "
         f"{_value(comp_cfg.get('max_features'), none='no limit')}",
         "`compress.feature_unit`, `compress.feature_tolerance`, `compress.patience`, "
         "`compress.max_features`"],
    ]
    return _frame(rows, ["setting", "value", "config key or source"])


def _classifier_inputs(cfg: dict, head: dict) -> str:
    """What the classifier-only trainings read, as head's metrics say this run did."""
    feats = cfg.get("classifier_features", {})
    if head.get("inputs", "images") == "cached":
        return (f"the frozen extractor's outputs for the train and val images, computed once "
                f"per extractor and stored as {feats.get('dtype', '–')}; no crop or flip")
    return ("the images through the frozen extractor in every epoch, cropped and flipped as "
            "`train.augment` says")


def _layerwise(inputs: ReportInputs, table: pd.DataFrame) -> dict | None:
    """The layer-wise pruned network: kept channels per layer, the width's design, the result
    against e2e and (c), its selectors' controls and McNemar's tests."""
    if inputs.layerwise_pruned is None:
        return None
    pruned = artifacts.read_json(inputs.layerwise_pruned)
    layers = [[r["layer"], _int(r["before"]), _int(r["after"]), _reduction(r["before"], r["after"]),
               " x ".join(str(v) for v in r["map"]), _num(r["si_at_k"]), _num(r["best_si"]),
               _int(r["best_k"]), _num(r["seconds"], 1)] for r in pruned["layers"]]
    out = {"title": LAYERWISE_TITLE, "pruned": pruned, "kept_plot": inputs.layerwise_kept_plot,
           "layers": _frame(layers, ["layer", "channels before", "after", "removed", "map",
                                     "SI at kept", "best SI", "at", "ranking s"]),
           "width_plot": inputs.layerwise_width_plot,
           "layer_si_plot": inputs.layerwise_layer_si_plot}
    if inputs.layerwise_width is not None:
        w = artifacts.read_json(inputs.layerwise_width)
        rows = [[_int(r["width"]), _num(r["si"]), _num(r["center_si"]), _pct(r["val_acc"]),
                 _int(r["parameters"]), "**yes**" if r["width"] == w["width"] else ""]
                for r in w["widths"]]
        out["width"] = {"choice": w, "table": _frame(rows, ["width", "hidden SI",
                                                            "hidden Center SI", "val acc",
                                                            "params total", "chosen"])}
    if inputs.layerwise_metrics is not None:
        m = artifacts.read_json(inputs.layerwise_metrics)
        ft = (artifacts.read_json(inputs.layerwise_finetuned_metrics)
              if inputs.layerwise_finetuned_metrics is not None else None)
        rows_by = {r["model"]: r for _, r in table.iterrows()}
        e2e = rows_by.get("e2e")
        result = []
        for name, acc, params, macs in (
                [(n, rows_by[n]["test_acc"], rows_by[n]["params_total"], rows_by[n]["macs_total"])
                 for n in ("e2e", "compressed") if n in rows_by]
                + [("layerwise", m["test_acc"], m["parameters"]["total"], m["macs"]["total"])]
                + ([("layerwise, fine-tuned", ft["test_acc"], ft["parameters"]["total"],
                     ft["macs"]["total"])] if ft else [])):
            result.append([name, _pct(acc), "" if e2e is None or name == "e2e"
                           else _pp(acc - e2e["test_acc"]), _int(params),
                           "" if e2e is None or name == "e2e"
                           else _reduction(e2e["params_total"], params), _int(macs),
                           "" if e2e is None or name == "e2e"
                           else _reduction(e2e["macs_total"], macs)])
        out["result"] = _frame(result, ["model", "test acc", "Δ vs e2e", "params total",
                                        "params removed", "MACs total", "MACs removed"])
        if e2e is not None:
            out["goals"] = []
            for name, mm in (("classifier only", m), ("fine-tuned", ft)):
                if mm is None:
                    continue
                removed = 1 - mm["parameters"]["total"] / e2e["params_total"]
                loss = e2e["test_acc"] - mm["test_acc"]
                out["goals"].append({"name": name, "removed": removed, "loss": loss,
                                     "goal": LAYERWISE_GOAL,
                                     "met": removed >= LAYERWISE_GOAL and loss <= 0.01})
    if inputs.layerwise_recipes is not None:
        e2e = {r["model"]: r for _, r in table.iterrows()}.get("e2e")
        out["recipes"] = _layerwise_recipes(inputs.layerwise_recipes, inputs.layerwise_mcnemar,
                                            inputs.latency_csv,
                                            None if e2e is None else float(e2e["test_acc"]))
    return out


LAYERWISE_RECIPES = {"classifier only": "frozen pruned extractor, a new classifier",
                     "fine-tuned": "the classifier-only network, then every layer trained",
                     "from scratch": "the pruned architecture from random weights, e2e schedule"}


def _layerwise_recipes(recipes_csv: Path, mcnemar_csv: Path | None, latency_csv: Path | None,
                       e2e_acc: float | None) -> dict:
    """The layer-wise section's first table, recipe x selector: test accuracy mean ± sd over
    repeats and every repeat, cost, budget, McNemar against e2e (Holm-adjusted over every
    run of the table); and the sentences the numbers allow ("better" only outside the
    spread: the difference of means larger than the larger sd, with two repeats or more)."""
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
            latency = (f"{_seconds(hit['seconds_per_image'].iloc[0])} "
                       f"(batch {int(hit['batch_size'].iloc[0])})")
    rows, stats = [], {}
    for recipe in [r for r in LAYERWISE_RECIPES if r in set(runs["recipe"])]:
        part_r = runs[runs["recipe"] == recipe]
        for sel in _selector_order(part_r["selector"]):
            g = part_r[part_r["selector"] == sel].sort_values("repeat")
            mean, sd = mean_sd(g["test_acc"])
            stats[(recipe, sel)] = {"mean": mean, "sd": sd, "n": len(g)}
            ps = [holm_p.get((recipe, sel, int(rep))) for rep in g["repeat"]]
            rows.append([recipe, sel, _int(len(g)), _acc_sd(mean, sd),
                         ", ".join(_pct(a) for a in g["test_acc"]),
                         "" if e2e_acc is None else _pp(mean - e2e_acc),
                         _int(g["params_total"].iloc[0]), _int(g["macs_total"].iloc[0]), latency,
                         ", ".join(sorted({str(int(e)) for e in g["epochs"]})),
                         ", ".join(sorted({_int(e) for e in g["images_seen"]})),
                         ", ".join("–" if p is None else _p_value(p) for p in ps)])
    sentences = []

    def compare(a: tuple, b: tuple, what: str) -> None:
        if a not in stats or b not in stats:
            return
        x, y = stats[a], stats[b]
        delta = x["mean"] - y["mean"]
        text = (f"{what}: {_pp(delta)} ({_acc_sd(x['mean'], x['sd'])} against "
                f"{_acc_sd(y['mean'], y['sd'])})")
        if min(x["n"], y["n"]) < 2:
            text += "; one repeat gives no spread to read the difference against."
        elif abs(delta) <= max(x["sd"], y["sd"]):
            text += f"; within the spread (the larger sd is {100 * max(x['sd'], y['sd']):.2f} pp)."
        else:
            text += (f"; {'better' if delta > 0 else 'worse'}, outside the spread (the larger sd "
                     f"is {100 * max(x['sd'], y['sd']):.2f} pp, {min(x['n'], y['n'])} repeats).")
        sentences.append(text)

    for recipe in ("classifier only", "fine-tuned"):
        for other in ("l1", "random"):
            compare((recipe, "si"), (recipe, other), f"{recipe}, SI's channels minus {other}'s")
    compare(("fine-tuned", "si"), ("from scratch", "architecture"),
            "SI's pruned network fine-tuned minus the same architecture from scratch")
    compare(("fine-tuned", "si"), ("classifier only", "si"),
            "SI's pruned network fine-tuned minus classifier only")
    return {"table": _frame(rows, ["recipe", "selector", "repeats", "test acc mean ± sd",
                                   "each repeat", "Δ mean vs e2e", "params total", "MACs total",
                                   "latency", "epochs", "images seen",
                                   "McNemar vs e2e, p (Holm)"]),
            "sentences": sentences, "recipes": LAYERWISE_RECIPES,
            "family": len(holm_p), "stats": stats}


def report_context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    """Everything report.md.j2 shows, computed from the artefacts; `table` is summary_table's."""
    cfg = inputs.config
    rows = {r["model"]: r for _, r in table.iterrows()}
    data = _data_context(inputs)
    return {
        "cfg": cfg,
        "data": data,
        "summary": _summary_cells(table),
        "search": _search(inputs),
        "models": [_model(m, rows[m.name]) for m in inputs.models],
        "compression": _compression(inputs, table),
        "controls": _controls(inputs, table),
        "layerwise": _layerwise(inputs, table),
        "wall_time": _wall_time(inputs),
        "run_settings": _run_settings(inputs, data),
    }


# ----------------------------------------------------------------------------------------
# Rendering


class _Numbers:
    """Running numbers of the tables and figures, in the order the template shows them."""

    def __init__(self):
        self.tables = self.figures = 0

    def table(self) -> int:
        self.tables += 1
        return self.tables

    def figure(self) -> int:
        self.figures += 1
        return self.figures


def environment(base: str | Path | None = None) -> jinja2.Environment:
    """The Jinja2 environment of the report's templates; image links relative to `base`."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)

    def link(path) -> str:
        rel = Path(os.path.relpath(Path(path).resolve(), Path(base or ".").resolve())).as_posix()
        return f"<{rel}>" if re.search(r"[\s()<>]", rel) else rel

    env.filters.update(pct=_pct, pp=_pp, num=_num, count=_int, value=_value, plural=_plural,
                       p_value=_p_value,
                       md_table=md_table, link=link,
                       oneline=lambda text: " ".join(str(text).split()))
    return env


def render_report(inputs: ReportInputs, table: pd.DataFrame, base: str | Path) -> str:
    """report.md's text: the template filled from the artefacts."""
    text = environment(base).get_template("report.md.j2").render(
        **report_context(inputs, table), number=_Numbers(), titles=MODEL_TITLES)
    # the template's blocks leave blank lines where a section has nothing: one at most
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


# ----------------------------------------------------------------------------------------
# Entry point


def write_report(inputs: ReportInputs, *, out_md: str | Path, out_csv: str | Path) -> None:
    """Write report.md (Markdown with relative image links) and summary.csv, atomically."""
    out_md, out_csv = Path(out_md), Path(out_csv)
    table = summary_table(inputs)
    text = render_report(inputs, table, out_md.parent)
    with artifacts.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with artifacts.atomic_path(out_md) as tmp:
        tmp.write_text(text)
