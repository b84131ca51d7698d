# (c) Compression of the e2e model; every decision on the si_train subset only.


rule cut_layers:
    input:
        table=get_layer_si("e2e"),
    output:
        cut="results/compress/cut.json",
        plot=report(
            "results/compress/cut.png",
            caption="../report/cut.rst",
            category="4. Compression (c)",
        ),
    log:
        "logs/compress/cut_layers.log",
    benchmark:
        f"{BENCHMARKS}/cut_layers.tsv"
    params:
        metric=config["compress"]["layer_metric"],
        tolerance=config["compress"]["layer_tolerance"],
    conda:
        ENV
    script:
        "../scripts/cut_layers.py"


rule select_features:
    input:
        model=rules.train_e2e.output.model,
        cut=rules.cut_layers.output.cut,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
    output:
        ranking="results/compress/feature_ranking.csv",
        selected="results/compress/selected.json",
        plot=report(
            "results/compress/feature_si.png",
            caption="../report/feature_si.rst",
            category="4. Compression (c)",
        ),
    log:
        "logs/compress/select_features.log",
    benchmark:
        f"{BENCHMARKS}/select_features.tsv"
    params:
        unit=config["compress"]["feature_unit"],
        tolerance=config["compress"]["feature_tolerance"],
        patience=config["compress"]["patience"],
        max_features=config["compress"]["max_features"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/select_features.py"


rule train_compressed:
    input:
        e2e=rules.train_e2e.output.model,
        selected=rules.select_features.output.selected,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/compressed/model.pt",
        history="results/compressed/history.csv",
        metrics="results/compressed/metrics.json",
        curves=report(
            "results/compressed/curves.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="(c) compressed",
        ),
    log:
        "logs/compressed/train.log",
    benchmark:
        f"{BENCHMARKS}/train_compressed.tsv"
    params:
        train=config["train"],
        compress=config["compress"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/train_compressed.py"
