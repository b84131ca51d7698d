"""Rule train_head: (b) a new classifier on the frozen e2e feature extractor."""

from sicompress.artifacts import read_json
from sicompress.experiment import train_head
from sicompress.logs import step_log
from sicompress.training import scaled_step, settings_from_config


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, best = smk.params, read_json(smk.input.best)
        head = p.head
        step = head["step_size"] or scaled_step(best["step_size"], head["epochs"], p.full_epochs)
        settings = settings_from_config(p.train, p.seed, epochs=head["epochs"],
                                        lr=head["lr"] or best["lr"], step_size=step,
                                        train_only="classifier")
        train_head(e2e_model=smk.input.e2e, data_npz=smk.input.data, split_npz=smk.input.split,
                   summary_json=smk.input.summary, model_out=smk.output.model,
                   history=smk.output.history, metrics=smk.output.metrics,
                   curves=smk.output.curves, settings=settings,
                   hidden=head["classifier_hidden"], dropout=head["dropout"],
                   config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
