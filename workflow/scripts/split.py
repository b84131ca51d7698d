"""Rule split: class-balanced train / val / si_train / si_test indices and train statistics."""

from sicompress.logs import step_log
from sicompress.splits import write_split


def main(smk):
    with step_log(smk.log[0]) as log:
        write_split(smk.input.data, smk.output.split, smk.output.summary,
                    val_fraction=smk.params.val_fraction, si_fraction=smk.params.si_fraction,
                    si_test_fraction=smk.params.si_test_fraction, seed=smk.params.seed, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
