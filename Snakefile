# Compressing VGG16 on CIFAR-10 with the Separation Index.
# (a) train VGG16 end to end, (b) retrain a classifier on its frozen features,
# (c) cut the layers and channels that add no separation and retrain a small classifier,
# and its controls: other channel selectors, other sizes, repeats, from scratch, latency;
# and (benchmark.enabled) SI against the field's channel criteria at matched parameter budgets.

import os

from snakemake.utils import min_version, validate

from sicompress.config import check_config

min_version("9.0")


# config.yaml beside this file, so that --directory elsewhere still finds it
configfile: os.path.join(workflow.basedir, "config.yaml")


check_config(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))
validate(config, "workflow/schemas/config.schema.yaml")  # fills in the defaults


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


check_controls()


include: "workflow/rules/data.smk"
include: "workflow/rules/lr_search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/separation.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/controls.smk"
include: "workflow/rules/layerwise.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
