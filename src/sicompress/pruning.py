"""Removing channels from any network: the study's one pruning engine, over Torch-Pruning's
dependency graph (`torch_pruning.DependencyGraph`, pinned in the package's dependencies).

A network's prunable channels come in groups (`channel_groups`, from the arch alone): the
output channels of one conv, together with everything that reads them or must keep their
count (its BatchNorm, the next conv's input channels, a shortcut's channels). Names:

- VGG: one group per conv, named after it (`conv1_1`, ...): its output channels, its
  BatchNorm, and the next conv's input channels;
- ResNet: per block its own channels (`block1_1.conv1`: the first conv's outputs, its
  BatchNorm, the second conv's inputs) and per stage the channels every block of it shares
  through the identity shortcuts (`stage1`: the stem conv's outputs for stage 1, the
  projection shortcut's for later stages, every block's second conv and BatchNorm, and the
  next stage's inputs), removed together.

`pruned_features` / `pruned_state` / `build_pruned` cut the extractor after a layer and keep,
in every group named, only the chosen channels: the dependency graph is built on the kept
prefix and each group pruned once (`torch_pruning.Group.prune`), so coupled channels go
together. The pruned arch is read from the pruned modules, so `model.build_model` rebuilds
it. A group not named keeps every channel. Part (c) names one group (the last conv before
its cut); the layer-wise pruning (`layerwise`) names every group of the prefix.

The compressed model of part (c): a prefix of the e2e extractor, the features chosen by SI,
and a fresh classifier sized for what is left. Given the e2e model, the cut layer (the last layer kept) and the features selected there:

- unit "channel": the layers up to and including the cut are kept; the cut's group (the
  last conv of that prefix) keeps only the selected output channels; a pool after that
  conv stays, since a 2x2 max-pool works channel by channel (pruning commutes with it).
  The classifier takes k x H x W inputs. On a ResNet cut after a block, the cut's channels
  are a stage's, which every block of it up to the cut writes and its shortcuts carry:
  removing one there would change the values of the others (SI's ranking was measured on
  the unpruned ones), so the blocks keep every channel and the classifier reads the k
  chosen ones, all their H x W values (`Classifier.input_index`); pruning a stage's channels
  is the layer-wise pruning's, which ranks each group on the network pruned so far.
- unit "element": the prefix is kept unchanged (no conv can shrink, since a kept value may
  sit in any channel) and the classifier reads only the selected values of the flattened
  C x H x W output (`Classifier.input_index`).

Kept features are stored in ascending index order, not in the order the selection added them:
the compressed extractor's output then equals the e2e output at the cut restricted to
`sorted(selected)`, in that order, and the model does not depend on the order of the
selection (the classifier is new anyway). The selection order is recorded in
`arch["compression"]["selected"]`.

The returned model's `arch` describes it fully, so `model.load_model` rebuilds it from a
checkpoint written with `model.checkpoint_payload`. Training it (classifier only) is the
training module's job.
"""

from __future__ import annotations

import copy
from pathlib import Path
from dataclasses import dataclass
from typing import Sequence

import torch

import torch_pruning as tp
from torch import nn

from .model import (Network, Normalize, build_features, build_model, classifier_spec,
                    cut_position, load_checkpoint, output_shape)
from .selection import UNITS

Source = str | Path | dict | Network


# ----------------------------------------------------------------------------------------
# Inputs


def arch_and_state(source: Source) -> tuple[dict, dict[str, torch.Tensor]]:
    """(arch, state_dict) of a checkpoint path, a checkpoint dict or a model."""
    if isinstance(source, Network):
        return copy.deepcopy(source.arch), {k: v.detach().cpu() for k, v in source.state_dict().items()}
    if isinstance(source, (str, Path)):
        source = load_checkpoint(source)
    if isinstance(source, dict) and "arch" in source and "state_dict" in source:
        return copy.deepcopy(source["arch"]), source["state_dict"]
    raise ValueError("source must be a checkpoint path, a checkpoint dict with 'arch' and "
                     f"'state_dict', or a Network; got {type(source).__name__}")


def _check_selected(selected: Sequence[int], n_candidates: int, unit: str) -> list[int]:
    """Selected feature indices as plain ints, validated: non-empty, unique, in range."""
    if isinstance(selected, torch.Tensor):
        selected = selected.tolist()
    out = []
    for s in selected:
        if isinstance(s, bool) or int(s) != s:
            raise ValueError(f"selected {unit}s must be integers, got {s!r}")
        out.append(int(s))
    if not out:
        raise ValueError(f"select at least one {unit}")
    if len(set(out)) != len(out):
        raise ValueError(f"selected {unit}s repeat an index: {out}")
    bad = [s for s in out if not 0 <= s < n_candidates]
    if bad:
        raise ValueError(f"selected {unit}s {bad} are out of range: the cut layer has "
                         f"{n_candidates} {unit}s")
    return out


# ----------------------------------------------------------------------------------------
# Groups of coupled channels


@dataclass(frozen=True)
class ChannelGroup:
    """One group of channels that are removed together.

    name: how configs, files and tables name it ("conv3_2", "block2_1.conv1", "stage2").
    root: the module path of the conv whose output channels root it in the dependency graph.
    channels: how many it has in the arch it was read from.
    layer: the layer (of `activations`' names) whose output holds these channels, where a
      choice among them is measured: the conv's own output, a block's first conv, the last
      block of a stage.
    convs: every conv (module path) whose output channels are these.
    """

    name: str
    root: str
    channels: int
    layer: str
    convs: tuple[str, ...]


def channel_groups(arch: dict, cut_layer: str | None = None) -> list[ChannelGroup]:
    """The prunable groups of `arch`'s extractor (up to and including `cut_layer`; None: all
    of it), in the order of the forward pass (module notes)."""
    layers = arch["features"] if cut_layer is None else \
        arch["features"][:cut_position(arch, cut_layer) + 1]
    groups: list[ChannelGroup] = []
    stage: dict | None = None  # the group the current identity shortcuts carry
    n_stage = 0

    def close_stage():
        nonlocal stage
        if stage is not None:
            groups.append(ChannelGroup(stage["name"], stage["root"], stage["channels"],
                                       stage["layer"], tuple(stage["convs"])))
        stage = None

    for layer in layers:
        name, kind = layer["name"], layer["kind"]
        if kind == "conv":
            close_stage()
            if any(l["kind"] == "block" for l in layers):
                n_stage += 1  # a stem conv whose outputs the next blocks' shortcuts carry
                stage = {"name": f"stage{n_stage}", "root": f"features.{name}.conv",
                         "channels": layer["out"], "layer": name,
                         "convs": [f"features.{name}.conv"]}
            else:
                groups.append(ChannelGroup(name, f"features.{name}.conv", layer["out"], name,
                                           (f"features.{name}.conv",)))
        elif kind == "block":
            if layer["shortcut"] == "projection":
                close_stage()
                n_stage += 1
                stage = {"name": f"stage{n_stage}", "root": f"features.{name}.shortcut.conv",
                         "channels": layer["out"], "layer": name,
                         "convs": [f"features.{name}.shortcut.conv"]}
            elif stage is None:
                raise ValueError(f"block {name!r} has an identity shortcut but nothing before "
                                 "it sets its channels")
            groups.append(ChannelGroup(f"{name}.conv1", f"features.{name}.conv1", layer["mid"],
                                       f"{name}.conv1", (f"features.{name}.conv1",)))
            stage["convs"].append(f"features.{name}.conv2")
            stage["layer"] = name
        elif kind in ("pool", "avgpool"):
            pass
        else:
            raise ValueError(f"unknown layer kind {kind!r} in {layer}")
    close_stage()
    # stages close when the next one opens; list them where their last block sits
    order = {g.name: i for i, g in enumerate(groups)}
    position = {layer["name"]: i for i, layer in enumerate(layers)}

    def where(g: ChannelGroup) -> tuple[int, int]:
        return (position[g.layer.split(".")[0]], 1 if g.name.startswith("stage") else 0)

    return sorted(groups, key=lambda g: (where(g), order[g.name]))


def batchnorms(arch: dict, cut_layer: str | None = None) -> list[tuple[str, str, str | None]]:
    """(name, module path, the group its conv reads: None for the image) of every BatchNorm
    of `arch`'s extractor up to `cut_layer`, in the order of the forward pass. Names: a VGG
    conv block's BatchNorm is the block's name (`conv2_1`), a ResNet block's its path in the
    block (`block2_1.bn1`, `block2_1.bn2`, `block2_1.shortcut`)."""
    layers = arch["features"] if cut_layer is None else \
        arch["features"][:cut_position(arch, cut_layer) + 1]
    resnet = any(l["kind"] == "block" for l in layers)
    out, current, n_stage = [], None, 0  # current: the group the next layer reads
    for layer in layers:
        name = layer["name"]
        if layer["kind"] == "conv":
            out.append((name, f"features.{name}.bn", current))
            if resnet:
                n_stage += 1
                current = f"stage{n_stage}"
            else:
                current = name
        elif layer["kind"] == "block":
            out.append((f"{name}.bn1", f"features.{name}.bn1", current))
            out.append((f"{name}.bn2", f"features.{name}.bn2", f"{name}.conv1"))
            if layer["shortcut"] == "projection":
                out.append((f"{name}.shortcut", f"features.{name}.shortcut.bn", current))
                n_stage += 1
                current = f"stage{n_stage}"
    return out


def group_sizes(arch: dict, cut_layer: str | None = None) -> dict[str, int]:
    """Channels of every prunable group of `arch`'s extractor, by name."""
    return {g.name: g.channels for g in channel_groups(arch, cut_layer)}


def _check_channels(arch: dict, cut_layer: str, kept: dict) -> dict[str, list[int]]:
    """kept as {group name: sorted distinct channel ints}, every name a group up to the cut."""
    sizes = group_sizes(arch, cut_layer)
    unknown = sorted(set(kept) - set(sizes))
    if unknown:
        raise ValueError(f"kept channels name {unknown}, which are not prunable groups up to "
                         f"{cut_layer} ({list(sizes)})")
    out = {}
    for name in sizes:
        if name not in kept:
            continue
        chans = [int(c) for c in kept[name]]
        if not chans or len(set(chans)) != len(chans) or \
                any(not 0 <= c < sizes[name] for c in chans):
            raise ValueError(f"{name}: kept channels must be distinct, in [0, {sizes[name]}) "
                             f"and not empty, got {kept[name]}")
        out[name] = sorted(chans)
    return out


class _Extractor(nn.Module):
    """normalize -> features, with the state keys of a `Network` (normalize.*, features.*)."""

    def __init__(self, arch: dict, features: list[dict]):
        super().__init__()
        self.normalize = Normalize(arch["mean"], arch["std"])
        self.features = build_features(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(x))


def features_of(extractor: nn.Sequential, spec: list[dict]) -> list[dict]:
    """`spec` (a layer list) with every channel count read from the built `extractor`."""
    out = copy.deepcopy(spec)
    for layer in out:
        module = getattr(extractor, layer["name"])
        if layer["kind"] == "conv":
            layer["in"], layer["out"] = module.conv.in_channels, module.conv.out_channels
        elif layer["kind"] == "block":
            layer["in"], layer["mid"] = module.conv1.in_channels, module.conv1.out_channels
            layer["out"] = module.conv2.out_channels
    return out


def _prune_prefix(arch: dict, state: dict[str, torch.Tensor] | None, cut_layer: str,
                  kept: dict) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """(layer list, normalize.* and features.* state) of the prefix up to `cut_layer` with
    each group of `kept` pruned to its channels by the dependency graph. state None: the
    arch alone (weights of a fresh build, thrown away by the caller)."""
    kept = _check_channels(arch, cut_layer, kept)
    prefix = arch["features"][:cut_position(arch, cut_layer) + 1]
    device = torch.device("cpu")
    if state is not None:
        device = next((v.device for k, v in state.items() if k.startswith("features.")), device)
    net = _Extractor(arch, prefix)
    if state is not None:
        wanted = net.state_dict()
        missing = [k for k in wanted if k not in state]
        if missing:
            raise ValueError(f"source weights lack {missing[:3]} ({len(missing)} tensors)")
        net.load_state_dict({k: state[k] for k in wanted}, strict=True)
        net.to(device)
    net.eval()
    if kept:
        c, h, w = arch.get("input_shape", [3, 32, 32])
        graph = tp.DependencyGraph().build_dependency(
            net, example_inputs=torch.zeros(1, c, h, w, device=device))
        modules = dict(net.named_modules())
        for group in channel_groups(arch, cut_layer):
            if group.name not in kept:
                continue
            removed = sorted(set(range(group.channels)) - set(kept[group.name]))
            if removed:
                graph.get_pruning_group(modules[group.root], tp.prune_conv_out_channels,
                                        idxs=removed).prune()
    features = features_of(net.features, prefix)
    return features, {k: v.detach().clone() for k, v in net.state_dict().items()}


def prune_network(arch: dict, state: dict[str, torch.Tensor] | None, kept: dict,
                  device=None) -> tuple[Network, tp.DependencyGraph]:
    """The whole network of (arch, state), its classifier included, with every group of
    `kept` pruned to its channels (a classifier reading a pruned group loses the matching
    inputs), in eval mode on `device` (default: where `state` is), and the dependency graph
    of the pruned network (to score or prune its remaining groups). Criteria score groups on
    it (`criteria.choose`); the study's pruned models are built with `build_pruned`."""
    last = arch["features"][-1]["name"]
    kept = _check_channels(arch, last, kept)
    if device is None:
        device = next((v.device for v in (state or {}).values()), torch.device("cpu"))
    model = build_model(arch)
    if state is not None:
        model.load_state_dict(state)
    model.to(device).eval()
    c, h, w = arch.get("input_shape", [3, 32, 32])
    example = torch.zeros(1, c, h, w, device=device)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    if any(len(v) < n for g, n in group_sizes(arch).items() for v in [kept.get(g, range(n))]):
        modules = dict(model.named_modules())
        for group in channel_groups(arch):
            if group.name in kept:
                removed = sorted(set(range(group.channels)) - set(kept[group.name]))
                if removed:
                    graph.get_pruning_group(modules[group.root], tp.prune_conv_out_channels,
                                            idxs=removed).prune()
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    return model, graph


def pruned_features(arch: dict, cut_layer: str, kept: dict) -> list[dict]:
    """arch["features"] up to `cut_layer` with every group named in `kept` pruned to its
    kept channels, and every count that follows from them (plain data)."""
    return _prune_prefix(arch, None, cut_layer, kept)[0]


def pruned_state(arch: dict, state: dict[str, torch.Tensor], cut_layer: str,
                 kept: dict) -> dict[str, torch.Tensor]:
    """normalize.* and features.* weights of the pruned extractor (`pruned_features`), from
    `state`, pruned by the dependency graph: every tensor of each group named in `kept` (a
    conv's outputs and bias, its BatchNorm's weight, bias and running statistics, the convs
    reading them) restricted to the kept channels, in ascending order. Tensors stay on the
    device of `state` (a checkpoint may be on a GPU)."""
    return _prune_prefix(arch, state, cut_layer, kept)[1]


def build_pruned(new_arch: dict, arch: dict, state: dict[str, torch.Tensor], cut_layer: str,
                 kept: dict, *, seed: int) -> Network:
    """The model of `new_arch` (a pruned arch: `pruned_features` and a classifier), in eval
    mode, on the CPU: the normalisation and pruned extractor weights of (arch, state), a new
    classifier initialised by `seed`."""
    features, pruned = _prune_prefix(arch, state, cut_layer, kept)
    if features != new_arch["features"]:
        raise ValueError("the pruned extractor does not match the arch it is loaded into")
    torch.manual_seed(seed)
    model = build_model(new_arch)
    full = model.state_dict()
    missing = [k for k in full if not k.startswith("classifier.") and k not in pruned]
    if missing:
        raise ValueError(f"source weights lack {missing}")
    full.update({k: v.cpu() for k, v in pruned.items()})
    model.load_state_dict(full, strict=True)  # shapes are checked here
    return model.eval()


# ----------------------------------------------------------------------------------------
# Part (c): the cut's group pruned


def _carried(arch: dict, cut_layer: str) -> bool:
    """Whether the cut's channels are written by more than one conv up to the cut (a ResNet
    stage whose blocks carry them through their shortcuts)."""
    return len(cut_group(arch, cut_layer).convs) > 1


def cut_group(arch: dict, cut_layer: str) -> ChannelGroup:
    """The group whose channels are the cut layer's output channels: on a VGG the last conv
    up to the cut, on a ResNet the stage the cut's block belongs to (its shortcuts carry the
    same channels, so the whole stage up to the cut keeps the selected ones)."""
    groups = [g for g in channel_groups(arch, cut_layer) if "." not in g.name]
    if not groups:
        raise ValueError(f"no conv layer up to {cut_layer!r}: no channels to select from")
    return groups[-1]



def compressed_arch(arch: dict, cut_layer: str, unit: str, selected: Sequence[int], hidden,
                    dropout: float, num_classes: int | None = None) -> dict:
    """The arch of the compressed model (plain data; see the module notes).

    arch: the source (e2e) arch. selected: channel indices of the cut layer's output (unit
    "channel") or indices into its flattened C*H*W output (unit "element", the order
    `torch.flatten` and `selection.forward_select` use), in selection order.
    num_classes: default the source classifier's.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    pos = cut_position(arch, cut_layer)
    features = copy.deepcopy(arch["features"][:pos + 1])
    input_shape = arch.get("input_shape", [3, 32, 32])
    c, h, w = output_shape(features, input_shape)
    if num_classes is None:
        num_classes = arch["classifier"]["num_classes"]

    if unit == "channel" and _carried(arch, cut_layer):
        # the cut's channels are a stage's, carried by the shortcuts of every block of it up to
        # the cut: the blocks keep them all (removing one would change the others' values, which
        # SI was measured on) and the classifier reads the chosen ones, channel by channel
        selected = _check_selected(selected, c, unit)
        kept = sorted(selected)
        index = [ch * h * w + i for ch in kept for i in range(h * w)]
        classifier = classifier_spec(c * h * w, hidden, dropout, num_classes, input_index=index)
    elif unit == "channel":
        selected = _check_selected(selected, c, unit)
        kept = sorted(selected)
        features = pruned_features(arch, cut_layer, {cut_group(arch, cut_layer).name: kept})
        classifier = classifier_spec(len(kept) * h * w, hidden, dropout, num_classes)
    else:
        selected = _check_selected(selected, c * h * w, unit)
        kept = sorted(selected)
        classifier = classifier_spec(c * h * w, hidden, dropout, num_classes, input_index=kept)

    out = copy.deepcopy(arch)
    out["features"] = features
    out["classifier"] = classifier
    out["compression"] = {
        "cut_layer": cut_layer,
        "unit": unit,
        "selected": selected,          # in the order the selection added them
        "kept": kept,                  # ascending: the order the model holds them in
        "candidates": c if unit == "channel" else c * h * w,
        "source_output_shape": [c, h, w],
    }
    return out


def compressed_state(arch: dict, state: dict[str, torch.Tensor], cut_layer: str, unit: str,
                     selected: Sequence[int]) -> dict[str, torch.Tensor]:
    """normalize.* and features.* weights of the compressed model, from the source `state`.

    With unit "channel" the cut's group (`cut_group`) is pruned to the kept channels,
    ascending; every other weight is copied. Each tensor stays on the device it came from.
    """
    return pruned_state(arch, state, cut_layer, _compressed_kept(arch, cut_layer, unit, selected))


def _compressed_kept(arch: dict, cut_layer: str, unit: str, selected) -> dict[str, list[int]]:
    """Part (c)'s channels for the engine: {the cut's group: the selected channels} (unit
    "channel"); nothing pruned (unit "element": the classifier selects)."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "element" or _carried(arch, cut_layer):
        return {}
    prefix = arch["features"][:cut_position(arch, cut_layer) + 1]
    c, _, _ = output_shape(prefix, arch.get("input_shape", [3, 32, 32]))
    return {cut_group(arch, cut_layer).name: _check_selected(selected, c, unit)}


def build_compressed(source: Source, cut_layer: str, unit: str, selected: Sequence[int], *,
                     hidden, dropout: float, seed: int, num_classes: int | None = None) -> Network:
    """The compressed model of part (c), in eval mode, with a classifier initialised by `seed`.

    source: the e2e checkpoint path (or a checkpoint dict, or a Network, on any device). The
    normalisation and the kept extractor weights come from it; the classifier is new. The
    model is built on the CPU; move it where it runs (`fit` does).
    """
    arch, state = arch_and_state(source)
    new_arch = compressed_arch(arch, cut_layer, unit, selected, hidden, dropout, num_classes)
    return build_pruned(new_arch, arch, state, cut_layer,
                        _compressed_kept(arch, cut_layer, unit, selected), seed=seed)


# ----------------------------------------------------------------------------------------
# The whole network pruned, its classifier kept (the benchmark of channel criteria)


def whole_pruned_arch(arch: dict, kept: dict) -> dict:
    """The arch of the whole network of `arch` with every group of `kept` pruned to its
    channels and its own classifier (the same hidden widths and dropout) reading what is left
    (plain data): what the field prunes and fine-tunes. Its compression record: method
    "channels", the kept channels of every group, the groups' sizes before."""
    last = arch["features"][-1]["name"]
    kept = {**{n: list(range(k)) for n, k in group_sizes(arch).items()},
            **_check_channels(arch, last, kept)}
    features = pruned_features(arch, last, kept)
    c, h, w = output_shape(features, arch.get("input_shape", [3, 32, 32]))
    old = arch["classifier"]
    if old.get("input_index") is not None:
        raise ValueError("the whole network is pruned from an unpruned one, whose classifier "
                         "reads every value; this one selects its inputs")
    out = copy.deepcopy(arch)
    out["features"] = features
    out["classifier"] = classifier_spec(c * h * w, old["hidden"], old["dropout"],
                                        old["num_classes"])
    out["compression"] = {"method": "channels", "cut_layer": last, "unit": "channel",
                          "kept": kept, "candidates": group_sizes(arch)}
    return out


def build_whole_pruned(source: Source, kept: dict) -> Network:
    """The whole network of `source` pruned to `kept` by the dependency graph, every weight
    of it the source's (the classifier's first layer loses the inputs of removed channels,
    BatchNorm statistics are copied), in eval mode on the CPU: the network a criterion's
    choice is fine-tuned from (`whole_pruned_arch`)."""
    arch, state = arch_and_state(source)
    new_arch = whole_pruned_arch(arch, kept)
    pruned, _ = prune_network(arch, {k: v.cpu() for k, v in state.items()},
                              new_arch["compression"]["kept"], device="cpu")
    model = build_model(new_arch)
    model.load_state_dict(pruned.state_dict(), strict=True)  # shapes are checked here
    return model.eval()
