"""The study's models, listed once: what each is, where its files are, which config switch
makes it, and how the report names it. The rules (`workflow/rules/common.smk`), the controls'
summary and the report read this list; adding a model to the study starts here.

Every trained model has the same files in its folder: model.pt, history.csv, metrics.json,
predictions.npz and curves.png (the search's chosen trial keeps its own under
results/search/, copied by `select_lr`).

Plain data only: the workflow reads it while it builds the job graph (no torch import).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class StudyModel:
    """One trained model of the study.

    name: its name in rules, tables, file names and the report's tables.
    folder: the folder of its files, relative to the working directory.
    rule: the rule that writes its files ("" for the search's chosen trial: `select_lr`
      copies it).
    switch: the config key(s) that make it, as a reader would look for them ("" = always).
    made: whether `config` makes it.
    title: how the report names it in a heading or a sentence.
    trained: how it was trained, one line for the report's tables.
    layer_si: it gets a per-layer SI table and plot.
    from_e2e: its layer SI reuses the rows of e2e's layers it shares (built on e2e's extractor).
    reference: the controls compare the compressed models with it (McNemar, frontier).
    latency: its forward pass is timed (one model per architecture).
    wildcards: the values of its rule's wildcards, when the rule makes several models.
    """

    name: str
    folder: str
    rule: str
    switch: str
    made: Callable[[Mapping], bool]
    title: str
    trained: str
    layer_si: bool = True
    from_e2e: bool = False
    reference: bool = True
    latency: bool = True
    wildcards: tuple[tuple[str, str], ...] = ()


def _always(config: Mapping) -> bool:
    return True


def _finetune(config: Mapping) -> bool:
    return config["compress"]["finetune_epochs"] > 0


def _scratch(config: Mapping) -> bool:
    return bool(config["controls"]["scratch"])


def _layerwise(config: Mapping) -> bool:
    return bool(config["layerwise"]["enabled"])


def _layerwise_finetune(config: Mapping) -> bool:
    return _layerwise(config) and config["layerwise"]["finetune"]["epochs"] > 0


def _layerwise_scratch(config: Mapping) -> bool:
    return _layerwise(config) and bool(config["layerwise"]["scratch"])


MODELS: tuple[StudyModel, ...] = (
    StudyModel("search", "results/search", "", "", _always,
               "Learning-rate search: the chosen trial's model",
               "the search's best trial (lr_search.epochs at its lr and step)",
               reference=False, latency=False),
    StudyModel("e2e", "results/e2e", "train_e2e", "", _always,
               "End-to-end training (a)", "end to end from random initial weights"),
    StudyModel("head", "results/head", "train_head", "", _always,
               "Frozen features, new classifier (b)",
               "a new classifier on e2e's frozen extractor", from_e2e=True),
    StudyModel("compressed", "results/compressed", "train_compressed", "", _always,
               "Compressed model (c)",
               "classifier only, on the frozen pruned extractor (SI's channels)",
               from_e2e=True, reference=False),
    StudyModel("scratch", "results/scratch", "train_scratch", "controls.scratch", _scratch,
               "The compressed architecture from scratch",
               "end to end from random initial weights, same architecture", layer_si=False),
    StudyModel("finetuned", "results/finetuned", "finetune", "compress.finetune_epochs > 0",
               _finetune, "The compressed model fine-tuned",
               "the compressed model, fine-tuned", from_e2e=True),
    StudyModel("layerwise", "results/layerwise", "choose_layerwise_width", "layerwise.enabled",
               _layerwise, "Layer-wise SI pruning",
               "classifier only, on the frozen layer-wise pruned extractor (SI's channels)"),
    StudyModel("layerwise_finetuned", "results/layerwise/finetuned/si/repeat~0",
               "finetune_layerwise", "layerwise.enabled and layerwise.finetune.epochs > 0",
               _layerwise_finetune, "Layer-wise SI pruning, fine-tuned",
               "the layer-wise pruned model (SI's channels), fine-tuned end to end",
               wildcards=(("selector", "si"), ("repeat", "0"))),
)
BY_NAME: dict[str, StudyModel] = {m.name: m for m in MODELS}

# The layer-wise from-scratch recipe's switch (no model of its own above; the fine-tuned
# recipe's is the model "layerwise_finetuned"'s `made`)
LAYERWISE_SCRATCH = _layerwise_scratch


def model(name: str) -> StudyModel:
    """The study's model `name`; an error that lists the known names otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown model {name!r}; the study's models are {list(BY_NAME)}")
    return BY_NAME[name]


def made(config: Mapping, **only: bool) -> list[str]:
    """Names of the models `config` makes, in the study's order; keyword filters on the
    fields, e.g. made(config, latency=True) for the models whose latency is measured."""
    return [m.name for m in MODELS if m.made(config)
            and all(getattr(m, field) == value for field, value in only.items())]


def always() -> list[str]:
    """The models every study makes (no switch), in the study's order: the report's sections
    of trained models, each with its layer SI table."""
    return [m.name for m in MODELS if not m.switch]


def report_inputs(config: Mapping | None = None) -> list[tuple[str, str]]:
    """The report's inputs of the optional models `config` makes (None: of every optional
    model), as (model, file) pairs: every one's "metrics", and its "layer_si_plot" where it
    has a layer SI table. The report names each `{model}_{file}` (`ReportInputs`' fields)."""
    return [(m.name, key) for m in MODELS if m.switch and (config is None or m.made(config))
            for key in ("metrics", "layer_si_plot") if key == "metrics" or m.layer_si]


def references(config: Mapping) -> list[str]:
    """The models the controls compare the compressed ones with, in the study's order."""
    return made(config, reference=True)
