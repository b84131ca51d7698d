"""Rule measure_latency: seconds per image of every model at batch 1 and 256, one after
another on the training device (torch.utils.benchmark, after warm-up), in the precision and
memory format the trainings evaluate the models in (config["compute"])."""

from sicompress.latency import measure_latency
from sicompress.logs import step_log


LATENCY_THREADS = 4  # torch threads of the timing, at most (the job may hold more cores)


def main(smk):
    with step_log(smk.log[0], min(smk.threads, LATENCY_THREADS)) as log:
        models = {name: smk.input[name] for name in smk.params.models}
        measure_latency(models, smk.input.data, smk.output.table,
                        compute=smk.config["compute"], log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
