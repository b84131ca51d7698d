"""Part (c) from files to files: cut the layers, rank and select the features, train the
compressed model, and train the controls that say what the compression is worth.

Every decision rests on the `si_train` subset of the split (training images only):

1. `cut_layers`: from the e2e layer SI table (train rows), the shortest prefix of the feature
   extractor whose SI (or Center SI) is within a tolerance of the best layer's
   (`decisions.choose_cut`).
2. `rank_features`: forward selection by SI (`selection.forward_select`) on the cut layer's
   output of the e2e model for `si_train` (the expensive step, resumable); then
   `choose_features`: k, the fewest features within a tolerance of the best SI on the
   curve (`decisions.choose_k`), cheap, so another tolerance does not redo the ranking.
3. `train_compressed`: the kept prefix with only the selected channels (or, with unit
   "element", a fixed index selection before the classifier), a new classifier for k x H x W
   inputs, trained alone on frozen features with the engine every training uses.
4. Controls (`train_control`, `train_scratch`, `finetune`): the same cut and k with the
   channels of other selectors (`selectors`), other k (the frontier), other seeds (repeats),
   the compressed architecture trained from random weights, and the compressed model
   fine-tuned end to end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import artifacts, figures
from .cost import macs_per_image
from .decisions import choose_cut, choose_k, extractor_rows
from .devices import pick_device
from .layer_si import si_train_activations, subset_images
from .model import build_model, load_checkpoint, load_model
from .pruning import arch_and_state, build_compressed, compressed_arch
from .selection import UNITS, forward_select
from .selectors import choose_channels, cut_conv_weight, k_of_fraction
from .layerwise import choose_width, hidden_separation, pruned_network
from .si import PRECISION, center_separation_index, center_si_curve, si_all_features, si_curve
from .training import TrainSettings
from .trainings import load_study_data, run_training

# si, center_si: on si_train (the ranking is chosen on it); *_test: on si_test, reported only
RANKING_COLUMNS = ["step", "feature", "si", "center_si", "si_test", "center_si_test"]


# ----------------------------------------------------------------------------------------
# 1. The layer cut


def cut_layers(*, layer_si_csv, out_json, out_plot=None, metric: str = "si",
               tolerance: float = 0.01, log: Callable[[str], None] = print) -> dict:
    """The cut decision from a layer SI table, on its train rows of the feature extractor only
    (never the classifier's); writes cut.json (+ plot)."""
    table = pd.read_csv(layer_si_csv)
    if "split" not in table.columns:
        raise ValueError(f"{layer_si_csv}: no 'split' column; expected a table of layer_si")
    train = table[table["split"] == "train"]
    if train.empty:
        raise ValueError(f"{layer_si_csv}: no train rows (split == 'train')")
    cut = choose_cut(train, metric=metric, tolerance=tolerance)
    cut.update(split="train", source=str(layer_si_csv),
               n_layers=len(extractor_rows(train)),
               provenance=artifacts.provenance(settings={
                   "layer_si_csv": str(layer_si_csv), "metric": metric, "tolerance": tolerance}))
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

    Writes `ranking_csv` (RANKING_COLUMNS: the order, SI and Center SI of every prefix on
    si_train, which the ranking was chosen on, and the same two along the same order on
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
    csi_all = center_separation_index(acts, labels)

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
    # SI of all features summed as the curve is: a ranking of them all ends on that value
    si_all = sel.si[-1] if len(sel.order) == n_candidates else si_all_features(
        acts, labels, unit, first=sel.order)
    log(f"all {n_candidates} {unit}s: SI {si_all:.4f}, Center SI {csi_all:.4f}")
    del acts
    test_acts, test_labels = si_train_activations(model_path, data_npz, split_npz, layer,
                                                  batch_size=batch_size, device=device,
                                                  subset="si_test")
    t1 = time.perf_counter()
    si_test = si_curve(test_acts, test_labels, sel.order, unit)
    csi_test = center_si_curve(test_acts, test_labels, sel.order, unit)
    log(f"the same order on si_test ({len(test_labels)} images, reported only): SI after 1, "
        f"{len(sel.order)}: {si_test[0]:.4f}, {si_test[-1]:.4f} ({time.perf_counter() - t1:.1f} s)")
    ranking = pd.DataFrame({"step": np.arange(1, len(sel.order) + 1), "feature": sel.order,
                            "si": sel.si, "center_si": csi, "si_test": si_test,
                            "center_si_test": csi_test}, columns=RANKING_COLUMNS)
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
    missing = [col for col in RANKING_COLUMNS if col not in ranking.columns]
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
# 3. The compressed model


def _train_pruned(model, *, e2e_model, sel: dict, kept: list[int] | dict, data_npz, split_npz,
                  summary_json, model_out, history, metrics, curves, predictions,
                  settings: TrainSettings, title: str, extra: dict, config: dict | None,
                  device: str | None, log: Callable[[str], None], features=None) -> dict:
    """Train a model of the compressed architecture and write the usual artefacts, with the
    compression's description and MACs in metrics.json. kept: the cut layer's channels, or
    (layer-wise pruning) {conv: channels}, whose k and n_candidates are totals over layers.
    features: the folder of the frozen extractor's cached outputs (classifier only): the
    cut layer's, of which the kept channels are read (unit "channel"), or the layer-wise
    pruned extractor's own, read whole."""
    before = macs_per_image(load_checkpoint(e2e_model)["arch"])
    after = macs_per_image(model.arch)
    channels = None  # of the cached features: all (layer-wise, unit "element")
    if isinstance(kept, dict):
        k, kept = sum(len(v) for v in kept.values()), {n: sorted(v) for n, v in kept.items()}
    else:
        k, kept = len(kept), sorted(kept)
        if sel["unit"] == "channel":
            channels = kept  # ascending: the order the compressed extractor holds them in
    log(f"{title}: cut after {sel['cut_layer']}, {k} of {sel['n_candidates']} "
        f"{sel['unit']}s; MACs per image {before['total']:,} -> {after['total']:,}")
    dev = pick_device(device, log=log)
    data = load_study_data(data_npz, split_npz, summary_json, dev)
    compression = {"cut_layer": sel["cut_layer"], "unit": sel["unit"], "k": k,
                   "n_candidates": sel["n_candidates"], "kept": kept, **extra}
    return run_training(model, data, settings, history=history, metrics=metrics, curves=curves,
                        checkpoint=model_out, predictions=predictions, config=config,
                        title=title, log=log, features=features,
                        channels=channels if features is not None else None,
                        extra_metrics={"compression": compression,
                                       "macs": {k: after[k] for k in ("features", "classifier",
                                                                       "total")},
                                       "source_model": str(e2e_model), "classes": data.classes})


def _classifier_only(settings: TrainSettings, what: str) -> None:
    if settings.train_only != "classifier":
        raise ValueError(f"{what} trains the classifier only: settings.train_only must be "
                         "'classifier'")


def train_compressed(*, e2e_model, selected_json, data_npz, split_npz, summary_json, model_out,
                     history, metrics, curves, settings: TrainSettings, hidden, dropout: float,
                     predictions=None, features=None, config: dict | None = None,
                     device: str | None = None, log: Callable[[str], None] = print) -> dict:
    """(c) The cut, pruned e2e extractor frozen, a new classifier for k x H x W inputs trained
    (on the cut layer's cached features when `features` names their folder)."""
    _classifier_only(settings, "train_compressed")
    sel = artifacts.read_json(selected_json)
    model = build_compressed(e2e_model, sel["cut_layer"], sel["unit"], sel["selected"],
                             hidden=hidden, dropout=dropout, seed=settings.seed)
    extra = {"selector": "si", "fraction": None, "repeat": 0, "seed": settings.seed}
    return _train_pruned(model, e2e_model=e2e_model, sel=sel, kept=sel["selected"],
                         data_npz=data_npz, split_npz=split_npz, summary_json=summary_json,
                         model_out=model_out, history=history, metrics=metrics, curves=curves,
                         predictions=predictions, settings=settings, title="compressed (c)",
                         extra=extra, config=config, device=device, log=log, features=features)


# ----------------------------------------------------------------------------------------
# 4. Controls: other selectors, other sizes, repeats, from scratch, fine-tuning


def control_channels(*, e2e_model, cut_json, ranking_csv, selector: str,
                     fraction: float | None, seed: int) -> tuple[list[int], dict]:
    """The channels a control keeps: `selector` at the study's k (fraction None; cut_json is
    then selected.json, which holds k) or at k = round(fraction x the cut layer's features)
    (cut_json may be the ranking's info json: a frontier point does not depend on the chosen
    k, so another feature_tolerance does not retrain it). -> (channels in the selector's
    order, the cut description read)."""
    sel = artifacts.read_json(cut_json)
    n = sel["n_candidates"]
    if fraction is None:
        if "k" not in sel:
            raise ValueError(f"{cut_json}: no chosen k; the study's k is in selected.json")
        k = sel["k"]
    else:
        k = k_of_fraction(fraction, n)
    weight = None
    if selector == "l1":
        arch, state = arch_and_state(e2e_model)
        weight = cut_conv_weight(arch, state, sel["cut_layer"])
    ranking = pd.read_csv(ranking_csv)["feature"].tolist() if selector == "si" else None
    chosen = choose_channels(selector, k, unit=sel["unit"], n_candidates=n, ranking=ranking,
                             conv_weight=weight, seed=seed)
    return chosen, sel


def train_control(*, e2e_model, cut_json, ranking_csv, selector: str,
                  fraction: float | None, repeat: int, data_npz, split_npz, summary_json,
                  model_out, history, metrics, curves, predictions, settings: TrainSettings,
                  hidden, dropout: float, features=None, config: dict | None = None,
                  device: str | None = None, log: Callable[[str], None] = print) -> dict:
    """One classifier-only training of the controls, trained like (c): the features `selector`
    keeps (at the study's k, or at a frontier fraction; see `control_channels`), a new
    classifier whose weights and batch order come from `settings.seed` (the study's seed +
    repeat; the random selector draws its channels with that seed too)."""
    _classifier_only(settings, "train_control")
    chosen, sel = control_channels(e2e_model=e2e_model, cut_json=cut_json,
                                   ranking_csv=ranking_csv, selector=selector,
                                   fraction=fraction, seed=settings.seed)
    model = build_compressed(e2e_model, sel["cut_layer"], sel["unit"], chosen, hidden=hidden,
                             dropout=dropout, seed=settings.seed)
    size = "the chosen k" if fraction is None else f"fraction {fraction:g}"
    extra = {"selector": selector, "fraction": fraction, "repeat": repeat,
             "seed": settings.seed, "selected": chosen}
    return _train_pruned(model, e2e_model=e2e_model, sel=sel, kept=chosen, data_npz=data_npz,
                         split_npz=split_npz, summary_json=summary_json, model_out=model_out,
                         history=history, metrics=metrics, curves=curves,
                         predictions=predictions, settings=settings,
                         title=f"{selector} at {size}, repeat {repeat}", extra=extra,
                         config=config, device=device, log=log, features=features)


def train_scratch(*, e2e_model, selected_json, data_npz, split_npz, summary_json, model_out,
                  history, metrics, curves, predictions, settings: TrainSettings, hidden,
                  dropout: float, config: dict | None = None, device: str | None = None,
                  log: Callable[[str], None] = print) -> dict:
    """The compressed architecture (the cut prefix, the kept channels, a new classifier)
    trained end to end from random weights: is the pruned e2e extractor worth anything?"""
    if settings.train_only != "all":
        raise ValueError("train_scratch trains every layer: settings.train_only must be 'all'")
    sel = artifacts.read_json(selected_json)
    arch, _ = arch_and_state(e2e_model)
    new_arch = compressed_arch(arch, sel["cut_layer"], sel["unit"], sel["selected"], hidden,
                               dropout)
    torch.manual_seed(settings.seed)
    model = build_model(new_arch)  # random weights; normalisation from the arch
    extra = {"selector": "si", "fraction": None, "repeat": 0, "seed": settings.seed,
             "from_scratch": True}
    return _train_pruned(model, e2e_model=e2e_model, sel=sel, kept=sel["selected"],
                         data_npz=data_npz, split_npz=split_npz, summary_json=summary_json,
                         model_out=model_out, history=history, metrics=metrics, curves=curves,
                         predictions=predictions, settings=settings,
                         title="compressed architecture from scratch", extra=extra,
                         config=config, device=device, log=log)


def finetune(*, compressed_model, e2e_model, data_npz, split_npz, summary_json, model_out,
             history, metrics, curves, predictions, settings: TrainSettings,
             config: dict | None = None, device: str | None = None,
             log: Callable[[str], None] = print) -> dict:
    """The trained compressed model, then every layer trained (fine-tuning; the caller sets
    the lr, the search's x 0.1 in the study)."""
    if settings.train_only != "all":
        raise ValueError("finetune trains every layer: settings.train_only must be 'all'")
    ckpt = load_checkpoint(compressed_model)
    model = load_model(compressed_model)
    comp = ckpt["arch"]["compression"]
    candidates = comp["candidates"]  # layer-wise: {conv: channels before}
    sel = {"cut_layer": comp["cut_layer"], "unit": comp["unit"],
           "n_candidates": sum(candidates.values()) if isinstance(candidates, dict)
           else candidates}
    start = ckpt.get("metrics", {}).get("compression", {})  # the classifier-only run's record
    extra = {"selector": start.get("selector", "si"), "fraction": None,
             "repeat": start.get("repeat", 0), "seed": settings.seed,
             "finetuned_from": str(compressed_model)}
    if comp.get("method"):
        extra["method"] = comp["method"]
    return _train_pruned(model, e2e_model=e2e_model, sel=sel, kept=comp["kept"],
                         data_npz=data_npz, split_npz=split_npz, summary_json=summary_json,
                         model_out=model_out, history=history, metrics=metrics, curves=curves,
                         predictions=predictions, settings=settings,
                         title=f"{'layer-wise pruned' if comp.get('method') else 'compressed (c)'}"
                               f", fine-tuned"
                               + (f" ({extra['selector']}, repeat {extra['repeat']})"
                                  if comp.get("method") else ""), extra=extra, config=config,
                         device=device, log=log)


# ----------------------------------------------------------------------------------------
# 5. Layer-wise SI pruning of every conv layer (`layerwise`), trained like (c)


def train_layerwise(*, e2e_model, pruned_json, selector: str, repeat: int, width: int,
                    data_npz, split_npz, summary_json, model_out, history, metrics, curves,
                    predictions, settings: TrainSettings, dropout: float,
                    hidden_si_json=None, si_batch_size: int = 500, features=None,
                    config: dict | None = None, device: str | None = None,
                    log: Callable[[str], None] = print) -> dict:
    """A new classifier (one hidden layer of `width` units) on the frozen layer-wise pruned
    extractor, classifier only, like (c). The channels of each conv are the layer-wise SI
    choice (selector "si") or, with the same count per layer, the L1 or random control
    (`layerwise.control_kept`, random drawn with settings.seed). hidden_si_json: also write
    the SI and Center SI of the trained hidden layer on si_train (the width's design)."""
    _classifier_only(settings, "train_layerwise")
    pruned = artifacts.read_json(pruned_json)
    cut = pruned["cut_layer"]
    model, kept = pruned_network(e2e_model, pruned, selector, seed=settings.seed,
                                 hidden=[width], dropout=dropout, data_npz=data_npz,
                                 split_npz=split_npz, batch_size=si_batch_size,
                                 device=pick_device(device), log=log)
    sel = {"cut_layer": cut, "unit": "channel", "n_candidates": pruned["channels_before"]}
    extra = {"method": "layerwise", "selector": selector, "fraction": None, "repeat": repeat,
             "seed": settings.seed, "width": width}
    out = _train_pruned(model, e2e_model=e2e_model, sel=sel, kept=kept, data_npz=data_npz,
                        split_npz=split_npz, summary_json=summary_json, model_out=model_out,
                        history=history, metrics=metrics, curves=curves,
                        predictions=predictions, settings=settings,
                        title=f"layer-wise pruned, {selector}, width {width}, repeat {repeat}",
                        extra=extra, config=config, device=device, log=log, features=features)
    if hidden_si_json is not None:
        dev = pick_device(device)
        images, labels = subset_images(data_npz, split_npz, "si_train")
        trained = load_model(model_out, map_location=dev)
        h = hidden_separation(trained, images, labels, batch_size=si_batch_size, device=dev)
        h.update(test_acc=out["test_acc"], val_acc=out["val_acc"],
                 parameters=out["parameters"]["total"], macs=out["macs"]["total"],
                 provenance=artifacts.provenance(settings={"model": str(model_out),
                                                           "subset": "si_train",
                                                           "precision": PRECISION}))
        artifacts.write_json(hidden_si_json, h)
        log(f"width {width}: hidden layer on si_train: SI {h['si']:.4f}, Center SI "
            f"{h['center_si']:.4f}")
    return out


def train_layerwise_scratch(*, layerwise_model, e2e_model, repeat: int, data_npz, split_npz,
                            summary_json, model_out, history, metrics, curves, predictions,
                            settings: TrainSettings, config: dict | None = None,
                            device: str | None = None,
                            log: Callable[[str], None] = print) -> dict:
    """The layer-wise pruned architecture (its channels per conv and its classifier, as in
    `layerwise_model`) trained end to end from random weights initialised by settings.seed
    (the study's seed + repeat): what the pruning is worth against the architecture alone
    (Liu et al. 2019). One architecture serves every selector: their counts are the same."""
    if settings.train_only != "all":
        raise ValueError("train_layerwise_scratch trains every layer: settings.train_only must "
                         "be 'all'")
    arch = load_checkpoint(layerwise_model)["arch"]
    comp = arch.get("compression") or {}
    if comp.get("method") != "layerwise":
        raise ValueError(f"{layerwise_model} is not a layer-wise pruned model (its compression "
                         f"record is {comp or 'missing'})")
    torch.manual_seed(settings.seed)
    model = build_model(arch)  # random weights; the source's normalisation from the arch
    sel = {"cut_layer": comp["cut_layer"], "unit": "channel",
           "n_candidates": sum(comp["candidates"].values())}
    extra = {"method": "layerwise", "selector": "architecture", "fraction": None,
             "repeat": repeat, "seed": settings.seed, "from_scratch": True,
             "architecture_of": str(layerwise_model)}
    return _train_pruned(model, e2e_model=e2e_model, sel=sel, kept=comp["kept"],
                         data_npz=data_npz, split_npz=split_npz, summary_json=summary_json,
                         model_out=model_out, history=history, metrics=metrics, curves=curves,
                         predictions=predictions, settings=settings,
                         title=f"layer-wise pruned architecture from scratch, repeat {repeat}",
                         extra=extra, config=config, device=device, log=log)


LAYERWISE_FILES = ("model.pt", "history.csv", "metrics.json", "curves.png", "predictions.npz")


def choose_layerwise_width(*, hidden_si_jsons, width_dirs, out_json, out_dir, plot=None,
                           tolerance: float = 0.01, log: Callable[[str], None] = print) -> dict:
    """The classifier width of the layer-wise pruned network (`layerwise.choose_width` on
    the hidden layers' Center SI on si_train); the chosen width's artefacts are copied to
    `out_dir` (model.pt, history.csv, metrics.json, curves.png, predictions.npz), so that
    the layer-wise pruned model is measured and reported like every other model."""
    import shutil

    records = []
    for path, folder in zip(hidden_si_jsons, width_dirs, strict=True):
        rec = artifacts.read_json(path)
        records.append({**{k: rec[k] for k in ("width", "si", "center_si", "test_acc",
                                               "val_acc", "parameters", "macs")},
                        "folder": str(folder)})
    choice = choose_width(records, tolerance)
    chosen = next(r for r in records if r["width"] == choice["width"])
    out = {**choice, "widths": sorted(records, key=lambda r: r["width"]),
           "decided_on": "Center SI of the trained hidden layer on si_train",
           "provenance": artifacts.provenance(settings={"tolerance": tolerance})}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name in LAYERWISE_FILES:
        src = Path(chosen["folder"]) / name
        with artifacts.atomic_path(Path(out_dir) / name) as tmp:
            shutil.copyfile(src, tmp)
    artifacts.write_json(out_json, out)
    if plot is not None:
        figures.plot_width_choice(out, plot)
    log(f"classifier width {choice['width']}: Center SI {choice['center_si']:.4f} within "
        f"{tolerance:g} of width {choice['reference_width']}'s "
        f"{choice['reference_center_si']:.4f}")
    return out
