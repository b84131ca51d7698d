"""The study's report: one Markdown file with every table and figure the study must hand in,
and one CSV with a row per trained model.

Everything is read from the artefacts of the workflow (metrics, histories, SI tables,
decisions, checkpoints, Snakemake benchmark files); no number is written here by hand.
Figures are embedded as image links relative to the report's folder, so the report renders
when opened where it is written (e.g. results/report/report.md).

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
from typing import Any, Iterable, Sequence

import pandas as pd
import torch

from . import artifacts
from .model import build_model, load_checkpoint, parameter_counts
from .pruning import macs_per_image
from .training import scaled_step

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

# Order of the Snakemake rules in the workflow, for the wall-time table; others come last.
WORKFLOW_ORDER = [
    "prepare_data", "split", "lr_trial", "select_lr", "train_e2e", "train_head", "layer_si",
    "plot_layer_si", "cut_layers", "select_features", "train_compressed",
]

JPEG_CAVEAT = (
    "JPEG compression changes the pixels slightly versus the canonical PNG/pickle release "
    "of CIFAR-10, so the accuracies here are not strictly comparable with published ones."
)
ELEMENT_NOTE = (
    "With unit \"element\" the conv layers do not shrink: only the classifier input is "
    "selected. The feature-extractor parameters and MACs of the compressed model are "
    "therefore those of the kept prefix (the layers up to the cut), unchanged."
)
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


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str) -> list[str]:
    """Aligned Markdown table; `align` holds one of "l", "r" per column."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows] + [3]) for i, h in enumerate(headers)]

    def line(cells):
        return "| " + " | ".join(
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align)
        ) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else ("-" * w)
                            for w, a in zip(widths, align)) + " |"
    return [line(headers), sep] + [line(r) for r in rows]


class _Doc:
    """Markdown lines with numbered tables and figures, image links relative to `base`."""

    def __init__(self, base: Path):
        self.base = base
        self.lines: list[str] = []
        self.n_tables = 0
        self.n_figures = 0

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def para(self, text: str) -> None:
        self.lines += [text, ""]

    def heading(self, text: str, level: int = 2) -> None:
        self.lines += ["#" * level + " " + text, ""]

    def table(self, title: str, headers, rows, align: str) -> None:
        self.n_tables += 1
        self.lines += [f"**Table {self.n_tables}: {title}**", ""]
        self.lines += _md_table(headers, rows, align) + [""]

    def figure(self, path: Path, caption: str) -> None:
        self.n_figures += 1
        rel = Path(os.path.relpath(Path(path).resolve(), self.base.resolve())).as_posix()
        if re.search(r"[\s()<>]", rel):
            rel = f"<{rel}>"
        self.lines += [f"![Figure {self.n_figures}]({rel})", "",
                       f"*Figure {self.n_figures}: {caption}*", ""]

    def text(self) -> str:
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n"


# ----------------------------------------------------------------------------------------
# Data source


def _data_path(config: dict) -> str | None:
    data = config.get("data", {})
    path = data.get("path")
    if data.get("source") == "folder" and not path:
        path = os.environ.get("CIFAR10_JPEG") or "$CIFAR10_JPEG"
    return path


def is_jpeg_source(config: dict) -> bool:
    """True when the data come from a folder or archive that is a JPEG copy of CIFAR-10: the
    path ends in .tar.gz / .tgz or contains "jpeg" (an empty path means $CIFAR10_JPEG)."""
    if config.get("data", {}).get("source") != "folder":
        return False
    path = str(_data_path(config) or "").lower()
    return path.endswith((".tar.gz", ".tgz")) or "jpeg" in path


def _source_sentence(config: dict) -> str:
    source = config.get("data", {}).get("source")
    if source == "torchvision":
        return "The data are the canonical CIFAR-10 release, read with torchvision."
    if source == "folder":
        name = Path(str(_data_path(config))).name
        if is_jpeg_source(config):
            return f"The data are a JPEG copy of CIFAR-10 (`{name}`). {JPEG_CAVEAT}"
        return f"The data are CIFAR-10 read from the folder or archive `{name}`."
    if source == "synthetic":
        return ("The data are synthetic images (a test setting): the accuracies say nothing "
                "about CIFAR-10.")
    return f"The data source is `{source}`."


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


# ----------------------------------------------------------------------------------------
# Sections


def _intro(doc: _Doc, inputs: ReportInputs) -> None:
    cfg = inputs.config
    doc.heading("Compressing VGG16 on CIFAR-10 with the Separation Index", level=1)
    width = cfg.get("model", {}).get("width")
    epochs = cfg.get("train", {}).get("epochs")
    doc.para(
        f"{_source_sentence(cfg)} The network is VGG16 with batch norm at width "
        f"{_value(width)} (multiplier of every conv channel count). End-to-end training ran "
        f"{_value(epochs)} {_plural(epochs, 'epoch')}. The seed of the split, initial weights, "
        f"batch order and augmentation is {_value(cfg.get('seed'))}. Part (a) trains the "
        "network end to end, part (b) trains a new classifier on its frozen features, and "
        "part (c) cuts the "
        "layers and features that add no separation and trains a small classifier on the rest."
    )


def _summary(doc: _Doc, table: pd.DataFrame) -> None:
    doc.heading("Summary")
    rows = []
    for _, r in table.iterrows():
        rows.append([r["model"], _pct(r["test_acc"]), _pct(r["val_acc"]), _int(r["best_epoch"]),
                     _int(r["epochs_run"]), _int(r["params_features"]),
                     _int(r["params_classifier"]), _int(r["params_total"]),
                     _int(r["macs_features"]), _int(r["macs_classifier"]), _int(r["macs_total"]),
                     _pp(r["test_acc_change_vs_e2e"]), _pp(r["test_acc_change_vs_head"]),
                     _num(r["train_seconds"], 1)])
    doc.table(
        "Summary of the trained models (search: the chosen trial; test accuracy of the best "
        "epoch by validation accuracy; MACs per image; changes in percentage points)",
        ["model", "test acc", "val acc", "best epoch", "epochs run", "params features",
         "params classifier", "params total", "MACs features", "MACs classifier", "MACs total",
         "Δ test vs e2e", "Δ test vs head", "train s"],
        rows, "l" + "r" * 13,
    )
    doc.para("The same table, with accuracies as fractions, is in `summary.csv` beside this file.")


def _trial_name(path: Path) -> tuple[str, str]:
    lr = next((p.split("~", 1)[1] for p in path.parts if p.startswith("lr~")), "?")
    step = next((p.split("~", 1)[1] for p in path.parts if p.startswith("step~")), "?")
    return lr, step


def _search(doc: _Doc, inputs: ReportInputs) -> None:
    cfg = inputs.config
    doc.heading("Learning-rate search")
    grid = pd.read_csv(inputs.lr_summary)
    best = artifacts.read_json(inputs.lr_best)
    ls = cfg.get("lr_search", {})
    full = cfg.get("train", {}).get("epochs")
    doc.para(
        f"A grid of {len(grid)} short runs of {_value(ls.get('epochs'))} "
        f"{_plural(ls.get('epochs'), 'epoch')} each. The step is given in epochs of the full "
        f"{_value(full)}-epoch schedule and scaled by {_value(ls.get('epochs'))}/{_value(full)} "
        "in each trial (the trial step)."
    )
    grid = grid.sort_values(["lr", "step_size"], ascending=[False, True])
    rows = [[f"{r['lr']:g}", _int(r["step_size"]), _int(r.get("trial_step")),
             _pct(r["val_acc"]), "yes" if _truthy(r["diverged"]) else "no",
             "**yes**" if _truthy(r.get("chosen", False)) else ""]
            for _, r in grid.iterrows()]
    doc.table("Learning-rate search: validation accuracy of each trial's best epoch",
              ["lr", "step", "trial step", "val acc", "diverged", "chosen"], rows, "rrrrll")
    n_div = best.get("n_diverged", int(grid["diverged"].map(_truthy).sum()))
    doc.para(
        f"Chosen: initial lr **{best['lr']:g}**, StepLR step **{int(best['step_size'])}** epochs "
        f"(validation accuracy {_pct(best['val_acc'])}), decided on validation accuracy only. "
        f"{n_div} of {best.get('n_trials', len(grid))} trials diverged."
    )
    doc.figure(inputs.lr_heatmap, "validation accuracy of every (lr, step) trial of the search; "
                                  "the chosen one is framed.")
    for path in inputs.trial_curves:
        lr, step = _trial_name(Path(path))
        doc.figure(path, f"search trial lr {lr}, step {step}: accuracy and loss of train and "
                         "validation data per epoch.")


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


def _layer_si_rows(path: Path) -> list[list[str]]:
    table = pd.read_csv(path)
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
    return rows


def _model_section(doc: _Doc, m: ModelArtefacts, row: pd.Series) -> None:
    title = MODEL_TITLES.get(m.name, m.name)
    doc.heading(title)
    metrics = artifacts.read_json(m.metrics)
    history = pd.read_csv(m.history)
    text = (f"{_int(metrics['epochs_run'])} {_plural(metrics['epochs_run'], 'epoch')} run "
            f"({len(history)} in the history), initial lr {_value(metrics.get('lr'))}, "
            f"StepLR step {_value(metrics.get('step_size'))}. "
            f"Best epoch by validation accuracy: **{int(metrics['best_epoch'])}** (validation "
            f"accuracy {_pct(metrics['val_acc'])}). Test accuracy of the best model: "
            f"**{_pct(metrics['test_acc'])}** (test loss {_num(metrics.get('test_loss'))}).")
    if m.name == "search":
        text = (f"The model of the chosen trial of the search "
                f"(lr {_value(metrics.get('grid_lr'))}, step {_value(metrics.get('grid_step'))} "
                f"of the full schedule, "
                f"{_value(metrics.get('trial_step'))} in the trial): its best epoch, tested and "
                f"measured like every other model. " + text)
    if m.name != "e2e":
        text += (f" Change in test accuracy versus e2e: {_pp(row['test_acc_change_vs_e2e'])}.")
    doc.para(text)
    doc.figure(m.curves, f"{title}: accuracy and loss of train (augmented) and validation data "
                         f"per epoch; best epoch {int(metrics['best_epoch'])}.")
    doc.figure(m.layer_si_plot, f"{title}: Center SI and SI per layer of the best model, on the "
                                "SI subsets of training (si_train) and test (si_test) data.")
    doc.table(f"{title}: SI and Center SI per layer of the best model (train = si_train, "
              "test = si_test)",
              ["#", "layer", "kind", "features", "SI train", "SI test", "CSI train", "CSI test"],
              _layer_si_rows(m.layer_si), "rllrrrrr")


def _compression(doc: _Doc, inputs: ReportInputs, table: pd.DataFrame) -> None:
    doc.heading("Compression")
    cut = artifacts.read_json(inputs.cut)
    sel = artifacts.read_json(inputs.selected)
    by_model = {r["model"]: r for _, r in table.iterrows()}

    doc.heading("Cut of the feature extractor", level=3)
    metric = METRIC_NAMES.get(cut["metric"], cut["metric"])
    doc.para(
        f"The extractor is cut after **{cut['layer']}** (layer {cut['layer_index']}), whose "
        f"{metric} is {_num(cut['value'])}. The best layer is {cut['best_layer']} "
        f"(layer {cut['best_layer_index']}) with {metric} {_num(cut['best_value'])}. "
        f"Rule: the shortest prefix whose {metric} is within {_value(cut['tolerance'])} "
        f"of the best layer's. Metric: `{cut['metric']}`; tolerance: {_value(cut['tolerance'])}; "
        f"decided on si_train rows only (split = {cut.get('split', 'train')})."
    )
    doc.figure(inputs.cut_plot, f"{metric} per layer of the e2e model on the training SI "
                                f"subset, with the cut after {cut['layer']}.")

    doc.heading("Feature selection", level=3)
    unit = sel["unit"]
    shape = sel.get("shape") or []
    doc.para(
        f"Forward selection of {unit}s at {sel['cut_layer']} (output shape "
        f"{' × '.join(str(s) for s in shape)}), on {_int(sel['n_samples'])} training samples: "
        f"{_int(sel['n_candidates'])} candidates, {_int(sel['steps'])} selection steps. "
        f"Kept k = **{_int(sel['k'])}** {unit}s with SI {_num(sel['si_at_k'])} and Center SI "
        f"{_num(sel['center_si_at_k'])}. The best SI on the curve is {_num(sel['best_si'])} at "
        f"k = {_int(sel['best_k'])}; all {_int(sel['n_candidates'])} candidates together give SI "
        f"{_num(sel['si_all'])} (Center SI {_num(sel['center_si_all'])}). Rule: the smallest k "
        f"whose SI is within {_value(sel['tolerance'])} of the best on the curve. Patience: "
        f"{_value(sel.get('patience'), none='none')}. The selection stopped: "
        f"{sel.get('stopped', '–')}."
    )
    doc.figure(inputs.feature_si_plot, f"SI of the training SI subset against the number of "
                                       f"selected {unit}s at {sel['cut_layer']}; k = {sel['k']} "
                                       "kept.")
    ranking = pd.read_csv(inputs.ranking).sort_values("step")
    head = ranking.head(RANKING_ROWS)
    hw = int(shape[1]) * int(shape[2]) if len(shape) == 3 else None
    headers = ["step", unit, "SI", "Center SI", "kept"]
    align = "rrrrl"
    if unit == "element" and hw:
        headers.insert(2, "(c, y, x)")
        align = "rrlrrl"
    rows = []
    for _, r in head.iterrows():
        f = int(r["feature"])
        row = [_int(r["step"]), str(f), _num(r["si"]), _num(r["center_si"]),
               "yes" if int(r["step"]) <= int(sel["k"]) else "no"]
        if unit == "element" and hw:
            row.insert(2, f"({f // hw}, {f % hw // int(shape[2])}, {f % int(shape[2])})")
        rows.append(row)
    doc.table(f"First {len(head)} of {len(ranking)} steps of the forward selection (SI after "
              "adding the feature)", headers, rows, align)

    doc.heading("Size, cost and accuracy before and after", level=3)
    if unit == "element":
        doc.para(ELEMENT_NOTE)
    e2e, comp = by_model.get("e2e"), by_model.get("compressed")
    if e2e is not None and comp is not None:
        rows = [[part, _int(e2e[f"params_{part}"]), _int(comp[f"params_{part}"]),
                 _reduction(e2e[f"params_{part}"], comp[f"params_{part}"])]
                for part in ("features", "classifier", "total")]
        doc.table("Parameters before (e2e) and after compression",
                  ["part", "before (e2e)", "after (compressed)", "reduction"], rows, "lrrr")
        rows = [[part, _int(e2e[f"macs_{part}"]), _int(comp[f"macs_{part}"]),
                 _reduction(e2e[f"macs_{part}"], comp[f"macs_{part}"])]
                for part in ("features", "classifier", "total")]
        doc.table("Multiply-accumulates per image before (e2e) and after compression",
                  ["part", "before (e2e)", "after (compressed)", "reduction"], rows, "lrrr")
    rows = []
    for name in ("e2e", "head", "compressed"):
        r = by_model.get(name)
        if r is None:
            continue
        rows.append([name, _pct(r["test_acc"]),
                     "" if name == "e2e" else _pp(r["test_acc_change_vs_e2e"]),
                     "" if name in ("e2e", "head") else _pp(r["test_acc_change_vs_head"])])
    doc.table("Test accuracy before (e2e, head) and after compression",
              ["model", "test acc", "change vs e2e", "change vs head"], rows, "lrrr")
    if comp is not None:
        compression = artifacts.read_json(
            next(m.metrics for m in inputs.models if m.name == "compressed")).get("compression", {})
        if compression:
            same = (compression.get("cut_layer") == sel["cut_layer"]
                    and compression.get("unit") == unit and compression.get("k") == sel["k"])
            doc.para(f"The compressed model's metrics record cut layer "
                     f"{compression.get('cut_layer')}, unit {compression.get('unit')}, "
                     f"k = {compression.get('k')}"
                     + (": the decisions above." if same
                        else ": **this differs from the decisions above**."))


def _wall_time(doc: _Doc, inputs: ReportInputs) -> None:
    doc.heading("Wall time per job")
    bench = read_benchmarks(inputs.benchmarks, [m.name for m in inputs.models])
    rows = [[r["job"], _num(r["seconds"], 1), _hms(r["seconds"]), _num(r["max_rss"], 1)]
            for _, r in bench.iterrows()]
    total = bench["seconds"].sum(min_count=1) if len(bench) else math.nan
    peak = bench["max_rss"].max() if len(bench) else math.nan
    rows.append(["**total**", _num(total, 1), _hms(total), _num(peak, 1)])
    doc.table("Wall time per job, from the Snakemake benchmark files (the total is the sum over "
              "jobs, not the elapsed time when jobs ran in parallel; its RSS is the largest job's)",
              ["job", "seconds", "h:m:s", "max RSS (MiB)"], rows, "lrrr")


def _assumptions(doc: _Doc, inputs: ReportInputs) -> None:
    cfg = inputs.config
    doc.heading("Assumptions")
    train, ls = cfg.get("train", {}), cfg.get("lr_search", {})
    head_cfg, comp_cfg = cfg.get("head", {}), cfg.get("compress", {})
    data = cfg.get("data", {})
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
        used = (f" The run used lr {_value(m.get('lr'))} and step {_value(m.get('step_size'))}."
                if m else "")
        return f"{_value(epochs)} {_plural(epochs, 'epoch')}; {lr_txt}; {step_txt}.{used}"

    items = [
        f"Learning-rate search: a grid over lr ∈ {_value(ls.get('lrs'))} and StepLR step ∈ "
        f"{_value(ls.get('step_sizes'))} epochs of the {_value(full)}-epoch schedule. Each trial "
        f"runs {_value(ls.get('epochs'))} {_plural(ls.get('epochs'), 'epoch')} with its step "
        f"scaled by {_value(ls.get('epochs'))}/{_value(full)} (rounded, at least 1). The trial "
        "with the highest validation accuracy of its best epoch wins; the trials' test "
        "accuracies are "
        "recorded but never used.",
        f"End-to-end training (a): {_value(full)} {_plural(full, 'epoch')} from random initial "
        f"weights with the search's lr {best['lr']:g} and step {int(best['step_size'])}.",
        f"Frozen features (b): {schedule('head', head_cfg, 'head')} Only the new classifier "
        f"(hidden {_value(head_cfg.get('classifier_hidden'))}, dropout "
        f"{_value(head_cfg.get('dropout'))}) is trained.",
        f"Compressed model (c): {schedule('compressed', comp_cfg, 'compress')} Only the new "
        f"classifier (hidden {_value(comp_cfg.get('classifier_hidden'))}, dropout "
        f"{_value(comp_cfg.get('dropout'))}) is trained; the kept extractor is frozen.",
        f"Every training: SGD with momentum {_value(train.get('momentum'))}, weight decay "
        f"{_value(train.get('weight_decay'))}, cross-entropy, batch {_value(train.get('batch_size'))}, "
        f"StepLR with factor {_value(train.get('gamma'))}"
        + (", augmentation by random crop with 4-px zero padding and horizontal flip"
           if train.get("augment") else ", no augmentation")
        + ". The weights of the epoch with the best validation accuracy are kept.",
        f"Validation: {_value(data.get('val_fraction'))} of the official training set "
        f"({_int(totals.get('val'))} of {_int(split.get('n_official_train'))} images"
        f"{per_class('val')}), class-balanced and taken out of it. Train: the rest "
        f"({_int(totals.get('train'))} images{per_class('train')}). No image is left unused.",
        f"\"10% of the data\" for SI: si_train = {_value(data.get('si_fraction'))} × the size of "
        f"the official training set, drawn from train, class-balanced "
        f"({_int(totals.get('si_train'))} images{per_class('si_train')}); si_test = "
        f"{_value(data.get('si_test_fraction'))} of the official test set, class-balanced "
        f"({_int(totals.get('si_test'))} of {_int(split.get('n_official_test'))} images"
        f"{per_class('si_test')}).",
        "SI is computed on each layer's whole output (C×H×W flattened, after the ReLU for "
        "convs), no pooling added, with exact all-pairs Euclidean distances (never sampled); "
        "a tie between nearest neighbours goes to the lowest index. Center SI uses the class "
        "means of the same samples.",
        f"Cut rule: the shortest prefix of the extractor whose "
        f"{METRIC_NAMES.get(comp_cfg.get('layer_metric'), _value(comp_cfg.get('layer_metric')))} "
        f"on si_train is within {_value(comp_cfg.get('layer_tolerance'))} of the best layer's.",
        f"k rule: forward selection of {_value(comp_cfg.get('feature_unit'))}s at the cut layer "
        "on si_train (add, one at a time, the feature that raises SI most); k is the smallest "
        f"count whose SI is within {_value(comp_cfg.get('feature_tolerance'))} of the best on "
        f"the curve (patience: {_value(comp_cfg.get('patience'), none='none')}; most features "
        f"selected: {_value(comp_cfg.get('max_features'), none='no limit')}).",
        "Every decision of the compression (cut and k) rests on the training SI subset only; "
        "SI on si_test is reported, never used.",
        "Input normalisation: per-channel mean and standard deviation of the train subset"
        + (f" (mean {_value([round(x, 4) for x in split['train_mean']])}, std "
           f"{_value([round(x, 4) for x in split['train_std']])})"
           if "train_mean" in split and "train_std" in split else "") + ".",
        "The official test set is used only to test each best model (and for the SI reported "
        "on si_test); it takes part in no decision. Images are never resized (32×32×3).",
        "MACs per image count the multiply-accumulates of the convs and Linear layers only; "
        "biases, BatchNorm, ReLU, pooling, normalisation and the index selection of the "
        "classifier input are not counted. Parameter counts are those of the modules "
        "(weights, biases, BatchNorm affine), without BatchNorm running statistics.",
    ]
    if is_jpeg_source(cfg):
        items.append(JPEG_CAVEAT)
    doc.add(*[f"- {item}" for item in items], "")


# ----------------------------------------------------------------------------------------
# Entry point


def write_report(inputs: ReportInputs, *, out_md: str | Path, out_csv: str | Path) -> None:
    """Write report.md (Markdown with relative image links) and summary.csv, atomically."""
    out_md, out_csv = Path(out_md), Path(out_csv)
    table = summary_table(inputs)
    doc = _Doc(out_md.parent)
    _intro(doc, inputs)
    _summary(doc, table)
    _search(doc, inputs)
    rows = {r["model"]: r for _, r in table.iterrows()}
    for m in inputs.models:
        _model_section(doc, m, rows[m.name])
    _compression(doc, inputs, table)
    _wall_time(doc, inputs)
    _assumptions(doc, inputs)
    with artifacts.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with artifacts.atomic_path(out_md) as tmp:
        tmp.write_text(doc.text())
