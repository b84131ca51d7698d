"""What the report reads: every artefact of the study, plus the resolved config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ModelArtefacts:
    """The artefacts of one training: e2e, head or compressed."""

    name: str            # "search" (the chosen trial), "e2e", "head" or "compressed"
    metrics: Path        # metrics.json
    history: Path        # history.csv (epoch, lr, train_loss, train_acc, val_loss, val_acc, seconds)
    curves: Path         # curves.png
    model: Path          # model.pt (checkpoint with "arch")
    layer_si: Path       # layer_si.csv (split, layer_index, layer, kind, ..., si, center_si, ...)
    layer_si_plot: Path  # layer_si.png


@dataclass
class ReportInputs:
    """Every artefact the report reads, plus the resolved config."""

    config: dict                  # the resolved config (config.yaml plus a "compress" section)
    split_summary: Path           # results/split/summary.json
    lr_summary: Path              # results/lr_search/summary.csv
    lr_best: Path                 # results/lr_search/best.json
    lr_heatmap: Path              # results/lr_search/heatmap.png
    trial_curves: list[Path]      # results/lr_search/lr~{lr}/step~{step}/curves.png, one per trial
    models: list[ModelArtefacts]  # search, e2e, head, compressed (in that order)
    cut: Path                     # results/compress/cut.json
    cut_plot: Path                # results/compress/cut.png
    selected: Path                # results/compress/selected.json
    ranking: Path                 # results/compress/feature_ranking.csv (step, feature, si, center_si)
    feature_si_plot: Path         # results/compress/feature_si.png
    benchmarks: list[Path] = field(default_factory=list)  # Snakemake benchmark TSVs, one per job
    data: Path | None = None      # results/data/cifar10.npz (its recorded image format)
    # The controls of (c) (see sicompress.controls); each optional, the section shows what is given.
    selectors_csv: Path | None = None  # selectors.csv: one row per (selector, repeat) at the chosen k
    frontier_csv: Path | None = None   # frontier.csv: one row per (selector, fraction, repeat)
    frontier_plot: Path | None = None  # frontier.png: accuracy against parameters and MACs
    mcnemar_csv: Path | None = None    # mcnemar.csv: McNemar's exact test of each model vs e2e
    comparisons_csv: Path | None = None  # comparisons.csv: SI vs each control, paired by seed
    latency_csv: Path | None = None    # latency.csv: model, batch_size, seconds_per_image, ...
    # The optional models (`study.report_inputs`): {model}_metrics, {model}_layer_si_plot
    scratch_metrics: Path | None = None  # metrics.json of the compressed arch from scratch
    finetuned_metrics: Path | None = None  # metrics.json of the fine-tuned model
    finetuned_layer_si_plot: Path | None = None  # layer_si.png of the fine-tuned model
    # Layer-wise SI pruning (sicompress.layerwise); all None when it is off
    layerwise_pruned: Path | None = None      # pruned.json: kept channels per conv layer
    layerwise_kept_plot: Path | None = None   # kept.png
    layerwise_width: Path | None = None       # width.json: the classifier width's design
    layerwise_width_plot: Path | None = None  # width.png
    layerwise_metrics: Path | None = None     # metrics.json of the layer-wise model (chosen width)
    layerwise_layer_si_plot: Path | None = None  # its layer_si.png
    layerwise_recipes: Path | None = None     # recipes.csv: recipe x selector x repeat
    layerwise_mcnemar: Path | None = None     # mcnemar.csv: each run against e2e, Holm-adjusted
    layerwise_comparisons: Path | None = None  # comparisons.csv: the recipes compared, paired
    layerwise_finetuned_metrics: Path | None = None  # metrics.json of it fine-tuned
    layerwise_finetuned_layer_si_plot: Path | None = None  # its layer_si.png
    # The criteria benchmark (sicompress.benchmark); all None when it is off
    benchmark_table: Path | None = None        # table.csv: one row per budget x cell
    benchmark_runs: Path | None = None         # runs.csv: one row per training
    benchmark_comparisons: Path | None = None  # comparisons.csv: paired by seed, Holm
    benchmark_ranking: Path | None = None      # ranking.json: SI's ranking of every group
    benchmark_allocations: list[Path] = field(default_factory=list)  # one per budget
    benchmark_frontier_parameters: Path | None = None  # frontier_parameters.png
    benchmark_frontier_macs: Path | None = None  # frontier_macs.png
    benchmark_curves: Path | None = None       # curves.png: validation curves of every run
