# Helpers of the rules. Nothing here imports torch: the DAG is built on a login node too.
# Compute settings (config["compute"]) are read by the scripts from the config, never passed as
# params, so that changing them re-runs no job (params are a rerun trigger, the config is not).

import os

ENV = "../../envs/sicompress.yaml"
BENCHMARKS = "results/benchmarks"  # wall time and memory of every job (Snakemake benchmark files)
MODELS = ["search", "e2e", "head", "compressed"]  # search: the chosen trial's model


def get_data_path():
    """data.path, or $CIFAR10_JPEG when the folder source is given no path."""
    path = config["data"].get("path")
    if config["data"]["source"] == "folder" and not path:
        path = os.environ.get("CIFAR10_JPEG")
        if not path:
            raise ValueError(
                "data.source is 'folder' but data.path is empty and CIFAR10_JPEG is not set"
            )
    return path


def format_value(v):
    """How an lr or step appears in paths: shortest round-trip text (0.05, 0.1, 1e-05, 30)."""
    return f"{v:g}"


def grid(pattern):
    """`pattern` expanded over every (lr, step) point of the search grid."""
    return expand(
        pattern,
        lr=[format_value(v) for v in config["lr_search"]["lrs"]],
        step=[format_value(v) for v in config["lr_search"]["step_sizes"]],
    )


def get_trial_metrics():
    """metrics.json of every trial of the search."""
    return grid(rules.lr_trial.output.metrics)


def get_trained(model, key):
    """File `key` (model, history, metrics or curves) of a trained model, by its name in MODELS.
    "search" is the search's chosen trial, which select_lr copies to results/search/."""
    if model == "search":
        return getattr(rules.select_lr.output, "model" if key == "model" else f"trial_{key}")
    trainings = {"e2e": rules.train_e2e, "head": rules.train_head,
                 "compressed": rules.train_compressed}
    return getattr(trainings[model].output, key)


def get_trained_files(key):
    """File `key` of every trained model, in the order of MODELS."""
    return [get_trained(model, key) for model in MODELS]


def get_trained_model(wildcards):
    """model.pt of the trained model named by the {model} wildcard."""
    return get_trained(wildcards.model, "model")


def get_layer_si(model):
    """The per-layer SI table of one trained model."""
    return expand(rules.layer_si.output.table, model=model)[0]


def get_benchmarks():
    """The benchmark file of every job the report covers, in workflow order."""
    return (
        [rules.prepare_data.benchmark, rules.split.benchmark]
        + grid(rules.lr_trial.benchmark)
        + [rules.select_lr.benchmark, rules.train_e2e.benchmark, rules.train_head.benchmark]
        + expand(rules.layer_si.benchmark, model=MODELS)
        + expand(rules.plot_layer_si.benchmark, model=MODELS)
        + [rules.cut_layers.benchmark, rules.select_features.benchmark,
           rules.train_compressed.benchmark]
    )


def get_final_outputs():
    outputs = [rules.select_lr.output.heatmap, rules.select_lr.output.model,
               rules.select_lr.output.trial_metrics, rules.select_lr.output.trial_curves]
    for rule_ in (rules.train_e2e, rules.train_head, rules.train_compressed):
        outputs += [rule_.output.model, rule_.output.metrics, rule_.output.curves]
    outputs += expand(rules.plot_layer_si.output.plot, model=MODELS)
    outputs += [rules.report.output.md, rules.report.output.summary]
    return outputs
