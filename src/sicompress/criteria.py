"""Which channels of a group to keep, given how many: the channel criteria, listed once.

Plain data only (the rules read it while the job graph is built, without torch); the
scoring itself is `scoring`'s.

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
- "hrank": the k channels whose feature maps have the highest average matrix rank (Lin et
  al. 2020, "HRank"): each channel's H x W map at the group's layer (`ChannelGroup.layer`:
  after its BatchNorm and ReLU) on the same fixed batch of training images, its rank by SVD
  in float32 with numpy's and torch's default tolerance (largest singular value x max(H, W)
  x float32's eps), averaged over the images. Torch-Pruning has no HRank, so it is ours;
- "random": k channels drawn uniformly without replacement by a generator seeded with the
  run's seed (one generator per choice, drawing group after group in order).

The library returns float32 scores (its reduction casts to float32); channels whose scores are
equal in float32 are ties, and ties go to the lower channel index. A criterion scores each
group on the network with the groups before it already pruned (layer by layer, first to
last), so a filter's norm is over the input channels it keeps.
With unit "element" (values, not channels) only "si" and "random" apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    """One channel criterion.

    name: its name in configs, file names and tables. title: how the report names it.
    seeded: its choice depends on the run's seed (one choice per repeat).
    gradient: it needs the loss's gradient on a batch of training images.
    feature_maps: it reads the group's output maps on a batch of training images.
    elements: it can choose single values of a layer's output (unit "element").
    importance: the class of `torch_pruning.importance` that scores a group, and its
      keyword arguments (None: it chooses a set, `scoring` draws or reads it).
    """

    name: str
    title: str
    seeded: bool = False
    gradient: bool = False
    feature_maps: bool = False
    elements: bool = False
    importance: str | None = None
    options: tuple[tuple[str, object], ...] = ()

    @property
    def needs_batch(self) -> bool:
        """It reads a fixed batch of training images (`scoring.training_batch`)."""
        return self.gradient or self.feature_maps


CRITERIA: tuple[Criterion, ...] = (
    Criterion("si", "SI", elements=True),
    Criterion("l1", "L1", importance="MagnitudeImportance",
              options=(("p", 1), ("group_reduction", "first"), ("normalizer", None))),
    Criterion("random", "random", seeded=True, elements=True),
    Criterion("bn_scale", "BN scale", importance="BNScaleImportance",
              options=(("normalizer", None),)),
    Criterion("taylor", "Taylor", gradient=True, importance="TaylorImportance",
              options=(("group_reduction", "first"), ("normalizer", None))),
    Criterion("hrank", "HRank", feature_maps=True),
)
BY_NAME = {c.name: c for c in CRITERIA}
NAMES = tuple(BY_NAME)


def criterion(name: str) -> Criterion:
    """The criterion `name`; an error that lists the registry otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown channel criterion {name!r}; the criteria are {list(NAMES)}")
    return BY_NAME[name]


def choice_name(name: str, repeat: int) -> str:
    """How files and rules name one criterion's choice: the criterion, and for a seeded one
    its repeat ("random~2"), whose seed drew it."""
    return f"{name}~{int(repeat)}" if criterion(name).seeded else name


def choice_pattern() -> str:
    """The regular expression of every `choice_name` (a rule's wildcard constraint)."""
    fixed = [c.name for c in CRITERIA if not c.seeded]
    seeded = [rf"{c.name}~\d+" for c in CRITERIA if c.seeded]
    return "|".join(fixed + seeded)


def k_of_fraction(fraction: float, n_candidates: int) -> int:
    """Features kept for a share of the cut layer's: round(fraction * n), at least 1."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"a frontier fraction must lie in (0, 1], got {fraction!r}")
    return max(1, min(n_candidates, int(math.floor(fraction * n_candidates + 0.5))))
