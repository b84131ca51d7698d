"""Part (c) from files to files: cut the layers, select the features, train the compressed model.

Every decision rests on the `si_train` subset of the split (training images only):

1. `cut_layers`: from the e2e layer SI table (train rows), the shortest prefix of the feature
   extractor whose SI (or Center SI) is within a tolerance of the best layer's
   (`decisions.choose_cut`).
2. `select_features`: forward selection by SI (`selection.forward_select`) on the cut
   layer's output of the e2e model for `si_train`, then k, the fewest features within a
   tolerance of the best SI on the curve (`decisions.choose_k`).
3. `train_compressed`: the kept prefix with only the selected channels (or, with unit
   "element", a fixed index selection before the classifier), a new classifier for k x H x W
   inputs, trained alone on frozen features with the engine every training uses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import artifacts, figures
from .cost import macs_per_image
from .decisions import choose_cut, choose_k
from .devices import pick_device
from .layer_si import si_train_activations
from .model import load_checkpoint
from .pruning import build_compressed
from .selection import UNITS, forward_select
from .si import PRECISION, center_separation_index, center_si_curve, separation_index
from .training import TrainSettings
from .trainings import load_study_data, run_training

RANKING_COLUMNS = ["step", "feature", "si", "center_si"]


# ----------------------------------------------------------------------------------------
# 1. The layer cut


def cut_layers(*, layer_si_csv, out_json, out_plot=None, metric: str = "si",
               tolerance: float = 0.01, log: Callable[[str], None] = print) -> dict:
    """The cut decision from a layer SI table, on its train rows only; writes cut.json (+ plot)."""
    table = pd.read_csv(layer_si_csv)
    if "split" not in table.columns:
        raise ValueError(f"{layer_si_csv}: no 'split' column; expected a table of layer_si")
    train = table[table["split"] == "train"]
    if train.empty:
        raise ValueError(f"{layer_si_csv}: no train rows (split == 'train')")
    cut = choose_cut(train, metric=metric, tolerance=tolerance)
    cut.update(split="train", source=str(layer_si_csv),
               n_layers=int((train["layer_index"] >= 1).sum()),
               provenance=artifacts.provenance(settings={
                   "layer_si_csv": str(layer_si_csv), "metric": metric, "tolerance": tolerance}))
    artifacts.write_json(out_json, cut)
    if out_plot is not None:
        figures.plot_cut(train, out_plot, cut=cut)
    log(f"cut after {cut['layer']} (layer {cut['layer_index']} of {cut['n_layers']}): "
        f"{metric} {cut['value']:.4f}, best {cut['best_value']:.4f} at {cut['best_layer']}, "
        f"tolerance {tolerance:g}")
    return cut


# ----------------------------------------------------------------------------------------
# 2. Feature selection at the cut


PROGRESS_SECONDS = 30.0  # most seconds between progress lines of the feature ranking
PARTIAL_RANKING = "ranking.partial.json"  # beside feature_ranking.csv while a ranking runs


def progress_every(seconds: float, unit: str, log: Callable[[str], None]):
    """A `progress` callback for forward_select that logs the first step, then a line at most
    every `seconds` (so a long ranking shows it is alive and how far it is)."""
    t0 = time.perf_counter()
    last = [None]

    def progress(order: list[int], si: list[float], steps: int) -> None:
        now = time.perf_counter()
        if last[0] is None or now - last[0] >= seconds:
            last[0] = now
            log(f"ranking: {len(order)} of at most {steps} {unit}s chosen, SI {si[-1]:.4f}, "
                f"{now - t0:.0f} s")
    return progress


def select_features(*, model_path, data_npz, split_npz, cut_json, ranking_csv, selected_json,
                    plot=None, unit: str = "channel", tolerance: float = 0.01,
                    patience: int | None = None, max_features: int | None = None,
                    batch_size: int = 500, device: str | None = None,
                    log: Callable[[str], None] = print) -> dict:
    """Rank the cut layer's features by forward selection on si_train and choose k."""
    if unit not in UNITS:
        raise ValueError(f"compress.feature_unit must be one of {UNITS}, got {unit!r}")
    layer = artifacts.read_json(cut_json)["layer"]
    device = pick_device(device, log=log)
    acts, labels = si_train_activations(model_path, data_npz, split_npz, layer,
                                        batch_size=batch_size, device=device)
    n, c, h, w = acts.shape
    n_candidates = c if unit == "channel" else c * h * w
    log(f"{layer} output of si_train on {acts.device} ({PRECISION}): {n} images x {c} "
        f"channels x {h}x{w}; ranking "
        f"{n_candidates if max_features is None else min(max_features, n_candidates)} of "
        f"{n_candidates} {unit}s by forward selection")
    si_all = separation_index(acts, labels)
    csi_all = center_separation_index(acts, labels)
    log(f"all {n_candidates} {unit}s: SI {si_all:.4f}, Center SI {csi_all:.4f}")

    # A ranking can take long (hours on a CPU at width 1): every step is saved beside the
    # ranking, and a rerun on the same activations and options goes on from there.
    partial = Path(ranking_csv).with_name(PARTIAL_RANKING)
    identity = {"layer": layer, "unit": unit, "max_features": max_features, "patience": patience,
                "tolerance": tolerance, "data": artifacts.fingerprint(acts, labels)}
    resume = _load_partial_ranking(partial, identity, log)
    show = progress_every(PROGRESS_SECONDS, unit, log)

    def progress(order: list[int], si: list[float], steps: int) -> None:
        artifacts.write_json(partial, {**identity, "order": order, "si": si})
        show(order, si, steps)

    t0 = time.perf_counter()
    sel = forward_select(acts, labels, unit=unit, max_features=max_features, patience=patience,
                         tolerance=tolerance, device=device, progress=progress, resume=resume)
    log(f"ranked {len(sel.order)} {unit}s in {sel.seconds:.1f} s (stopped: {sel.stopped}); "
        f"SI after 1, {len(sel.order)}: {sel.si[0]:.4f}, {sel.si[-1]:.4f}")
    csi = center_si_curve(acts, labels, sel.order, unit)
    ranking = pd.DataFrame({"step": np.arange(1, len(sel.order) + 1), "feature": sel.order,
                            "si": sel.si, "center_si": csi}, columns=RANKING_COLUMNS)
    with artifacts.atomic_path(ranking_csv) as tmp:
        ranking.to_csv(tmp, index=False)

    choice = choose_k(sel.si, tolerance)
    k = choice["k"]
    chosen = [int(f) for f in sel.order[:k]]
    out = {
        "unit": unit,
        "cut_layer": layer,
        "shape": [c, h, w],
        "n_candidates": n_candidates,
        "n_samples": n,
        "selected": chosen,
        "kept": sorted(chosen),
        "k": k,
        "si_at_k": choice["si_at_k"],
        "center_si_at_k": csi[k - 1],
        "best_si": choice["best_si"],
        "best_k": choice["best_k"],
        "si_all": si_all,
        "center_si_all": csi_all,
        "tolerance": choice["tolerance"],
        "patience": patience,
        "max_features": max_features,
        "steps": len(sel.order),
        "stopped": sel.stopped,
        "seconds": time.perf_counter() - t0,
        "provenance": artifacts.provenance(settings={
            "model": str(model_path), "data": str(data_npz), "split": str(split_npz),
            "cut": str(cut_json), "unit": unit, "tolerance": tolerance, "patience": patience,
            "max_features": max_features, "device": str(device),
            "precision": f"activations {PRECISION}; distances float64"}),
    }
    artifacts.write_json(selected_json, out)
    if plot is not None:
        figures.plot_feature_si(ranking, plot, selected=out)
    partial.unlink(missing_ok=True)
    log(f"k = {k} of {n_candidates} {unit}s: SI {out['si_at_k']:.4f} (best {out['best_si']:.4f} "
        f"at {out['best_k']}, all {si_all:.4f}), Center SI {out['center_si_at_k']:.4f}")
    return out


def _load_partial_ranking(path: Path, identity: dict,
                          log: Callable[[str], None]) -> list[int] | None:
    """The order of an interrupted ranking saved in `path`, if it was made on the same
    activations with the same options; else None (and a line saying why)."""
    if not path.exists():
        return None
    try:
        state = artifacts.read_json(path)
    except (OSError, ValueError) as e:
        log(f"resume: cannot read {path} ({type(e).__name__}: {e}); ranking from the start")
        return None
    if not isinstance(state, dict) or any(state.get(k) != v for k, v in identity.items()):
        log(f"resume: {path} is of other activations or options; ranking from the start")
        return None
    order = [int(f) for f in state.get("order", [])]
    log(f"resume: continuing the ranking after {len(order)} {identity['unit']}s from {path}")
    return order


# ----------------------------------------------------------------------------------------
# 3. The compressed model


def train_compressed(*, e2e_model, selected_json, data_npz, split_npz, summary_json, model_out,
                     history, metrics, curves, settings: TrainSettings, hidden, dropout: float,
                     config: dict | None = None, device: str | None = None,
                     log: Callable[[str], None] = print) -> dict:
    """(c) The cut, pruned e2e extractor frozen, a new classifier for k x H x W inputs trained."""
    if settings.train_only != "classifier":
        raise ValueError("train_compressed trains the classifier only: "
                         "settings.train_only must be 'classifier'")
    sel = artifacts.read_json(selected_json)
    model = build_compressed(e2e_model, sel["cut_layer"], sel["unit"], sel["selected"],
                             hidden=hidden, dropout=dropout, seed=settings.seed)
    before = macs_per_image(load_checkpoint(e2e_model)["arch"])
    after = macs_per_image(model.arch)
    log(f"compressed model: cut after {sel['cut_layer']}, {sel['k']} of {sel['n_candidates']} "
        f"{sel['unit']}s; MACs per image {before['total']:,} -> {after['total']:,}")
    dev = pick_device(device, log=log)
    data = load_study_data(data_npz, split_npz, summary_json, dev)
    extra = {
        "compression": {"cut_layer": sel["cut_layer"], "unit": sel["unit"], "k": sel["k"],
                        "n_candidates": sel["n_candidates"]},
        "macs": {k: after[k] for k in ("features", "classifier", "total")},
        "source_model": str(e2e_model),
        "classes": data.classes,
    }
    return run_training(model, data, settings, history=history, metrics=metrics, curves=curves,
                        checkpoint=model_out, config=config, title="compressed (c)", log=log,
                        extra_metrics=extra)
