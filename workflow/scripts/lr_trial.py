"""Rule lr_trial: one short run of the learning-rate grid."""

from sicompress.logs import step_log
from sicompress.lr_search import run_trial
from sicompress.engine import settings_from_config


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p = smk.params
        run_trial(data_npz=smk.input.data, split_npz=smk.input.split,
                  summary_json=smk.input.summary, history=smk.output.history,
                  metrics=smk.output.metrics, curves=smk.output.curves,
                  checkpoint=smk.output.model,
                  lr=float(smk.wildcards.lr), step_size=int(smk.wildcards.step),
                  full_epochs=p.full_epochs,
                  settings=settings_from_config(p.train, p.seed, compute=smk.config["compute"],
                                                epochs=p.trial_epochs),
                  network=p.model["arch"], width=p.model["width"], hidden=p.model["classifier_hidden"],
                  dropout=p.model["dropout"], config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
