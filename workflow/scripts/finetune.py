"""Rules finetune and finetune_layerwise: a trained pruned model (part (c)'s compressed model,
or a layer-wise pruned one: one selector's channels, one repeat), then every layer trained
end to end on the schedule in params (epochs; lr, null: the search's lr x 0.1; StepLR step,
null: none within the run), with the seed of its repeat (the study's seed for (c))."""

from sicompress.artifacts import read_json
from sicompress.trainings import finetune
from sicompress.logs import step_log
from sicompress.engine import settings_from_config

LR_FACTOR = 0.1  # of the search's lr, when the schedule's lr is null


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, best = smk.params, read_json(smk.input.best)
        epochs = p.schedule["epochs"]
        settings = settings_from_config(
            p.train, p.seed + int(smk.wildcards.get("repeat", 0)), compute=smk.config["compute"],
            epochs=epochs, lr=p.schedule["lr"] or best["lr"] * LR_FACTOR,
            step_size=p.schedule["step_size"] or epochs)
        finetune(compressed_model=smk.input.compressed, e2e_model=smk.input.e2e,
                 data_npz=smk.input.data, split_npz=smk.input.split,
                 summary_json=smk.input.summary, model_out=smk.output.model,
                 history=smk.output.history, metrics=smk.output.metrics,
                 curves=smk.output.curves, predictions=smk.output.predictions,
                 settings=settings, config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
