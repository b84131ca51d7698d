# (c), further: layer-wise SI pruning of every conv layer of the kept prefix, a classifier whose
# width is designed with Center SI, and the same channel counts chosen by L1 norm and at random.


wildcard_constraints:
    width=r"\d+",
    choice=criteria.choice_pattern(),


rule prune_layers:
    input:
        model=rules.train_e2e.output.model,
        cut=rules.cut_layers.output.cut,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
    output:
        pruned="results/layerwise/pruned.json",
        ranking="results/layerwise/ranking.csv",
        plot=report(
            "results/layerwise/kept.png",
            caption="../report/kept.rst",
            category="6. Layer-wise pruning",
        ),
    log:
        "logs/layerwise/prune_layers.log",
    benchmark:
        f"{BENCHMARKS}/prune_layers.tsv"
    params:
        pool=config["layerwise"]["pool"],
        tolerance=config["layerwise"]["tolerance"],
        batchnorm=config["layerwise"]["batchnorm"],
        bn_images=config["layerwise"]["bn_images"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule choose_layerwise_channels:
    input:
        model=rules.train_e2e.output.model,
        pruned=rules.prune_layers.output.pruned,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
    output:
        kept="results/layerwise/kept/{choice}.json",
    log:
        "logs/layerwise/kept/{choice}.log",
    benchmark:
        f"{BENCHMARKS}/choose_layerwise_channels/{{choice}}.tsv"
    params:
        seed=config["seed"],
    threads: 2
    conda:
        ENV
    script:
        "../scripts/job.py"


rule cache_layerwise_features:
    input:
        model=rules.train_e2e.output.model,
        pruned=rules.prune_layers.output.pruned,
        kept=rules.choose_layerwise_channels.output.kept,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
    output:
        **feature_outputs("results/features/layerwise/{choice}"),
    log:
        "logs/features/layerwise/{choice}.log",
    benchmark:
        f"{BENCHMARKS}/cache_features/layerwise/{{choice}}.tsv"
    params:
        dtype=config["classifier_features"]["dtype"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule train_layerwise_width:
    input:
        unpack(get_layerwise_features),
        e2e=rules.train_e2e.output.model,
        pruned=rules.prune_layers.output.pruned,
        kept=get_layerwise_kept,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/layerwise/width~{width}/model.pt",
        history="results/layerwise/width~{width}/history.csv",
        metrics="results/layerwise/width~{width}/metrics.json",
        predictions="results/layerwise/width~{width}/predictions.npz",
        curves="results/layerwise/width~{width}/curves.png",
        hidden_si="results/layerwise/width~{width}/hidden_si.json",
    log:
        "logs/layerwise/width~{width}.log",
    benchmark:
        f"{BENCHMARKS}/train_layerwise_width/width~{{width}}.tsv"
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


rule choose_layerwise_width:
    input:
        hidden_si=expand(rules.train_layerwise_width.output.hidden_si,
                         width=config["layerwise"]["widths"]),
        files=expand(rules.train_layerwise_width.output,  # every width's artefacts
                     width=config["layerwise"]["widths"]),
    output:
        choice="results/layerwise/width.json",
        plot=report(
            "results/layerwise/width.png",
            caption="../report/width.rst",
            category="6. Layer-wise pruning",
        ),
        model="results/layerwise/model.pt",
        history="results/layerwise/history.csv",
        metrics="results/layerwise/metrics.json",
        predictions="results/layerwise/predictions.npz",
        curves="results/layerwise/curves.png",
    log:
        "logs/layerwise/choose_width.log",
    benchmark:
        f"{BENCHMARKS}/choose_layerwise_width.tsv"
    params:
        tolerance=config["layerwise"]["width_tolerance"],
        widths=config["layerwise"]["widths"],
    conda:
        ENV
    script:
        "../scripts/job.py"


rule train_layerwise_control:
    input:
        unpack(get_layerwise_features),
        e2e=rules.train_e2e.output.model,
        pruned=rules.prune_layers.output.pruned,
        kept=get_layerwise_kept,
        width=rules.choose_layerwise_width.output.choice,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/layerwise/controls/{selector}/repeat~{repeat}/model.pt",
        history="results/layerwise/controls/{selector}/repeat~{repeat}/history.csv",
        metrics="results/layerwise/controls/{selector}/repeat~{repeat}/metrics.json",
        predictions="results/layerwise/controls/{selector}/repeat~{repeat}/predictions.npz",
        curves="results/layerwise/controls/{selector}/repeat~{repeat}/curves.png",
    log:
        "logs/layerwise/controls/{selector}/repeat~{repeat}.log",
    benchmark:
        f"{BENCHMARKS}/train_layerwise_control/{{selector}}/repeat~{{repeat}}.tsv"
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


rule finetune_layerwise:
    input:
        compressed=get_layerwise_classifier_model,
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/layerwise/finetuned/{selector}/repeat~{repeat}/model.pt",
        history="results/layerwise/finetuned/{selector}/repeat~{repeat}/history.csv",
        metrics="results/layerwise/finetuned/{selector}/repeat~{repeat}/metrics.json",
        predictions="results/layerwise/finetuned/{selector}/repeat~{repeat}/predictions.npz",
        curves=report(
            "results/layerwise/finetuned/{selector}/repeat~{repeat}/curves.png",
            caption="../report/curves.rst",
            category="2. Training curves",
            subcategory="layer-wise pruned, fine-tuned",
        ),
    log:
        "logs/layerwise/finetuned/{selector}/repeat~{repeat}.log",
    benchmark:
        f"{BENCHMARKS}/finetune_layerwise/{{selector}}/repeat~{{repeat}}.tsv"
    params:
        train=config["train"],
        schedule=config["layerwise"]["finetune"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule train_layerwise_scratch:
    input:
        layerwise=rules.choose_layerwise_width.output.model,
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/layerwise/scratch/repeat~{repeat}/model.pt",
        history="results/layerwise/scratch/repeat~{repeat}/history.csv",
        metrics="results/layerwise/scratch/repeat~{repeat}/metrics.json",
        predictions="results/layerwise/scratch/repeat~{repeat}/predictions.npz",
        curves="results/layerwise/scratch/repeat~{repeat}/curves.png",
    log:
        "logs/layerwise/scratch/repeat~{repeat}.log",
    benchmark:
        f"{BENCHMARKS}/train_layerwise_scratch/repeat~{{repeat}}.tsv"
    params:
        train=config["train"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule summarize_layerwise:
    input:
        metrics=get_layerwise_run_files("metrics"),
        predictions=get_layerwise_run_files("predictions"),
        models=get_layerwise_run_files("model"),
        e2e_predictions=rules.train_e2e.output.predictions,
    output:
        recipes="results/layerwise/recipes.csv",
        mcnemar="results/layerwise/mcnemar.csv",
        comparisons="results/layerwise/comparisons.csv",
    log:
        "logs/layerwise/summarize_layerwise.log",
    benchmark:
        f"{BENCHMARKS}/summarize_layerwise.tsv"
    params:
        runs=get_layerwise_runs(),
    conda:
        ENV
    script:
        "../scripts/job.py"
