"""Rule choose_layerwise_width: the classifier width of the layer-wise pruned network, by the
Center SI of the trained hidden layer on si_train; the chosen width's model copied."""

from pathlib import Path

from sicompress.layerwise import choose_layerwise_width
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0]) as log:
        folders = [Path(p).parent for p in smk.input.hidden_si]
        choose_layerwise_width(hidden_si_jsons=smk.input.hidden_si, width_dirs=folders,
                               out_json=smk.output.choice, out_dir=Path(smk.output.model).parent,
                               plot=smk.output.plot, tolerance=smk.params.tolerance, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
