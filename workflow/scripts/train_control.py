"""Rule train_control: one control of (c), classifier-only like (c): a selector's channels at
the chosen k or a frontier fraction, with the seed of its repeat."""

from sicompress.artifacts import read_json
from sicompress.trainings import classifier_settings, train_control
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, section = smk.params, smk.params.compress
        repeat = int(smk.wildcards.repeat)
        settings = classifier_settings(section, read_json(smk.input.best), p.train,
                                       p.seed + repeat, smk.config["compute"])
        train_control(e2e_model=smk.input.e2e, cut_json=smk.input.cut,
                      ranking_csv=smk.input.ranking, selector=smk.wildcards.selector,
                      fraction=p.fraction, repeat=repeat, data_npz=smk.input.data,
                      split_npz=smk.input.split, summary_json=smk.input.summary,
                      model_out=smk.output.model, history=smk.output.history,
                      metrics=smk.output.metrics, curves=smk.output.curves,
                      predictions=smk.output.predictions, settings=settings,
                      hidden=section["classifier_hidden"], dropout=section["dropout"],
                      features=smk.input.get("features"), config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
