"""Every rule's script: the job handed to the package, which runs the rule's step
(`sicompress.jobs`)."""

from sicompress.jobs import run

if "snakemake" in globals():
    run(snakemake)  # noqa: F821
