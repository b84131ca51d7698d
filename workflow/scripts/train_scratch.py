"""Rule train_scratch: the compressed architecture trained end to end from random weights,
with the e2e schedule (train.epochs at the searched lr and step)."""

from sicompress.artifacts import read_json
from sicompress.trainings import e2e_settings, train_scratch
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, best = smk.params, read_json(smk.input.best)
        settings = e2e_settings(p.train, best, p.seed, smk.config["compute"])
        train_scratch(e2e_model=smk.input.e2e, selected_json=smk.input.selected,
                      data_npz=smk.input.data, split_npz=smk.input.split,
                      summary_json=smk.input.summary, model_out=smk.output.model,
                      history=smk.output.history, metrics=smk.output.metrics,
                      curves=smk.output.curves, predictions=smk.output.predictions,
                      settings=settings, hidden=p.classifier["classifier_hidden"],
                      dropout=p.classifier["dropout"], config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
