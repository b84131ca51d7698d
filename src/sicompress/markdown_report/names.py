"""The study's models, selectors, recipes and jobs as the report names and orders them.

The one place the report lists them; the sections read them from here. (The workflow lists
the same models in `workflow/rules/common.smk`; a model added there is named here.)
"""

from __future__ import annotations

# The trained models of the summary (`ReportInputs.models`): the heading of each one's section
MODEL_TITLES = {
    "search": "Learning-rate search: the chosen trial's model",
    "e2e": "End-to-end training (a)",
    "head": "Frozen features, new classifier (b)",
    "compressed": "Compressed model (c)",
}

# Models beyond the summary's, by their name in latency.csv and mcnemar.csv: the field of
# ReportInputs that holds each one's metrics.json (test accuracy, parameters, MACs)
OTHER_MODEL_METRICS = {
    "scratch": "scratch",
    "finetuned": "finetuned",
    "layerwise": "layerwise_metrics",
    "layerwise_finetuned": "layerwise_finetuned_metrics",
}

# The compressed architecture trained otherwise: how each was trained, in the controls' table
CONTROL_TRAINED = {
    "compressed": "classifier only, on the frozen pruned extractor (SI's channels)",
    "scratch": "end to end from random initial weights, same architecture",
    "finetuned": "the compressed model, fine-tuned",
}

# Rows of the latency table; models not named here follow in alphabetical order
LATENCY_ORDER = ("e2e", "head", "compressed", "scratch", "finetuned")

# Channel selectors (the study's own first); others follow in alphabetical order
SELECTOR_ORDER = ("si", "l1", "random")
SELECTOR_NAMES = {"si": "SI", "l1": "L1", "random": "random"}  # in the answers' sentences

# The layer-wise pruned network's recipes, in the order of its table, with what each trains
LAYERWISE_RECIPES = {"classifier only": "frozen pruned extractor, a new classifier",
                     "fine-tuned": "the classifier-only network, then every layer trained",
                     "from scratch": "the pruned architecture from random weights, e2e schedule"}

# Order of the Snakemake rules in the workflow, for the wall-time table; others come last.
WORKFLOW_ORDER = [
    "prepare_data", "split", "lr_trial", "select_lr", "train_e2e", "train_head", "layer_si",
    "plot_layer_si", "cut_layers", "rank_features", "choose_features", "train_compressed",
    "train_control", "train_scratch", "finetune", "measure_latency", "summarize_controls",
]

METRIC_NAMES = {"si": "SI", "center_si": "Center SI"}


def selector_order(names) -> list[str]:
    """The selectors among `names`, in SELECTOR_ORDER and then alphabetically."""
    first = [s for s in SELECTOR_ORDER if s in set(names)]
    return first + sorted(set(names) - set(first))
