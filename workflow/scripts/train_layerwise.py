"""Rules train_layerwise_width and train_layerwise_control: a new classifier on the frozen
layer-wise pruned extractor, classifier only like (c). The width rule tries one width with
SI's channels (and measures the hidden layer on si_train); the control rule keeps the chosen
width and the same channel counts per layer, chosen by {selector} (its kept.json), with the
seed of its repeat."""

from sicompress.artifacts import read_json
from sicompress.trainings import classifier_settings, train_layerwise
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p, section = smk.params, smk.params.compress
        wc = smk.wildcards
        if "width" in wc.keys():  # the width's design: SI's channels, repeat 0
            repeat, width = 0, int(wc.width)
        else:
            repeat = int(wc.repeat)
            width = int(read_json(smk.input.width)["width"])
        settings = classifier_settings(section, read_json(smk.input.best), p.train,
                                       p.seed + repeat, smk.config["compute"])
        train_layerwise(e2e_model=smk.input.e2e, pruned_json=smk.input.pruned,
                        kept_json=smk.input.kept, repeat=repeat, width=width,
                        data_npz=smk.input.data, split_npz=smk.input.split,
                        summary_json=smk.input.summary, model_out=smk.output.model,
                        history=smk.output.history, metrics=smk.output.metrics,
                        curves=smk.output.curves, predictions=smk.output.predictions,
                        settings=settings, dropout=section["dropout"],
                        hidden_si_json=smk.output.get("hidden_si"),
                        si_batch_size=smk.config["compute"]["si_batch_size"],
                        features=smk.input.get("features"), config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
