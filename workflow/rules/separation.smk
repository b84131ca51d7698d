wildcard_constraints:
    model="search|e2e|head|compressed|finetuned|layerwise|layerwise_finetuned",


rule layer_si:
    input:
        unpack(get_layer_si_source),
        model=get_trained_model,
        data=rules.prepare_data.output.data,
        split=rules.split.output.split,
    output:
        table="results/{model}/layer_si.csv",
        provenance="results/{model}/layer_si.json",
    log:
        "logs/{model}/layer_si.log",
    benchmark:
        f"{BENCHMARKS}/layer_si/{{model}}.tsv"
    params:
        order=config["si"]["order"],
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/job.py"


rule plot_layer_si:
    input:
        table=rules.layer_si.output.table,
    output:
        plot=report(
            "results/{model}/layer_si.png",
            caption="../report/layer_si.rst",
            category="3. Separation per layer",
            subcategory="{model}",
        ),
    log:
        "logs/{model}/plot_layer_si.log",
    benchmark:
        f"{BENCHMARKS}/plot_layer_si/{{model}}.tsv"
    conda:
        ENV
    script:
        "../scripts/job.py"
