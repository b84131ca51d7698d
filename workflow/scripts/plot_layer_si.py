"""Rule plot_layer_si: Center SI and SI per layer, train and test."""

import pandas as pd

from sicompress.logs import step_log
from sicompress.figures import plot_layer_si


def main(smk):
    with step_log(smk.log[0]):
        plot_layer_si(pd.read_csv(smk.input.table), smk.output.plot,
                      title=f"separation per layer: {smk.wildcards.model} model")


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
