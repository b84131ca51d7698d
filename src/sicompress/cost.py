"""What a model costs: its parameters, and the multiply-accumulates of one image's forward pass.

Both are read from the model or its `arch` alone (no data, no device), so the report can
count them for any checkpoint and for architectures that were never built.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .model import Network


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(model: Network) -> dict[str, int]:
    """Parameters of the extractor, of the classifier and in all."""
    f, c = count_parameters(model.features), count_parameters(model.classifier)
    return {"features": f, "classifier": c, "total": f + c}


def macs_per_image(arch: dict) -> dict[str, Any]:
    """Multiply-accumulates of one forward pass of one image, from the arch alone.

    Conv 3x3 with padding 1: 3*3*C_in*C_out*H*W (H, W its output size, equal to its input
    size); its bias, BatchNorm, ReLU, the max-pools, the normalisation and the index
    selection of the classifier input count 0 (they are additions, comparisons or copies,
    not multiply-accumulates, and small beside the convs). Linear: in*out (bias not counted).
    -> {"features": int, "classifier": int, "total": int, "layers": {name: int}} where
    "layers" holds every feature layer (convs and pools) and the classifier's Linears.
    """
    _, h, w = arch.get("input_shape", [3, 32, 32])
    layers: dict[str, int] = {}
    for layer in arch["features"]:
        if layer["kind"] == "conv":
            layers[layer["name"]] = 3 * 3 * layer["in"] * layer["out"] * h * w
        elif layer["kind"] == "pool":
            layers[layer["name"]] = 0
            h, w = h // 2, w // 2
        else:
            raise ValueError(f"unknown layer kind {layer['kind']!r} in {layer}")
    features = sum(layers.values())

    spec = arch["classifier"]
    index = spec.get("input_index")
    n_in = len(index) if index is not None else spec["in_features"]
    classifier = 0
    sizes = list(spec["hidden"]) + [spec["num_classes"]]
    names = [f"fc{i}" for i in range(1, len(spec["hidden"]) + 1)] + ["out"]
    for name, n_out in zip(names, sizes):
        layers[f"classifier.{name}"] = n_in * n_out
        classifier += n_in * n_out
        n_in = n_out
    return {"features": features, "classifier": classifier, "total": features + classifier,
            "layers": layers}
