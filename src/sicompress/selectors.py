"""Which channels of the cut layer to keep, given how many: the study's rule and its controls.

At the same cut and the same k, a selector names the k channels of the cut layer's output
that the compressed model keeps (`pruning.build_compressed` then slices the cut conv):

- "si": the first k of the forward selection by SI on si_train (the study's choice);
- "l1": the k filters of the cut layer's last conv with the largest L1 norm of their weights
  (sum of |w| over input channels and the 3x3 kernel), ties to the lower index, the
  criterion of Li et al. (2017, "Pruning filters for efficient ConvNets");
- "random": k channels drawn uniformly without replacement by a seeded generator.

With unit "element" (values of the flattened output, not channels) only "si" and "random"
apply: a single value has no filter of its own to take a norm of.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .model import cut_position

SELECTORS = ("si", "l1", "random")


def k_of_fraction(fraction: float, n_candidates: int) -> int:
    """Features kept for a share of the cut layer's: round(fraction * n), at least 1."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"a frontier fraction must lie in (0, 1], got {fraction!r}")
    return max(1, min(n_candidates, int(math.floor(fraction * n_candidates + 0.5))))


def l1_channels(conv_weight: torch.Tensor, k: int) -> list[int]:
    """The k output channels of a conv with the largest L1 filter norm, ties to the lower index.

    conv_weight: (C_out, C_in, kh, kw). -> k channel indices, largest norm first.
    """
    if conv_weight.ndim != 4:
        raise ValueError(f"conv weight must be (C_out, C_in, kh, kw), got {tuple(conv_weight.shape)}")
    _check_k(k, conv_weight.shape[0])
    norms = conv_weight.detach().to("cpu", torch.float64).abs().sum(dim=(1, 2, 3)).numpy()
    order = np.lexsort((np.arange(len(norms)), -norms))  # by norm descending, then index
    return [int(i) for i in order[:k]]


def random_channels(n_candidates: int, k: int, seed: int) -> list[int]:
    """k of n_candidates drawn uniformly without replacement, reproducible by `seed`."""
    _check_k(k, n_candidates)
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.choice(n_candidates, size=k, replace=False)]


def cut_conv_weight(arch: dict, state: dict, cut_layer: str) -> torch.Tensor:
    """The weight (C_out, C_in, 3, 3) of the last conv up to and including `cut_layer`."""
    prefix = arch["features"][:cut_position(arch, cut_layer) + 1]
    convs = [layer["name"] for layer in prefix if layer["kind"] == "conv"]
    if not convs:
        raise ValueError(f"no conv layer up to {cut_layer!r}: no filters to take norms of")
    return state[f"features.{convs[-1]}.conv.weight"]


def choose_channels(selector: str, k: int, *, unit: str, n_candidates: int,
                    ranking: Sequence[int] | None = None, conv_weight: torch.Tensor | None = None,
                    seed: int | None = None) -> list[int]:
    """The k features a selector keeps (see the module notes), in the selector's own order.

    ranking: the SI forward-selection order (selector "si"); conv_weight: the cut conv's
    weight (selector "l1"); seed: the generator's seed (selector "random").
    """
    if selector not in SELECTORS:
        raise ValueError(f"selector must be one of {SELECTORS}, got {selector!r}")
    _check_k(k, n_candidates)
    if selector == "si":
        if ranking is None:
            raise ValueError("selector 'si' needs the ranking")
        if len(ranking) < k:
            raise ValueError(f"selector 'si' needs the first {k} of the ranking but it holds "
                             f"{len(ranking)} (it stopped early: compress.patience or "
                             "compress.max_features); lower the frontier fractions or rank more")
        return [int(f) for f in ranking[:k]]
    if selector == "l1":
        if unit != "channel":
            raise ValueError("selector 'l1' needs compress.feature_unit 'channel'")
        if conv_weight is None:
            raise ValueError("selector 'l1' needs the cut conv's weight")
        if conv_weight.shape[0] != n_candidates:
            raise ValueError(f"the cut conv has {conv_weight.shape[0]} filters, expected "
                             f"{n_candidates}")
        return l1_channels(conv_weight, k)
    if seed is None:
        raise ValueError("selector 'random' needs a seed")
    return random_channels(n_candidates, k, seed)


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")
