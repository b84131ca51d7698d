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
        layer=config["compress"]["cut_layer"],
    conda:
        ENV
    script:
        "../scripts/job.py"


rule rank_features:
    input:
        model=rules.train_e2e.output.model,
        cut=rules.cut_layers.output.cut,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
    output:
        ranking="results/compress/feature_ranking.csv",
        info="results/compress/feature_ranking.json",
    log:
        "logs/compress/rank_features.log",
    benchmark:
        f"{BENCHMARKS}/rank_features.tsv"
    params:
        unit=config["compress"]["feature_unit"],
        patience=config["compress"]["patience"],
        # the gain that counts against patience; without patience the ranking does not
        # depend on feature_tolerance, so changing it re-runs choose_features only
        patience_tolerance=(config["compress"]["feature_tolerance"]
                            if config["compress"]["patience"] else None),
        max_features=config["compress"]["max_features"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule choose_features:
    input:
        ranking=rules.rank_features.output.ranking,
        info=rules.rank_features.output.info,
    output:
        selected="results/compress/selected.json",
        plot=report(
            "results/compress/feature_si.png",
            caption="../report/feature_si.rst",
            category="4. Compression (c)",
        ),
    log:
        "logs/compress/choose_features.log",
    benchmark:
        f"{BENCHMARKS}/choose_features.tsv"
    params:
        tolerance=config["compress"]["feature_tolerance"],
    conda:
        ENV
    script:
        "../scripts/job.py"


rule cache_cut_features:
    input:
        model=rules.train_e2e.output.model,
        cut=rules.cut_layers.output.cut,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
    output:
        **feature_outputs("results/features/cut"),
    log:
        "logs/features/cut.log",
    benchmark:
        f"{BENCHMARKS}/cache_features/cut.tsv"
    params:
        dtype=config["classifier_features"]["dtype"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule train_compressed:
    input:
        unpack(get_cut_features),
        e2e=rules.train_e2e.output.model,
        selected=rules.choose_features.output.selected,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/compressed/model.pt",
        history="results/compressed/history.csv",
        metrics="results/compressed/metrics.json",
        predictions="results/compressed/predictions.npz",
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
        compress=classifier_section(config["compress"]),
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"
