# The criteria benchmark (config "benchmark", on by its switch): SI against the field's channel
# criteria at matched budgets (parameters or MACs). SI ranks every group once on the unpruned e2e network;
# per budget, the counts of each allocation (SI's tolerance, a uniform share, a global
# threshold); per allocation, each criterion's channels; each pruned whole network fine-tuned
# with n seeds, the uniform-width network trained from scratch, e2e fine-tuned unpruned alike;
# one table and the frontiers.


wildcard_constraints:
    budget=r"[0-9.]+",
    allocation="|".join(BENCHMARK_ALLOCATIONS),
    bcriterion="|".join(BENCHMARK_CRITERIA),


rule rank_benchmark:
    input:
        model=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
    output:
        ranking="results/benchmark/ranking.json",
        curves="results/benchmark/ranking.csv",
    log:
        "logs/benchmark/rank.log",
    benchmark:
        f"{BENCHMARKS}/rank_benchmark.tsv"
    params:
        pool=BENCHMARK["pool"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule allocate_benchmark:
    input:
        model=rules.train_e2e.output.model,
        ranking=rules.rank_benchmark.output.ranking,
    output:
        allocations="results/benchmark/budget~{budget}/allocations.json",
    log:
        "logs/benchmark/budget~{budget}/allocate.log",
    benchmark:
        f"{BENCHMARKS}/allocate_benchmark/budget~{{budget}}.tsv"
    params:
        global_criterion=BENCHMARK_GLOBAL,
        budget_of=BENCHMARK["budget_of"],
    conda:
        ENV
    script:
        "../scripts/job.py"


rule choose_benchmark_channels:
    input:
        model=rules.train_e2e.output.model,
        ranking=rules.rank_benchmark.output.ranking,
        allocations=rules.allocate_benchmark.output.allocations,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
    output:
        kept="results/benchmark/budget~{budget}/{allocation}/kept/{choice}.json",
    log:
        "logs/benchmark/budget~{budget}/{allocation}/kept/{choice}.log",
    benchmark:
        f"{BENCHMARKS}/choose_benchmark_channels/budget~{{budget}}/{{allocation}}/{{choice}}.tsv"
    params:
        seed=config["seed"],
    threads: 2
    conda:
        ENV
    script:
        "../scripts/job.py"


rule finetune_benchmark:
    input:
        kept=get_benchmark_kept,
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        **benchmark_training_outputs("{allocation}/{bcriterion}"),
    log:
        "logs/benchmark/budget~{budget}/{allocation}/{bcriterion}/repeat~{repeat}.log",
    benchmark:
        f"{BENCHMARKS}/finetune_benchmark/budget~{{budget}}/{{allocation}}/{{bcriterion}}/repeat~{{repeat}}.tsv"
    params:
        train=config["train"],
        schedule=BENCHMARK["finetune"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule train_benchmark_scratch:
    input:
        allocations=rules.allocate_benchmark.output.allocations,
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        **benchmark_training_outputs("{allocation}/scratch"),
    log:
        "logs/benchmark/budget~{budget}/{allocation}/scratch/repeat~{repeat}.log",
    benchmark:
        f"{BENCHMARKS}/train_benchmark_scratch/budget~{{budget}}/{{allocation}}/repeat~{{repeat}}.tsv"
    params:
        train=config["train"],
        epochs=benchmark.scratch_epochs(BENCHMARK, config["train"]),
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule finetune_benchmark_unpruned:
    input:
        e2e=rules.train_e2e.output.model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
        summary=rules.split.output.summary,
        best=rules.select_lr.output.best,
    output:
        **benchmark_training_outputs(benchmark.UNPRUNED),
    log:
        "logs/benchmark/unpruned/repeat~{repeat}.log",
    benchmark:
        f"{BENCHMARKS}/finetune_benchmark_unpruned/repeat~{{repeat}}.tsv"
    params:
        train=config["train"],
        schedule=BENCHMARK["finetune"],
        seed=config["seed"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule summarize_benchmark:
    input:
        metrics=get_benchmark_run_files("metrics"),
        predictions=get_benchmark_run_files("predictions"),
        histories=get_benchmark_run_files("history"),
        kept=get_benchmark_run_kept(),
        allocations=expand(rules.allocate_benchmark.output.allocations,
                           budget=BENCHMARK_BUDGETS),
        ranking=rules.rank_benchmark.output.ranking,
        e2e_metrics=rules.train_e2e.output.metrics,
        e2e_model=rules.train_e2e.output.model,
    output:
        runs="results/benchmark/runs.csv",
        table="results/benchmark/table.csv",
        comparisons="results/benchmark/comparisons.csv",
        frontier_parameters=report(
            "results/benchmark/frontier_parameters.png",
            caption="../report/benchmark_frontier.rst",
            category="8. Criteria benchmark",
        ),
        frontier_macs=report(
            "results/benchmark/frontier_macs.png",
            caption="../report/benchmark_frontier.rst",
            category="8. Criteria benchmark",
        ),
        curves=report(
            "results/benchmark/curves.png",
            caption="../report/benchmark_curves.rst",
            category="8. Criteria benchmark",
        ),
        md="results/benchmark/benchmark.md",
    log:
        "logs/benchmark/summarize.log",
    benchmark:
        f"{BENCHMARKS}/summarize_benchmark.tsv"
    params:
        runs=get_benchmark_runs(),
    conda:
        ENV
    script:
        "../scripts/job.py"


rule benchmark:
    input:
        rules.summarize_benchmark.output,
