"""Part (c)'s decisions, from files to files: cut the layers, rank the features, choose k,
and the channels each control keeps. The trainings they lead to are `trainings`.

Every decision rests on the `si_train` subset of the split (training images only):

1. `cut_layers`: from the e2e layer SI table (train rows), the shortest prefix of the feature
   extractor whose SI (or Center SI) is within a tolerance of the best layer's
   (`decisions.choose_cut`).
2. `rank_features`: forward selection by SI (`selection.forward_select`) on the cut layer's
   output of the e2e model for `si_train` (the expensive step, resumable); then
   `choose_features`: k, the fewest features within a tolerance of the best SI on the
   curve (`decisions.choose_k`), cheap, so another tolerance does not redo the ranking.
3. `control_channels`: the channels of the controls at the same cut: other selectors
   (`selectors`) at the study's k, or any selector at another k (the frontier). The
   compressed model and its controls are then trained by `trainings.train_compressed`,
   `train_control`, `train_scratch` and `finetune`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import artifacts, figures
from .activations import subset_activations
from .decisions import choose_cut, choose_k, extractor_rows
from .devices import pick_device
from .pruning import arch_and_state
from .selection import UNITS, forward_select
from .criteria import criterion, k_of_fraction
from .scoring import choose, si_channels
from .si import PRECISION, center_separation_index, center_si_curve, si_all_features, si_curve

# si, center_si: on si_train (the ranking is chosen on it); *_test: on si_test, reported only
FEATURE_RANKING_COLUMNS = ["step", "feature", "si", "center_si", "si_test", "center_si_test"]


# ----------------------------------------------------------------------------------------
# 1. The layer cut


def cut_layers(*, layer_si_csv, out_json, out_plot=None, metric: str = "si",
               tolerance: float = 0.01, layer: str | None = None,
               log: Callable[[str], None] = print) -> dict:
    """The cut decision from a layer SI table, on its train rows of the feature extractor only
    (never the classifier's); writes cut.json (+ plot). layer: cut after this layer instead
    of the rule's choice (`compress.cut_layer`; cut.json then says so: "forced", and the
    rule's own choice in "rule_layer")."""
    table = pd.read_csv(layer_si_csv)
    if "split" not in table.columns:
        raise ValueError(f"{layer_si_csv}: no 'split' column; expected a table of layer_si")
    train = table[table["split"] == "train"]
    if train.empty:
        raise ValueError(f"{layer_si_csv}: no train rows (split == 'train')")
    cut = choose_cut(train, metric=metric, tolerance=tolerance)
    cut["forced"] = layer is not None
    if layer is not None:
        rows = extractor_rows(train)
        if layer not in set(rows["layer"]):
            raise ValueError(f"compress.cut_layer: {layer!r} is not a layer a cut can follow; "
                             f"those are {rows['layer'].tolist()}")
        forced = rows[rows["layer"] == layer].iloc[0]
        cut.update(rule_layer=cut["layer"], layer=layer, layer_index=int(forced["layer_index"]),
                   value=float(forced[metric]))
    # the cut layer's SI and Center SI, once: the table's numbers, which the decision read;
    # the ranking reports these as its "all features" values instead of computing them again
    row = train[train["layer"] == cut["layer"]].iloc[0]
    cut.update(si=float(row["si"]), center_si=float(row["center_si"]))
    cut.update(split="train", source=str(layer_si_csv),
               n_layers=len(extractor_rows(train)),
               provenance=artifacts.provenance(settings={
                   "layer_si_csv": str(layer_si_csv), "metric": metric, "tolerance": tolerance,
                   "cut_layer": layer}))
    artifacts.write_json(out_json, cut)
    if out_plot is not None:
        figures.plot_cut(extractor_rows(train), out_plot, cut=cut)
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


def rank_features(*, model_path, data_npz, split_npz, cut_json, ranking_csv, info_json,
                  unit: str = "channel", patience: int | None = None,
                  patience_tolerance: float | None = None, max_features: int | None = None,
                  batch_size: int = 500, device: str | None = None,
                  log: Callable[[str], None] = print) -> dict:
    """Rank the cut layer's features by forward selection on si_train (the expensive step).

    Writes `ranking_csv` (FEATURE_RANKING_COLUMNS: the order, SI and Center SI of every
    prefix on si_train, which the ranking was chosen on, and the same two along the same order on
    si_test, which is only reported, never used to decide) and `info_json` (the cut layer,
    its shape, the all-feature values, the time and provenance). k is chosen apart, from
    these files (`choose_features`), so another tolerance does not redo the ranking.
    patience_tolerance: the gain that counts against `patience` (the study passes
    compress.feature_tolerance); unused, and must be None, when patience is None.
    """
    if unit not in UNITS:
        raise ValueError(f"compress.feature_unit must be one of {UNITS}, got {unit!r}")
    if patience is None and patience_tolerance is not None:
        raise ValueError("patience_tolerance only applies with a patience; pass None")
    cut = artifacts.read_json(cut_json)
    layer = cut["layer"]
    device = pick_device(device, log=log)
    acts, labels = subset_activations(model_path, data_npz, split_npz, layer,
                                      batch_size=batch_size, device=device)
    n, c, h, w = acts.shape
    n_candidates = c if unit == "channel" else c * h * w
    log(f"{layer} output of si_train on {acts.device} ({PRECISION}): {n} images x {c} "
        f"channels x {h}x{w}; ranking "
        f"{n_candidates if max_features is None else min(max_features, n_candidates)} of "
        f"{n_candidates} {unit}s by forward selection")
    # SI and Center SI of all the cut layer's features: the layer table's, as the cut decision
    # read them (cut.json); computed here only for a cut.json that lacks them
    from_table = "si" in cut and "center_si" in cut
    csi_all = float(cut["center_si"]) if from_table else center_separation_index(acts, labels)

    # A ranking can take long (hours on a CPU at width 1): every step is saved beside the
    # ranking, and a rerun on the same activations and options goes on from there.
    partial = Path(ranking_csv).with_name(PARTIAL_RANKING)
    identity = {"layer": layer, "unit": unit, "max_features": max_features, "patience": patience,
                "patience_tolerance": patience_tolerance,
                "data": artifacts.fingerprint(acts, labels)}
    resume = _load_partial_ranking(partial, identity, log)
    show = progress_every(PROGRESS_SECONDS, unit, log)

    def progress(order: list[int], si: list[float], steps: int) -> None:
        artifacts.write_json(partial, {**identity, "order": order, "si": si})
        show(order, si, steps)

    t0 = time.perf_counter()
    sel = forward_select(acts, labels, unit=unit, max_features=max_features, patience=patience,
                         tolerance=patience_tolerance or 0.0, device=device, progress=progress,
                         resume=resume)
    log(f"ranked {len(sel.order)} {unit}s in {sel.seconds:.1f} s (stopped: {sel.stopped}); "
        f"SI after 1, {len(sel.order)}: {sel.si[0]:.4f}, {sel.si[-1]:.4f}")
    csi = center_si_curve(acts, labels, sel.order, unit)
    seconds = time.perf_counter() - t0
    if from_table:
        si_all = float(cut["si"])
    else:  # summed as the curve is: a ranking of them all ends on that value
        si_all = sel.si[-1] if len(sel.order) == n_candidates else si_all_features(
            acts, labels, unit, first=sel.order)
    log(f"all {n_candidates} {unit}s: SI {si_all:.4f}, Center SI {csi_all:.4f}"
        + (" (the layer table's, as the cut decision read them)" if from_table else ""))
    del acts
    test_acts, test_labels = subset_activations(model_path, data_npz, split_npz, layer,
                                                subset="si_test", batch_size=batch_size,
                                                device=device)
    t1 = time.perf_counter()
    si_test = si_curve(test_acts, test_labels, sel.order, unit)
    csi_test = center_si_curve(test_acts, test_labels, sel.order, unit)
    log(f"the same order on si_test ({len(test_labels)} images, reported only): SI after 1, "
        f"{len(sel.order)}: {si_test[0]:.4f}, {si_test[-1]:.4f} ({time.perf_counter() - t1:.1f} s)")
    ranking = pd.DataFrame({"step": np.arange(1, len(sel.order) + 1), "feature": sel.order,
                            "si": sel.si, "center_si": csi, "si_test": si_test,
                            "center_si_test": csi_test}, columns=FEATURE_RANKING_COLUMNS)
    with artifacts.atomic_path(ranking_csv) as tmp:
        ranking.to_csv(tmp, index=False)
    info = {
        "unit": unit,
        "cut_layer": layer,
        "shape": [c, h, w],
        "n_candidates": n_candidates,
        "n_samples": n,
        "n_samples_test": len(test_labels),
        "si_all": si_all,
        "center_si_all": csi_all,
        "all_from": "layer table" if from_table else "computed here",
        "patience": patience,
        "patience_tolerance": patience_tolerance,
        "max_features": max_features,
        "steps": len(sel.order),
        "stopped": sel.stopped,
        "seconds": seconds,
        "provenance": artifacts.provenance(settings={
            "model": str(model_path), "data": str(data_npz), "split": str(split_npz),
            "cut": str(cut_json), "unit": unit, "patience": patience,
            "patience_tolerance": patience_tolerance, "max_features": max_features,
            "device": str(device), "precision": f"activations {PRECISION}; distances float64"}),
    }
    artifacts.write_json(info_json, info)
    partial.unlink(missing_ok=True)
    return info


def choose_features(*, ranking_csv, info_json, selected_json, plot=None,
                    tolerance: float = 0.01, log: Callable[[str], None] = print) -> dict:
    """k from a ranking: the fewest features within `tolerance` of the best SI on the si_train
    curve (`decisions.choose_k`); writes selected.json (and the curve's plot). Cheap: no
    activation is computed."""
    ranking = pd.read_csv(ranking_csv)
    missing = [col for col in FEATURE_RANKING_COLUMNS if col not in ranking.columns]
    if missing:
        raise ValueError(f"{ranking_csv}: lacks columns {missing}; expected a ranking of "
                         "rank_features")
    info = artifacts.read_json(info_json)
    order = [int(f) for f in ranking["feature"]]
    si, csi = ranking["si"].tolist(), ranking["center_si"].tolist()
    choice = choose_k(si, tolerance)
    k = choice["k"]
    chosen = order[:k]
    out = {
        **{key: info[key] for key in ("unit", "cut_layer", "shape", "n_candidates", "n_samples")},
        "selected": chosen,
        "kept": sorted(chosen),
        "k": k,
        "si_at_k": choice["si_at_k"],
        "center_si_at_k": csi[k - 1],
        "si_test_at_k": float(ranking["si_test"].iloc[k - 1]),
        "center_si_test_at_k": float(ranking["center_si_test"].iloc[k - 1]),
        "best_si": choice["best_si"],
        "best_k": choice["best_k"],
        **{key: info[key] for key in ("si_all", "center_si_all")},
        "tolerance": choice["tolerance"],
        **{key: info[key] for key in ("patience", "max_features", "steps", "stopped")},
        "seconds": info["seconds"],
        "provenance": artifacts.provenance(settings={
            "ranking": str(ranking_csv), "info": str(info_json), "tolerance": tolerance}),
    }
    artifacts.write_json(selected_json, out)
    if plot is not None:
        figures.plot_feature_si(ranking, plot, selected=out)
    log(f"k = {k} of {out['n_candidates']} {out['unit']}s: SI {out['si_at_k']:.4f} "
        f"(best {out['best_si']:.4f} at {out['best_k']}, all {out['si_all']:.4f}), Center SI "
        f"{out['center_si_at_k']:.4f}; on si_test SI {out['si_test_at_k']:.4f}")
    return out


def _load_partial_ranking(path: Path, identity: dict,
                          log: Callable[[str], None]) -> list[int] | None:
    """The order of an interrupted ranking saved in `path`, if it was made on the same
    activations with the same options; else None (and a line saying why)."""
    state = artifacts.read_state(path, identity, log, what="ranking",
                                 other="other activations or options")
    if state is None:
        return None
    order = [int(f) for f in state.get("order", [])]
    log(f"resume: continuing the ranking after {len(order)} {identity['unit']}s from {path}")
    return order


# ----------------------------------------------------------------------------------------
# 3. The channels of a control: another selector, or another k


def control_channels(*, e2e_model, cut_json, ranking_csv, selector: str,
                     fraction: float | None, seed: int, batch=None) -> tuple[list[int], dict]:
    """The channels a control keeps: criterion `selector` (`criteria`) at the study's k
    (fraction None; cut_json is then selected.json, which holds k) or at
    k = round(fraction x the cut layer's features) (cut_json may be the ranking's info json:
    a frontier point does not depend on the chosen k, so another feature_tolerance does not
    retrain it), among the channels of the cut's group (`pruning.cut_group`). batch: (images,
    labels) for a criterion that needs a gradient. -> (channels in the criterion's order,
    the cut description read)."""
    sel = artifacts.read_json(cut_json)
    n = sel["n_candidates"]
    if fraction is None:
        if "k" not in sel:
            raise ValueError(f"{cut_json}: no chosen k; the study's k is in selected.json")
        k = sel["k"]
    else:
        k = k_of_fraction(fraction, n)
    crit = criterion(selector)
    if sel["unit"] != "channel" and not crit.elements:
        raise ValueError(f"criterion {selector!r} needs compress.feature_unit 'channel'")
    if selector == "si":
        return si_channels(pd.read_csv(ranking_csv)["feature"].tolist(), k), sel
    if sel["unit"] == "element":  # random values of the cut layer's output
        return [int(i) for i in np.random.default_rng(seed).choice(n, size=k, replace=False)], sel
    from .pruning import cut_group
    arch, state = arch_and_state(e2e_model)
    group = cut_group(arch, sel["cut_layer"])
    if group.channels != n:
        raise ValueError(f"the cut's group {group.name} has {group.channels} channels, the "
                         f"ranking {n}")
    chosen = choose(selector, {"arch": arch, "state_dict": state}, sel["cut_layer"],
                    {group.name: k}, seed=seed, batch=batch)
    return chosen[group.name], sel
