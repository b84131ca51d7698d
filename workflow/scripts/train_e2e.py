"""Rule train_e2e: (a) the network (model.arch) from random weights at the searched lr and step."""

from sicompress.artifacts import read_json
from sicompress.trainings import e2e_settings, train_e2e
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, best = smk.params, read_json(smk.input.best)
        settings = e2e_settings(p.train, best, p.seed, smk.config["compute"])
        train_e2e(data_npz=smk.input.data, split_npz=smk.input.split,
                  summary_json=smk.input.summary, model_out=smk.output.model,
                  history=smk.output.history, metrics=smk.output.metrics,
                  curves=smk.output.curves, predictions=smk.output.predictions,
                  settings=settings, network=p.model["arch"], width=p.model["width"],
                  hidden=p.model["classifier_hidden"], dropout=p.model["dropout"],
                  config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
