import os

from sicompress.lr_search import format_value

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


def get_benchmarks():
    """The benchmark file of every job the report covers, in workflow order."""
    before = ["prepare_data", "split"]
    after = ["select_lr", "train_e2e", "train_head"]
    compress = ["cut_layers", "select_features", "train_compressed"]
    return (
        [f"{BENCHMARKS}/{r}.tsv" for r in before]
        + grid(f"{BENCHMARKS}/lr_trial/lr~{{lr}}_step~{{step}}.tsv")
        + [f"{BENCHMARKS}/{r}.tsv" for r in after]
        + expand(f"{BENCHMARKS}/{{rule}}/{{model}}.tsv", rule=["layer_si", "plot_layer_si"], model=MODELS)
        + [f"{BENCHMARKS}/{r}.tsv" for r in compress]
    )


def get_final_outputs():
    outputs = [rules.select_lr.output.heatmap, rules.select_lr.output.model,
               rules.select_lr.output.trial_metrics, rules.select_lr.output.trial_curves]
    for rule_ in (rules.train_e2e, rules.train_head, rules.train_compressed):
        outputs += [rule_.output.model, rule_.output.metrics, rule_.output.curves]
    outputs += expand(rules.plot_layer_si.output.plot, model=MODELS)
    outputs += [rules.report.output.md, rules.report.output.summary]
    return outputs
