"""The report's parts in the order it shows them, each one's template filled with its
numbers, and the files written: report.md and summary.csv."""

from __future__ import annotations

import os
import re
from pathlib import Path

import jinja2
import pandas as pd

from .. import artifacts
from . import (answers, assumptions, cells, compression, controls, criteria_benchmark, intro,
               layerwise, search, summary, trained, wall_time)
from .inputs import ReportInputs

TEMPLATES = Path(__file__).parents[1] / "templates"  # <part>.md.j2, macros.md.j2, assumptions.md

# The parts of report.md in the order it shows them. Each is a module of this package with
# NAME (its template is templates/<NAME>.md.j2, its numbers the template's variable <NAME>),
# headings(inputs) (its `## ` headings) and context(inputs, table) (its numbers and tables, from
# the artefacts and the summary table; None where its inputs are absent). A part that cites
# the numbers of other parts' tables (CITES = True) is rendered after them.
PARTS = (intro, answers, summary, search, trained, compression, controls,
         layerwise, criteria_benchmark, wall_time, assumptions)


def sections(inputs: ReportInputs) -> list[str]:
    """The `## ` headings of report.md for these inputs, in order."""
    return [h for part in PARTS for h in part.headings(inputs)]


class Numbers:
    """Running numbers of the tables and figures, in the order the report shows them, and the
    number of each labelled one (for the parts that cite it)."""

    def __init__(self):
        self.tables = self.figures = 0
        self.labels: dict[str, int] = {}

    def table(self, label: str | None = None) -> int:
        self.tables += 1
        if label is not None:
            self.labels[label] = self.tables
        return self.tables

    def figure(self, label: str | None = None) -> int:
        self.figures += 1
        if label is not None:
            self.labels[label] = self.figures
        return self.figures

    def of(self, label: str) -> int:
        if label not in self.labels:
            raise KeyError(f"no table or figure labelled {label!r} (labelled: "
                           f"{sorted(self.labels)})")
        return self.labels[label]


def environment(base: str | Path | None = None) -> jinja2.Environment:
    """The Jinja2 environment of the report's templates; image links relative to `base`."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)

    def link(path) -> str:
        rel = Path(os.path.relpath(Path(path).resolve(), Path(base or ".").resolve())).as_posix()
        return f"<{rel}>" if re.search(r"[\s()<>]", rel) else rel

    env.filters.update(pct=cells.pct, pp=cells.pp, num=cells.num, count=cells.count,
                       value=cells.value, plural=cells.plural, p_value=cells.p_value,
                       md_table=cells.md_table, link=link,
                       oneline=lambda text: " ".join(str(text).split()))
    return env


def report_context(inputs: ReportInputs, table: pd.DataFrame) -> dict:
    """Every part's numbers by its NAME, and the resolved config as `cfg`; `table` is
    summary_table's."""
    return {"cfg": inputs.config,
            **{part.NAME: part.context(inputs, table) for part in PARTS}}


def render_report(inputs: ReportInputs, table: pd.DataFrame, base: str | Path) -> str:
    """report.md's text: every part's template filled with its numbers, in the order of PARTS."""
    env, number = environment(base), Numbers()
    context = report_context(inputs, table)
    text = {}
    for part in sorted(PARTS, key=lambda p: getattr(p, "CITES", False)):
        text[part.NAME] = env.get_template(f"{part.NAME}.md.j2").render(
            cfg=context["cfg"], number=number, **{part.NAME: context[part.NAME]})
    # the templates' blocks leave blank lines where a part has nothing: one at most
    return re.sub(r"\n{3,}", "\n\n", "".join(text[p.NAME] for p in PARTS)).strip("\n") + "\n"


def write_report(inputs: ReportInputs, *, out_md: str | Path, out_csv: str | Path) -> None:
    """Write report.md (Markdown with relative image links) and summary.csv, atomically."""
    out_md, out_csv = Path(out_md), Path(out_csv)
    table = summary.summary_table(inputs)
    text = render_report(inputs, table, out_md.parent)
    with artifacts.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with artifacts.atomic_path(out_md) as tmp:
        tmp.write_text(text)


def write_benchmark_report(*, table_csv, runs_csv, comparisons_csv, ranking_json, allocations_jsons,
                           e2e_metrics, config: dict, figures: dict, out_md) -> None:
    """results/benchmark/benchmark.md: the criteria benchmark's part alone, its figures linked
    beside it (`criteria_benchmark.benchmark_context`)."""
    out_md = Path(out_md)
    part = criteria_benchmark
    numbers = part.benchmark_context(table_csv=table_csv, runs_csv=runs_csv,
                                     comparisons_csv=comparisons_csv,
                                     ranking_json=ranking_json,
                                     allocations_jsons=allocations_jsons,
                                     e2e_metrics=e2e_metrics, cfg=config, figures=figures)
    text = environment(out_md.parent).get_template(f"{part.NAME}.md.j2").render(
        cfg=config, number=Numbers(), **{part.NAME: numbers})
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
    with artifacts.atomic_path(out_md) as tmp:
        tmp.write_text(text)
