"""Which channels of a group to keep, given how many: the channel criteria, listed once.

Every criterion answers one question: of a group's channels (`pruning.channel_groups`), which
k does it keep? The registry `CRITERIA` is the one list: the config schema's check, the rules
(`controls.selectors`), the report's names and the tests read it from here.

- "si": the first k of the forward selection by SI on si_train (the study's own choice): it
  chooses a set, not a score per channel, so its order is computed by its own jobs
  (`compression.rank_features`, `layerwise.prune_layers`) and read here;
- "l1": the k filters with the largest L1 norm of their weights (sum of |w| over the input
  channels and the kernel) of the conv that roots the group, the criterion of Li et al.
  (2017, "Pruning filters for efficient ConvNets"): Torch-Pruning's
  `MagnitudeImportance(p=1, group_reduction="first", normalizer=None)`;
- "bn_scale": the k channels with the largest |gamma| of the BatchNorm that follows, as in
  Network Slimming (Liu et al. 2017), averaged over the group's BatchNorms where a group has
  several (a ResNet stage): Torch-Pruning's `BNScaleImportance(normalizer=None)`;
- "taylor": the k filters with the largest first-order Taylor estimate of the loss change
  (Molchanov et al. 2019), sum over the filter of |w x dL/dw|, the cross-entropy of the whole
  network (its own classifier, eval mode) on a fixed batch of training images: Torch-Pruning's
  `TaylorImportance(group_reduction="first", normalizer=None)`;
- "random": k channels drawn uniformly without replacement by a generator seeded with the
  run's seed (one generator per choice, drawing group after group in order).

The library returns float32 scores (its reduction casts to float32); channels whose scores are
equal in float32 are ties, and ties go to the lower channel index. A criterion scores each group on the network with the groups before it already pruned
(layer by layer, first to last), so a filter's norm is over the input channels it keeps.
With unit "element" (values, not channels) only "si" and "random" apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch_pruning as tp


@dataclass(frozen=True)
class Criterion:
    """One channel criterion.

    name: its name in configs, file names and tables. title: how the report names it.
    seeded: its choice depends on the run's seed (one choice per repeat).
    gradient: it needs the loss's gradient on a batch of training images.
    elements: it can choose single values of a layer's output (unit "element").
    importance: the Torch-Pruning importance that scores a group (None: it chooses a set).
    """

    name: str
    title: str
    seeded: bool = False
    gradient: bool = False
    elements: bool = False
    importance: Callable[[], tp.importance.Importance] | None = None


CRITERIA: tuple[Criterion, ...] = (
    Criterion("si", "SI", elements=True),
    Criterion("l1", "L1",
              importance=lambda: tp.importance.MagnitudeImportance(
                  p=1, group_reduction="first", normalizer=None)),
    Criterion("random", "random", seeded=True, elements=True),
    Criterion("bn_scale", "BN scale", importance=lambda: tp.importance.BNScaleImportance(
        normalizer=None)),
    Criterion("taylor", "Taylor", gradient=True,
              importance=lambda: tp.importance.TaylorImportance(
                  group_reduction="first", normalizer=None)),
)
BY_NAME = {c.name: c for c in CRITERIA}
NAMES = tuple(BY_NAME)


def criterion(name: str) -> Criterion:
    """The criterion `name`; an error that lists the registry otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown channel criterion {name!r}; the criteria are {list(NAMES)}")
    return BY_NAME[name]


def k_of_fraction(fraction: float, n_candidates: int) -> int:
    """Features kept for a share of the cut layer's: round(fraction * n), at least 1."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"a frontier fraction must lie in (0, 1], got {fraction!r}")
    return max(1, min(n_candidates, int(math.floor(fraction * n_candidates + 0.5))))


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


GRADIENT_IMAGES = 256  # the fixed batch a gradient criterion's loss is taken on


def gradient_batch(data_npz, split_npz, seed: int, n: int = GRADIENT_IMAGES
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (n, 3, 32, 32), labels) of `n` of the split's `train` images (all when
    there are fewer), drawn without replacement by `seed`, in ascending index order, never
    augmented: the batch "taylor" takes its loss on."""
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
    taken on.
    """
    from .pruning import arch_and_state, channel_groups, prune_network

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
    if crit.gradient and batch is None:
        raise ValueError(f"criterion {name!r} needs a batch of training images")
    chosen: dict[str, list[int]] = {}
    importance = crit.importance()
    for g in groups:
        model, graph = prune_network(arch, state, chosen, device=device)
        if crit.gradient:
            images, labels = batch
            dev = next(model.parameters()).device
            model.eval().zero_grad()
            loss = torch.nn.functional.cross_entropy(model(images.to(dev)), labels.to(dev))
            loss.backward()
        root = dict(model.named_modules())[g.root]
        group = graph.get_pruning_group(root, tp.prune_conv_out_channels,
                                        idxs=list(range(root.out_channels)))
        scores = importance(group)
        if scores is None:
            raise ValueError(f"criterion {name!r} finds nothing to score in group {g.name!r}")
        chosen[g.name] = top_k(scores, counts[g.name])
    return chosen
