rule prepare_data:
    output:
        data="results/data/cifar10.npz",
    log:
        "logs/data/prepare_data.log",
    benchmark:
        f"{BENCHMARKS}/prepare_data.tsv"
    params:
        source=config["data"]["source"],
        path=get_data_path(),
        synthetic=config["data"]["synthetic"],
    conda:
        ENV
    script:
        "../scripts/job.py"


rule split:
    input:
        data=rules.prepare_data.output.data,
    output:
        split="results/split/split.npz",
        summary="results/split/summary.json",
    log:
        "logs/split/split.log",
    benchmark:
        f"{BENCHMARKS}/split.tsv"
    params:
        val_fraction=config["data"]["val_fraction"],
        si_fraction=config["data"]["si_fraction"],
        si_test_fraction=config["data"]["si_test_fraction"],
        seed=config["seed"],
    conda:
        ENV
    script:
        "../scripts/job.py"
