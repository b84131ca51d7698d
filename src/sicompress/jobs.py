"""Every rule's step, called with its Snakemake job: the one adapter between the workflow and
the package.

Each rule names `workflow/scripts/job.py` as its script, which hands the job to `run`: the
function of the rule (`STEPS`) reads the job's inputs, outputs, params and wildcards by the
rule's names and calls the package. The log (`logs.step_log`) and the torch threads are set
here, once for every rule.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import artifacts, benchmark, study
from .artifacts import read_json
from .compression import choose_features, cut_layers, rank_features
from .controls import (REFERENCES, mcnemar_table, recipe_comparisons, recipe_table,
                       summarize_controls)
from .data import prepare_data
from .engine import settings_from_config
from .feature_cache import cache_features
from .figures import plot_kept_channels, plot_layer_si
from .latency import measure_latency
from .layer_si import write_layer_table
from .layerwise import choose_layerwise_width, prune_layers, write_kept
from .logs import step_log
from .lr_search import run_trial, select_lr
from .markdown_report import (ModelArtefacts, ReportInputs, write_benchmark_report,
                              write_report)
from .splits import write_split
from .trainings import (Training, classifier_settings, e2e_settings, finetune,
                        finetune_unpruned, finetune_whole, train_compressed, train_control,
                        train_counts_scratch, train_e2e, train_head, train_layerwise,
                        train_layerwise_scratch, train_scratch)


LR_FACTOR = 0.1  # of the search's lr, when the schedule's lr is null
LATENCY_THREADS = 4  # torch threads of the timing, at most (the job may hold more cores)


def training(job, settings, log) -> Training:
    """The record of a training rule's job: its inputs data, split and summary, its outputs
    model, history, metrics, curves (and predictions where the rule writes them)."""
    i, o = job.input, job.output
    return Training(data=i.data, split=i.split, summary=i.summary, model=o.get("model"),
                    history=o.history, metrics=o.metrics, curves=o.curves,
                    predictions=o.get("predictions"), settings=settings, config=job.config,
                    log=log)


def cache_features_step(job, log) -> None:
    """Rules cache_e2e_features, cache_cut_features and cache_layerwise_features: the outputs of
    one frozen extractor for the train and val images, computed once for every classifier-only
    training on it (e2e's whole extractor; its prefix up to the cut; a layer-wise pruned one)."""
    cache_features(source_model=job.input.model, data_npz=job.input.data,
                   split_npz=job.input.split, summary_json=job.input.summary,
                   out_dir=Path(job.output.meta).parent, cut_json=job.input.get("cut"),
                   pruned_json=job.input.get("pruned"), kept_json=job.input.get("kept"),
                   dtype=job.params.dtype, batch_size=job.config["compute"]["si_batch_size"],
                   config=job.config, log=log)


def choose_features_step(job, log) -> None:
    """Rule choose_features: (c)2 k from the ranking, the fewest features within the tolerance."""
    choose_features(ranking_csv=job.input.ranking, info_json=job.input.info,
                    selected_json=job.output.selected, plot=job.output.plot,
                    tolerance=job.params.tolerance, log=log)


def choose_layerwise_channels_step(job, log) -> None:
    """Rule choose_layerwise_channels: the channels one criterion keeps at the layer-wise counts
    (kept.json), read by that choice's feature cache and trainings."""
    write_kept(model_path=job.input.model, pruned_json=job.input.pruned,
               choice=job.wildcards.choice, seed=job.params.seed, data_npz=job.input.data,
               split_npz=job.input.split, out_json=job.output.kept, log=log)


def choose_layerwise_width_step(job, log) -> None:
    """Rule choose_layerwise_width: the classifier width of the layer-wise pruned network, by the
    Center SI of the trained hidden layer on si_train; the chosen width's model copied."""
    folders = [Path(p).parent for p in job.input.hidden_si]
    choose_layerwise_width(hidden_si_jsons=job.input.hidden_si, width_dirs=folders,
                           out_json=job.output.choice, out_dir=Path(job.output.model).parent,
                           plot=job.output.plot, tolerance=job.params.tolerance, log=log)


def allocate_benchmark_step(job, log) -> None:
    """Rule allocate_benchmark: the counts per group of each allocation within one budget."""
    benchmark.allocate(model_path=job.input.model, ranking_json=job.input.ranking,
                       budget=float(job.wildcards.budget),
                       global_criterion=job.params.global_criterion,
                       budget_of=job.params.budget_of, out_json=job.output.allocations, log=log)


def choose_benchmark_channels_step(job, log) -> None:
    """Rule choose_benchmark_channels: one criterion's channels at one allocation's counts."""
    w = job.wildcards
    benchmark.choose_channels(model_path=job.input.model, ranking_json=job.input.ranking,
                              allocations_json=job.input.allocations, allocation=w.allocation,
                              choice=w.choice, seed=job.params.seed, data_npz=job.input.data,
                              split_npz=job.input.split, out_json=job.output.kept, log=log)


def finetune_benchmark_step(job, log) -> None:
    """Rule finetune_benchmark: one criterion's pruned whole network, fine-tuned (the
    benchmark's schedule, seed + repeat)."""
    finetune_whole(training(job, finetune_settings(job), log), kept_json=job.input.kept,
                   e2e_model=job.input.e2e, repeat=int(job.wildcards.repeat))


def rank_benchmark_step(job, log) -> None:
    """Rule rank_benchmark: SI's forward selection of every group, once, on the unpruned
    network."""
    benchmark.rank_groups(model_path=job.input.model, data_npz=job.input.data,
                          split_npz=job.input.split, out_json=job.output.ranking,
                          ranking_csv=job.output.curves, pool=job.params.pool,
                          batch_size=job.config["compute"]["si_batch_size"], log=log)


def summarize_benchmark_step(job, log) -> None:
    """Rule summarize_benchmark: the benchmark's tables and figures from its trainings."""
    i = job.input
    kept = iter(i.kept)  # one per run a criterion chose (`benchmark.chose`), in order
    runs = [dict(run, metrics=m, predictions=p, history=h,
                 kept=next(kept) if benchmark.chose(run) else None)
            for run, m, p, h in zip(job.params.runs, i.metrics, i.predictions, i.histories,
                                    strict=True)]
    benchmark.summarize(runs=runs, out_runs=job.output.runs, out_table=job.output.table,
                        out_comparisons=job.output.comparisons,
                        frontier_parameters=job.output.frontier_parameters,
                        frontier_macs=job.output.frontier_macs, curves=job.output.curves,
                        e2e_metrics=i.e2e_metrics, e2e_model=i.e2e_model, log=log)
    write_benchmark_report(table_csv=job.output.table, comparisons_csv=job.output.comparisons,
                           runs_csv=job.output.runs, ranking_json=i.ranking,
                           allocations_jsons=list(i.allocations),
                           e2e_metrics=i.e2e_metrics, config=dict(job.config),
                           figures={"frontier_parameters": job.output.frontier_parameters,
                                    "frontier_macs": job.output.frontier_macs,
                                    "curves": job.output.curves},
                           out_md=job.output.md)
    log(f"benchmark report written to {job.output.md}")


def finetune_benchmark_unpruned_step(job, log) -> None:
    """Rule finetune_benchmark_unpruned: e2e with nothing removed, fine-tuned on the
    benchmark's schedule (seed + repeat): the reference pruning's cost is read against."""
    finetune_unpruned(training(job, finetune_settings(job), log), e2e_model=job.input.e2e,
                      repeat=int(job.wildcards.repeat))


def train_benchmark_scratch_step(job, log) -> None:
    """Rule train_benchmark_scratch: the network at one allocation's counts from random
    weights at the search's lr for params epochs (the search's StepLR step scaled to them),
    seed + repeat."""
    p, repeat = job.params, int(job.wildcards.repeat)
    settings = e2e_settings(p.train, read_json(job.input.best), p.seed + repeat,
                            job.config["compute"], epochs=p.epochs)
    train_counts_scratch(training(job, settings, log), allocations_json=job.input.allocations,
                         allocation=job.wildcards.allocation, e2e_model=job.input.e2e,
                         repeat=repeat)


def cut_layers_step(job, log) -> None:
    """Rule cut_layers: (c)1 the shortest prefix of the e2e extractor that keeps its best SI."""
    cut_layers(layer_si_csv=job.input.table, out_json=job.output.cut, out_plot=job.output.plot,
               metric=job.params.metric, tolerance=job.params.tolerance,
               layer=job.params.layer, log=log)


def finetune_step(job, log) -> None:
    """Rules finetune and finetune_layerwise: a trained pruned model (part (c)'s compressed model,
    or a layer-wise pruned one: one selector's channels, one repeat), then every layer trained
    end to end on the schedule in params (epochs; lr, null: the search's lr x 0.1; StepLR step,
    null: none within the run), with the seed of its repeat (the study's seed for (c))."""
    finetune(training(job, finetune_settings(job), log), compressed_model=job.input.compressed,
             e2e_model=job.input.e2e)


def finetune_settings(job):
    """A fine-tune's settings from params schedule (epochs; lr, null: the search's lr x 0.1;
    StepLR step, null: none within the run) and train, seed params seed + the repeat."""
    p, best = job.params, read_json(job.input.best)
    epochs = p.schedule["epochs"]
    return settings_from_config(
        p.train, p.seed + int(job.wildcards.get("repeat", 0)), compute=job.config["compute"],
        epochs=epochs, lr=p.schedule["lr"] or best["lr"] * LR_FACTOR,
        step_size=p.schedule["step_size"] or epochs)


def layer_si_step(job, log) -> None:
    """Rule layer_si: SI, Center SI, high-order and soft SI of every layer of a saved model (rows
    of layers identical to e2e's copied from e2e's table)."""
    write_layer_table(model_path=job.input.model, data_npz=job.input.data,
                      split_npz=job.input.split, out_csv=job.output.table,
                      out_json=job.output.provenance, order=job.params.order,
                      batch_size=job.config["compute"]["si_batch_size"],
                      source_table=getattr(job.input, "source_table", None),
                      source_model=getattr(job.input, "source_model", None), log=log)


def lr_trial_step(job, log) -> None:
    """Rule lr_trial: one short run of the learning-rate grid."""
    p = job.params
    settings = settings_from_config(p.train, p.seed, compute=job.config["compute"],
                                    epochs=p.trial_epochs)
    run_trial(training(job, settings, log), lr=float(job.wildcards.lr),
              step_size=int(job.wildcards.step), full_epochs=p.full_epochs,
              network=p.model["arch"], width=p.model["width"],
              hidden=p.model["classifier_hidden"], dropout=p.model["dropout"])


def measure_latency_step(job, log) -> None:
    """Rule measure_latency: seconds per image of every model at batch 1 and 256, one after
    another on the training device (torch.utils.benchmark, after warm-up), in the precision and
    memory format the trainings evaluate the models in (config["compute"])."""
    models = {name: job.input[name] for name in job.params.models}
    measure_latency(models, job.input.data, job.output.table,
                    compute=job.config["compute"], log=log)


def plot_layer_si_step(job, log) -> None:
    """Rule plot_layer_si: Center SI and SI per layer, train and test."""
    plot_layer_si(pd.read_csv(job.input.table), job.output.plot,
                  title=f"separation per layer: {job.wildcards.model} model")


def prepare_data_step(job, log) -> None:
    """Rule prepare_data: the official train and test sets as one npz of uint8 images."""
    prepare_data(job.params.source, job.params.path, job.output.data,
                 synthetic=dict(job.params.synthetic), log=log)


def prune_layers_step(job, log) -> None:
    """Rule prune_layers: every conv of the kept prefix ranked by SI and pruned, first to last."""
    prune_layers(model_path=job.input.model, data_npz=job.input.data,
                 split_npz=job.input.split, cut_json=job.input.cut,
                 out_json=job.output.pruned, ranking_csv=job.output.ranking,
                 pool=job.params.pool, tolerance=job.params.tolerance,
                 batchnorm=job.params.batchnorm, bn_images=job.params.bn_images,
                 seed=job.params.seed,
                 batch_size=job.config["compute"]["si_batch_size"], log=log)
    plot_kept_channels(read_json(job.output.pruned), job.output.plot)


def rank_features_step(job, log) -> None:
    """Rule rank_features: (c)2 forward selection by SI at the cut layer (the expensive step)."""
    p = job.params
    rank_features(model_path=job.input.model, data_npz=job.input.data,
                  split_npz=job.input.split, cut_json=job.input.cut,
                  ranking_csv=job.output.ranking, info_json=job.output.info, unit=p.unit,
                  patience=p.patience, patience_tolerance=p.patience_tolerance,
                  max_features=p.max_features,
                  batch_size=job.config["compute"]["si_batch_size"], log=log)


def report_step(job, log) -> None:
    """Rule report: results/report/report.md and summary.csv from every artefact of the study."""
    i = job.input
    models = [ModelArtefacts(name=name, metrics=i.metrics[n], history=i.history[n],
                             curves=i.curves[n], model=i.models[n], layer_si=i.layer_si[n],
                             layer_si_plot=i.layer_si_plot[n])
              for n, name in enumerate(job.params.models)]
    inputs = ReportInputs(config=dict(job.config), split_summary=i.split_summary,
                          lr_summary=i.lr_summary, lr_best=i.lr_best,
                          lr_heatmap=i.lr_heatmap, trial_curves=list(i.trial_curves),
                          models=models, cut=i.cut, cut_plot=i.cut_plot,
                          selected=i.selected, ranking=i.ranking,
                          feature_si_plot=i.feature_si_plot, benchmarks=list(i.benchmarks),
                          data=i.data,
                          # the controls of (c): inputs only when the workflow runs them
                          selectors_csv=i.get("selectors"), frontier_csv=i.get("frontier"),
                          frontier_plot=i.get("frontier_plot"), mcnemar_csv=i.get("mcnemar"),
                          comparisons_csv=i.get("comparisons"),
                          latency_csv=i.get("latency"),
                          # the optional models (`study.report_inputs`) and the layer-wise
                          # pruning's files: inputs only when the study makes them
                          **{f"{name}_{key}": i.get(f"{name}_{key}")
                             for name, key in study.report_inputs()},
                          **{f"layerwise_{key}": i.get(f"layerwise_{key}") for key in (
                              "pruned", "kept_plot", "width", "width_plot", "recipes",
                              "mcnemar", "comparisons")},
                          **{f"benchmark_{key}": i.get(f"benchmark_{key}") for key in (
                              "table", "runs", "comparisons", "ranking", "frontier_parameters",
                              "frontier_macs", "curves")},
                          benchmark_allocations=list(i.get("benchmark_allocations") or []))
    write_report(inputs, out_md=job.output.md, out_csv=job.output.summary)
    log(f"report written to {job.output.md} and {job.output.summary}")


def select_lr_step(job, log) -> None:
    """Rule select_lr: the grid's table, heat map, the chosen lr and step, and a copy of the
    chosen trial's model, history, metrics and curves in results/search/."""
    select_lr(trial_metrics=list(job.input.metrics), summary_csv=job.output.summary,
              best_json=job.output.best, heatmap=job.output.heatmap,
              chosen_out={"model": job.output.model, "history": job.output.trial_history,
                          "metrics": job.output.trial_metrics,
                          "curves": job.output.trial_curves},
              log=log)


def split_step(job, log) -> None:
    """Rule split: class-balanced train / val / si_train / si_test indices and train statistics."""
    write_split(job.input.data, job.output.split, job.output.summary,
                val_fraction=job.params.val_fraction, si_fraction=job.params.si_fraction,
                si_test_fraction=job.params.si_test_fraction, seed=job.params.seed, log=log)


def summarize_controls_step(job, log) -> None:
    """Rule summarize_controls: the controls of (c) as tables (selectors, frontier, McNemar) and a plot."""
    i = job.input
    runs = [dict(run, metrics=m, predictions=p, model=pt) for run, m, p, pt
            in zip(job.params.runs, i.metrics, i.predictions, i.models, strict=True)]
    # the optional references (scratch_*, finetuned_*, ...) are inputs only when made
    refs = {name: {key: i.get(f"{name}_{key}") for key in ("metrics", "predictions", "model")}
            if i.get(f"{name}_metrics") else None for name in REFERENCES}
    summarize_controls(runs, refs, selectors_csv=job.output.selectors,
                       frontier_csv=job.output.frontier, mcnemar_csv=job.output.mcnemar,
                       comparisons_csv=job.output.comparisons, plot=job.output.plot,
                       log=log)


def summarize_layerwise_step(job, log) -> None:
    """Rule summarize_layerwise: every run of the layer-wise recipes (classifier only and
    fine-tuned for each selector x repeat, from scratch x repeat) as one table, and each run
    against e2e (McNemar, Holm-adjusted over the table's family of tests), and the recipes
    compared with each other (`controls.recipe_comparisons`)."""
    i = job.input
    runs = [dict(run, metrics=m, model=pt, predictions=p) for run, m, pt, p
            in zip(job.params.runs, i.metrics, i.models, i.predictions, strict=True)]
    table = recipe_table(runs)
    with artifacts.atomic_path(job.output.recipes) as tmp:
        table.to_csv(tmp, index=False)
    names = [f"layerwise {r['recipe']} {r['selector']} repeat {r['repeat']}"
             for r in job.params.runs]
    mc = mcnemar_table(list(zip(names, i.predictions)), i.e2e_predictions, family=True,
                       log=log)
    with artifacts.atomic_path(job.output.mcnemar) as tmp:
        mc.to_csv(tmp, index=False)
    compared = recipe_comparisons(runs)
    with artifacts.atomic_path(job.output.comparisons) as tmp:
        compared.to_csv(tmp, index=False)
    log(f"{len(table)} layer-wise runs summarised, {len(compared)} comparisons")


def train_compressed_step(job, log) -> None:
    """Rule train_compressed: (c)3-4 the pruned extractor frozen, a new classifier trained."""
    p, section = job.params, job.params.compress
    settings = classifier_settings(section, read_json(job.input.best), p.train, p.seed,
                                   job.config["compute"])
    train_compressed(training(job, settings, log), e2e_model=job.input.e2e,
                     selected_json=job.input.selected, hidden=section["classifier_hidden"],
                     dropout=section["dropout"], features=job.input.get("features"))


def train_control_step(job, log) -> None:
    """Rule train_control: one control of (c), classifier-only like (c): a selector's channels at
    the chosen k or a frontier fraction, with the seed of its repeat."""
    p, section = job.params, job.params.compress
    repeat = int(job.wildcards.repeat)
    settings = classifier_settings(section, read_json(job.input.best), p.train,
                                   p.seed + repeat, job.config["compute"])
    train_control(training(job, settings, log), e2e_model=job.input.e2e,
                  cut_json=job.input.cut, ranking_csv=job.input.ranking,
                  selector=job.wildcards.selector, fraction=p.fraction, repeat=repeat,
                  hidden=section["classifier_hidden"], dropout=section["dropout"],
                  features=job.input.get("features"))


def train_e2e_step(job, log) -> None:
    """Rule train_e2e: (a) the network (model.arch) from random weights at the searched lr and step."""
    p, best = job.params, read_json(job.input.best)
    settings = e2e_settings(p.train, best, p.seed, job.config["compute"])
    train_e2e(training(job, settings, log), network=p.model["arch"], width=p.model["width"],
              hidden=p.model["classifier_hidden"], dropout=p.model["dropout"])


def train_head_step(job, log) -> None:
    """Rule train_head: (b) a new classifier on the frozen e2e feature extractor."""
    p, head = job.params, job.params.head
    settings = classifier_settings(head, read_json(job.input.best), p.train, p.seed,
                                   job.config["compute"])
    train_head(training(job, settings, log), e2e_model=job.input.e2e,
               hidden=head["classifier_hidden"], dropout=head["dropout"],
               features=job.input.get("features"))


def train_layerwise_step(job, log) -> None:
    """Rules train_layerwise_width and train_layerwise_control: a new classifier on the frozen
    layer-wise pruned extractor, classifier only like (c). The width rule tries one width with
    SI's channels (and measures the hidden layer on si_train); the control rule keeps the chosen
    width and the same channel counts per layer, chosen by {selector} (its kept.json), with the
    seed of its repeat."""
    p, section = job.params, job.params.compress
    wc = job.wildcards
    if "width" in wc.keys():  # the width's design: SI's channels, repeat 0
        repeat, width = 0, int(wc.width)
    else:
        repeat = int(wc.repeat)
        width = int(read_json(job.input.width)["width"])
    settings = classifier_settings(section, read_json(job.input.best), p.train,
                                   p.seed + repeat, job.config["compute"])
    train_layerwise(training(job, settings, log), e2e_model=job.input.e2e,
                    pruned_json=job.input.pruned, kept_json=job.input.kept, repeat=repeat,
                    width=width, dropout=section["dropout"],
                    hidden_si_json=job.output.get("hidden_si"),
                    si_batch_size=job.config["compute"]["si_batch_size"],
                    features=job.input.get("features"))


def train_layerwise_scratch_step(job, log) -> None:
    """Rule train_layerwise_scratch: the layer-wise pruned architecture trained end to end from
    random weights with the e2e schedule (train.epochs at the searched lr and step), seed + repeat."""
    p, repeat = job.params, int(job.wildcards.repeat)
    settings = e2e_settings(p.train, read_json(job.input.best), p.seed + repeat,
                            job.config["compute"])
    train_layerwise_scratch(training(job, settings, log), layerwise_model=job.input.layerwise,
                            e2e_model=job.input.e2e, repeat=repeat)


def train_scratch_step(job, log) -> None:
    """Rule train_scratch: the compressed architecture trained end to end from random weights,
    with the e2e schedule (train.epochs at the searched lr and step)."""
    p, best = job.params, read_json(job.input.best)
    settings = e2e_settings(p.train, best, p.seed, job.config["compute"])
    train_scratch(training(job, settings, log), e2e_model=job.input.e2e,
                  selected_json=job.input.selected, hidden=p.classifier["classifier_hidden"],
                  dropout=p.classifier["dropout"])


# the rule each step runs for, and the torch threads its log sets ("job": the job's own)
STEPS = {
    "allocate_benchmark": allocate_benchmark_step,
    "cache_cut_features": cache_features_step,
    "cache_e2e_features": cache_features_step,
    "cache_layerwise_features": cache_features_step,
    "choose_benchmark_channels": choose_benchmark_channels_step,
    "choose_features": choose_features_step,
    "choose_layerwise_channels": choose_layerwise_channels_step,
    "choose_layerwise_width": choose_layerwise_width_step,
    "cut_layers": cut_layers_step,
    "finetune": finetune_step,
    "finetune_benchmark": finetune_benchmark_step,
    "finetune_benchmark_unpruned": finetune_benchmark_unpruned_step,
    "finetune_layerwise": finetune_step,
    "layer_si": layer_si_step,
    "lr_trial": lr_trial_step,
    "measure_latency": measure_latency_step,
    "plot_layer_si": plot_layer_si_step,
    "prepare_data": prepare_data_step,
    "prune_layers": prune_layers_step,
    "rank_benchmark": rank_benchmark_step,
    "rank_features": rank_features_step,
    "report": report_step,
    "select_lr": select_lr_step,
    "split": split_step,
    "summarize_benchmark": summarize_benchmark_step,
    "summarize_controls": summarize_controls_step,
    "summarize_layerwise": summarize_layerwise_step,
    "train_benchmark_scratch": train_benchmark_scratch_step,
    "train_compressed": train_compressed_step,
    "train_control": train_control_step,
    "train_e2e": train_e2e_step,
    "train_head": train_head_step,
    "train_layerwise_control": train_layerwise_step,
    "train_layerwise_scratch": train_layerwise_scratch_step,
    "train_layerwise_width": train_layerwise_step,
    "train_scratch": train_scratch_step,
}
THREADS = {
    "allocate_benchmark": "job",
    "cache_cut_features": "job",
    "cache_e2e_features": "job",
    "cache_layerwise_features": "job",
    "choose_benchmark_channels": "job",
    "choose_features": None,
    "choose_layerwise_channels": "job",
    "choose_layerwise_width": None,
    "cut_layers": None,
    "finetune": "job",
    "finetune_benchmark": "job",
    "finetune_benchmark_unpruned": "job",
    "finetune_layerwise": "job",
    "layer_si": "job",
    "lr_trial": "job",
    "measure_latency": "latency",
    "plot_layer_si": None,
    "prepare_data": None,
    "prune_layers": "job",
    "rank_benchmark": "job",
    "rank_features": "job",
    "report": None,
    "select_lr": None,
    "split": None,
    "summarize_benchmark": None,
    "summarize_controls": None,
    "summarize_layerwise": None,
    "train_benchmark_scratch": "job",
    "train_compressed": "job",
    "train_control": "job",
    "train_e2e": "job",
    "train_head": "job",
    "train_layerwise_control": "job",
    "train_layerwise_scratch": "job",
    "train_layerwise_width": "job",
    "train_scratch": "job",
}


def run(job) -> None:
    """Run the step of the job's rule (`STEPS`) in its log.

    job: the Snakemake job object a rule's script sees (`snakemake`: rule, input, output,
    params, wildcards, log, threads, config), or anything with those fields (the tests hand
    a record of Snakemake's containers)."""
    if job.rule not in STEPS:
        raise ValueError(f"rule {job.rule!r} has no step in sicompress.jobs; the steps are "
                         f"{sorted(STEPS)}")
    threads = {"job": job.threads, "latency": min(job.threads, LATENCY_THREADS),
               None: None}[THREADS[job.rule]]
    with step_log(job.log[0], threads) as log:
        STEPS[job.rule](job, log)
