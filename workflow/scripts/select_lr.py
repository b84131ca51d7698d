"""Rule select_lr: the grid's table, heat map, the chosen lr and step, and a copy of the
chosen trial's model, history, metrics and curves in results/search/."""

from sicompress.logs import step_log
from sicompress.lr_search import select_lr


def main(smk):
    with step_log(smk.log[0]) as log:
        select_lr(trial_metrics=list(smk.input.metrics), summary_csv=smk.output.summary,
                  best_json=smk.output.best, heatmap=smk.output.heatmap,
                  chosen_out={"model": smk.output.model, "history": smk.output.trial_history,
                              "metrics": smk.output.trial_metrics,
                              "curves": smk.output.trial_curves},
                  log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
