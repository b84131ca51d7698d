"""The statistics every comparison of the report is read with.

- McNemar's exact test compares two classifiers on the same test images. Only the images one
  gets right and the other wrong (the discordant pairs) carry information; if the two were
  equally good, each discordant image would go either way with probability 1/2, so the count
  of one kind is Binomial(n_d, 1/2). The two-sided p-value is twice the smaller tail,
  p = min(1, 2 * sum_{i=0..m} C(n_d, i) / 2^n_d), m = min(only_a, only_b), and 1 when n_d = 0.
  It is computed with exact integers (a test set of 10,000 images gives n_d of at most
  10,000, whose binomial coefficients overflow a float but not a Python int).
- Repeats are summarised by their mean and sample standard deviation (ddof = 1).
- The pooled exact test compares two trainings over several seeds: per seed s, the images
  only a gets right (b_s) and only b gets right (c_s). Conditional on the discordant counts,
  under equal accuracy every discordant image goes either way with probability 1/2 in every
  stratum, so sum_s b_s is Binomial(sum_s (b_s + c_s), 1/2), and the two-sided p-value is
  McNemar's on the summed counts (the exact conditional test of a common odds ratio of 1,
  which Cochran-Mantel-Haenszel's chi-square approximates). With one seed it is McNemar's.
  It tests equal accuracy only: 500 / 500 discordant images give p = 1, and a large p is no
  evidence that the two are the same.
- A difference of mean accuracies is read from its 95% interval. Where the two trainings
  share their seeds (the same classifier initialisation, batch order and dropout draws), the
  per-seed differences d_s = a_s - b_s give mean(d) +- t_{0.975, n-1} sd(d) / sqrt(n)
  (`paired_interval`); otherwise Welch's interval, mean(a) - mean(b) +- t_{0.975, nu}
  sqrt(s_a^2/n_a + s_b^2/n_b) with Welch-Satterthwaite's nu (`welch_interval`). One repeat on
  a side gives no interval. The half-width is the smallest difference those repeats can
  tell from 0 at that spread.
- A family of m tests is adjusted with Holm's step-down method: with the p-values sorted
  ascending, p_(1) <= ... <= p_(m), the adjusted p_(i) is max over j <= i of
  min(1, (m - j + 1) p_(j)); it controls the chance of any false rejection in the family.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable

import numpy as np

LEVEL = 0.95  # the confidence of every interval the report reads


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
    return {"n": int(a.size), "both_correct": int(np.sum(a & b)), "only_a": only_a,
            "only_b": only_b, "both_wrong": int(np.sum(~a & ~b)),
            "p_value": sign_test_p(only_a, only_b)}


def sign_test_p(only_a: int, only_b: int) -> float:
    """Two-sided exact binomial p-value of only_a successes in only_a + only_b trials at 1/2:
    min(1, 2 * sum_{i<=m} C(n_d, i) / 2^n_d), m = min(only_a, only_b); 1 when n_d = 0."""
    if min(only_a, only_b) < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a} and {only_b}")
    n_d, m = only_a + only_b, min(only_a, only_b)
    tail, c = 0, 1  # sum_{i<=m} C(n_d, i), with C(n_d, i) built from C(n_d, i-1)
    for i in range(m + 1):
        tail += c
        c = c * (n_d - i) // (i + 1)
    return float(min(Fraction(1), Fraction(2 * tail, 1 << n_d)))  # exact; float() rounds once


def pooled_exact_test(strata: Iterable[tuple[int, int]]) -> dict:
    """The exact conditional test of equal accuracy pooled over seeds (module notes).

    strata: (only_a, only_b) per seed: the images only a, only b gets right.
    -> {"strata", "only_a", "only_b" (summed), "p_value"}.
    """
    pairs = [(int(a), int(b)) for a, b in strata]
    if not pairs:
        raise ValueError("pooled_exact_test needs at least one stratum, got none")
    only_a, only_b = sum(a for a, _ in pairs), sum(b for _, b in pairs)
    return {"strata": len(pairs), "only_a": only_a, "only_b": only_b,
            "p_value": sign_test_p(only_a, only_b)}


def _t_quantile(q: float, df: float) -> float:
    """Student's t quantile (scipy's; imported here, not with the module: scipy.stats costs
    most jobs, which never read an interval, a second of start-up)."""
    from scipy import stats

    return float(stats.t.ppf(q, df))


def _interval(kind: str, n: int, delta: float, se: float, df: float, level: float) -> dict:
    if n < 2 or not math.isfinite(se) or not math.isfinite(df) or df <= 0:
        return {"kind": kind, "n": n, "delta": delta, "lo": math.nan, "hi": math.nan,
                "half_width": math.nan, "df": math.nan, "se": math.nan}
    half = _t_quantile(0.5 + level / 2, df) * se
    return {"kind": kind, "n": n, "delta": delta, "lo": delta - half, "hi": delta + half,
            "half_width": half, "df": float(df), "se": float(se)}


def paired_interval(a: Iterable[float], b: Iterable[float], level: float = LEVEL) -> dict:
    """The t-interval of the mean per-seed difference a_s - b_s (n - 1 df; module notes).

    a, b: one value per seed, seed s of both at the same position.
    -> {"kind": "paired", "n", "delta", "lo", "hi", "half_width", "df", "se"}; lo, hi, ... NaN
    for one pair. With sd(d) = 0 the interval is the point delta.
    """
    x, y = np.asarray(list(a), float), np.asarray(list(b), float)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"paired_interval needs two equally long, non-empty lists, got "
                         f"{x.size} and {y.size} values")
    d = x - y
    n = int(d.size)
    se = float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return _interval("paired", n, float(d.mean()), se, n - 1, level)


def welch_interval(a: Iterable[float], b: Iterable[float], level: float = LEVEL) -> dict:
    """Welch's interval of mean(a) - mean(b), unequal variances (module notes).

    -> {"kind": "welch", "n" (the smaller sample), "delta", "lo", "hi", "half_width", "df",
    "se"}; NaN bounds when either side has one value. Two samples without any spread give
    the point delta.
    """
    x, y = np.asarray(list(a), float), np.asarray(list(b), float)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"welch_interval needs values on both sides, got {x.size} and {y.size}")
    n, delta = int(min(x.size, y.size)), float(x.mean() - y.mean())
    if n < 2:
        return _interval("welch", n, delta, math.nan, math.nan, level)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0:
        return _interval("welch", n, delta, 0.0, x.size + y.size - 2, level)
    df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    return _interval("welch", n, delta, se, df, level)


def mean_interval(values: Iterable[float], level: float = LEVEL) -> dict:
    """The t-interval of a mean (n - 1 df): {"kind": "one sample", "n", "delta" (the mean),
    "lo", "hi", "half_width", "df", "se"}; NaN bounds for one value."""
    x = np.asarray(list(values), float)
    if x.size == 0:
        raise ValueError("mean_interval needs at least one value, got none")
    n = int(x.size)
    se = float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    out = _interval("paired", n, float(x.mean()), se, n - 1, level)
    return dict(out, kind="one sample")


def detectable(sd: float, n: int, level: float = LEVEL) -> float:
    """The smallest |mean difference| that n paired repeats with this sd of the per-seed
    differences can tell from 0: the interval's half-width t_{(1+level)/2, n-1} sd / sqrt(n);
    NaN for n < 2."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return _t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)


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
