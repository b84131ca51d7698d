# Helpers of the rules. Nothing here imports torch: the DAG is built on a login node too.
# Compute settings (config["compute"]) are read by the scripts from the config, never passed as
# params, so that changing them re-runs no job (params are a rerun trigger, the config is not).

import os

from sicompress import benchmark, criteria, study

ENV = "../../envs/sicompress.yaml"
BENCHMARKS = "results/benchmarks"  # wall time and memory of every job (Snakemake benchmark files)
# The study's models and the switches that make them: sicompress/study.py lists them once
MODELS = study.always()  # search (the chosen trial's model), e2e, head, compressed
FINETUNE = study.model("finetuned").made(config)  # (c) fine-tuned end to end as well
SCRATCH = study.model("scratch").made(config)  # (c)'s architecture trained from scratch
LAYERWISE = study.model("layerwise").made(config)  # every conv of the prefix pruned by SI as well
# its recipes beyond classifier only: the pruned network fine-tuned end to end, and its
# architecture trained from random weights
LAYERWISE_FINETUNE = study.model("layerwise_finetuned").made(config)
LAYERWISE_SCRATCH = study.LAYERWISE_SCRATCH(config)
SI_MODELS = study.made(config, layer_si=True)  # models with a layer SI table and plot
CONTROLS = config["controls"]
# Repeats of the layer-wise recipes that train through the network (fine-tuned, from scratch):
# fewer than the classifier-only ones, which cost seconds. A fine-tune starts from its repeat's
# classifier-only model, so there are at most as many.
RETRAIN_REPEATS = config["layerwise"]["retrain_repeats"]
if LAYERWISE and RETRAIN_REPEATS > CONTROLS["repeats"]:
    raise ValueError(
        f"layerwise.retrain_repeats ({RETRAIN_REPEATS}) must be at most controls.repeats "
        f"({CONTROLS['repeats']}): each fine-tune starts from that repeat's classifier-only model")
# Classifier-only trainings read their frozen extractor's outputs, computed once (cache_*)
CACHED = config["classifier_features"]["source"] == "cached"
# The criteria benchmark (benchmark.smk), its own switch: it needs only data, the search, e2e
BENCHMARK = config["benchmark"]
BENCHMARK_ON = BENCHMARK["enabled"]
BENCHMARK_BUDGETS = [benchmark.budget_name(b) for b in BENCHMARK["budgets"]]
BENCHMARK_ALLOCATIONS = BENCHMARK["allocations"]
BENCHMARK_GLOBAL = BENCHMARK["global_criterion"] if "global" in BENCHMARK_ALLOCATIONS else None
# the criteria that prune a cell: those of the config, and the global threshold's own
BENCHMARK_CRITERIA = sorted({c for a in BENCHMARK_ALLOCATIONS if a != "global"
                             for c in benchmark.criteria_at(BENCHMARK, a)}
                            | ({BENCHMARK_GLOBAL} if BENCHMARK_GLOBAL else set()))


def get_data_path():
    """data.path, or $CIFAR10_JPEG when the folder source is given no path."""
    path = config["data"].get("path")
    if config["data"]["source"] == "folder" and not path:
        path = os.environ.get("CIFAR10_JPEG")
        if not path:
            raise ValueError(
                "data.source is 'folder' but data.path is empty and CIFAR10_JPEG is not set"
            )
    return path


def format_value(v):
    """How an lr or step appears in paths: shortest round-trip text (0.05, 0.1, 1e-05, 30)."""
    return f"{v:g}"


def grid(pattern):
    """`pattern` expanded over every (lr, step) point of the search grid."""
    return expand(
        pattern,
        lr=[format_value(v) for v in config["lr_search"]["lrs"]],
        step=[format_value(v) for v in config["lr_search"]["step_sizes"]],
    )


def get_trial_metrics():
    """metrics.json of every trial of the search."""
    return grid(rules.lr_trial.output.metrics)


def get_trained(model, key):
    """File `key` (model, history, metrics, predictions or curves) of a trained model, by its
    name in the study's list (sicompress/study.py).
    "search" is the search's chosen trial, which select_lr copies to results/search/."""
    if model == "search":
        return getattr(rules.select_lr.output, "model" if key == "model" else f"trial_{key}")
    m = study.model(model)
    return getattr(getattr(rules, m.rule).output, key).format(**dict(m.wildcards))


def get_trained_files(key):
    """File `key` of every trained model, in the order of MODELS."""
    return [get_trained(model, key) for model in MODELS]


def get_trained_model(wildcards):
    """model.pt of the trained model named by the {model} wildcard."""
    return get_trained(wildcards.model, "model")


def get_layer_si(model):
    """The per-layer SI table of one trained model."""
    return expand(rules.layer_si.output.table, model=model)[0]


def get_layer_si_source(wildcards):
    """Named inputs source_table and source_model (e2e's) of layer_si for the models built on
    e2e's extractor (`from_e2e`): that job copies the rows of the layers whose weights are
    e2e's; none for the others (the search and e2e depend on nothing)."""
    if not study.model(wildcards.model).from_e2e:
        return {}
    return {"source_table": get_layer_si("e2e"), "source_model": get_trained("e2e", "model")}


# ----------------------------------------------------------------------------------------
# Features computed once per frozen extractor (classifier_features.source: cached)


def feature_outputs(folder):
    """The files of one cache of features (feature_cache.FILES): named `meta` the
    description, which the trainings take as their input `features`, and `arrays`."""
    return {"meta": f"{folder}/features.json",
            "arrays": multiext(f"{folder}/", "train.npy", "val.npy", "train_labels.npy",
                               "val_labels.npy")}


def get_e2e_features(wildcards=None):
    """Named input `features` of a training on e2e's whole frozen extractor (head): its
    cached outputs; none when the trainings read images (source: augmented)."""
    return {"features": rules.cache_e2e_features.output.meta} if CACHED else {}


def get_cut_features(wildcards=None):
    """Named input `features` of a training on e2e's prefix up to the cut (compressed, the
    controls, the frontier): the cut layer's cached outputs, every channel."""
    return {"features": rules.cache_cut_features.output.meta} if CACHED else {}


def layerwise_feature_choice(selector, repeat):
    """Which layer-wise pruned extractor a training reads: one per criterion, a seeded one
    (random) one per repeat (its channels are drawn with seed + repeat)."""
    return criteria.choice_name(selector, repeat)


def get_layerwise_features(wildcards):
    """Named input `features` of a training on a layer-wise pruned extractor: SI's channels
    for the widths, the control's selector (and repeat, for random) otherwise."""
    if not CACHED:
        return {}
    choice = layerwise_feature_choice(wildcards.get("selector", "si"),
                                      wildcards.get("repeat", 0))
    return {"features": rules.cache_layerwise_features.output.meta.format(choice=choice)}


def get_layerwise_kept(wildcards):
    """The kept.json a training on a layer-wise pruned extractor reads: SI's for the widths,
    the control's criterion (and repeat, for a seeded one) otherwise."""
    choice = layerwise_feature_choice(wildcards.get("selector", "si"),
                                      wildcards.get("repeat", 0))
    return rules.choose_layerwise_channels.output.kept.format(choice=choice)


def get_layerwise_feature_choices():
    """Every layer-wise pruned extractor some training reads, in order."""
    choices = ["si"] + [layerwise_feature_choice(r["selector"], r["repeat"])
                        for r in get_layerwise_control_runs()]
    return list(dict.fromkeys(choices))


# ----------------------------------------------------------------------------------------
# Controls of (c)


def check_controls():
    """Combinations the schema cannot express, named by key before any job starts."""
    selectors = CONTROLS["selectors"]
    if "si" not in selectors:
        raise ValueError(f"controls.selectors must include si (the study's own choice), got "
                         f"{selectors}")
    if "l1" in selectors and config["compress"]["feature_unit"] != "channel":
        raise ValueError("controls.selectors: l1 (filter norms) needs compress.feature_unit "
                         "channel; remove l1 or select channels")


def point_name(fraction):
    """The {point} of a control training: "chosen" (the study's k) or "frac~F"."""
    return "chosen" if fraction is None else f"frac~{format_value(fraction)}"


def point_fraction(point):
    """The fraction of a {point} (None for "chosen"), as the config wrote it."""
    if point == "chosen":
        return None
    text = point[len("frac~"):]
    for f in CONTROLS["frontier"]:
        if format_value(f) == text:
            return f
    raise ValueError(f"{point}: not a fraction of controls.frontier {CONTROLS['frontier']}")


def get_control_runs():
    """Every classifier-only training of the controls, as plain records: the study's k with
    every selector x repeat (group "chosen"; si repeat 0 is the study's own compressed
    model), then every frontier fraction x selector x repeat (group "frontier")."""
    runs = []
    for selector in CONTROLS["selectors"]:
        for repeat in range(CONTROLS["repeats"]):
            runs.append({"group": "chosen", "selector": selector, "fraction": None,
                         "repeat": repeat})
    for fraction in CONTROLS["frontier"]:
        for selector in CONTROLS["selectors"]:
            for repeat in range(CONTROLS["repeats"]):
                runs.append({"group": "frontier", "selector": selector, "fraction": fraction,
                             "repeat": repeat})
    return runs


def control_file(run, key):
    """File `key` of one control run (the study's compressed model for si, chosen, repeat 0)."""
    if run["group"] == "chosen" and run["selector"] == "si" and run["repeat"] == 0:
        return get_trained("compressed", key)
    return getattr(rules.train_control.output, key).format(
        selector=run["selector"], point=point_name(run["fraction"]), repeat=run["repeat"])


def get_control_cut(wildcards):
    """selected.json for the chosen k; for a frontier point the ranking's description of the
    cut, so that another feature_tolerance does not retrain the frontier."""
    if wildcards.point == "chosen":
        return rules.choose_features.output.selected
    return rules.rank_features.output.info


def get_control_files(key):
    """File `key` of every control run, in the order of get_control_runs()."""
    return [control_file(run, key) for run in get_control_runs()]


def get_control_references(wildcards=None):
    """The models the controls are compared with (`study.references`: e2e, head, and the
    optional ones made; named inputs e2e_metrics, e2e_predictions, e2e_model, ...)."""
    names = study.references(config)
    return {f"{name}_{key}": get_trained(name, key) for name in names
            for key in ("metrics", "predictions", "model")}


CLASSIFIER_KEYS = ("epochs", "lr", "step_size", "classifier_hidden", "dropout")
ARCHITECTURE_KEYS = ("classifier_hidden", "dropout")


def classifier_section(section):
    """The keys of a config section that a classifier-only training uses, and no other: its
    params, so that another compress.feature_tolerance does not retrain the frontier."""
    return {key: section[key] for key in CLASSIFIER_KEYS}


def architecture_section(section):
    """The keys of a config section that fix a classifier's architecture (hidden sizes and
    dropout), and no other: the params of a training that takes only its architecture from the
    section (the compressed architecture from scratch, on the e2e schedule)."""
    return {key: section[key] for key in ARCHITECTURE_KEYS}


def get_report_optional():
    """The report's named inputs that only some studies have: each optional model's
    `{model}_metrics` and `{model}_layer_si_plot` (`study.report_inputs`), and the layer-wise
    pruning's own files when it is on, and the criteria benchmark's when it is on."""
    out = {f"{name}_{key}": (get_trained(name, key) if key == "metrics" else
                             expand(rules.plot_layer_si.output.plot, model=name)[0])
           for name, key in study.report_inputs(config)}
    if LAYERWISE:
        out.update(layerwise_pruned=rules.prune_layers.output.pruned,
                   layerwise_kept_plot=rules.prune_layers.output.plot,
                   layerwise_width=rules.choose_layerwise_width.output.choice,
                   layerwise_width_plot=rules.choose_layerwise_width.output.plot,
                   layerwise_recipes=rules.summarize_layerwise.output.recipes,
                   layerwise_mcnemar=rules.summarize_layerwise.output.mcnemar,
                   layerwise_comparisons=rules.summarize_layerwise.output.comparisons)
    if BENCHMARK_ON:
        s = rules.summarize_benchmark.output
        out.update(benchmark_table=s.table, benchmark_runs=s.runs,
                   benchmark_comparisons=s.comparisons,
                   benchmark_ranking=rules.rank_benchmark.output.ranking,
                   benchmark_allocations=expand(rules.allocate_benchmark.output.allocations,
                                                budget=BENCHMARK_BUDGETS),
                   benchmark_frontier_parameters=s.frontier_parameters,
                   benchmark_frontier_macs=s.frontier_macs, benchmark_curves=s.curves)
    return out


def get_latency_names():
    """The models whose latency is measured, in the report's order (one per architecture:
    the controls at the chosen k share the compressed model's)."""
    return study.made(config, latency=True)


def get_latency_models(wildcards=None):
    return {name: get_trained(name, "model") for name in get_latency_names()}


# ----------------------------------------------------------------------------------------
# Layer-wise pruning


def get_layerwise_control_runs():
    """The layer-wise pruned network's classifier-only trainings at the chosen width: every
    selector x repeat (si repeat 0 is the layer-wise model itself)."""
    return [{"group": "chosen", "selector": selector, "fraction": None, "repeat": repeat}
            for selector in CONTROLS["selectors"] for repeat in range(CONTROLS["repeats"])]


def layerwise_classifier_file(selector, repeat, key):
    """File `key` of the classifier-only training of `selector`'s channels, `repeat` (SI's,
    repeat 0: the layer-wise model itself, at the chosen width)."""
    if selector == "si" and int(repeat) == 0:
        return get_trained("layerwise", key)
    return getattr(rules.train_layerwise_control.output, key).format(selector=selector,
                                                                     repeat=repeat)


def get_layerwise_control_files(key):
    """File `key` of every run of get_layerwise_control_runs(), in its order."""
    return [layerwise_classifier_file(run["selector"], run["repeat"], key)
            for run in get_layerwise_control_runs()]


def get_layerwise_classifier_model(wildcards):
    """The classifier-only model a fine-tuning starts from: the same selector and repeat."""
    return layerwise_classifier_file(wildcards.selector, wildcards.repeat, "model")


LAYERWISE_ARCHITECTURE = "architecture"  # the selector of the from-scratch runs: the counts only


def get_layerwise_runs():
    """Every run of the layer-wise recipes, in the report's order: classifier only and
    fine-tuned, each selector x repeat; from scratch, one architecture (the counts are the
    same for every selector) x repeat. Records: recipe, selector, repeat. The two recipes that
    train through the network have layerwise.retrain_repeats repeats, the first ones."""
    repeats = range(RETRAIN_REPEATS)
    runs = [{"recipe": "classifier only", "selector": r["selector"], "repeat": r["repeat"]}
            for r in get_layerwise_control_runs()]
    if LAYERWISE_FINETUNE:
        runs += [{"recipe": "fine-tuned", "selector": s, "repeat": r}
                 for s in CONTROLS["selectors"] for r in repeats]
    if LAYERWISE_SCRATCH:
        runs += [{"recipe": "from scratch", "selector": LAYERWISE_ARCHITECTURE, "repeat": r}
                 for r in repeats]
    return runs


def layerwise_run_file(run, key):
    """File `key` of one run of get_layerwise_runs()."""
    if run["recipe"] == "classifier only":
        return layerwise_classifier_file(run["selector"], run["repeat"], key)
    if run["recipe"] == "fine-tuned":
        return getattr(rules.finetune_layerwise.output, key).format(selector=run["selector"],
                                                                    repeat=run["repeat"])
    return getattr(rules.train_layerwise_scratch.output, key).format(repeat=run["repeat"])


def get_layerwise_run_files(key):
    """File `key` of every run of get_layerwise_runs(), in its order."""
    return [layerwise_run_file(run, key) for run in get_layerwise_runs()]


# ----------------------------------------------------------------------------------------
# The criteria benchmark


def benchmark_training_outputs(cell):
    """The artefacts of one benchmark training of `cell` ("{allocation}/{criterion}"; the
    unpruned reference's: "unpruned", no budget)."""
    folder = (f"results/benchmark/{cell}/repeat~{{repeat}}" if cell == benchmark.UNPRUNED
              else f"results/benchmark/budget~{{budget}}/{cell}/repeat~{{repeat}}")
    return {"model": f"{folder}/model.pt", "history": f"{folder}/history.csv",
            "metrics": f"{folder}/metrics.json", "predictions": f"{folder}/predictions.npz",
            "curves": f"{folder}/curves.png"}


def get_benchmark_kept(wildcards):
    """The channels a fine-tune starts from: its criterion's at its allocation (a seeded
    criterion's own draw for its repeat)."""
    return rules.choose_benchmark_channels.output.kept.format(
        budget=wildcards.budget, allocation=wildcards.allocation,
        choice=criteria.choice_name(wildcards.bcriterion, wildcards.repeat))


def get_benchmark_runs():
    """Every training of the benchmark (`benchmark.runs`), in the table's order."""
    return benchmark.runs(BENCHMARK)


def benchmark_run_file(run, key):
    rule_ = {benchmark.SCRATCH: rules.train_benchmark_scratch,
             benchmark.UNPRUNED: rules.finetune_benchmark_unpruned}.get(
                 run["criterion"], rules.finetune_benchmark)
    pattern = rule_.benchmark if key == "benchmark" else getattr(rule_.output, key)
    return pattern.format(budget=run["budget"], allocation=run["allocation"],
                          bcriterion=run["criterion"], repeat=run["repeat"])


def get_benchmark_run_files(key):
    """File `key` of every run of get_benchmark_runs(), in its order."""
    return [benchmark_run_file(run, key) for run in get_benchmark_runs()]


def get_benchmark_run_kept():
    """The choice file of every run a criterion chose (not the scratch runs nor the unpruned
    reference), in order."""
    return [rules.choose_benchmark_channels.output.kept.format(
        budget=r["budget"], allocation=r["allocation"],
        choice=criteria.choice_name(r["criterion"], r["repeat"]))
        for r in get_benchmark_runs() if benchmark.chose(r)]


def get_benchmark_benchmarks():
    """The benchmark file of every job of the criteria benchmark."""
    runs = get_benchmark_runs()
    chosen = sorted({(r["budget"], r["allocation"], criteria.choice_name(r["criterion"],
                                                                        r["repeat"]))
                     for r in runs if benchmark.chose(r)})
    return ([rules.rank_benchmark.benchmark]
            + expand(rules.allocate_benchmark.benchmark, budget=BENCHMARK_BUDGETS)
            + [rules.choose_benchmark_channels.benchmark.format(budget=b, allocation=a, choice=c)
               for b, a, c in chosen]
            + [benchmark_run_file(r, "benchmark") for r in runs]
            + [rules.summarize_benchmark.benchmark])


# ----------------------------------------------------------------------------------------
# Everything


def get_benchmarks():
    """The benchmark file of every job the report covers, in workflow order."""
    controls = [rules.train_control.benchmark.format(
        selector=run["selector"], point=point_name(run["fraction"]), repeat=run["repeat"])
        for run in get_control_runs()
        if not (run["group"] == "chosen" and run["selector"] == "si" and run["repeat"] == 0)]
    return (
        [rules.prepare_data.benchmark, rules.split.benchmark]
        + grid(rules.lr_trial.benchmark)
        + [rules.select_lr.benchmark, rules.train_e2e.benchmark]
        + ([rules.cache_e2e_features.benchmark] if CACHED else [])
        + [rules.train_head.benchmark]
        + expand(rules.layer_si.benchmark, model=SI_MODELS)
        + expand(rules.plot_layer_si.benchmark, model=SI_MODELS)
        + [rules.cut_layers.benchmark, rules.rank_features.benchmark,
           rules.choose_features.benchmark]
        + ([rules.cache_cut_features.benchmark] if CACHED else [])
        + [rules.train_compressed.benchmark]
        + controls
        + ([rules.train_scratch.benchmark] if SCRATCH else [])
        + ([rules.finetune.benchmark] if FINETUNE else [])
        + [rules.measure_latency.benchmark, rules.summarize_controls.benchmark]
        + (get_layerwise_benchmarks() if LAYERWISE else [])
        + (get_benchmark_benchmarks() if BENCHMARK_ON else [])
    )


def get_layerwise_benchmarks():
    return ([rules.prune_layers.benchmark]
            + [rules.choose_layerwise_channels.benchmark.format(choice=c)
               for c in get_layerwise_feature_choices()]
            + ([rules.cache_layerwise_features.benchmark.format(choice=c)
                for c in get_layerwise_feature_choices()] if CACHED else [])
            + expand(rules.train_layerwise_width.benchmark, width=config["layerwise"]["widths"])
            + [rules.choose_layerwise_width.benchmark]
            + [rules.train_layerwise_control.benchmark.format(selector=r["selector"],
                                                              repeat=r["repeat"])
               for r in get_layerwise_control_runs()
               if not (r["selector"] == "si" and r["repeat"] == 0)]
            + ([rules.finetune_layerwise.benchmark.format(selector=r["selector"],
                                                          repeat=r["repeat"])
                for r in get_layerwise_runs() if r["recipe"] == "fine-tuned"])
            + ([rules.train_layerwise_scratch.benchmark.format(repeat=r["repeat"])
                for r in get_layerwise_runs() if r["recipe"] == "from scratch"])
            + [rules.summarize_layerwise.benchmark])


def get_final_outputs():
    outputs = [rules.select_lr.output.heatmap, rules.select_lr.output.model,
               rules.select_lr.output.trial_metrics, rules.select_lr.output.trial_curves]
    for rule_ in (rules.train_e2e, rules.train_head, rules.train_compressed):
        outputs += [rule_.output.model, rule_.output.metrics, rule_.output.curves]
    outputs += expand(rules.plot_layer_si.output.plot, model=SI_MODELS)
    outputs += [rules.summarize_controls.output.plot, rules.measure_latency.output.table]
    if LAYERWISE:
        outputs += [rules.prune_layers.output.plot, rules.choose_layerwise_width.output.plot,
                    rules.summarize_layerwise.output.recipes]
    if BENCHMARK_ON:
        outputs += [rules.summarize_benchmark.output.md]
    outputs += [rules.report.output.md, rules.report.output.summary]
    return outputs
