"""Slicing a VGG: the one slicer, and the compressed model of part (c) built with it.

`sliced_features` / `sliced_state` / `build_sliced` cut the extractor after a layer and keep,
in every conv named, only the chosen output channels (its conv weight and bias, its BatchNorm
weight, bias and running statistics), and in the conv after it the matching input channels;
a conv not named keeps every channel. Part (c) names one conv (the last before its cut); the
layer-wise pruning (`layerwise`) names every conv of the prefix.

The compressed model of part (c): a prefix of the e2e extractor, the features chosen by SI,
and a fresh classifier sized for what is left. Given the e2e model, the cut layer (the last layer kept) and the features selected there:

- unit "channel": the layers up to and including the cut are kept; the last conv of that
  prefix keeps only the selected output channels (its conv weight and bias, and its
  BatchNorm weight, bias, running mean and running variance are sliced); a pool after that
  conv stays, since a 2x2 max-pool works channel by channel (slicing commutes with it).
  The classifier takes k x H x W inputs.
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
from typing import Sequence

import torch

from .model import VGG, build_model, classifier_spec, cut_position, load_checkpoint, output_shape
from .selection import UNITS

# State of one conv block (Conv3x3 + BatchNorm + ReLU) that runs along the output channels.
CHANNEL_KEYS = ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                "bn.running_var")
SHARED_KEYS = ("bn.num_batches_tracked",)  # a counter, not per channel: copied as is

Source = str | Path | dict | VGG


# ----------------------------------------------------------------------------------------
# Inputs


def arch_and_state(source: Source) -> tuple[dict, dict[str, torch.Tensor]]:
    """(arch, state_dict) of a checkpoint path, a checkpoint dict or a model."""
    if isinstance(source, VGG):
        return copy.deepcopy(source.arch), {k: v.detach().cpu() for k, v in source.state_dict().items()}
    if isinstance(source, (str, Path)):
        source = load_checkpoint(source)
    if isinstance(source, dict) and "arch" in source and "state_dict" in source:
        return copy.deepcopy(source["arch"]), source["state_dict"]
    raise ValueError("source must be a checkpoint path, a checkpoint dict with 'arch' and "
                     f"'state_dict', or a VGG model; got {type(source).__name__}")


def _last_conv(prefix: list[dict], cut_layer: str) -> int:
    convs = [i for i, layer in enumerate(prefix) if layer["kind"] == "conv"]
    if not convs:
        raise ValueError(f"no conv layer up to {cut_layer!r}: no channels to select from")
    return convs[-1]


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
# The slicer: chosen output channels per conv


def conv_sizes(arch: dict) -> dict[str, int]:
    """Output channels of every conv of `arch`'s extractor, by name."""
    return {layer["name"]: layer["out"] for layer in arch["features"] if layer["kind"] == "conv"}


def _check_channels(arch: dict, cut_layer: str, kept: dict) -> dict[str, list[int]]:
    """kept as {conv name: sorted distinct channel ints}, every name a conv up to the cut."""
    prefix = arch["features"][:cut_position(arch, cut_layer) + 1]
    convs = [layer["name"] for layer in prefix if layer["kind"] == "conv"]
    sizes = conv_sizes(arch)
    unknown = sorted(set(kept) - set(convs))
    if unknown:
        raise ValueError(f"kept channels name {unknown}, which are not convs up to "
                         f"{cut_layer} ({convs})")
    out = {}
    for name in convs:
        if name not in kept:
            continue
        chans = [int(c) for c in kept[name]]
        if not chans or len(set(chans)) != len(chans) or \
                any(not 0 <= c < sizes[name] for c in chans):
            raise ValueError(f"{name}: kept channels must be distinct, in [0, {sizes[name]}) "
                             f"and not empty, got {kept[name]}")
        out[name] = sorted(chans)
    return out


def sliced_features(arch: dict, cut_layer: str, kept: dict) -> list[dict]:
    """arch["features"] up to `cut_layer`, each conv named in `kept` with only its kept output
    channels and every conv's input the channels the one before it keeps (plain data)."""
    kept = _check_channels(arch, cut_layer, kept)
    features = copy.deepcopy(arch["features"][:cut_position(arch, cut_layer) + 1])
    c_in = arch.get("input_shape", [3, 32, 32])[0]
    for layer in features:
        if layer["kind"] == "conv":
            layer["in"] = c_in
            layer["out"] = len(kept[layer["name"]]) if layer["name"] in kept else layer["out"]
            c_in = layer["out"]
    return features


def sliced_state(arch: dict, state: dict[str, torch.Tensor], cut_layer: str,
                 kept: dict) -> dict[str, torch.Tensor]:
    """normalize.* and features.* weights of the sliced extractor (`sliced_features`), from
    `state`: each conv named in `kept` has its per-channel tensors (CHANNEL_KEYS) sliced to its
    kept output channels, and every conv's weight its input channels to the kept channels of
    the conv before it. Tensors stay on their device (a checkpoint may be on a GPU)."""
    kept = _check_channels(arch, cut_layer, kept)
    out = {k: v.clone() for k, v in state.items() if k.startswith("normalize.")}
    prev = None  # kept channels of the previous conv (the input of the next one); None: all
    for layer in arch["features"][:cut_position(arch, cut_layer) + 1]:
        if layer["kind"] != "conv":
            continue
        block = f"features.{layer['name']}."
        keys = {k[len(block):] for k in state if k.startswith(block)}
        if keys != set(CHANNEL_KEYS) | set(SHARED_KEYS):
            raise ValueError(f"conv block {layer['name']!r} has state {sorted(keys)}, expected "
                             f"{sorted(CHANNEL_KEYS + SHARED_KEYS)}")
        chans = kept.get(layer["name"])
        for key in CHANNEL_KEYS:
            t = state[block + key]
            if chans is not None:
                t = t.index_select(0, torch.tensor(chans, dtype=torch.long, device=t.device))
            if key == "conv.weight" and prev is not None:
                t = t.index_select(1, torch.tensor(prev, dtype=torch.long, device=t.device))
            out[block + key] = t.clone()
        for key in SHARED_KEYS:
            out[block + key] = state[block + key].clone()
        prev = chans
    return out


def build_sliced(new_arch: dict, arch: dict, state: dict[str, torch.Tensor], cut_layer: str,
                 kept: dict, *, seed: int) -> VGG:
    """The model of `new_arch` (a sliced arch: `sliced_features` and a classifier), in eval
    mode, on the CPU: the normalisation and sliced extractor weights of (arch, state), a new
    classifier initialised by `seed`."""
    sliced = sliced_state(arch, state, cut_layer, kept)
    torch.manual_seed(seed)
    model = build_model(new_arch)
    full = model.state_dict()
    missing = [k for k in full if not k.startswith("classifier.") and k not in sliced]
    if missing:
        raise ValueError(f"source weights lack {missing}")
    full.update({k: v.cpu() for k, v in sliced.items()})
    model.load_state_dict(full, strict=True)  # shapes are checked here
    return model.eval()


# ----------------------------------------------------------------------------------------
# Part (c): the last conv before the cut sliced


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

    if unit == "channel":
        selected = _check_selected(selected, c, unit)
        kept = sorted(selected)
        features = sliced_features(arch, cut_layer,
                                   {features[_last_conv(features, cut_layer)]["name"]: kept})
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

    Every layer before the cut's last conv is copied; with unit "channel" that conv's
    per-channel tensors (CHANNEL_KEYS) are sliced to the kept channels, ascending. Each
    tensor stays on the device it came from.
    """
    return sliced_state(arch, state, cut_layer, _compressed_kept(arch, cut_layer, unit, selected))


def _compressed_kept(arch: dict, cut_layer: str, unit: str, selected) -> dict[str, list[int]]:
    """Part (c)'s channels for the slicer: {the last conv before the cut: the selected
    channels} (unit "channel"); nothing sliced (unit "element": the classifier selects)."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "element":
        return {}
    prefix = arch["features"][:cut_position(arch, cut_layer) + 1]
    c, _, _ = output_shape(prefix, arch.get("input_shape", [3, 32, 32]))
    return {prefix[_last_conv(prefix, cut_layer)]["name"]: _check_selected(selected, c, unit)}


def build_compressed(source: Source, cut_layer: str, unit: str, selected: Sequence[int], *,
                     hidden, dropout: float, seed: int, num_classes: int | None = None) -> VGG:
    """The compressed model of part (c), in eval mode, with a classifier initialised by `seed`.

    source: the e2e checkpoint path (or a checkpoint dict, or a VGG, on any device). The
    normalisation and the kept extractor weights come from it; the classifier is new. The
    model is built on the CPU; move it where it runs (`fit` does).
    """
    arch, state = arch_and_state(source)
    new_arch = compressed_arch(arch, cut_layer, unit, selected, hidden, dropout, num_classes)
    return build_sliced(new_arch, arch, state, cut_layer,
                        _compressed_kept(arch, cut_layer, unit, selected), seed=seed)
