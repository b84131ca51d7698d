"""Rule summarize_controls: the controls of (c) as tables (selectors, frontier, McNemar) and a plot."""

from sicompress.controls import REFERENCES, summarize_controls
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0]) as log:
        i = smk.input
        runs = [dict(run, metrics=m, predictions=p, model=pt) for run, m, p, pt
                in zip(smk.params.runs, i.metrics, i.predictions, i.models, strict=True)]
        # the optional references (scratch_*, finetuned_*, ...) are inputs only when made
        refs = {name: {key: i.get(f"{name}_{key}") for key in ("metrics", "predictions", "model")}
                if i.get(f"{name}_metrics") else None for name in REFERENCES}
        summarize_controls(runs, refs, selectors_csv=smk.output.selectors,
                           frontier_csv=smk.output.frontier, mcnemar_csv=smk.output.mcnemar,
                           comparisons_csv=smk.output.comparisons, plot=smk.output.plot,
                           log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
