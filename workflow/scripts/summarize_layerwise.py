"""Rule summarize_layerwise: the layer-wise pruned network's selectors (SI, L1, random with the
same channel counts per layer) as a table, and each run against e2e (McNemar)."""

from sicompress.controls import mcnemar_table, run_tables
from sicompress.logs import step_log
from sicompress import artifacts


def main(smk):
    with step_log(smk.log[0]) as log:
        i = smk.input
        runs = [dict(run, metrics=m, predictions=p, model=pt) for run, m, p, pt
                in zip(smk.params.runs, i.metrics, i.predictions, i.models, strict=True)]
        selectors, _ = run_tables(runs)
        with artifacts.atomic_path(smk.output.selectors) as tmp:
            selectors.to_csv(tmp, index=False)
        names = [f"layerwise {r['selector']} repeat {r['repeat']}" for r in runs]
        mc = mcnemar_table(list(zip(names, i.predictions)), i.e2e_predictions, log=log)
        with artifacts.atomic_path(smk.output.mcnemar) as tmp:
            mc.to_csv(tmp, index=False)
        log(f"{len(selectors)} layer-wise runs summarised")


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
