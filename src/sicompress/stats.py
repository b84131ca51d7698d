"""The two statistics the controls of part (c) are reported with.

- McNemar's exact test compares two classifiers on the same test images. Only the images one
  gets right and the other wrong (the discordant pairs) carry information; if the two were
  equally good, each discordant image would go either way with probability 1/2, so the count
  of one kind is Binomial(n_d, 1/2). The two-sided p-value is twice the smaller tail,
  p = min(1, 2 * sum_{i=0..m} C(n_d, i) / 2^n_d), m = min(only_a, only_b), and 1 when n_d = 0.
  It is computed with exact integers (a test set of 10,000 images gives n_d of at most
  10,000, whose binomial coefficients overflow a float but not a Python int).
- Repeats are summarised by their mean and sample standard deviation (ddof = 1).
- A family of m tests is adjusted with Holm's step-down method: with the p-values sorted
  ascending, p_(1) <= ... <= p_(m), the adjusted p_(i) is max over j <= i of
  min(1, (m - j + 1) p_(j)); it controls the chance of any false rejection in the family.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable

import numpy as np


def mcnemar_exact(correct_a, correct_b) -> dict:
    """McNemar's exact test of two classifiers' per-image correctness on the same images.

    correct_a, correct_b: bool arrays (N,), image n of both is the same test image.
    -> {"n", "both_correct", "only_a" (a right, b wrong), "only_b", "both_wrong": int,
        "p_value": float}: the two-sided exact binomial test on the discordant pairs.
    """
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"mcnemar_exact needs two 1-D arrays of the same length, got shapes "
                         f"{a.shape} and {b.shape}")
    if a.dtype != bool or b.dtype != bool:
        raise ValueError(f"mcnemar_exact needs bool arrays (correct or not per image), got "
                         f"{a.dtype} and {b.dtype}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n_d, m = only_a + only_b, min(only_a, only_b)
    tail, c = 0, 1  # sum_{i<=m} C(n_d, i), with C(n_d, i) built from C(n_d, i-1)
    for i in range(m + 1):
        tail += c
        c = c * (n_d - i) // (i + 1)
    p = min(Fraction(1), Fraction(2 * tail, 1 << n_d))  # exact; float() rounds once
    return {"n": int(a.size), "both_correct": int(np.sum(a & b)), "only_a": only_a,
            "only_b": only_b, "both_wrong": int(np.sum(~a & ~b)), "p_value": float(p)}


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof = 1) of some values; sd is NaN for one."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        raise ValueError("mean_sd needs at least one value, got none")
    sd = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return float(x.mean()), sd


def format_mean_sd(mean: float, sd: float, *, scale: float = 1.0, digits: int = 2,
                   unit: str = "") -> str:
    """"mean ± sd" with both scaled (100 for a fraction as %); "mean" alone when sd is NaN."""
    if mean is None or math.isnan(mean):
        return "–"
    text = f"{scale * mean:.{digits}f}"
    if sd is not None and not math.isnan(sd):
        text += f" ± {scale * sd:.{digits}f}"
    return text + unit


def holm(p_values: Iterable[float]) -> list[float]:
    """Holm-adjusted p-values of a family of tests, in the order given (module notes)."""
    p = [float(v) for v in p_values]
    if any(math.isnan(v) or not 0 <= v <= 1 for v in p):
        raise ValueError(f"p-values must lie in [0, 1], got {p}")
    m = len(p)
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: (p[i], i))):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out
