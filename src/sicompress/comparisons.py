"""Two trainings compared, the one way every comparison of the study is made: the difference of
their mean test accuracies with its 95% interval, and an exact test on the test images pooled
over the seeds; a family of comparisons Holm-adjusted together.

A side is a list of runs of one training (one per seed): {"seed", "test_acc", "predictions"}
(predictions.npz: `label`, `predicted` of the test set in its fixed order). Where the two
sides share seeds (the same classifier initialisation, batch order and dropout draws), the
comparison is paired over the seeds both have (`stats.paired_interval`; runs whose seed the
other side lacks are left out of it), and the exact test sums each shared seed's discordant
images (`stats.pooled_exact_test`). Where they share none, Welch's interval is used and there
is no exact test (no image is paired with another's under one seed), but for one run on each
side: those two are compared on their test images all the same (kind "single runs", no
interval). `kind` says which.

    compare(a_runs, b_runs, a="si", b="l1", what="chosen k") -> one row (COLUMNS)
    comparison_table([row, ...]) -> DataFrame with p_holm over the rows that have a p-value

Accuracies are fractions; delta, lo, hi are a minus b.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import artifacts
from .stats import holm, paired_interval, pooled_exact_test, welch_interval

COLUMNS = ["a", "b", "what", "kind", "n", "n_a", "n_b", "seeds", "mean_a", "mean_b", "delta",
           "lo", "hi", "half_width", "sd_diff", "only_a", "only_b", "p_value", "p_holm"]


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(label, predicted) of a predictions.npz: two int arrays (N,) of the test set."""
    path = Path(path)
    try:
        with np.load(path) as z:
            missing = [key for key in ("label", "predicted") if key not in z.files]
            if missing:
                raise ValueError(f"{path} lacks the array(s) {missing} (has {z.files})")
            label, predicted = z["label"], z["predicted"]
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read predictions {path}: {type(e).__name__}: {e}") from e
    if label.ndim != 1 or label.shape != predicted.shape:
        raise ValueError(f"{path}: 'label' {label.shape} and 'predicted' {predicted.shape} must "
                         "be two 1-D arrays of the same length")
    for key, a in (("label", label), ("predicted", predicted)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{path}: {key!r} must hold integer classes, has dtype {a.dtype}")
    return label, predicted


def _correct(path, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    label, predicted = read_predictions(path)
    if labels is not None and (label.shape != labels.shape or not np.array_equal(label, labels)):
        raise ValueError(f"{path} holds other test images (or another order) than the runs it "
                         "is compared with: the exact test needs the same images")
    return label, predicted == label


def compare(a_runs: Sequence[Mapping], b_runs: Sequence[Mapping], *, a: str, b: str,
            what: str = "") -> dict:
    """One row of COLUMNS: a against b (module notes). Each run: seed, test_acc and, for the
    exact test, predictions (a path; None skips the test)."""
    if not a_runs or not b_runs:
        raise ValueError(f"compare {a!r} with {b!r}: both need at least one run, got "
                         f"{len(a_runs)} and {len(b_runs)}")
    for name, runs in ((a, a_runs), (b, b_runs)):
        seeds = [int(r["seed"]) for r in runs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"the runs of {name!r} repeat a seed: {sorted(seeds)}")
    by_a = {int(r["seed"]): r for r in a_runs}
    by_b = {int(r["seed"]): r for r in b_runs}
    shared = sorted(set(by_a) & set(by_b))
    single = not shared and len(a_runs) == len(b_runs) == 1
    if single:  # one run each, other seeds: no interval, but the same test images
        by_b = {int(a_runs[0]["seed"]): b_runs[0]}
        shared = [int(a_runs[0]["seed"])]
    acc_a = [float(r["test_acc"]) for r in a_runs]
    acc_b = [float(r["test_acc"]) for r in b_runs]
    row = {"a": a, "b": b, "what": what, "n_a": len(a_runs), "n_b": len(b_runs),
           "only_a": math.nan, "only_b": math.nan, "p_value": math.nan}
    if shared:
        x = [float(by_a[s]["test_acc"]) for s in shared]
        y = [float(by_b[s]["test_acc"]) for s in shared]
        iv = paired_interval(x, y)
        if single:
            iv["kind"] = "single runs"
        row.update(seeds=" ".join(map(str, shared)) if not single else "", mean_a=float(np.mean(x)),
                   mean_b=float(np.mean(y)),
                   sd_diff=float(np.std(np.subtract(x, y), ddof=1)) if len(x) > 1 else math.nan)
        if all(by_a[s].get("predictions") and by_b[s].get("predictions") for s in shared):
            strata, labels = [], None
            for s in shared:
                labels, ca = _correct(by_a[s]["predictions"], labels)
                _, cb = _correct(by_b[s]["predictions"], labels)
                strata.append((int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))))
            t = pooled_exact_test(strata)
            row.update(only_a=t["only_a"], only_b=t["only_b"], p_value=t["p_value"])
    else:
        iv = welch_interval(acc_a, acc_b)
        row.update(seeds="", mean_a=float(np.mean(acc_a)), mean_b=float(np.mean(acc_b)),
                   sd_diff=math.nan)
    row.update(kind=iv["kind"], n=iv["n"], delta=iv["delta"], lo=iv["lo"], hi=iv["hi"],
               half_width=iv["half_width"], p_holm=math.nan)
    return row


def point_label(fraction: float | None, k: int) -> str:
    """The `what` of a comparison at one point of (c)'s controls: "chosen k (k = 17)" or
    "fraction 0.25 (k = 16)"; the writer and the report both name a point by it."""
    return ("chosen k" if fraction is None else f"fraction {float(fraction):g}") + f" (k = {k})"


def comparison_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """The rows as one family: p_holm is Holm's adjustment over every row with a p-value."""
    table = pd.DataFrame(list(rows), columns=COLUMNS)
    tested = table["p_value"].notna()
    if tested.any():
        table.loc[tested, "p_holm"] = holm(table.loc[tested, "p_value"])
    return table


def runs_of(metrics_paths: Sequence, predictions_paths: Sequence | None = None) -> list[dict]:
    """Runs ({"seed", "test_acc", "predictions"}) from metrics.json files (their provenance
    seed) and, when given, the predictions.npz beside each."""
    preds = list(predictions_paths) if predictions_paths is not None else [None] * len(metrics_paths)
    out = []
    for m, p in zip(metrics_paths, preds, strict=True):
        metrics = artifacts.read_json(m)
        seed = (metrics.get("provenance") or {}).get("seed")
        if seed is None:
            raise ValueError(f"{m} records no seed (provenance.seed): cannot pair it by seed")
        out.append({"seed": int(seed), "test_acc": float(metrics["test_acc"]), "predictions": p})
    return out
