import os

from sicompress.lr_search import format_value

ENV = "../../envs/sicompress.yaml"


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


def get_trial_metrics():
    """metrics.json of every (lr, step) point of the search grid."""
    return expand(
        rules.lr_trial.output.metrics,
        lr=[format_value(v) for v in config["lr_search"]["lrs"]],
        step=[format_value(v) for v in config["lr_search"]["step_sizes"]],
    )


def get_final_outputs():
    outputs = [rules.select_lr.output.heatmap]
    for rule_ in (rules.train_e2e, rules.train_head):
        outputs += [rule_.output.model, rule_.output.metrics, rule_.output.curves]
    outputs += expand(rules.plot_layer_si.output.plot, model=["e2e", "head"])
    return outputs
