"""Rule finetune: the compressed model of (c) trained end to end for compress.finetune_epochs
epochs at the searched lr x 0.1, constant."""

from sicompress.artifacts import read_json
from sicompress.compression import finetune
from sicompress.logs import step_log
from sicompress.training import settings_from_config

LR_FACTOR = 0.1  # of the search's lr


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, best = smk.params, read_json(smk.input.best)
        settings = settings_from_config(p.train, p.seed, compute=smk.config["compute"],
                                        epochs=p.epochs, lr=best["lr"] * LR_FACTOR,
                                        step_size=p.epochs)  # no step within the run
        finetune(compressed_model=smk.input.compressed, e2e_model=smk.input.e2e,
                 data_npz=smk.input.data, split_npz=smk.input.split,
                 summary_json=smk.input.summary, model_out=smk.output.model,
                 history=smk.output.history, metrics=smk.output.metrics,
                 curves=smk.output.curves, predictions=smk.output.predictions,
                 settings=settings, config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
