wildcard_constraints:
    lr=r"[0-9.eE+-]+",
    step=r"[0-9]+",


rule lr_trial:
    input:
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
    output:
        model="results/lr_search/lr~{lr}/step~{step}/model.pt",
        history="results/lr_search/lr~{lr}/step~{step}/history.csv",
        metrics="results/lr_search/lr~{lr}/step~{step}/metrics.json",
        curves=report(
            "results/lr_search/lr~{lr}/step~{step}/curves.png",
            caption="../report/trial_curves.rst",
            category="1. Learning-rate search",
            subcategory="trial curves",
            labels={"lr": "{lr}", "step": "{step}"},
        ),
    log:
        "logs/lr_search/lr~{lr}/step~{step}.log",
    benchmark:
        f"{BENCHMARKS}/lr_trial/lr~{{lr}}_step~{{step}}.tsv"
    params:
        trial_epochs=config["lr_search"]["epochs"],
        full_epochs=config["train"]["epochs"],
        train=config["train"],
        model=config["model"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule select_lr:
    input:
        metrics=get_trial_metrics(),
        models=grid(rules.lr_trial.output.model),
        history=grid(rules.lr_trial.output.history),
        curves=grid(rules.lr_trial.output.curves),
    output:
        summary="results/lr_search/summary.csv",
        best="results/lr_search/best.json",
        heatmap=report(
            "results/lr_search/heatmap.png",
            caption="../report/heatmap.rst",
            category="1. Learning-rate search",
        ),
        # the chosen trial's best model, reported like every other training
        model="results/search/model.pt",
        trial_history="results/search/history.csv",
        trial_metrics="results/search/metrics.json",
        trial_curves=report(
            "results/search/curves.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="search: the chosen trial",
        ),
    log:
        "logs/lr_search/select_lr.log",
    benchmark:
        f"{BENCHMARKS}/select_lr.tsv"
    conda:
        ENV
    script:
        "../scripts/job.py"
