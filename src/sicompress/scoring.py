"""Scoring and choosing a group's channels by each criterion of `criteria`, on the network
pruned so far (Torch-Pruning's importances where the library has the criterion)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch_pruning as tp

from .activations import layer_activations
from .criteria import criterion
from .pruning import arch_and_state, channel_groups, prune_network


def top_k(scores, k: int) -> list[int]:
    """Indices of the k largest scores, largest first, ties to the lower index."""
    s = torch.as_tensor(scores).detach().to("cpu", torch.float64).numpy()
    _check_k(k, len(s))
    order = np.lexsort((np.arange(len(s)), -s))
    return [int(i) for i in order[:k]]


def random_channels(rng: np.random.Generator, n_candidates: int, k: int) -> list[int]:
    """k of n_candidates drawn uniformly without replacement by `rng`."""
    _check_k(k, n_candidates)
    return [int(i) for i in rng.choice(n_candidates, size=k, replace=False)]


def si_channels(ranking: Sequence[int] | None, k: int) -> list[int]:
    """The first k of SI's forward-selection order."""
    if ranking is None:
        raise ValueError("criterion 'si' needs the ranking")
    if len(ranking) < k:
        raise ValueError(f"criterion 'si' needs the first {k} of the ranking but it holds "
                         f"{len(ranking)} (it stopped early: compress.patience or "
                         "compress.max_features); lower the frontier fractions or rank more")
    return [int(f) for f in ranking[:k]]


def feature_map_rank(maps: torch.Tensor) -> torch.Tensor:
    """HRank's score of each channel: the matrix rank of its (H, W) map in each image,
    averaged over the images. maps: (N, C, H, W), ranked in their own dtype (float32 maps:
    float32's eps in the tolerance, as numpy's `matrix_rank` of the same array) -> (C,)
    float64."""
    if maps.ndim != 4:
        raise ValueError(f"feature maps must be (N, C, H, W), got shape {tuple(maps.shape)}")
    return torch.linalg.matrix_rank(maps).to(torch.float64).mean(dim=0)


BATCH_IMAGES = 256  # the fixed batch of training images "taylor" and "hrank" read


def training_batch(data_npz, split_npz, seed: int, n: int = BATCH_IMAGES
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (n, 3, 32, 32), labels) of `n` of the split's `train` images (all when
    there are fewer), drawn without replacement by `seed`, in ascending index order, never
    augmented: the batch "taylor" takes its loss on and "hrank" its feature maps."""
    from .data import load_dataset
    from .splits import load_split

    ds = load_dataset(data_npz)
    idx = np.asarray(load_split(split_npz)["train"])
    if n < len(idx):
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=int(n), replace=False))
    images = torch.from_numpy(np.ascontiguousarray(ds.x_train[idx])).permute(0, 3, 1, 2)
    return images, torch.as_tensor(np.asarray(ds.y_train)[idx], dtype=torch.long)


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")


# ----------------------------------------------------------------------------------------
# Choosing per group, on the network pruned so far


def choose(name: str, source, cut_layer: str, counts: dict[str, int], *, seed: int = 0,
           si_kept: dict | None = None, batch: tuple[torch.Tensor, torch.Tensor] | None = None,
           device=None) -> dict[str, list[int]]:
    """The channels criterion `name` keeps in each group of `counts` ({group: k}), in the
    criterion's own order: group after group in the network's order, each scored on the
    whole source network (its classifier included) with the groups before it pruned to the
    channels already chosen (`pruning.prune_network`). Groups not in `counts` keep every
    channel.

    si_kept: SI's channels per group (criterion "si": its choice is read, not computed).
    seed: the generator of "random". batch: (uint8 images, labels) the loss of "taylor" is
    taken on, and the feature maps of "hrank".
    """
    crit = criterion(name)
    arch, state = arch_and_state(source)
    groups = [g for g in channel_groups(arch, cut_layer) if g.name in counts]
    unknown = sorted(set(counts) - {g.name for g in groups})
    if unknown:
        raise ValueError(f"counts name {unknown}, which are not prunable groups up to "
                         f"{cut_layer} ({[g.name for g in channel_groups(arch, cut_layer)]})")
    for g in groups:
        _check_k(counts[g.name], g.channels)
    if crit.name == "si":
        if si_kept is None:
            raise ValueError("criterion 'si' needs SI's choice")
        return {g.name: [int(c) for c in si_kept[g.name]] for g in groups}
    if crit.name == "random":
        rng = np.random.default_rng(seed)
        return {g.name: random_channels(rng, g.channels, counts[g.name]) for g in groups}
    if crit.needs_batch and batch is None:
        raise ValueError(f"criterion {name!r} needs a batch of training images")
    chosen: dict[str, list[int]] = {}
    if crit.feature_maps:
        for g in groups:
            model, _ = prune_network(arch, state, chosen, device=device)
            maps = layer_activations(model, batch[0], g.layer, batch_size=64)
            chosen[g.name] = top_k(feature_map_rank(maps), counts[g.name])
        return chosen
    importance = getattr(tp.importance, crit.importance)(**dict(crit.options))
    for g in groups:
        model, graph = prune_network(arch, state, chosen, device=device)
        if crit.gradient:
            _loss_gradient(model, batch)
        chosen[g.name] = top_k(_group_score(name, importance, model, graph, g), counts[g.name])
    return chosen


def _loss_gradient(model, batch) -> None:
    """The gradient of the whole network's cross-entropy (eval mode) on `batch` in every
    parameter's .grad: what Taylor's score reads."""
    images, labels = batch
    dev = next(model.parameters()).device
    model.eval().zero_grad()
    torch.nn.functional.cross_entropy(model(images.to(dev)), labels.to(dev)).backward()


def _group_score(name: str, importance, model, graph, g) -> torch.Tensor:
    """The library's score of every channel of group `g` of `model`."""
    root = dict(model.named_modules())[g.root]
    group = graph.get_pruning_group(root, tp.prune_conv_out_channels,
                                    idxs=list(range(root.out_channels)))
    scores = importance(group)
    if scores is None:
        raise ValueError(f"criterion {name!r} finds nothing to score in group {g.name!r}")
    return scores


def group_scores(name: str, source, *, batch=None, device=None) -> dict[str, np.ndarray]:
    """Every group's scores by criterion `name` (one with a Torch-Pruning importance) on the
    unpruned network, all at once: what a global threshold over every group reads (Network
    Slimming's allocation by |gamma|). -> {group: float64 scores (channels,)}."""
    crit = criterion(name)
    if crit.importance is None:
        raise ValueError(f"criterion {name!r} has no score per channel to threshold; those "
                         "that do are the ones Torch-Pruning scores (l1, bn_scale, taylor)")
    if crit.needs_batch and batch is None:
        raise ValueError(f"criterion {name!r} needs a batch of training images")
    arch, state = arch_and_state(source)
    model, graph = prune_network(arch, state, {}, device=device)
    if crit.gradient:
        _loss_gradient(model, batch)
    importance = getattr(tp.importance, crit.importance)(**dict(crit.options))
    return {g.name: torch.as_tensor(_group_score(name, importance, model, graph, g)).detach()
            .to("cpu", torch.float64).numpy() for g in channel_groups(arch)}
