"""The learning-rate search: every trial of the grid, the choice, the heatmap and each trial's
curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import artifacts
from .cells import count, frame, pct, truthy
from .inputs import ReportInputs

NAME = "search"  # the section's template: templates/search.md.j2
TITLE = "Learning-rate search"


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE]


def trial_name(path: Path) -> tuple[str, str]:
    """(lr, step) of a trial's file, from its folders lr~{lr}/step~{step}."""
    lr = next((p.split("~", 1)[1] for p in path.parts if p.startswith("lr~")), "?")
    step = next((p.split("~", 1)[1] for p in path.parts if p.startswith("step~")), "?")
    return lr, step


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    grid = pd.read_csv(inputs.lr_summary)
    best = artifacts.read_json(inputs.lr_best)
    shown = grid.sort_values(["lr", "step_size"], ascending=[False, True])
    rows = [[f"{r['lr']:g}", count(r["step_size"]), count(r.get("trial_step")),
             pct(r["val_acc"]), "yes" if truthy(r["diverged"]) else "no",
             "**yes**" if truthy(r.get("chosen", False)) else ""]
            for _, r in shown.iterrows()]
    trials = []
    for path in inputs.trial_curves:
        lr, step = trial_name(Path(path))
        trials.append({"curves": path, "lr": lr, "step": step})
    return {
        "title": TITLE,
        "n_trials_run": len(grid),
        "table": frame(rows, ["lr", "step", "trial step", "val acc", "diverged", "chosen"]),
        "best": best,
        "n_diverged": best.get("n_diverged", int(grid["diverged"].map(truthy).sum())),
        "n_trials": best.get("n_trials", len(grid)),
        "heatmap": inputs.lr_heatmap,
        "trials": trials,
    }
