rule train_e2e:
    input:
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/e2e/model.pt",
        history="results/e2e/history.csv",
        metrics="results/e2e/metrics.json",
        predictions="results/e2e/predictions.npz",
        curves=report(
            "results/e2e/curves.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="(a) end-to-end",
        ),
    log:
        "logs/e2e/train.log",
    benchmark:
        f"{BENCHMARKS}/train_e2e.tsv"
    params:
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


rule cache_e2e_features:
    input:
        model=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
    output:
        **feature_outputs("results/features/e2e"),
    log:
        "logs/features/e2e.log",
    benchmark:
        f"{BENCHMARKS}/cache_features/e2e.tsv"
    params:
        dtype=config["classifier_features"]["dtype"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule train_head:
    input:
        unpack(get_e2e_features),
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/head/model.pt",
        history="results/head/history.csv",
        metrics="results/head/metrics.json",
        predictions="results/head/predictions.npz",
        curves=report(
            "results/head/curves.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="(b) frozen features",
        ),
    log:
        "logs/head/train.log",
    benchmark:
        f"{BENCHMARKS}/train_head.tsv"
    params:
        train=config["train"],
        head=config["head"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"
