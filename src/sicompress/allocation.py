"""How many channels each group keeps under a budget: the allocations the criteria are
compared at.

A budget is a cost the pruned network may not exceed (its parameters, say, a share of the
unpruned network's); `cost` is any function of the counts per group ({group: k}) that grows
with every count (`parameter_cost` gives the parameters of the layer-wise pruned network,
`macs_cost` its multiply-accumulates per image).
Each allocation is one family of counts with one knob, and the knob is set to the largest
network within the budget, found by bisection over the knob's finitely many distinct values:

- `uniform`: every group keeps the same share q of its channels, k = round(q x n) (halves
  up, at least 1): the allocation of a network made narrower by one width factor;
- `si_tolerance`: each group keeps the first count whose SI is within a tolerance t of its
  curve's best (`decisions.choose_k`, the study's rule), one t for every group: SI's
  allocation, with the tolerance chosen per budget instead of given;
- `global_threshold`: the channels whose score clears one threshold over every group (at
  least one per group): Network Slimming's allocation by |gamma|, or any criterion's.

Plain numbers only (no torch beyond the two costs): the counts go to the criteria
(`scoring.choose`), which choose the channels.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Mapping, Sequence

import numpy as np

from .decisions import choose_k

Counts = dict[str, int]


def _largest_within(candidates: Sequence, counts_of: Callable[[object], Counts],
                    cost: Callable[[Counts], float], budget: float, what: str
                    ) -> tuple[Counts, object, float]:
    """Of `candidates` (knob values ordered so that the network grows along them), the last
    whose counts cost at most `budget`, by bisection (the cost grows along the order)."""
    if not candidates:
        raise ValueError(f"{what}: nothing to allocate")
    counts = counts_of(candidates[0])
    spent = cost(counts)
    if spent > budget:
        raise ValueError(f"{what}: even the smallest network ({spent:,.0f}) costs more than "
                         f"the budget ({budget:,.0f})")
    lo, hi = 0, len(candidates) - 1  # candidates[lo] fits; find the last that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        tried = counts_of(candidates[mid])
        c = cost(tried)
        if c <= budget:
            lo, counts, spent = mid, tried, c
        else:
            hi = mid - 1
    return counts, candidates[lo], spent


def _check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    if not sizes:
        raise ValueError("no groups to allocate channels to")
    for name, n in sizes.items():
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"group {name!r}: {n!r} channels; a group has at least 1")
    return {name: int(n) for name, n in sizes.items()}


def uniform_counts(sizes: Mapping[str, int], share) -> Counts:
    """Every group's round(share x n) channels (halves up, at least 1), share in (0, 1];
    computed in exact fractions, so a share (k - 1/2) / n gives k."""
    q = Fraction(share)
    if not 0 < q <= 1:
        raise ValueError(f"a share must lie in (0, 1], got {share!r}")
    return {name: max(1, math.floor(q * n + Fraction(1, 2)))
            for name, n in _check_sizes(sizes).items()}


def uniform(sizes: Mapping[str, int], cost: Callable[[Counts], float], budget: float
            ) -> dict:
    """The uniform share whose network is the largest within `budget`.
    -> {"counts", "share" (the smallest share giving those counts, a float), "cost"}."""
    sizes = _check_sizes(sizes)
    shares = sorted({Fraction(2 * k - 1, 2 * n) for n in sizes.values()
                     for k in range(1, n + 1)} | {Fraction(1)})
    counts, share, spent = _largest_within(shares, lambda q: uniform_counts(sizes, q), cost,
                                           budget, "uniform allocation")
    return {"counts": counts, "share": float(share), "cost": spent}


def tolerance_counts(curves: Mapping[str, Sequence[float]], tolerance: float) -> Counts:
    """Each group's count by the study's rule at one tolerance (`decisions.choose_k`): the
    first k whose SI is within `tolerance` of its curve's best. curves[g][i]: SI of group g's
    first i + 1 channels in SI's order."""
    return {name: choose_k(curve, tolerance)["k"] for name, curve in curves.items()}


def si_tolerance(curves: Mapping[str, Sequence[float]], cost: Callable[[Counts], float],
                 budget: float) -> dict:
    """The smallest tolerance (the largest network) whose SI counts fit `budget`: every
    tolerance at which some group's count changes is a candidate (its best SI minus a value
    of its curve), largest first, so that the network grows along them.
    -> {"counts", "tolerance", "cost"}."""
    if not curves:
        raise ValueError("no SI curves to allocate by")
    steps = set()
    for name, curve in curves.items():
        values = np.asarray(curve, dtype=np.float64)
        if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
            raise ValueError(f"group {name!r}: its SI curve must be a non-empty list of "
                             "finite values")
        steps.update(float(v) for v in np.maximum(values.max() - values, 0.0))
    tolerances = sorted(steps, reverse=True)  # the largest keeps the fewest channels
    counts, t, spent = _largest_within(tolerances, lambda t: tolerance_counts(curves, t),
                                       cost, budget, "SI allocation")
    return {"counts": counts, "tolerance": t, "cost": spent}


def threshold_counts(scores: Mapping[str, Sequence[float]], threshold: float) -> Counts:
    """Each group's channels whose score is at least `threshold`, at least 1."""
    return {name: max(1, int(np.sum(np.asarray(s, dtype=np.float64) >= threshold)))
            for name, s in scores.items()}


def global_threshold(scores: Mapping[str, Sequence[float]], cost: Callable[[Counts], float],
                     budget: float) -> dict:
    """The lowest threshold over every group's scores (the largest network) whose counts fit
    `budget`; each group keeps its channels at or above it, at least one (Network Slimming's
    global allocation when the scores are |gamma|). -> {"counts", "threshold", "cost"}."""
    if not scores:
        raise ValueError("no scores to allocate by")
    values = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in scores.values()])
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("the scores must be finite, at least one per group")
    thresholds = sorted({float(v) for v in values}, reverse=True)
    counts, th, spent = _largest_within(thresholds, lambda th: threshold_counts(scores, th),
                                        cost, budget, "global threshold")
    return {"counts": counts, "threshold": th, "cost": spent}


def _pruned_cost(arch: dict, cut_layer: str, hidden, dropout: float, measure: Callable[[dict], int]
                 ) -> Callable[[Counts], int]:
    from .layerwise import layerwise_arch

    def cost(counts: Counts) -> int:
        kept = {name: list(range(k)) for name, k in counts.items()}
        return measure(layerwise_arch(arch, cut_layer, kept, hidden, dropout))

    return cost


def parameter_cost(arch: dict, cut_layer: str, hidden, dropout: float
                   ) -> Callable[[Counts], int]:
    """The parameters of the layer-wise pruned network of `arch` (cut after `cut_layer`, a new
    classifier with `hidden` units: `layerwise.layerwise_arch`) as a function of its counts per
    group, counted on the meta device (`cost.arch_parameters`). Which channels are kept does
    not change the count, so the first k of each group stand for any k."""
    from .cost import arch_parameters

    return _pruned_cost(arch, cut_layer, hidden, dropout, lambda a: arch_parameters(a)["total"])


def macs_cost(arch: dict, cut_layer: str, hidden, dropout: float) -> Callable[[Counts], int]:
    """As `parameter_cost`, the multiply-accumulates per image of that network
    (`cost.macs_per_image`, Torch-Pruning's counter on the meta device)."""
    from .cost import macs_per_image

    return _pruned_cost(arch, cut_layer, hidden, dropout, lambda a: macs_per_image(a)["total"])
