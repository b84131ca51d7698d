"""Wall time and memory of every job, from the Snakemake benchmark files."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from .cells import frame, hms, num
from .inputs import ReportInputs
from .names import WORKFLOW_ORDER

NAME = "wall_time"  # the section's template: templates/wall_time.md.j2
TITLE = "Wall time per job"


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE]


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


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    """The table: one row per job, and the total."""
    bench = read_benchmarks(inputs.benchmarks, [m.name for m in inputs.models])
    rows = [[r["job"], num(r["seconds"], 1), hms(r["seconds"]), num(r["max_rss"], 1)]
            for _, r in bench.iterrows()]
    total = bench["seconds"].sum(min_count=1) if len(bench) else math.nan
    peak = bench["max_rss"].max() if len(bench) else math.nan
    rows.append(["**total**", num(total, 1), hms(total), num(peak, 1)])
    return {"title": TITLE, "table": frame(rows, ["job", "seconds", "h:m:s", "max RSS (MiB)"])}
