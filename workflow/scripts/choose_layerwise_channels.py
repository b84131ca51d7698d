"""Rule choose_layerwise_channels: the channels one criterion keeps at the layer-wise counts
(kept.json), read by that choice's feature cache and trainings."""

from sicompress.layerwise import write_kept
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        write_kept(model_path=smk.input.model, pruned_json=smk.input.pruned,
                   choice=smk.wildcards.choice, seed=smk.params.seed, data_npz=smk.input.data,
                   split_npz=smk.input.split, out_json=smk.output.kept, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
