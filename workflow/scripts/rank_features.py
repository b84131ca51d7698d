"""Rule rank_features: (c)2 forward selection by SI at the cut layer (the expensive step)."""

from sicompress.compression import rank_features
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        p = smk.params
        rank_features(model_path=smk.input.model, data_npz=smk.input.data,
                      split_npz=smk.input.split, cut_json=smk.input.cut,
                      ranking_csv=smk.output.ranking, info_json=smk.output.info, unit=p.unit,
                      patience=p.patience, patience_tolerance=p.patience_tolerance,
                      max_features=p.max_features,
                      batch_size=smk.config["compute"]["si_batch_size"], log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
