"""How the report writes a number: the text of one table cell or one number in a sentence.

Every section formats through these, so that a number reads the same in every table and in
the answers of the first screen; a missing value (None or NaN) is written "–". They are also
the template's filters (see `render.environment`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from ..stats import format_mean_sd


def missing(x: Any) -> bool:
    """None or NaN (text and other objects are not missing)."""
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def pct(x: Any) -> str:
    """A fraction as a percentage: 0.9 -> "90.00%"."""
    return "–" if missing(x) else f"{100 * float(x):.2f}%"


def pp(x: Any) -> str:
    """A difference of fractions in signed percentage points: -0.0073 -> "-0.73 pp"."""
    return "–" if missing(x) else f"{100 * float(x):+.2f} pp"


def num(x: Any, digits: int = 4) -> str:
    return "–" if missing(x) else f"{float(x):.{digits}f}"


def count(x: Any) -> str:
    """An integer with thousands separators: 10000 -> "10,000"."""
    return "–" if missing(x) else f"{int(x):,}"


def reduction(before: float, after: float) -> str:
    """How much smaller `after` is than `before`, in percent of `before`."""
    if not before:
        return "–"
    return f"{100 * (before - after) / before:.2f}%"


def hms(seconds: float) -> str:
    if missing(seconds):
        return "–"
    s = int(round(float(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def value(v: Any, none: str = "null") -> str:
    """A config value as text: None -> `none`, floats in short form, lists in brackets."""
    if v is None:
        return none
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return str(v)


def plural(n: Any, word: str) -> str:
    """`word` or `word`s, to follow the number `n` (1 epoch, 2 epochs)."""
    try:
        return word if float(n) == 1 else word + "s"
    except (TypeError, ValueError):
        return word + "s"


def truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v) and not missing(v)


def p_value(p: Any) -> str:
    if missing(p):
        return "–"
    p = float(p)
    if p < 1e-300:  # below what a float holds: the exact value underflowed to 0
        return "< 1e-300"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def seconds(s: Any) -> str:
    """A time per image in a readable unit (s, ms or µs), three significant digits."""
    if missing(s):
        return "–"
    s = float(s)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= scale or unit == "µs":
            v = s / scale
            return f"{v:.{2 if v < 10 else 1 if v < 100 else 0}f} {unit}"
    return "–"  # not reached


def acc_sd(mean: float, sd: float) -> str:
    """A test accuracy over repeats: "90.00 ± 2.50%" ("90.00%" for one repeat)."""
    return format_mean_sd(mean, sd, scale=100, digits=2, unit="%")


def frame(rows: list[list[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A table of cells (text), for `md_table`."""
    return pd.DataFrame(rows, columns=list(columns), dtype=object)


def md_table(table: pd.DataFrame, align: str) -> str:
    """A DataFrame of cells as an aligned Markdown table; `align` holds "l" or "r" per column."""
    headers = [str(c) for c in table.columns]
    rows = [[str(c) for c in r] for r in table.itertuples(index=False)]
    widths = [max([len(h)] + [len(r[i]) for r in rows] + [3]) for i, h in enumerate(headers)]

    def line(cells):
        return "| " + " | ".join(
            c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align)
        ) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else ("-" * w)
                            for w, a in zip(widths, align)) + " |"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])
