"""Every verdict of a finished run, read three ways, side by side: the report's earlier rule
(|Δ mean| larger than the larger of the two sample sds) on the first 3 repeats, the paired
95% interval on the same 3 repeats, and the interval on all the run's repeats. Also the sd of
the per-seed differences and the half-width the interval would have at other n (the smallest
difference those repeats could tell from 0, at that sd): what the default repeats are chosen
from.

    python benchmarks/verdicts.py RUN_FOLDER [--first 3] [--n 3 5 8 10 15]

RUN_FOLDER is the folder a study ran in (it holds results/controls/selectors.csv, frontier.csv
and, with layer-wise pruning, results/layerwise/recipes.csv). Accuracies in percentage points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sicompress.stats import detectable, paired_interval


def old_rule(a: np.ndarray, b: np.ndarray) -> str:
    """The report's reading before the intervals: outside the larger sd, or within it."""
    if min(len(a), len(b)) < 2:
        return "one repeat"
    larger = max(a.std(ddof=1), b.std(ddof=1))
    delta = a.mean() - b.mean()
    return ("beats" if delta > 0 else "loses") if abs(delta) > larger else "within the spread"


def new_rule(a: np.ndarray, b: np.ndarray) -> tuple[str, dict]:
    iv = paired_interval(a, b)
    if iv["n"] < 2:
        return "one repeat", iv
    if iv["lo"] > 0:
        return "beats", iv
    if iv["hi"] < 0:
        return "loses", iv
    return "no difference detected", iv


def pairs(folder: Path) -> list[tuple[str, pd.Series, pd.Series]]:
    """(what, a by seed, b by seed) of every comparison the report reads."""
    out = []
    r = folder / "results"
    sel = pd.read_csv(r / "controls/selectors.csv")
    by = {s: g.set_index("seed")["test_acc"] for s, g in sel.groupby("selector")}
    for other in ("l1", "random"):
        if "si" in by and other in by:
            out.append((f"(c) chosen k: SI - {other}", by["si"], by[other]))
    fr = pd.read_csv(r / "controls/frontier.csv")
    for (frac, k), g in fr.groupby(["fraction", "k"]):
        by = {s: gg.set_index("seed")["test_acc"] for s, gg in g.groupby("selector")}
        for other in ("l1", "random"):
            if "si" in by and other in by:
                out.append((f"(c) frontier k = {k}: SI - {other}", by["si"], by[other]))
    recipes = r / "layerwise/recipes.csv"
    if recipes.exists():
        rc = pd.read_csv(recipes)
        by = {(rr, s): g.set_index("seed")["test_acc"] for (rr, s), g in rc.groupby(["recipe", "selector"])}
        for recipe in ("classifier only", "fine-tuned"):
            for other in ("l1", "random"):
                if (recipe, "si") in by and (recipe, other) in by:
                    out.append((f"layer-wise {recipe}: SI - {other}", by[(recipe, "si")],
                                by[(recipe, other)]))
        if ("fine-tuned", "si") in by and ("from scratch", "architecture") in by:
            out.append(("layer-wise: SI fine-tuned - from scratch", by[("fine-tuned", "si")],
                        by[("from scratch", "architecture")]))
        if ("fine-tuned", "si") in by and ("classifier only", "si") in by:
            out.append(("layer-wise: SI fine-tuned - classifier only", by[("fine-tuned", "si")],
                        by[("classifier only", "si")]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--first", type=int, default=3, help="repeats the old rule read")
    ap.add_argument("--n", type=int, nargs="+", default=[3, 5, 8, 10, 15])
    args = ap.parse_args()
    head = (f"| comparison | n | old rule, first {args.first} | interval, first {args.first} "
            f"| Δ mean, all (pp) | 95% interval, all (pp) | reading, all | sd of d (pp) | "
            + " | ".join(f"±half-width at n = {n}" for n in args.n) + " |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for what, a, b in pairs(args.folder):
        seeds = sorted(set(a.index) & set(b.index))
        x, y = a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)
        first = seeds[:args.first]
        xo, yo = a.loc[first].to_numpy(float), b.loc[first].to_numpy(float)
        reading_first, _ = new_rule(xo, yo)
        reading_all, iv = new_rule(x, y)
        sd = float(np.std(x - y, ddof=1)) if len(x) > 1 else float("nan")
        cells = [what, str(len(seeds)), old_rule(xo, yo), reading_first,
                 f"{100 * iv['delta']:+.2f}",
                 f"[{100 * iv['lo']:+.2f}, {100 * iv['hi']:+.2f}]" if len(x) > 1 else "–",
                 reading_all, f"{100 * sd:.2f}"]
        cells += [f"{100 * detectable(sd, n):.2f}" for n in args.n]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
