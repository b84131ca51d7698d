"""How the report reads a difference, stated once: every section and the answers of the first
screen say "better", "beats" or "differs" only by these rules.

- Repeats (several seeds of one training): a difference of means is read against the larger
  of the two sample sds. Within it (|Δ| <= the larger sd) the repeats do not separate the two;
  outside it, one is ahead over these repeats. With one repeat on either side there is no sd,
  and no reading.
- McNemar's exact test against e2e: p < SIGNIFICANCE says the two differ in which test images
  they get right by more than chance would give; the size of the difference is the change in
  test accuracy, not the p-value.
"""

from __future__ import annotations

SIGNIFICANCE = 0.05  # the level McNemar's p-values are read at; a reading, not a ranking

ONE_REPEAT, WITHIN, OUTSIDE = "one repeat", "within", "outside"


def spread(x: dict, y: dict) -> tuple[str, float]:
    """(reading, the larger sd) of mean x minus mean y; x and y: {"mean", "sd", "n"}.
    The reading is ONE_REPEAT, WITHIN or OUTSIDE the larger sd."""
    larger = max(x["sd"], y["sd"]) if min(x["n"], y["n"]) >= 2 else float("nan")
    if min(x["n"], y["n"]) < 2:
        return ONE_REPEAT, larger
    return (WITHIN if abs(x["mean"] - y["mean"]) <= larger else OUTSIDE), larger
