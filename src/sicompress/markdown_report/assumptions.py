"""The assumptions (templates/assumptions.md, one source with the README) and the settings and
counts of this run that they name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import artifacts
from ..engine import scaled_step
from .cells import count, frame, plural, value
from .inputs import ReportInputs
from .intro import data_context
from .names import METRIC_NAMES

NAME = "assumptions"  # the section's template: templates/assumptions.md.j2
TITLE = "Assumptions"
ASSUMPTIONS = Path(__file__).parents[1] / "templates" / "assumptions.md"  # shown verbatim


def headings(inputs: ReportInputs) -> list[str]:
    return [TITLE]


def context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    return {"title": TITLE, "run_settings": run_settings(inputs, data_context(inputs))}


def run_settings(inputs: ReportInputs, data: dict) -> pd.DataFrame:
    """The values the assumptions name, as this run resolved and used them: one row each."""
    cfg = inputs.config
    train, ls = cfg.get("train", {}), cfg.get("lr_search", {})
    head_cfg, comp_cfg, dcfg = cfg.get("head", {}), cfg.get("compress", {}), cfg.get("data", {})
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
        lr_txt = (f"lr {value(section['lr'])} (config {label}.lr)" if section.get("lr") is not None
                  else f"lr {best['lr']:g}, the search's choice ({label}.lr is null)")
        if section.get("step_size") is not None:
            step_txt = f"step {value(section['step_size'])} (config {label}.step_size)"
        elif epochs and full:
            step_txt = (f"step {scaled_step(int(best['step_size']), int(epochs), int(full))}, the "
                        f"search's step {int(best['step_size'])} scaled by {epochs}/{full} "
                        f"({label}.step_size is null)")
        else:
            step_txt = f"the search's step scaled to {epochs} epochs ({label}.step_size is null)"
        used = (f"; the run used lr {value(m.get('lr'))} and step {value(m.get('step_size'))}"
                if m else "")
        return (f"{value(epochs)} {plural(epochs, 'epoch')}; {lr_txt}; {step_txt}{used}; "
                f"classifier hidden {value(section.get('classifier_hidden'))}, dropout "
                f"{value(section.get('dropout'))}")

    norm = (f"mean {value([round(x, 4) for x in split['train_mean']])}, std "
            f"{value([round(x, 4) for x in split['train_std']])}"
            if "train_mean" in split and "train_std" in split else "–")
    layer_metric = comp_cfg.get("layer_metric")
    rows = [
        ["data", f"source {data['source']}, image format {data['image_format']}",
         "`data.source`; prepare_data"],
        ["learning-rate grid", f"lr ∈ {value(ls.get('lrs'))}, StepLR step ∈ "
         f"{value(ls.get('step_sizes'))} epochs of the {value(full)}-epoch schedule",
         "`lr_search.lrs`, `lr_search.step_sizes`"],
        ["trial length", f"{value(ls.get('epochs'))} {plural(ls.get('epochs'), 'epoch')}, "
         f"step scaled by {value(ls.get('epochs'))}/{value(full)} (rounded, at least 1)",
         "`lr_search.epochs`"],
        ["end-to-end (a)", f"{value(full)} {plural(full, 'epoch')} from random initial "
         f"weights; the search's lr {best['lr']:g} and step {int(best['step_size'])}",
         "`train.epochs`; the search"],
        ["frozen features (b)", schedule("head", head_cfg, "head"), "`head.*`"],
        ["compressed (c)", schedule("compressed", comp_cfg, "compress"), "`compress.*`"],
        ["optimiser", f"SGD, momentum {value(train.get('momentum'))}, weight decay "
         f"{value(train.get('weight_decay'))}, batch {value(train.get('batch_size'))}, StepLR "
         f"factor {value(train.get('gamma'))}", "`train.*`"],
        ["augmentation", "random crop with 4-px zero padding, horizontal flip"
         if train.get("augment") else "none", "`train.augment`"],
        ["classifier-only inputs", classifier_inputs(cfg, metrics.get("head", {})),
         "`classifier_features.source`, `classifier_features.dtype`"],
        ["val", f"{count(totals.get('val'))} of {count(split.get('n_official_train'))} images "
         f"({value(dcfg.get('val_fraction'))}){per_class('val')}", "`data.val_fraction`"],
        ["train", f"{count(totals.get('train'))} images{per_class('train')}", "the rest of the official training set"],
        ["si_train", f"{count(totals.get('si_train'))} images ({value(dcfg.get('si_fraction'))} "
         f"× {count(split.get('n_official_train'))}){per_class('si_train')}", "`data.si_fraction`"],
        ["si_test", f"{count(totals.get('si_test'))} of {count(split.get('n_official_test'))} "
         f"images ({value(dcfg.get('si_test_fraction'))}){per_class('si_test')}",
         "`data.si_test_fraction`"],
        ["input normalisation", norm, "the train subset"],
        ["cut rule", f"{METRIC_NAMES.get(layer_metric, value(layer_metric))} within "
         f"{value(comp_cfg.get('layer_tolerance'))} of the best layer's",
         "`compress.layer_metric`, `compress.layer_tolerance`"],
        ["k rule", f"{value(comp_cfg.get('feature_unit'))}s; SI within "
         f"{value(comp_cfg.get('feature_tolerance'))} of the best on the curve; patience "
         f"{value(comp_cfg.get('patience'), none='none')}; most features selected "
         f"{value(comp_cfg.get('max_features'), none='no limit')}",
         "`compress.feature_unit`, `compress.feature_tolerance`, `compress.patience`, "
         "`compress.max_features`"],
    ]
    return frame(rows, ["setting", "value", "config key or source"])


def classifier_inputs(cfg: dict, head: dict) -> str:
    """What the classifier-only trainings read, as head's metrics say this run did."""
    feats = cfg.get("classifier_features", {})
    if head.get("inputs", "images") == "cached":
        return (f"the frozen extractor's outputs for the train and val images, computed once "
                f"per extractor and stored as {feats.get('dtype', '–')}; no crop or flip")
    return ("the images through the frozen extractor in every epoch, cropped and flipped as "
            "`train.augment` says")

