"""VGG for 32x32 inputs, built from plain data so that it can be saved, cut and rebuilt.

The architecture is a plain dictionary (the "arch"), stored in every checkpoint:

    {"features": [{"name": "conv1_1", "kind": "conv", "in": 3, "out": 64}, ...,
                  {"name": "pool1", "kind": "pool"}, ...],
     "input_shape": [3, 32, 32],
     "classifier": {"in_features": 512, "hidden": [512, 512], "dropout": 0.5,
                    "num_classes": 10, "input_index": None},
     "mean": [r, g, b], "std": [r, g, b]}

`features` is an `nn.Sequential` of named layers (`conv1_1` = Conv3x3 + BatchNorm + ReLU,
`pool1` = 2x2 max-pool), so hooking a layer, freezing the extractor or keeping a prefix of
it is indexing, not surgery. The compressed model of part (c) is the same class with a
shorter feature list and fewer channels in its last conv.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

# VGG16: numbers are conv output channels at width 1, "M" a 2x2 max-pool.
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

# CIFAR-10 channel statistics, only a fallback for models built without split statistics.
DEFAULT_MEAN = (0.4914, 0.4822, 0.4465)
DEFAULT_STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------------------
# Architecture as plain data


def feature_spec(width: float = 1.0, cfg: list = VGG16, in_channels: int = 3) -> list[dict]:
    """Layer list for `cfg` with every channel count scaled by `width` (at least 1)."""
    if width <= 0:
        raise ValueError(f"model.width must be > 0, got {width}")
    spec, block, idx, c_in = [], 1, 1, in_channels
    for v in cfg:
        if v == "M":
            spec.append({"name": f"pool{block}", "kind": "pool"})
            block, idx = block + 1, 1
        else:
            c_out = max(1, int(round(v * width)))
            spec.append({"name": f"conv{block}_{idx}", "kind": "conv", "in": c_in, "out": c_out})
            c_in, idx = c_out, idx + 1
    return spec


def output_shape(features: list[dict], input_shape=(3, 32, 32)) -> tuple[int, int, int]:
    """(C, H, W) after the layer list (3x3 convs keep the size, pools halve it)."""
    c, h, w = input_shape
    for layer in features:
        if layer["kind"] == "conv":
            c = layer["out"]
        else:
            h, w = h // 2, w // 2
    return c, h, w


def vgg_arch(
    width: float = 1.0,
    hidden: list[int] | tuple[int, ...] = (512, 512),
    dropout: float = 0.5,
    num_classes: int = 10,
    mean=DEFAULT_MEAN,
    std=DEFAULT_STD,
    cfg: list = VGG16,
) -> dict:
    """The arch dictionary of a VGG (VGG16 by default) with a fresh classifier."""
    features = feature_spec(width, cfg)
    c, h, w = output_shape(features)
    return {
        "features": features,
        "input_shape": [3, 32, 32],
        "classifier": classifier_spec(c * h * w, hidden, dropout, num_classes),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
    }


def classifier_spec(in_features: int, hidden, dropout: float, num_classes: int,
                    input_index: list[int] | None = None) -> dict:
    return {
        "in_features": int(in_features),
        "hidden": [int(h) for h in hidden],
        "dropout": float(dropout),
        "num_classes": int(num_classes),
        "input_index": None if input_index is None else [int(i) for i in input_index],
    }


# ----------------------------------------------------------------------------------------
# Modules


class Normalize(nn.Module):
    """uint8 (or [0, 1] float) images (N, 3, H, W) -> normalised float images."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return (x - self.mean) / self.std


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
        bn=nn.BatchNorm2d(c_out),
        relu=nn.ReLU(inplace=True),
    ))


def build_features(spec: list[dict]) -> nn.Sequential:
    layers = OrderedDict()
    for layer in spec:
        if layer["kind"] == "conv":
            layers[layer["name"]] = conv_block(layer["in"], layer["out"])
        elif layer["kind"] == "pool":
            layers[layer["name"]] = nn.MaxPool2d(kernel_size=2, stride=2)
        else:
            raise ValueError(f"unknown layer kind {layer['kind']!r} in {layer}")
    return nn.Sequential(layers)


class Classifier(nn.Module):
    """Flatten -> [optional fixed index selection] -> (Linear, ReLU, Dropout)* -> Linear."""

    def __init__(self, spec: dict):
        super().__init__()
        index = spec.get("input_index")
        if index is not None:
            self.register_buffer("input_index", torch.tensor(index, dtype=torch.long))
            n_in = len(index)
        else:
            self.input_index = None
            n_in = spec["in_features"]
        layers = OrderedDict()
        for i, h in enumerate(spec["hidden"], start=1):
            layers[f"fc{i}"] = nn.Linear(n_in, h)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            layers[f"drop{i}"] = nn.Dropout(spec["dropout"])
            n_in = h
        layers["out"] = nn.Linear(n_in, spec["num_classes"])
        self.layers = nn.Sequential(layers)

    def flat_input(self, x: torch.Tensor) -> torch.Tensor:
        """The features fc1 (or out) reads: flattened, then the fixed index selection if any."""
        x = torch.flatten(x, 1)  # (N, C*H*W)
        if self.input_index is not None:
            x = x.index_select(1, self.input_index)  # (N, k)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.flat_input(x))

    def stages(self) -> list[tuple[str, str, nn.Module]]:
        """(name, kind, module) of each output the classifier has: every hidden layer after its
        ReLU and dropout (fc1, fc2, ...; kind "fc") and the logits (kind "logits"). Applied in
        order to the extractor's output they give forward(); the first one flattens and
        selects (`flat_input`), which is not an output of its own."""
        mods = dict(self.layers.named_children())
        hidden = [n for n in mods if n.startswith("fc")]
        groups = [(n, "fc", [mods[n], mods[f"relu{n[2:]}"], mods[f"drop{n[2:]}"]])
                  for n in hidden]
        groups.append(("logits", "logits", [mods["out"]]))
        stages = [(name, kind, nn.Sequential(*parts)) for name, kind, parts in groups]
        first_name, first_kind, first = stages[0]
        stages[0] = (first_name, first_kind, nn.Sequential(_FlatInput(self), *first))
        return stages


class _FlatInput(nn.Module):
    """Classifier.flat_input as a module (the first of `Classifier.stages`)."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self._classifier = [classifier]  # a plain reference: not a submodule of this one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._classifier[0].flat_input(x)


class VGG(nn.Module):
    """normalize -> features -> classifier. Takes uint8 or [0, 1] float images (N, 3, 32, 32)."""

    def __init__(self, arch: dict):
        super().__init__()
        self.arch = copy.deepcopy(arch)
        self.normalize = Normalize(arch["mean"], arch["std"])
        self.features = build_features(arch["features"])
        self.classifier = Classifier(arch["classifier"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))

    def feature_layers(self) -> list[tuple[str, str, nn.Module]]:
        """(name, kind, module) of every layer of the feature extractor, in order."""
        return [(l["name"], l["kind"], m) for l, m in zip(self.arch["features"], self.features)]

    def classifier_layers(self) -> list[tuple[str, str, nn.Module]]:
        """(name, kind, module) of every output of the classifier, in order
        (`Classifier.stages`): fc1, fc2, ... (after ReLU and dropout) and logits."""
        return self.classifier.stages()


def build_model(arch: dict) -> VGG:
    return VGG(arch)


def cut_position(arch: dict, cut_layer: str) -> int:
    """Position of `cut_layer` in arch["features"] (0-based; layer_index in SI tables is +1)."""
    names = [layer["name"] for layer in arch["features"]]
    if cut_layer not in names:
        raise ValueError(f"cut layer {cut_layer!r} is not a layer of the feature extractor {names}")
    return names.index(cut_layer)


# ----------------------------------------------------------------------------------------
# Checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not match its architecture."""


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, not a torch file, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or "arch" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a sicompress checkpoint (no 'arch'/'state_dict')")
    return ckpt


def load_model(path: str | Path, map_location="cpu") -> VGG:
    """Rebuild any saved model (VGG, head or compressed) from its checkpoint, in eval mode."""
    ckpt = load_checkpoint(path, map_location)
    try:
        model = build_model(ckpt["arch"])
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} has an invalid architecture: "
                              f"{type(e).__name__}: {e}") from e
    problem = _state_mismatch(model.state_dict(), ckpt["state_dict"])
    if problem:
        raise CheckpointError(f"checkpoint {path} does not match its architecture: {problem}")
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval()


def _state_mismatch(expected: dict, found: dict) -> str:
    """One short line on how `found` differs from `expected` ('' when they fit)."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} tensors differ in shape (first: {k} is "
                     f"{list(found[k].shape)} in the file, {list(expected[k].shape)} in the "
                     "architecture)")
    if missing:
        parts.append(f"{len(missing)} tensors missing (first: {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected tensors (first: {extra[0]})")
    return "; ".join(parts)


def checkpoint_payload(model: VGG, **extra: Any) -> dict:
    """Plain data (tensors, lists, dicts, numbers) loadable with weights_only=True."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"arch": copy.deepcopy(model.arch), "state_dict": state, **extra}
