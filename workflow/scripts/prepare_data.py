"""Rule prepare_data: the official train and test sets as one npz of uint8 images."""

from sicompress.data import prepare_data
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0]) as log:
        prepare_data(smk.params.source, smk.params.path, smk.output.data,
                     synthetic=dict(smk.params.synthetic), log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
