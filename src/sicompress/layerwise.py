"""Layer-wise SI pruning: the channels of every conv layer of the kept prefix chosen by SI.

Part (c) of the study prunes only the last kept conv. Here, after the same cut, every conv
layer of the prefix is pruned in turn, from the first to the last (the method of Saffar,
Kalhor and Habibnia, Sci. Rep. 14:17590, 2024, built on this package's exact SI):

1. the layer's output (after its ReLU) is computed for the `si_train` images through the
   layers before it, already pruned (so a layer is ranked on what it will really receive);
2. its channels are ranked by forward selection on SI (`selection.forward_select`); a
   channel's H x W map is first average-pooled to p x p (`pool`; None keeps the whole map:
   exact but slow on the large early maps, 64 channels x 32 x 32 values at width 1);
3. it keeps the fewest channels whose SI on the curve is within `tolerance` of the curve's
   best (`decisions.choose_k`, the rule of (c));
4. the conv's output channels, its BatchNorm, and the next conv's input channels are sliced
   to the kept ones;
5. with `batchnorm: reestimate`, the running statistics of every BatchNorm after a conv whose
   input channels were sliced are estimated again (`reestimate_batchnorm`) on a fixed,
   seeded set of training images (`batchnorm_images`), before anything uses the network: the
   next layer's ranking, the classifier's training, layer SI, latency, predictions. With
   `copy` they stay e2e's, although slicing a conv's input changes what the conv outputs.

The pruned extractor then gets a new classifier; its hidden width is chosen with Center SI
(`decisions.choose_width`). Every decision is on `si_train` only. The ranking resumes after a kill: each
finished layer and each step of the current one are saved beside the result.

`layerwise_arch` / `layerwise_state` / `build_layerwise` make the pruned network for any
channels per group with the package's one pruning engine (`pruning.pruned_*`, over
Torch-Pruning's dependency graph, which part (c) uses for its cut), so the controls (the same
counts chosen by another criterion, `control_kept`) are built the same way.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import artifacts, figures
from .decisions import choose_k, choose_width
from .devices import pick_device
from .model import Network, classifier_spec, output_shape
from .pruning import (arch_and_state, batchnorms, build_pruned, channel_groups, group_sizes,
                      pruned_features, pruned_state)
from .selection import forward_select
from .activations import layer_activations, subset_images
from .criteria import criterion
from .scoring import choose, training_batch
from .si import PRECISION, center_separation_index, exact_float32, separation_index

LAYER_RANKING_COLUMNS = ["layer", "step", "channel", "si"]
BATCHNORM = ("copy", "reestimate")  # the BatchNorm statistics of a layer-wise pruned network
PARTIAL = "layerwise.partial.json"  # beside the result while the ranking runs


# ----------------------------------------------------------------------------------------
# The pruned network for given channels per conv layer


def prefix_groups(arch: dict, cut_layer: str) -> list[str]:
    """Names of the prunable groups up to and including `cut_layer`, in the order they are
    pruned (`pruning.channel_groups`; on a VGG: its convs)."""
    groups = [g.name for g in channel_groups(arch, cut_layer)]
    if not groups:
        raise ValueError(f"no conv layer up to {cut_layer!r}: nothing to prune")
    return groups


def _check_kept(arch: dict, cut_layer: str, kept: dict) -> dict[str, list[int]]:
    """kept as {group name: sorted channel ints}, one entry per group of the prefix: a group
    not named keeps every channel; a name that is not a group is an error."""
    sizes = group_sizes(arch, cut_layer)
    unknown = sorted(set(kept) - set(sizes))
    if unknown:
        raise ValueError(f"kept channels name {unknown}, which are not prunable groups up to "
                         f"{cut_layer} ({list(sizes)})")
    return {name: sorted(int(c) for c in kept[name]) if name in kept else list(range(n))
            for name, n in sizes.items()}


def layerwise_arch(arch: dict, cut_layer: str, kept: dict, hidden, dropout: float,
                   num_classes: int | None = None) -> dict:
    """The arch of the extractor cut after `cut_layer` with only `kept[name]` output channels
    in every group `name` (`pruning.pruned_features`), and a new classifier for what is left
    (plain data)."""
    kept = _check_kept(arch, cut_layer, kept)
    features = pruned_features(arch, cut_layer, kept)
    c, h, w = output_shape(features, arch.get("input_shape", [3, 32, 32]))
    out = copy.deepcopy(arch)
    out["features"] = features
    out["classifier"] = classifier_spec(
        c * h * w, hidden, dropout,
        arch["classifier"]["num_classes"] if num_classes is None else num_classes)
    sizes = group_sizes(arch, cut_layer)
    out["compression"] = {"method": "layerwise", "cut_layer": cut_layer, "unit": "channel",
                          "kept": kept, "candidates": {name: sizes[name] for name in kept}}
    return out


def layerwise_state(arch: dict, state: dict[str, torch.Tensor], cut_layer: str,
                    kept: dict) -> dict[str, torch.Tensor]:
    """normalize.* and features.* weights of the pruned extractor, from `state`
    (`pruning.pruned_state`: every tensor of each group restricted to its kept channels, by
    the dependency graph). Tensors stay on their device."""
    return pruned_state(arch, state, cut_layer, _check_kept(arch, cut_layer, kept))


def build_layerwise(source, cut_layer: str, kept: dict, *, hidden, dropout: float, seed: int,
                    num_classes: int | None = None) -> Network:
    """The layer-wise pruned model, in eval mode, on the CPU: the source's normalisation and
    sliced extractor weights, a new classifier initialised by `seed`."""
    arch, state = arch_and_state(source)
    kept = _check_kept(arch, cut_layer, kept)
    new_arch = layerwise_arch(arch, cut_layer, kept, hidden, dropout, num_classes)
    return build_pruned(new_arch, arch, state, cut_layer, kept, seed=seed)


# ----------------------------------------------------------------------------------------
# BatchNorm statistics after slicing


def first_sliced_input(arch: dict, kept: dict) -> str | None:
    """The first BatchNorm (`pruning.batchnorms`' name) whose conv reads channels of a group
    that `kept` prunes: from it on, every BatchNorm sees other inputs than it was trained on.
    None: no conv reads a pruned group (part (c), which prunes only its cut's outputs), so no
    BatchNorm statistic changes. arch: the unpruned network's, or a layer-wise pruned one's
    (its groups' sizes before pruning are in its compression record)."""
    sizes = group_sizes(arch)
    end = None  # a pruned network ends where its arch does
    if arch.get("compression", {}).get("method") == "layerwise":
        sizes = dict(arch["compression"]["candidates"])
    else:  # the unpruned network, pruned up to the last group named
        last = [g.layer.split(".")[0] for g in channel_groups(arch) if g.name in kept]
        end = last[-1] if last else None
    pruned = {g for g, chans in kept.items() if g in sizes and len(chans) < sizes[g]}
    for name, _path, reads in batchnorms(arch, end):
        if reads in pruned:
            return name
    return None


def batchnorm_images(data_npz, split_npz, n: int, seed: int) -> torch.Tensor:
    """The fixed set of training images BatchNorm statistics are estimated on: `n` of the
    split's `train` images (all when there are fewer), drawn without replacement by `seed`,
    in ascending index order; uint8 (n, 3, 32, 32) on the CPU. Never augmented."""
    from .data import load_dataset
    from .splits import load_split

    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"layerwise.bn_images must be a positive integer, got {n!r}")
    ds = load_dataset(data_npz)
    idx = np.asarray(load_split(split_npz)["train"])
    if n < len(idx):
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=int(n), replace=False))
    return torch.from_numpy(np.ascontiguousarray(ds.x_train[idx])).permute(0, 3, 1, 2)


def reestimate_batchnorm(model: Network, images: torch.Tensor, *, start: str | None,
                         batch_size: int = 500, device=None) -> list[str]:
    """Estimate again the running mean and variance of every BatchNorm of `model.features`
    from `start` on (`pruning.batchnorms`' names, in the order of the forward pass; None:
    none), in place, on `images`.

    One by one, in order: a BatchNorm's statistics are the mean and the variance (unbiased,
    as BatchNorm keeps it) per channel of its input (its conv's output) over every image and
    position, accumulated in float64 over batches (exact, whatever the batch size), with the
    ones before it already re-estimated and in eval mode, as the network will run. No
    gradient, no augmentation, nothing else changes. Returns the names re-estimated."""
    if start is None:
        return []
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    norms = [(name, path) for name, path, _ in batchnorms(model.arch)]
    names = [name for name, _ in norms]
    if start not in names:
        raise ValueError(f"{start!r} is not a BatchNorm of the model ({names})")
    modules = dict(model.named_modules())
    done = []
    for name, path in norms[names.index(start):]:
        bn = modules[path]
        total = torch.zeros(bn.num_features, dtype=torch.float64, device=dev)
        squares = torch.zeros_like(total)
        count = 0

        def hook(_module, inputs):
            nonlocal count
            y = inputs[0].detach().double()
            total.add_(y.sum(dim=(0, 2, 3)))
            squares.add_((y * y).sum(dim=(0, 2, 3)))
            count += y.shape[0] * y.shape[2] * y.shape[3]
            raise _Stop

        handle = bn.register_forward_pre_hook(hook)
        try:
            with torch.no_grad(), exact_float32(dev):
                for a in range(0, len(images), batch_size):
                    try:
                        model.features(model.normalize(images[a:a + batch_size].to(dev)))
                    except _Stop:
                        pass
        finally:
            handle.remove()
        mean = total / count
        var = (squares - count * mean * mean).clamp_min(0) / max(count - 1, 1)
        with torch.no_grad():
            bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
            bn.running_var.copy_(var.to(bn.running_var.dtype))
            bn.num_batches_tracked.zero_()
        done.append(name)
    return done


class _Stop(Exception):
    """Ends a forward pass at the block being measured (nothing after it is needed)."""


# ----------------------------------------------------------------------------------------
# Ranking layer by layer


def pruned_activations(source, cut_layer: str, kept: dict, group: str,
                       images: torch.Tensor, *, pool: int | None, batch_size: int, device,
                       bn_images: torch.Tensor | None = None) -> torch.Tensor:
    """The output of the layer that holds `group`'s channels (`pruning.ChannelGroup.layer`:
    a VGG conv after its ReLU, a ResNet block's first conv after its ReLU, a stage's last
    block) for `images`, through the groups before it pruned to `kept` (every channel of
    `group` itself and of the groups after it), each map average-pooled to pool x pool (None:
    not pooled); float32 (`exact_float32`), on `device`: (N, C, p, p).
    bn_images: re-estimate the BatchNorm statistics after the pruned inputs on them first
    (`reestimate_batchnorm`); None keeps e2e's."""
    arch, state = arch_and_state(source)
    groups = {g.name: g for g in channel_groups(arch, cut_layer)}
    names = list(groups)
    layer = groups[group].layer
    partial = {name: kept[name] for name in names[:names.index(group)]}
    model = build_layerwise({"arch": arch, "state_dict": state}, layer.split(".")[0], partial,
                            hidden=[], dropout=0.0, seed=0)
    model.to(device).eval()
    if bn_images is not None:
        reestimate_batchnorm(model, bn_images, start=first_sliced_input(model.arch, partial),
                             batch_size=batch_size, device=device)
    return layer_activations(model, images, layer, pool=pool, batch_size=batch_size)


def prune_layers(*, model_path, data_npz, split_npz, cut_json, out_json, ranking_csv,
                 pool: int | None = 2, tolerance: float = 0.01, batchnorm: str = "copy",
                 bn_images: int = 5000, seed: int = 0, batch_size: int = 500,
                 device: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Rank and prune every conv of the prefix kept by the cut, first to last (module notes).

    Writes `ranking_csv` (LAYER_RANKING_COLUMNS: every layer's SI curve along its ranking) and
    `out_json` (per layer: channels before and after, k, SI at k, the best SI, seconds; the
    kept channels; the BatchNorm choice, which every later build of the network reads
    (`pruned_network`); provenance). A partial state beside `out_json` makes a rerun go on
    after the last step saved. batchnorm "reestimate": each layer is ranked on the network
    whose statistics after every sliced input are estimated again on `bn_images` training
    images drawn by `seed` (`batchnorm_images`).
    """

    if pool is not None and (isinstance(pool, bool) or int(pool) != pool or pool < 1):
        raise ValueError(f"layerwise.pool must be a positive integer or null, got {pool!r}")
    if batchnorm not in BATCHNORM:
        raise ValueError(f"layerwise.batchnorm must be one of {BATCHNORM}, got {batchnorm!r}")
    cut_layer = artifacts.read_json(cut_json)["layer"]
    dev = pick_device(device, log=log)
    arch, state = arch_and_state(model_path)
    state = {k: v.to(dev) for k, v in state.items()}
    images, labels = subset_images(data_npz, split_npz, "si_train")
    bn = {"batchnorm": batchnorm, "bn_images": int(bn_images), "bn_seed": int(seed)}
    bn_set = batchnorm_images(data_npz, split_npz, bn_images, seed) \
        if batchnorm == "reestimate" else None
    convs = prefix_groups(arch, cut_layer)
    sizes = group_sizes(arch, cut_layer)
    log(f"layer-wise pruning of {len(convs)} groups of channels up to {cut_layer} on si_train "
        f"({len(labels)} images, {dev}, {PRECISION}); maps pooled to "
        f"{'full size' if pool is None else f'{pool}x{pool}'}; tolerance {tolerance:g}; "
        + ("BatchNorm statistics copied from e2e" if bn_set is None else
           f"BatchNorm statistics re-estimated on {len(bn_set)} training images"))

    partial_path = Path(out_json).with_name(PARTIAL)
    identity = {"cut_layer": cut_layer, "pool": pool, "tolerance": tolerance, **bn,
                "model": artifacts.fingerprint(*[state[k] for k in sorted(state)]),
                "data": artifacts.fingerprint(images, labels)}
    saved = artifacts.read_state(partial_path, identity, log, what="pruning",
                                 other="another model, data or options")
    done: dict[str, dict] = saved.get("layers", {}) if saved else {}
    current = saved.get("current") if saved else None

    kept: dict[str, list[int]] = {}
    rows, curves = [], []
    t_all = time.perf_counter()
    for name in convs:
        if name in done:
            rec = done[name]
            log(f"{name}: resumed: {rec['after']} of {rec['before']} channels kept")
        else:
            t0 = time.perf_counter()
            acts = pruned_activations({"arch": arch, "state_dict": state}, cut_layer, kept, name,
                                     images, pool=pool, batch_size=batch_size, device=dev,
                                     bn_images=bn_set)
            resume = current["order"] if current and current.get("layer") == name else None
            if resume:
                log(f"{name}: resume: continuing the ranking after {len(resume)} channels")

            def progress(order, si, steps, name=name):
                artifacts.write_json(partial_path, {**identity, "layers": done,
                                                    "current": {"layer": name, "order": order,
                                                                "si": si}})

            sel = forward_select(acts, labels, unit="channel", device=dev, progress=progress,
                                 resume=resume)
            choice = choose_k(sel.si, tolerance)
            k = choice["k"]
            rec = {"layer": name, "before": sizes[name], "after": k,
                   "map": list(acts.shape[2:]), "order": sel.order, "si": sel.si,
                   "kept": sorted(sel.order[:k]), "si_at_k": choice["si_at_k"],
                   "best_si": choice["best_si"], "best_k": choice["best_k"],
                   "seconds": time.perf_counter() - t0}
            done[name] = rec
            current = None
            artifacts.write_json(partial_path, {**identity, "layers": done, "current": None})
            log(f"{name}: {k} of {sizes[name]} channels kept (SI {choice['si_at_k']:.4f} on "
                f"{acts.shape[2]}x{acts.shape[3]} maps, best {choice['best_si']:.4f} at "
                f"{choice['best_k']}), {rec['seconds']:.1f} s")
        kept[name] = rec["kept"]
        rows.append({key: rec[key] for key in ("layer", "before", "after", "map", "si_at_k",
                                               "best_si", "best_k", "seconds", "kept")})
        curves.append(pd.DataFrame({"layer": name, "step": np.arange(1, len(rec["order"]) + 1),
                                    "channel": rec["order"], "si": rec["si"]}))
    ranking = pd.concat(curves, ignore_index=True)[LAYER_RANKING_COLUMNS]
    with artifacts.atomic_path(ranking_csv) as tmp:
        ranking.to_csv(tmp, index=False)
    before = sum(sizes[n] for n in convs)
    after = sum(len(kept[n]) for n in convs)
    out = {
        "cut_layer": cut_layer, "pool": pool, "tolerance": tolerance, **bn,
        "n_samples": len(labels), "layers": rows, "kept": kept,
        "channels_before": before, "channels_after": after,
        "seconds": sum(r["seconds"] for r in rows),
        "provenance": artifacts.provenance(settings={
            "model": str(model_path), "data": str(data_npz), "split": str(split_npz),
            "cut": str(cut_json), "pool": pool, "tolerance": tolerance, **bn,
            "device": str(dev),
            "precision": f"activations {PRECISION}; distances float64"}),
    }
    artifacts.write_json(out_json, out)
    partial_path.unlink(missing_ok=True)
    log(f"layer-wise pruning: {after} of {before} channels kept in {len(convs)} conv layers "
        f"({time.perf_counter() - t_all:.1f} s this run, {out['seconds']:.1f} s of ranking)")
    return out


# ----------------------------------------------------------------------------------------
# The controls: the same counts per layer, other channels


def control_kept(selector: str, source, cut_layer: str, counts: dict[str, int], *,
                 si_kept: dict | None = None, seed: int = 0, batch=None) -> dict[str, list[int]]:
    """Channels per group with the given counts, chosen by criterion `selector`
    (`criteria.choose`: group after group, each scored on the network with the groups
    before it pruned; "si" the layer-wise SI choice `si_kept`; "random" drawn per group in
    order from one generator seeded by `seed`; batch: (images, labels) for a criterion that
    needs a gradient), each sorted ascending."""
    arch, state = arch_and_state(source)
    groups = prefix_groups(arch, cut_layer)
    if set(counts) != set(groups):
        raise ValueError(f"counts must name every group up to {cut_layer} ({groups}), got "
                         f"{sorted(counts)}")
    if selector == "si" and si_kept is not None:
        si_kept = _check_kept(arch, cut_layer, si_kept)
    chosen = choose(selector, {"arch": arch, "state_dict": state}, cut_layer, counts,
                    si_kept=si_kept, seed=seed, batch=batch)
    return {name: sorted(chosen[name]) for name in groups}


def write_kept(*, model_path, pruned_json, choice: str, seed: int, data_npz, split_npz,
               out_json, log: Callable[[str], None] = print) -> dict:
    """The channels one criterion keeps at the layer-wise counts of `pruned_json`, written
    once to `out_json` (kept.json) for every cache and training of that choice to read.

    choice: a criterion (`criteria`), and for a seeded one its repeat ("random~2": drawn with
    seed + 2). A criterion that reads images (taylor, hrank) reads `scoring.training_batch`,
    drawn with the BatchNorm images' seed (pruned.json's bn_seed: the study's seed)."""
    name, _, repeat = choice.partition("~")
    crit = criterion(name)
    draw = int(seed) + int(repeat or 0) if crit.seeded else None
    pruned = artifacts.read_json(pruned_json)
    counts = {n: len(v) for n, v in pruned["kept"].items()}
    batch = training_batch(data_npz, split_npz, seed=pruned.get("bn_seed", 0)) \
        if crit.needs_batch else None
    t0 = time.perf_counter()
    kept = control_kept(name, model_path, pruned["cut_layer"], counts, si_kept=pruned["kept"],
                        seed=draw if draw is not None else 0, batch=batch)
    seconds = time.perf_counter() - t0
    out = {"criterion": name, "choice": choice, "seed": draw, "cut_layer": pruned["cut_layer"],
           "counts": counts, "kept": kept, "seconds": seconds,
           "provenance": artifacts.provenance(settings={
               "model": str(model_path), "pruned": str(pruned_json), "choice": choice,
               "seed": draw, "gradient_images": None if batch is None else len(batch[1])})}
    artifacts.write_json(out_json, out)
    log(f"{choice}: {sum(len(v) for v in kept.values())} channels kept in {len(kept)} groups "
        f"at the layer-wise counts, chosen in {seconds:.2f} s"
        + ("" if draw is None else f" (drawn with seed {draw})"))
    return out


def pruned_network(source, pruned: dict, kept: dict, *, seed: int, hidden, dropout: float,
                   data_npz, split_npz, batch_size: int = 500, device=None,
                   log: Callable[[str], None] | None = None) -> Network:
    """The layer-wise pruned network of `pruned` (prune_layers' pruned.json) with the
    channels of `kept` (a kept.json record, `write_kept`) and a new classifier initialised
    by `seed`, its BatchNorm statistics as pruned.json says (copied, or re-estimated on the
    same images the ranking used). The one way every part of the study builds it (its
    feature cache, its trainings). -> the model in eval mode on `device` or the CPU."""
    cut = pruned["cut_layer"]
    counts = {n: len(v) for n, v in pruned["kept"].items()}
    got = {n: len(v) for n, v in kept["kept"].items()}
    if kept.get("cut_layer") != cut or got != counts:
        raise ValueError(f"kept.json of {kept.get('choice')!r} does not hold pruned.json's "
                         f"counts (cut {kept.get('cut_layer')} vs {cut}; {got} vs {counts}): "
                         "it was written for another layer-wise pruning")
    model = build_layerwise(source, cut, kept["kept"], hidden=hidden, dropout=dropout, seed=seed)
    if pruned.get("batchnorm", "copy") == "reestimate":
        images = batchnorm_images(data_npz, split_npz, pruned["bn_images"], pruned["bn_seed"])
        done = reestimate_batchnorm(model, images,
                                    start=first_sliced_input(model.arch, kept["kept"]),
                                    batch_size=batch_size,
                                    device=device if device is not None else "cpu")
        if log is not None:
            log(f"BatchNorm statistics re-estimated on {len(images)} training images for "
                f"{len(done)} BatchNorms ({', '.join(done) or 'none'})")
    elif pruned.get("batchnorm", "copy") != "copy":
        raise ValueError(f"pruned.json: batchnorm must be one of {BATCHNORM}, got "
                         f"{pruned['batchnorm']!r}")
    return model.eval()


# ----------------------------------------------------------------------------------------
# The classifier's width, designed with Center SI


def hidden_separation(model: Network, images: torch.Tensor, labels, *, batch_size: int = 500,
                      device=None) -> dict:
    """SI and Center SI of the first hidden layer's output (after its ReLU, eval mode) of
    `model` for `images`: {"si", "center_si", "width"}."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    if not model.arch["classifier"]["hidden"]:
        raise ValueError("the classifier has no hidden layer to measure")
    h = layer_activations(model, images, "fc1", batch_size=batch_size)
    return {"si": separation_index(h, labels), "center_si": center_separation_index(h, labels),
            "width": int(h.shape[1])}


LAYERWISE_FILES = ("model.pt", "history.csv", "metrics.json", "curves.png", "predictions.npz")


def choose_layerwise_width(*, hidden_si_jsons, width_dirs, out_json, out_dir, plot=None,
                           tolerance: float = 0.01, log: Callable[[str], None] = print) -> dict:
    """The classifier width of the layer-wise pruned network (`decisions.choose_width` on
    the hidden layers' Center SI on si_train); the chosen width's artefacts are copied to
    `out_dir` (model.pt, history.csv, metrics.json, curves.png, predictions.npz), so that
    the layer-wise pruned model is measured and reported like every other model."""
    import shutil

    records = []
    for path, folder in zip(hidden_si_jsons, width_dirs, strict=True):
        rec = artifacts.read_json(path)
        records.append({**{k: rec[k] for k in ("width", "si", "center_si", "test_acc",
                                               "val_acc", "parameters", "macs")},
                        "folder": str(folder)})
    choice = choose_width(records, tolerance)
    chosen = next(r for r in records if r["width"] == choice["width"])
    out = {**choice, "widths": sorted(records, key=lambda r: r["width"]),
           "decided_on": "Center SI of the trained hidden layer on si_train",
           "provenance": artifacts.provenance(settings={"tolerance": tolerance})}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name in LAYERWISE_FILES:
        src = Path(chosen["folder"]) / name
        with artifacts.atomic_path(Path(out_dir) / name) as tmp:
            shutil.copyfile(src, tmp)
    artifacts.write_json(out_json, out)
    if plot is not None:
        figures.plot_width_choice(out, plot)
    log(f"classifier width {choice['width']}: Center SI {choice['center_si']:.4f} within "
        f"{tolerance:g} of width {choice['reference_width']}'s "
        f"{choice['reference_center_si']:.4f}")
    return out
