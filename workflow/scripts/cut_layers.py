"""Rule cut_layers: (c)1 the shortest prefix of the e2e extractor that keeps its best SI."""

from sicompress.compression import cut_layers
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0]) as log:
        cut_layers(layer_si_csv=smk.input.table, out_json=smk.output.cut, out_plot=smk.output.plot,
                   metric=smk.params.metric, tolerance=smk.params.tolerance,
                   layer=smk.params.layer, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
