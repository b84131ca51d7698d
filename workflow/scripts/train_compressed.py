"""Rule train_compressed: (c)3-4 the pruned extractor frozen, a new classifier trained."""

from sicompress.artifacts import read_json
from sicompress.trainings import classifier_settings, train_compressed
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, section = smk.params, smk.params.compress
        settings = classifier_settings(section, read_json(smk.input.best), p.train, p.seed,
                                       smk.config["compute"])
        train_compressed(e2e_model=smk.input.e2e, selected_json=smk.input.selected,
                         data_npz=smk.input.data, split_npz=smk.input.split,
                         summary_json=smk.input.summary, model_out=smk.output.model,
                         history=smk.output.history, metrics=smk.output.metrics,
                         curves=smk.output.curves, predictions=smk.output.predictions,
                         settings=settings,
                         hidden=section["classifier_hidden"], dropout=section["dropout"],
                         features=smk.input.get("features"), config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
