"""The study's report in Markdown (results/report/report.md): every table and figure the
study must hand in, the answers to its questions first, and summary.csv with a row per trained
model. (The figures themselves are drawn by `figures`; the HTML report is Snakemake's own,
from the `report:` captions.)

Code computes, templates write. The report is a sequence of parts (`render.PARTS`); each part
is a module here that reads the workflow's artefacts and computes its numbers and tables (as
pandas DataFrames of cells), beside its template `templates/<part>.md.j2`, which holds its
prose and captions. Adding a section is a module, its template and a line in PARTS. The
assumptions are written once, in `templates/assumptions.md`, shown in the last part and copied
verbatim into the README (a test fails when the two drift apart). A key a template needs and
its part lacks is an error (StrictUndefined), never an empty gap. Figures are linked relative
to the report's folder, so the report renders where it is written.

    inputs = ReportInputs(config=..., split_summary=..., ..., benchmarks=[...])
    write_report(inputs, out_md="results/report/report.md",
                 out_csv="results/report/summary.csv")

Modules, in the order of the report:
- inputs: ReportInputs and ModelArtefacts, the artefacts the report reads.
- intro: the title and the first paragraph (data, network, epochs).
- answers: the first screen, each question of the study answered from the numbers below.
- summary: summary_table (summary.csv) and its table; the frontier figure.
- search: the learning-rate search.
- trained: one section per trained model (curves, SI and Center SI per layer).
- compression: part (c)'s cut, feature selection, size, cost and accuracy.
- controls: the controls of (c): selectors, from scratch, fine-tuned, McNemar, latency, frontier.
- layerwise: layer-wise SI pruning of every conv layer, its recipes and the published claim.
- criteria_benchmark: SI against the field's criteria at matched budgets (also benchmark.md).
- wall_time: wall time and memory per job, from the benchmark files.
- assumptions: the assumptions and this run's settings.
Shared by the parts:
- names: the study's models, selectors, recipes and jobs as the report names them.
- reading: when one training "beats" another (a 95% interval) and an exact test "differs".
- cells: how a number is written in a cell or a sentence.
- render: the parts in order, the Jinja2 environment, report.md and summary.csv written.
"""

from .assumptions import ASSUMPTIONS
from .cells import md_table
from .compression import RANKING_ROWS
from .controls import TITLE as CONTROLS_TITLE
from .inputs import ModelArtefacts, ReportInputs
from .layerwise import LAYERWISE_GOAL, LAYERWISE_MAX_LOSS
from .layerwise import TITLE as LAYERWISE_TITLE
from .names import MODEL_TITLES
from .render import (PARTS, TEMPLATES, environment, render_report, report_context, sections,
                     write_benchmark_report, write_report)
from .summary import SUMMARY_COLUMNS, summary_table
from .wall_time import benchmark_label, read_benchmarks

__all__ = [
    "ASSUMPTIONS", "CONTROLS_TITLE", "LAYERWISE_GOAL", "LAYERWISE_MAX_LOSS", "LAYERWISE_TITLE",
    "MODEL_TITLES", "ModelArtefacts", "PARTS", "RANKING_ROWS", "ReportInputs", "SUMMARY_COLUMNS",
    "TEMPLATES", "benchmark_label", "environment", "md_table", "read_benchmarks",
    "render_report", "report_context", "sections", "summary_table", "write_benchmark_report",
    "write_report",
]
