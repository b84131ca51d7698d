"""A network for 32x32 inputs, built from plain data so that it can be saved, cut, pruned and
rebuilt: normalisation, a feature extractor, a classifier.

The architecture is a plain dictionary (the "arch"), stored in every checkpoint; the
networks of the study come from `networks.network_arch`:

    {"network": "vgg16",
     "features": [{"name": "conv1_1", "kind": "conv", "in": 3, "out": 64}, ...,
                  {"name": "pool1", "kind": "pool"}, ...],
     "input_shape": [3, 32, 32],
     "classifier": {"in_features": 512, "hidden": [512, 512], "dropout": 0.5,
                    "num_classes": 10, "input_index": None},
     "mean": [r, g, b], "std": [r, g, b]}

`features` is an `nn.Sequential` of named layers, so hooking a layer, freezing the
extractor or keeping a prefix of it is indexing, not surgery. The kinds (`LAYER_KINDS`):
"conv" (Conv3x3 + BatchNorm + ReLU, `conv1_1`; "bias": false for a conv without bias),
"pool" (2x2 max-pool), "block" (a residual basic block, `BasicBlock`: "in", "mid", "out"
channels, "stride", "shortcut" identity or projection) and "avgpool" (global average pool).
Every count in the arch is the built module's: a pruned network's arch is written from its
modules (`pruning`), so `build_model(arch)` rebuilds it. The compressed model of part (c)
is the same class with a shorter feature list and fewer channels where it was pruned.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

# CIFAR-10 channel statistics, only a fallback for models built without split statistics.
DEFAULT_MEAN = (0.4914, 0.4822, 0.4465)
DEFAULT_STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------------------
# Architecture as plain data


def output_shape(features: list[dict], input_shape=(3, 32, 32)) -> tuple[int, int, int]:
    """(C, H, W) after the layer list (3x3 convs keep the size, pools halve it, a block
    divides it by its stride, the global average pool makes it 1 x 1)."""
    c, h, w = input_shape
    for layer in features:
        if layer["kind"] == "conv":
            c = layer["out"]
        elif layer["kind"] == "pool":
            h, w = h // 2, w // 2
        elif layer["kind"] == "block":
            c, s = layer["out"], layer["stride"]
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
        elif layer["kind"] == "avgpool":
            h, w = 1, 1
        else:
            raise ValueError(f"unknown layer kind {layer['kind']!r} in {layer}")
    return c, h, w


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


def conv_block(c_in: int, c_out: int, bias: bool = True) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias),
        bn=nn.BatchNorm2d(c_out),
        relu=nn.ReLU(inplace=True),
    ))


class BasicBlock(nn.Module):
    """The residual block of He et al. (2016) for CIFAR: conv3x3 (stride s) + BatchNorm + ReLU,
    conv3x3 + BatchNorm, plus the shortcut, then ReLU. The shortcut is the identity where the
    shape is kept and a 1x1 conv (stride s) + BatchNorm where it changes (their option B).

    mid: the channels between the two convs (the block's own, prunable alone); out: the
    block's output channels, which every block of a stage shares through the identity
    shortcuts (one coupled group)."""

    def __init__(self, c_in: int, mid: int, c_out: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        if shortcut == "projection":
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(c_out)))
        elif shortcut == "identity":
            if stride != 1 or c_in != c_out:
                raise ValueError(f"an identity shortcut needs stride 1 and as many channels in "
                                 f"as out, got stride {stride}, {c_in} -> {c_out}")
            self.shortcut = nn.Identity()
        else:
            raise ValueError(f"shortcut must be 'identity' or 'projection', got {shortcut!r}")
        self.relu = nn.ReLU(inplace=True)

    def inner(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(conv1's output after its ReLU, conv2's output after its BatchNorm) for input x."""
        h = self.relu1(self.bn1(self.conv1(x)))
        return h, self.bn2(self.conv2(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
                         + self.shortcut(x))


class InnerOutput(nn.Module):
    """One of `BasicBlock.inner`'s outputs as a module of the block's input."""

    def __init__(self, block: BasicBlock, which: int):
        super().__init__()
        self._block = [block]  # a plain reference: not a submodule of this one
        self.which = which

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._block[0].inner(x)[self.which]


LAYER_KINDS = ("conv", "pool", "block", "avgpool")


def build_features(spec: list[dict]) -> nn.Sequential:
    layers = OrderedDict()
    for layer in spec:
        if layer["kind"] == "conv":
            layers[layer["name"]] = conv_block(layer["in"], layer["out"], layer.get("bias", True))
        elif layer["kind"] == "pool":
            layers[layer["name"]] = nn.MaxPool2d(kernel_size=2, stride=2)
        elif layer["kind"] == "block":
            layers[layer["name"]] = BasicBlock(layer["in"], layer["mid"], layer["out"],
                                               layer["stride"], layer["shortcut"])
        elif layer["kind"] == "avgpool":
            layers[layer["name"]] = nn.AdaptiveAvgPool2d(1)
        else:
            raise ValueError(f"unknown layer kind {layer['kind']!r} in {layer}; the kinds are "
                             f"{list(LAYER_KINDS)}")
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


class Network(nn.Module):
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

    def inner_layers(self, block: str) -> list[tuple[str, str, nn.Module]]:
        """(name, "inner", module) of the outputs inside residual block `block`, each a module
        taking the block's input: its first conv after the ReLU (`block.conv1`) and its second
        conv after the BatchNorm, before the shortcut is added (`block.conv2`)."""
        module = getattr(self.features, block)
        if not isinstance(module, BasicBlock):
            raise ValueError(f"{block!r} is not a residual block")
        return [(f"{block}.conv1", "inner", InnerOutput(module, 0)),
                (f"{block}.conv2", "inner", InnerOutput(module, 1))]

    def classifier_layers(self) -> list[tuple[str, str, nn.Module]]:
        """(name, kind, module) of every output of the classifier, in order
        (`Classifier.stages`): fc1, fc2, ... (after ReLU and dropout) and logits."""
        return self.classifier.stages()


def build_model(arch: dict) -> Network:
    return Network(arch)


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


def load_model(path: str | Path, map_location="cpu") -> Network:
    """Rebuild any saved model (e2e, head or compressed) from its checkpoint, in eval mode."""
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


def checkpoint_payload(model: Network, **extra: Any) -> dict:
    """Plain data (tensors, lists, dicts, numbers) loadable with weights_only=True."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"arch": copy.deepcopy(model.arch), "state_dict": state, **extra}
