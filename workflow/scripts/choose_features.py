"""Rule choose_features: (c)2 k from the ranking, the fewest features within the tolerance."""

from sicompress.compression import choose_features
from sicompress.logs import step_log


def main(smk):
    with step_log(smk.log[0]) as log:
        choose_features(ranking_csv=smk.input.ranking, info_json=smk.input.info,
                        selected_json=smk.output.selected, plot=smk.output.plot,
                        tolerance=smk.params.tolerance, log=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
