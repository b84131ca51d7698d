"""Rule report: results/report/report.md and summary.csv from every artefact of the study."""

from sicompress.logs import step_log
from sicompress.markdown_report import ModelArtefacts, ReportInputs, write_report


def main(smk):
    with step_log(smk.log[0]) as log:
        i = smk.input
        models = [ModelArtefacts(name=name, metrics=i.metrics[n], history=i.history[n],
                                 curves=i.curves[n], model=i.models[n], layer_si=i.layer_si[n],
                                 layer_si_plot=i.layer_si_plot[n])
                  for n, name in enumerate(smk.params.models)]
        inputs = ReportInputs(config=dict(smk.config), split_summary=i.split_summary,
                              lr_summary=i.lr_summary, lr_best=i.lr_best,
                              lr_heatmap=i.lr_heatmap, trial_curves=list(i.trial_curves),
                              models=models, cut=i.cut, cut_plot=i.cut_plot,
                              selected=i.selected, ranking=i.ranking,
                              feature_si_plot=i.feature_si_plot, benchmarks=list(i.benchmarks),
                              data=i.data,
                              # the controls of (c): inputs only when the workflow runs them
                              selectors_csv=i.get("selectors"), frontier_csv=i.get("frontier"),
                              frontier_plot=i.get("frontier_plot"), mcnemar_csv=i.get("mcnemar"),
                              comparisons_csv=i.get("comparisons"),
                              latency_csv=i.get("latency"), scratch=i.get("scratch_metrics"),
                              finetuned=i.get("finetuned_metrics"),
                              finetuned_layer_si_plot=i.get("finetuned_layer_si_plot"),
                              # layer-wise pruning: inputs only when it is on
                              **{f"layerwise_{key}": i.get(f"layerwise_{key}") for key in (
                                  "pruned", "kept_plot", "width", "width_plot", "metrics",
                                  "layer_si_plot", "recipes", "mcnemar", "comparisons",
                                  "finetuned_metrics")})
        write_report(inputs, out_md=smk.output.md, out_csv=smk.output.summary)
        log(f"report written to {smk.output.md} and {smk.output.summary}")


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
