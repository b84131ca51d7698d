"""The search's decision (validation accuracy only) and the copy of the chosen trial."""

import pandas as pd
import pytest

from sicompress.artifacts import read_json, write_json
from sicompress.lr_search import select_lr


def trial(root, lr, step, val_acc, test_acc, diverged=False):
    d = root / f"lr~{lr:g}" / f"step~{step}"
    d.mkdir(parents=True)
    write_json(d / "metrics.json", {
        "grid_lr": lr, "grid_step": step, "trial_step": 1, "val_acc": val_acc,
        "val_loss": 1.0, "best_epoch": 2, "epochs_run": 3, "diverged": diverged,
        "test_acc": test_acc, "train_seconds": 1.0, "lr": lr, "step_size": 1})
    (d / "model.pt").write_bytes(f"model {lr} {step}".encode())
    (d / "history.csv").write_text(f"epoch,lr\n1,{lr}\n")
    (d / "curves.png").write_bytes(f"png {lr} {step}".encode())
    return d / "metrics.json"


def run(root, metrics, **kw):
    return select_lr(trial_metrics=metrics, summary_csv=root / "summary.csv",
                     best_json=root / "best.json", heatmap=root / "heatmap.png",
                     log=lambda m: None, **kw)


def test_best_validation_wins_test_never_decides_and_chosen_trial_is_copied(tmp_path):
    grid = tmp_path / "grid"
    metrics = [
        trial(grid, 0.1, 50, 0.90, 0.70, diverged=True),  # best val, but diverged
        trial(grid, 0.05, 50, 0.60, 0.95),                # best test: must not matter
        trial(grid, 0.02, 100, 0.70, 0.50),
        trial(grid, 0.01, 50, 0.70, 0.40),                # tie on val: smaller lr wins
    ]
    out = tmp_path / "search"
    best = run(tmp_path, metrics, chosen_out={
        "model": out / "model.pt", "history": out / "history.csv",
        "metrics": out / "metrics.json", "curves": out / "curves.png"})
    assert (best["lr"], best["step_size"], best["val_acc"]) == (0.01, 50, 0.70)
    assert best["n_trials"] == 4 and best["n_diverged"] == 1
    chosen = grid / "lr~0.01" / "step~50"
    for name in ("model.pt", "history.csv", "curves.png"):
        assert (out / name).read_bytes() == (chosen / name).read_bytes(), name
    m = read_json(out / "metrics.json")
    assert m["test_acc"] == 0.40 and m["chosen_from_search"]["lr"] == 0.01
    table = pd.read_csv(tmp_path / "summary.csv")
    assert table["chosen"].sum() == 1
    assert table.loc[table["chosen"], "lr"].item() == 0.01
    assert not list(out.glob(".*tmp*"))


def test_every_trial_diverged_or_none(tmp_path):
    metrics = [trial(tmp_path / "g", 1.0, 50, float("nan"), float("nan"), diverged=True)]
    with pytest.raises(RuntimeError, match="every trial diverged"):
        run(tmp_path, metrics)
    with pytest.raises(ValueError, match="no trials"):
        run(tmp_path, [])


def test_unknown_copy_target_is_named(tmp_path):
    metrics = [trial(tmp_path / "g", 0.1, 50, 0.5, 0.5)]
    with pytest.raises(ValueError, match="weights"):
        run(tmp_path, metrics, chosen_out={"weights": tmp_path / "w.pt"})
