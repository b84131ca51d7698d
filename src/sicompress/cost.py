"""What a model costs: its parameters, and the operations of one image's forward pass.

Both are read from the model or its `arch` alone (no data, no device: the network is built on
PyTorch's meta device, shapes without memory), so the report can count them for any
checkpoint and for architectures that were never trained.

MACs come from Torch-Pruning's counter (`torch_pruning.utils.count_ops_and_params`, the
counter its published results use), per image:

- conv: k x k x C_in / groups x C_out x H_out x W_out, plus one per output value for its bias;
- Linear: in x out, plus out for its bias;
- BatchNorm: 2 per value (affine); ReLU: 1 per value; max- and average-pools: 1 per input
  value; the normalisation, the index selection of the classifier's input, dropout and a
  residual block's addition: 0.

On VGG16 (width 1) the convs' and Linears' multiply-accumulates alone are 313,725,952; the
counter's 314,958,858 adds 1,232,906: conv and Linear biases 277,514, BatchNorm 552,960, ReLU
277,504, max-pools 124,928 (tests/test_pruning.py, by hand).
"""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from .model import Network, build_model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(model: Network) -> dict[str, int]:
    """Parameters of the extractor, of the classifier and in all."""
    f, c = count_parameters(model.features), count_parameters(model.classifier)
    return {"features": f, "classifier": c, "total": f + c}


def arch_parameters(arch: dict) -> dict[str, int]:
    """`parameter_counts` of the network `arch` describes, built on the meta device (no
    weights, no memory): the parameters of a network that was never trained."""
    with torch.device("meta"):
        return parameter_counts(build_model(arch))


def macs_per_image(arch: dict) -> dict[str, Any]:
    """Operations of one forward pass of one image (module notes), from the arch alone.

    -> {"features": int, "classifier": int, "total": int, "layers": {name: int}} where
    "layers" holds every feature layer (convs, blocks and pools) and the classifier's
    Linears ("classifier.fc1", ..., "classifier.out").
    """
    with torch.device("meta"):
        model = build_model(arch).eval()
    c, h, w = arch.get("input_shape", [3, 32, 32])
    example = torch.zeros(1, c, h, w, device="meta")
    _, _, per_module, _ = tp.utils.count_ops_and_params(model, example, layer_wise=True)
    names = {module: name for name, module in model.named_modules()}
    counts = {names[m]: int(v) for m, v in per_module.items() if m in names}
    layers = {name: counts.get(f"features.{name}", 0) for name, _, _ in model.feature_layers()}
    for name, module in model.classifier.layers.named_children():
        if isinstance(module, nn.Linear):
            layers[f"classifier.{name}"] = counts.get(f"classifier.layers.{name}", 0)
    features, classifier = counts.get("features", 0), counts.get("classifier", 0)
    return {"features": features, "classifier": classifier, "total": features + classifier,
            "layers": layers}
