"""How the report reads a difference, stated once: every section and the answers of the first
screen say "beats", "differ" or "no difference detected" only by these rules.

- **A difference of two trainings' mean test accuracies** is read from its 95% interval
  (`sicompress.comparisons`, `sicompress.stats`): paired by seed where the two share their
  seeds (the per-seed differences, their mean and t-interval on n - 1 df), Welch's interval
  where they do not; the words say which. "A beats B" only where the interval excludes 0;
  otherwise "no difference detected over n repeats", with the interval, which says how large a
  difference the repeats leave open. One repeat gives no interval and no reading.
- **An exact test** (McNemar's against e2e; the test pooled over the seeds between two
  trainings) is read at p < SIGNIFICANCE after Holm's adjustment over its family: "accuracies
  differ", else "no accuracy difference detected". It tests equal accuracy on these test
  images only, for these trained models; a large p is no evidence that the two are the same.
  The interval, not the test, carries the verdict: it includes the run-to-run variation of
  the trainings, which the test on one set of images does not see.
- **Against a bound** (the published claim): the interval of the repeats' mean against the
  bound: met where the whole interval is within it, not met where the whole interval is
  outside, undecided otherwise.
"""

from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from ..stats import mean_interval
from .cells import pct

SIGNIFICANCE = 0.05  # the level the Holm-adjusted p-values of exact tests are read at

BEATS, NO_DIFFERENCE, ONE_REPEAT = "beats", "no difference detected", "one repeat"
KINDS = {"paired": "paired by seed", "welch": "Welch, not paired",
         "one sample": "t-interval of the mean", "single runs": "one run each"}


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def reading(row: Mapping) -> str:
    """BEATS where the interval [lo, hi] excludes 0, NO_DIFFERENCE where it holds 0,
    ONE_REPEAT where there is none (n < 2)."""
    lo, hi = _f(row.get("lo")), _f(row.get("hi"))
    if int(row.get("n", 0) or 0) < 2 or math.isnan(lo) or math.isnan(hi):
        return ONE_REPEAT
    return BEATS if lo > 0 or hi < 0 else NO_DIFFERENCE


def _points(x: float) -> str:
    """A difference of fractions in points, signed: +0.43 (no "-0.00")."""
    v = 100 * x
    return f"{0.0 if abs(v) < 0.005 else v:+.2f}"


def interval(row: Mapping) -> str:
    """"95% interval [lo, hi] pp" of a row (lo, hi fractions)."""
    return f"95% interval [{_points(_f(row['lo']))}, {_points(_f(row['hi']))}] pp"


def verdict(row: Mapping, a_name: str, b_name: str, context: str = "") -> dict:
    """A comparison row (`comparisons.COLUMNS`) as the report's reading: the one ahead first
    where it beats the other; every number the words need. context: said before the
    sentence ("classifier only: L1 beats SI ...")."""
    r = reading(row)
    delta = _f(row["delta"])
    first, second, sign = a_name, b_name, 1.0
    if r == BEATS and delta < 0:
        first, second, sign = b_name, a_name, -1.0
    lo, hi = (_f(row["lo"]), _f(row["hi"])) if sign > 0 else (-_f(row["hi"]), -_f(row["lo"]))
    out = {"reading": r, "first": first, "second": second, "delta": sign * delta,
           "lo": lo, "hi": hi, "n": int(row.get("n", 0) or 0), "kind": str(row.get("kind", "")),
           "half_width": _f(row.get("half_width")),
           "mean_first": _f(row["mean_a"] if sign > 0 else row["mean_b"]),
           "mean_second": _f(row["mean_b"] if sign > 0 else row["mean_a"]),
           "p_holm": _f(row.get("p_holm")), "p_value": _f(row.get("p_value")),
           "single": int(row.get("n_a", 1) or 1) == 1 and int(row.get("n_b", 1) or 1) == 1,
           "context": context}
    out["words"] = words(out)
    out["short"] = words(out, detectable=False)  # the first screen's: without the half-width
    return out


def test_words(p_holm: float) -> str:
    """The exact test's reading, from its Holm-adjusted p-value."""
    if math.isnan(p_holm):
        return ""
    shown = (f"{p_holm:.2g}" if p_holm >= 1e-4 else f"{p_holm:.1e}" if p_holm > 0
             else "< 1e-300")  # 0: below float64's range (the table's "< 1e-300")
    if p_holm < SIGNIFICANCE:
        return f"the exact test finds the accuracies differ (Holm p {'' if shown[0] == '<' else '= '}{shown})"
    return f"the exact test detects no accuracy difference (Holm p {'' if shown[0] == '<' else '= '}{shown})"


def words(v: Mapping, detectable: bool = True) -> str:
    """The one sentence every comparison is said in (a `verdict`); detectable: where no
    difference is detected, also the smallest one these repeats could tell from 0."""
    context = f"{v['context']}: " if v.get("context") else ""
    return context + _sentence(v, detectable)


def _sentence(v: Mapping, detectable: bool) -> str:
    kind = KINDS.get(v["kind"], v["kind"])
    test = test_words(v["p_holm"])
    test = f"; {test}" if test else ""
    delta = f"{_points(v['delta'])} pp"
    if v["reading"] == BEATS:
        return (f"{v['first']} beats {v['second']} by {delta} "
                f"({pct(v['mean_first'])} against {pct(v['mean_second'])}; {interval(v)}, "
                f"{kind}, n = {v['n']}){test}")
    if v["reading"] == NO_DIFFERENCE:
        return (f"{v['first']} against {v['second']}: no difference detected over {v['n']} "
                f"repeats ({delta}, {interval(v)}, {kind}"
                + (f": at this spread only a difference beyond ±{100 * v['half_width']:.2f} pp "
                   "could be told from 0" if detectable else "") + f"){test}")
    what = "one run each" if v.get("single", True) else "one seed in common"
    return (f"{v['first']} against {v['second']}: {delta} "
            f"({pct(v['mean_first'])} against {pct(v['mean_second'])}), {what}: no "
            f"interval{test}")


def bound(values, bound_value: float, *, below: bool = True) -> dict:
    """The repeats' mean against a bound: {"reading": "met" | "not met" | "undecided" |
    ONE_REPEAT, "mean", "lo", "hi", "n"}; below: the bound is an upper one."""
    iv = mean_interval(values)
    lo, hi = iv["lo"], iv["hi"]
    if iv["n"] < 2:
        met = iv["delta"] <= bound_value if below else iv["delta"] >= bound_value
        return {"reading": ONE_REPEAT, "met_point": bool(met), "mean": iv["delta"],
                "lo": lo, "hi": hi, "n": iv["n"]}
    inside, outside = (hi <= bound_value, lo > bound_value) if below else \
        (lo >= bound_value, hi < bound_value)
    r = "met" if inside else "not met" if outside else "undecided"
    return {"reading": r, "met_point": None, "mean": iv["delta"], "lo": lo, "hi": hi,
            "n": iv["n"]}


def table_of(path) -> dict[tuple[str, str, str], dict]:
    """A comparisons.csv by (a, b, what)."""
    t = pd.read_csv(path, keep_default_na=True)
    return {(str(r["a"]), str(r["b"]), str(r["what"]) if isinstance(r["what"], str) else ""):
            r.to_dict() for _, r in t.iterrows()}
