"""Rule select_lr: the grid's table, heat map, and the chosen lr and step."""

from sicompress.logs import step_log
from sicompress.lr_search import select_lr


def main(smk):
    with step_log(smk.log[0]) as log:
        select_lr(trial_metrics=list(smk.input.metrics), summary_csv=smk.output.summary,
                  best_json=smk.output.best, heatmap=smk.output.heatmap, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
