# Controls of (c): what the compression is worth. Every training here is classifier-only on the
# frozen pruned extractor, like (c), except the from-scratch control and the fine-tuning.
#   train_control: other selectors at the chosen k, and the frontier (fractions x selectors),
#                  each repeated with seeds seed + repeat
#   train_scratch: the compressed architecture trained end to end from random weights
#   finetune:      the compressed model then trained end to end (compress.finetune_epochs > 0)
#   measure_latency, summarize_controls: the tables and the frontier plot the report shows


wildcard_constraints:
    selector="|".join(criteria.NAMES),
    point=r"chosen|frac~[0-9.e+-]+",
    repeat=r"\d+",


rule train_control:
    input:
        unpack(get_cut_features),
        e2e=rules.train_e2e.output.model,
        cut=get_control_cut,
        ranking=rules.rank_features.output.ranking,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/controls/{selector}/{point}/repeat~{repeat}/model.pt",
        history="results/controls/{selector}/{point}/repeat~{repeat}/history.csv",
        metrics="results/controls/{selector}/{point}/repeat~{repeat}/metrics.json",
        predictions="results/controls/{selector}/{point}/repeat~{repeat}/predictions.npz",
        curves="results/controls/{selector}/{point}/repeat~{repeat}/curves.png",
    log:
        "logs/controls/{selector}/{point}/repeat~{repeat}.log",
    benchmark:
        f"{BENCHMARKS}/train_control/{{selector}}/{{point}}/repeat~{{repeat}}.tsv"
    params:
        train=config["train"],
        compress=classifier_section(config["compress"]),
        seed=config["seed"],
        fraction=lambda wc: point_fraction(wc.point),
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule train_scratch:
    input:
        e2e=rules.train_e2e.output.model,
        selected=rules.choose_features.output.selected,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/scratch/model.pt",
        history="results/scratch/history.csv",
        metrics="results/scratch/metrics.json",
        predictions="results/scratch/predictions.npz",
        curves=report(
            "results/scratch/curves.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="(c) from scratch",
        ),
    log:
        "logs/scratch/train.log",
    benchmark:
        f"{BENCHMARKS}/train_scratch.tsv"
    params:
        train=config["train"],
        classifier=architecture_section(config["compress"]),
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule finetune:
    input:
        compressed=rules.train_compressed.output.model,
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/finetuned/model.pt",
        history="results/finetuned/history.csv",
        metrics="results/finetuned/metrics.json",
        predictions="results/finetuned/predictions.npz",
        curves=report(
            "results/finetuned/curves.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="(c) fine-tuned",
        ),
    log:
        "logs/finetuned/train.log",
    benchmark:
        f"{BENCHMARKS}/finetune.tsv"
    params:
        train=config["train"],
        # the (c) fine-tuning's schedule: compress.finetune_epochs at the search's lr x 0.1
        schedule={"epochs": config["compress"]["finetune_epochs"], "lr": None,
                  "step_size": None},
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule measure_latency:
    input:
        unpack(get_latency_models),
        data=rules.prepare_data.output.data,
    output:
        table="results/latency/latency.csv",
    log:
        "logs/latency/measure_latency.log",
    benchmark:
        f"{BENCHMARKS}/measure_latency.tsv"
    params:
        models=get_latency_names(),
    # every core of a local run, so that no other job runs beside the timing (the script
    # times with at most LATENCY_THREADS of them); a cluster job gets its own node share
    threads: workflow.cores
    resources:
        gpu=1,  # never beside a training either
    conda:
        ENV
    script:
        "../scripts/job.py"


rule summarize_controls:
    input:
        unpack(get_control_references),
        metrics=get_control_files("metrics"),
        predictions=get_control_files("predictions"),
        models=get_control_files("model"),
    output:
        selectors="results/controls/selectors.csv",
        frontier="results/controls/frontier.csv",
        mcnemar="results/controls/mcnemar.csv",
        comparisons="results/controls/comparisons.csv",
        plot=report(
            "results/controls/frontier.png",
            caption="../report/frontier.rst",
            category="4. Compression (c)",
        ),
    log:
        "logs/controls/summarize_controls.log",
    benchmark:
        f"{BENCHMARKS}/summarize_controls.tsv"
    params:
        runs=get_control_runs(),
    conda:
        ENV
    script:
        "../scripts/job.py"
