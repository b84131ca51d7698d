"""Rule select_features: (c)2 forward selection by SI at the cut layer, and the choice of k."""

from sicompress.compression import select_features
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p = smk.params
        select_features(model_path=smk.input.model, data_npz=smk.input.data,
                        split_npz=smk.input.split, cut_json=smk.input.cut,
                        ranking_csv=smk.output.ranking, selected_json=smk.output.selected,
                        plot=smk.output.plot, unit=p.unit, tolerance=p.tolerance,
                        patience=p.patience, max_features=p.max_features,
                        batch_size=smk.config["compute"]["si_batch_size"], log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
