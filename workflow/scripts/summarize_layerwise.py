"""Rule summarize_layerwise: every run of the layer-wise recipes (classifier only and
fine-tuned for each selector x repeat, from scratch x repeat) as one table, and each run
against e2e (McNemar, Holm-adjusted over the table's family of tests), and the recipes
compared with each other (`controls.recipe_comparisons`)."""

from sicompress.controls import mcnemar_table, recipe_comparisons, recipe_table
from sicompress.logs import step_log
from sicompress import artifacts


def main(smk):
    with step_log(smk.log[0]) as log:
        i = smk.input
        runs = [dict(run, metrics=m, model=pt, predictions=p) for run, m, pt, p
                in zip(smk.params.runs, i.metrics, i.models, i.predictions, strict=True)]
        table = recipe_table(runs)
        with artifacts.atomic_path(smk.output.recipes) as tmp:
            table.to_csv(tmp, index=False)
        names = [f"layerwise {r['recipe']} {r['selector']} repeat {r['repeat']}"
                 for r in smk.params.runs]
        mc = mcnemar_table(list(zip(names, i.predictions)), i.e2e_predictions, family=True,
                           log=log)
        with artifacts.atomic_path(smk.output.mcnemar) as tmp:
            mc.to_csv(tmp, index=False)
        compared = recipe_comparisons(runs)
        with artifacts.atomic_path(smk.output.comparisons) as tmp:
            compared.to_csv(tmp, index=False)
        log(f"{len(table)} layer-wise runs summarised, {len(compared)} comparisons")


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
