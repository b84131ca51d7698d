"""Rule train_head: (b) a new classifier on the frozen e2e feature extractor."""

from sicompress.artifacts import read_json
from sicompress.trainings import classifier_settings, train_head
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, head = smk.params, smk.params.head
        settings = classifier_settings(head, read_json(smk.input.best), p.train, p.seed,
                                       smk.config["compute"])
        train_head(e2e_model=smk.input.e2e, data_npz=smk.input.data, split_npz=smk.input.split,
                   summary_json=smk.input.summary, model_out=smk.output.model,
                   history=smk.output.history, metrics=smk.output.metrics,
                   curves=smk.output.curves, predictions=smk.output.predictions,
                   settings=settings, hidden=head["classifier_hidden"], dropout=head["dropout"],
                   features=smk.input.get("features"), config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
