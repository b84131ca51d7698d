"""Learning-rate search: a grid of short runs over (initial lr, StepLR step), decided on
validation accuracy only.

Step sizes are given in epochs of the full schedule (`train.epochs`); a trial of
`lr_search.epochs` epochs uses the step scaled by `lr_search.epochs / train.epochs`, so that
each trial sees the same shape of schedule as the full run, compressed in time.

Every trial keeps its best epoch's model; the chosen trial's model, history, metrics and
curves are copied to one folder (results/search/), so that the search's best model is tested,
measured layer by layer and reported like every other training.
"""

from __future__ import annotations

import math
from dataclasses import replace
import shutil
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch

from . import artifacts, figures
from .trainings import Training, run_training
from .model import build_model
from .networks import network_arch
from .engine import scaled_step


def run_trial(t: Training, *, lr: float, step_size: int, full_epochs: int, width: float,
              hidden, dropout: float, network: str = "vgg16") -> dict:
    """One grid point (t.settings: the trial's schedule; lr and step_size, given in epochs of
    the full schedule of `full_epochs`, replace its own). A non-finite loss ends the trial and
    is recorded as diverged."""
    trial_step = scaled_step(step_size, t.settings.epochs, full_epochs)
    t = replace(t, settings=replace(t.settings, lr=lr, step_size=trial_step))
    data = t.study_data()
    torch.manual_seed(t.settings.seed)
    model = build_model(network_arch(network, width, hidden, dropout, len(data.classes),
                                     data.mean, data.std))
    return run_training(model, data, t, fail_on_divergence=False,
                        title=f"lr search: lr {lr:g}, step {step_size}",
                        extra_metrics={"grid_lr": lr, "grid_step": step_size,
                                       "trial_step": trial_step, "full_epochs": full_epochs})


def select_lr(*, trial_metrics: Iterable[str | Path], summary_csv, best_json, heatmap,
              chosen_out: dict[str, str | Path] | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Table of all trials; the best is the highest validation accuracy among the trials that
    did not diverge, ties to the smaller lr, then the smaller step. Test accuracies are listed
    for the report only; they never enter the decision.

    chosen_out: where to copy the chosen trial's artefacts, by name: any of "model",
    "history", "metrics", "curves" (model.pt, history.csv, metrics.json, curves.png in the
    trial's folder, beside its metrics.json).
    """
    rows = []
    for path in trial_metrics:
        m = artifacts.read_json(path)
        rows.append({
            "lr": m["grid_lr"], "step_size": m["grid_step"], "trial_step": m["trial_step"],
            "val_acc": m["val_acc"], "val_loss": m["val_loss"], "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"], "diverged": m["diverged"],
            "test_acc": m["test_acc"], "seconds": m["train_seconds"], "metrics": str(path),
        })
    if not rows:
        raise ValueError("lr search: no trials (lr_search.lrs or lr_search.step_sizes is empty)")
    table = pd.DataFrame(rows).sort_values(["lr", "step_size"]).reset_index(drop=True)
    ok = table[~table["diverged"] & table["val_acc"].map(lambda v: v is not None and math.isfinite(v))]
    if ok.empty:
        raise RuntimeError("lr search: every trial diverged; add smaller values to lr_search.lrs")
    best = ok.sort_values(["val_acc", "lr", "step_size"], ascending=[False, True, True]).iloc[0]
    table["chosen"] = (table["lr"] == best["lr"]) & (table["step_size"] == best["step_size"])
    with artifacts.atomic_path(summary_csv) as tmp:
        table.to_csv(tmp, index=False)
    out = {
        "lr": float(best["lr"]),
        "step_size": int(best["step_size"]),
        "val_acc": float(best["val_acc"]),
        "test_acc_of_trial": float(best["test_acc"]),
        "decided_on": "validation accuracy of each trial's best epoch",
        "n_trials": int(len(table)),
        "n_diverged": int(table["diverged"].sum()),
    }
    artifacts.write_json(best_json, out)
    if chosen_out:
        _copy_chosen(Path(best["metrics"]).parent, chosen_out, out)
    figures.plot_lr_heatmap(table, heatmap, chosen=(out["lr"], out["step_size"]))
    log(f"lr search: chose lr {out['lr']:g}, step {out['step_size']} "
        f"(val acc {100 * out['val_acc']:.2f}%) out of {len(table)} trials, "
        f"{out['n_diverged']} diverged")
    return out


CHOSEN_FILES = {"model": "model.pt", "history": "history.csv", "metrics": "metrics.json",
                "curves": "curves.png"}


def _copy_chosen(trial_dir: Path, chosen_out: dict[str, str | Path], best: dict) -> None:
    unknown = set(chosen_out) - set(CHOSEN_FILES)
    if unknown:
        raise ValueError(f"select_lr: unknown chosen_out key(s) {sorted(unknown)}; "
                         f"expected some of {sorted(CHOSEN_FILES)}")
    for key, dest in chosen_out.items():
        src = trial_dir / CHOSEN_FILES[key]
        if not src.exists():
            raise FileNotFoundError(f"select_lr: the chosen trial has no {src}")
        if key == "metrics":
            m = artifacts.read_json(src)
            m["chosen_from_search"] = {"trial_dir": str(trial_dir), "lr": best["lr"],
                                       "step_size": best["step_size"],
                                       "decided_on": best["decided_on"]}
            artifacts.write_json(dest, m)
        else:
            with artifacts.atomic_path(dest) as tmp:
                shutil.copyfile(src, tmp)
