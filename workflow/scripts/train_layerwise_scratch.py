"""Rule train_layerwise_scratch: the layer-wise pruned architecture trained end to end from
random weights with the e2e schedule (train.epochs at the searched lr and step), seed + repeat."""

from sicompress.artifacts import read_json
from sicompress.trainings import e2e_settings, train_layerwise_scratch
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, repeat = smk.params, int(smk.wildcards.repeat)
        settings = e2e_settings(p.train, read_json(smk.input.best), p.seed + repeat,
                                smk.config["compute"])
        train_layerwise_scratch(layerwise_model=smk.input.layerwise, e2e_model=smk.input.e2e,
                                repeat=repeat, data_npz=smk.input.data,
                                split_npz=smk.input.split, summary_json=smk.input.summary,
                                model_out=smk.output.model, history=smk.output.history,
                                metrics=smk.output.metrics, curves=smk.output.curves,
                                predictions=smk.output.predictions, settings=settings,
                                config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
