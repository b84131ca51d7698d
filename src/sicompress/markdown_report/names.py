"""The study's models, selectors, recipes and jobs as the report names and orders them.

The one place the report reads them from; the sections read them from here. The models and
the selectors themselves are listed once for the whole package (`sicompress.study`,
`criteria.CRITERIA`); what is here is how the report shows them.
"""

from __future__ import annotations

from .. import study
from ..criteria import CRITERIA, NAMES as SELECTORS

# The heading of each trained model's section (`ReportInputs.models`), by its name
MODEL_TITLES = {m.name: m.title for m in study.MODELS}

# Models beyond the summary's, by their name in latency.csv and mcnemar.csv: the field of
# ReportInputs that holds each one's metrics.json (test accuracy, parameters, MACs)
OTHER_MODEL_METRICS = {name: f"{name}_{key}" for name, key in study.report_inputs()
                       if key == "metrics"}

# How each model was trained, in the controls' table (the compressed architecture's ones)
CONTROL_TRAINED = {m.name: m.trained for m in study.MODELS}

# The references of the compressed model in the comparisons' sentences
CONTROL_NAMES = {"scratch": "The compressed architecture from scratch",
                 "finetuned": "The compressed model fine-tuned"}

# Rows of the latency table: the study's timed models in its order; others alphabetically
LATENCY_ORDER = tuple(m.name for m in study.MODELS if m.latency)

# Channel selectors (the study's own first); others follow in alphabetical order
SELECTOR_ORDER = SELECTORS
SELECTOR_NAMES = {c.name: c.title for c in CRITERIA}  # in the answers' sentences

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
