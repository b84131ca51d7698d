# The report: every figure and table of the study in one Markdown file, and a summary table.


rule report:
    input:
        data=rules.prepare_data.output.data,
        split_summary=rules.split.output.summary,
        lr_summary=rules.select_lr.output.summary,
        lr_best=rules.select_lr.output.best,
        lr_heatmap=rules.select_lr.output.heatmap,
        trial_curves=grid(rules.lr_trial.output.curves),
        metrics=get_trained_files("metrics"),
        history=get_trained_files("history"),
        curves=get_trained_files("curves"),
        models=get_trained_files("model"),
        layer_si=expand(rules.layer_si.output.table, model=MODELS),
        layer_si_plot=expand(rules.plot_layer_si.output.plot, model=MODELS),
        cut=rules.cut_layers.output.cut,
        cut_plot=rules.cut_layers.output.plot,
        selected=rules.choose_features.output.selected,
        ranking=rules.rank_features.output.ranking,
        feature_si_plot=rules.choose_features.output.plot,
        benchmarks=get_benchmarks(),
        selectors=rules.summarize_controls.output.selectors,
        frontier=rules.summarize_controls.output.frontier,
        frontier_plot=rules.summarize_controls.output.plot,
        mcnemar=rules.summarize_controls.output.mcnemar,
        comparisons=rules.summarize_controls.output.comparisons,
        latency=rules.measure_latency.output.table,
        **get_report_optional(),
    output:
        md="results/report/report.md",
        summary=report(
            "results/report/summary.csv",
            caption="../report/summary.rst",
            category="5. Summary",
        ),
    log:
        "logs/report/report.log",
    params:
        models=MODELS,
    conda:
        ENV
    script:
        "../scripts/job.py"
