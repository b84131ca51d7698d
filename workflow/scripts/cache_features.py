"""Rules cache_e2e_features, cache_cut_features and cache_layerwise_features: the outputs of
one frozen extractor for the train and val images, computed once for every classifier-only
training on it (e2e's whole extractor; its prefix up to the cut; a layer-wise pruned one)."""

from pathlib import Path

from sicompress.feature_cache import cache_features
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        cache_features(source_model=smk.input.model, data_npz=smk.input.data,
                       split_npz=smk.input.split, summary_json=smk.input.summary,
                       out_dir=Path(smk.output.meta).parent, cut_json=smk.input.get("cut"),
                       pruned_json=smk.input.get("pruned"), kept_json=smk.input.get("kept"),
                       dtype=smk.params.dtype, batch_size=smk.config["compute"]["si_batch_size"],
                       config=smk.config, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
