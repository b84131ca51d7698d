"""Rule layer_si: SI, Center SI, high-order and soft SI of every layer of a saved model (rows
of layers identical to e2e's copied from e2e's table)."""

from sicompress.layer_si import write_layer_table
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0], smk.threads) as log:
        write_layer_table(model_path=smk.input.model, data_npz=smk.input.data,
                          split_npz=smk.input.split, out_csv=smk.output.table,
                          out_json=smk.output.provenance, order=smk.params.order,
                          batch_size=smk.config["compute"]["si_batch_size"],
                          source_table=getattr(smk.input, "source_table", None),
                          source_model=getattr(smk.input, "source_model", None), log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
