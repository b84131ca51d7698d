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
        curves="results/e2e/curves.png",
    log:
        "logs/e2e/train.log",
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
        "../scripts/train_e2e.py"


rule train_head:
    input:
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        model="results/head/model.pt",
        history="results/head/history.csv",
        metrics="results/head/metrics.json",
        curves="results/head/curves.png",
    log:
        "logs/head/train.log",
    params:
        train=config["train"],
        head=config["head"],
        full_epochs=config["train"]["epochs"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/train_head.py"
