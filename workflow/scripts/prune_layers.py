"""Rule prune_layers: every conv of the kept prefix ranked by SI and pruned, first to last."""

from sicompress.artifacts import read_json
from sicompress.figures import plot_kept_channels
from sicompress.layerwise import prune_layers
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        prune_layers(model_path=smk.input.model, data_npz=smk.input.data,
                     split_npz=smk.input.split, cut_json=smk.input.cut,
                     out_json=smk.output.pruned, ranking_csv=smk.output.ranking,
                     pool=smk.params.pool, tolerance=smk.params.tolerance,
                     batchnorm=smk.params.batchnorm, bn_images=smk.params.bn_images,
                     seed=smk.params.seed,
                     batch_size=smk.config["compute"]["si_batch_size"], log=log)
        plot_kept_channels(read_json(smk.output.pruned), smk.output.plot)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
