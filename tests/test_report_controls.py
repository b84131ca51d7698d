"""The report's section on the controls of (c), rendered from small fabricated files.

A whole study's outputs are fabricated here by hand (tiny, with the keys the writers write), so
that the report renders without the smoke run; the controls' files are those of
`sicompress.controls` on the fabricated trainings of `control_files`. The numbers of the
section are checked against hand computations.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sicompress import markdown_report as report
from sicompress.controls import summarize_controls
from sicompress.markdown_report import ModelArtefacts, ReportInputs, write_report

from control_files import arch, write_run, write_training
from test_report import md_tables, table_starting

MODELS = ["search", "e2e", "head", "compressed"]
CHOSEN_ACC = {"si": [0.90, 0.925, 0.875], "l1": [0.85, 0.875, 0.90], "random": [0.775]}


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def base_inputs(root: Path) -> ReportInputs:
    """ReportInputs of a fabricated study (no controls): the keys the writers write, tiny."""
    r = root / "results"
    config = {"seed": 0, "model": {"width": 0.0625},
              "data": {"source": "synthetic", "val_fraction": 0.1, "si_fraction": 0.1,
                       "si_test_fraction": 0.1},
              "train": {"epochs": 4, "batch_size": 32, "momentum": 0.9, "weight_decay": 5e-4,
                        "gamma": 0.1, "augment": True},
              "lr_search": {"lrs": [0.05], "step_sizes": [2], "epochs": 2},
              "head": {"epochs": 2, "lr": None, "step_size": None, "classifier_hidden": [8],
                       "dropout": 0.0},
              "compress": {"epochs": 2, "lr": None, "step_size": None, "classifier_hidden": [8],
                           "dropout": 0.0, "layer_metric": "si", "layer_tolerance": 0.01,
                           "feature_unit": "channel", "feature_tolerance": 0.01,
                           "patience": None, "max_features": None}}
    write_json(r / "split/summary.json", {
        "n_official_train": 100, "n_official_test": 40,
        "totals": {"train": 90, "val": 10, "si_train": 10, "si_test": 4},
        "per_class": {"val": {str(c): 1 for c in range(10)}},
        "train_mean": [0.5, 0.5, 0.5], "train_std": [0.25, 0.25, 0.25]})
    write_csv(r / "lr_search/summary.csv", [{"lr": 0.05, "step_size": 2, "trial_step": 1,
                                             "val_acc": 0.5, "diverged": False, "chosen": True}])
    write_json(r / "lr_search/best.json", {"lr": 0.05, "step_size": 2, "val_acc": 0.5,
                                           "n_diverged": 0, "n_trials": 1})
    models = []
    for n, name in enumerate(MODELS):
        d = r / name
        write_json(d / "metrics.json", {
            "test_acc": [0.6, 0.925, 0.95, 0.9][n], "val_acc": 0.5, "test_loss": 1.0,
            "best_epoch": 2, "epochs_run": 2, "train_seconds": 3.0, "lr": 0.05, "step_size": 1,
            "grid_lr": 0.05, "grid_step": 2, "trial_step": 1,
            "parameters": {"features": 1, "classifier": 1, "total": 2}})
        write_csv(d / "history.csv", [{"epoch": e, "train_acc": 0.5, "val_acc": 0.5}
                                      for e in (1, 2)])
        torch.save({"arch": arch(), "state_dict": {}}, d / "model.pt")
        write_csv(d / "layer_si.csv", [{"split": s, "layer_index": 1, "layer": "conv1_1",
                                        "kind": "conv", "features": 4096, "si": 0.5,
                                        "center_si": 0.5} for s in ("train", "test")])
        models.append(ModelArtefacts(name=name, metrics=d / "metrics.json",
                                     history=d / "history.csv", curves=d / "curves.png",
                                     model=d / "model.pt", layer_si=d / "layer_si.csv",
                                     layer_si_plot=d / "layer_si.png"))
    write_json(r / "compress/cut.json", {
        "layer": "conv4_3", "layer_index": 13, "value": 0.8, "best_layer": "conv5_1",
        "best_layer_index": 15, "best_value": 0.805, "tolerance": 0.01, "metric": "si",
        "split": "train"})
    write_json(r / "compress/selected.json", {
        "unit": "channel", "shape": [32, 4, 4], "cut_layer": "conv4_3", "n_samples": 10,
        "n_candidates": 32, "steps": 8, "k": 6, "si_at_k": 0.7, "center_si_at_k": 0.6,
        "best_si": 0.71, "best_k": 8, "si_all": 0.8, "center_si_all": 0.7, "tolerance": 0.01,
        "patience": None, "stopped": "all candidates ranked"})
    write_csv(r / "compress/feature_ranking.csv", [{"step": s, "feature": s, "si": 0.5,
                                                    "center_si": 0.5} for s in range(1, 9)])
    return ReportInputs(
        config=config, split_summary=r / "split/summary.json",
        lr_summary=r / "lr_search/summary.csv", lr_best=r / "lr_search/best.json",
        lr_heatmap=r / "lr_search/heatmap.png",
        trial_curves=[r / "lr_search/lr~0.05/step~2/curves.png"], models=models,
        cut=r / "compress/cut.json", cut_plot=r / "compress/cut.png",
        selected=r / "compress/selected.json", ranking=r / "compress/feature_ranking.csv",
        feature_si_plot=r / "compress/feature_si.png")


def control_files(root: Path) -> dict:
    """The controls' outputs (selectors, frontier, McNemar, plot) and latency.csv."""
    c = root / "results/controls"
    e2e = np.arange(40) < 37  # e2e right on 37 of 40 (0.925)
    compressed = np.arange(40) < 35  # the study's: e2e alone right on images 35 and 36,
    compressed[37] = True  # it alone on image 37: right on 36 (0.9)
    runs = [write_run(c / "runs", "chosen", s, i, k=6, test_acc=acc,
                      correct=compressed if (s, i) == ("si", 0) else None)
            for s, accs in CHOSEN_ACC.items() for i, acc in enumerate(accs)]
    runs += [write_run(c / "runs", "frontier", s, i, fraction=f, k=int(32 * f),
                       test_acc=0.5 + f / 2 + i / 40)
             for s in ("si", "l1") for f in (0.25, 0.5) for i in range(2)]
    refs = {"e2e": write_training(c / "refs/e2e", correct=e2e, parameters=5000, model=True),
            "head": write_training(c / "refs/head", test_acc=0.95, parameters=4000, model=True),
            "scratch": write_training(c / "refs/scratch", test_acc=0.875, parameters=607,
                                      macs=6005),
            "finetuned": None}
    out = {"selectors_csv": c / "selectors.csv", "frontier_csv": c / "frontier.csv",
           "mcnemar_csv": c / "mcnemar.csv", "frontier_plot": c / "frontier.png",
           "comparisons_csv": c / "comparisons.csv"}
    summarize_controls(runs, refs, selectors_csv=out["selectors_csv"],
                       frontier_csv=out["frontier_csv"], mcnemar_csv=out["mcnemar_csv"],
                       comparisons_csv=out["comparisons_csv"], plot=out["frontier_plot"],
                       log=lambda m: None)
    out["latency_csv"] = write_csv(c / "latency.csv", [
        {"model": m, "batch_size": b, "seconds_per_image": sec, "iqr_seconds_per_image": sec / 10,
         "measurements": 20, "device": "cpu", "threads": 2}
        for m, times in (("e2e", (2e-3, 4e-4)), ("compressed", (5e-4, 5e-5)))
        for b, sec in zip((1, 256), times)])
    out["scratch_metrics"] = refs["scratch"]["metrics"]
    return out


def render(inputs: ReportInputs, root: Path) -> str:
    write_report(inputs, out_md=root / "results/report/report.md",
                 out_csv=root / "results/report/summary.csv")
    return (root / "results/report/report.md").read_text()


def headings(md: str) -> list[str]:
    return [line[3:] for line in md.splitlines() if line.startswith("## ")]


def test_without_controls_the_report_has_no_trace_of_them(tmp_path):
    md = render(base_inputs(tmp_path), tmp_path)
    assert headings(md) == report.sections(base_inputs(tmp_path)) == [
        "Answers", "Summary", "Learning-rate search",
        "Learning-rate search: the chosen trial's model", "End-to-end training (a)",
        "Frozen features, new classifier (b)", "Compressed model (c)", "Compression",
        "Wall time per job", "Assumptions"]
    assert report.CONTROLS_TITLE not in md and "frontier.png" not in md
    assert "### Selectors at the chosen k" not in md and "### McNemar" not in md
    assert re.search(r"^!\[Figure 1\]\(\.\./lr_search/heatmap\.png\)$", md, flags=re.M)


def test_controls_section_numbers(tmp_path):
    inputs = base_inputs(tmp_path)
    for key, path in control_files(tmp_path).items():
        setattr(inputs, key, path)
    md = render(inputs, tmp_path)
    assert headings(md) == report.sections(inputs)
    assert headings(md).index(report.CONTROLS_TITLE) == headings(md).index("Compression") + 1
    tables = md_tables(md)

    # the frontier plot is the first figure, right after the summary table
    summary = md.split("## Learning-rate search\n")[0]
    assert "![Figure 1](../controls/frontier.png)" in summary
    assert "plotted in Figure 1, after the summary" in md

    # selectors: si 0.90, 0.925, 0.875 -> 90.00 ± 2.50%; l1 0.85, 0.875, 0.90 -> 87.50 ± 2.50%
    t = table_starting(tables, "Test accuracy at the chosen k by channel selector").set_index("selector")
    assert t.loc["si", "test acc mean ± sd"] == "90.00 ± 2.50%"
    assert t.loc["l1", "test acc mean ± sd"] == "87.50 ± 2.50%"
    assert t.loc["random", "test acc mean ± sd"] == "77.50%"  # one repeat: no sd
    assert t.loc["si", "each repeat"] == "90.00%, 92.50%, 87.50%"
    assert (t.loc["si", "repeats"], t.loc["random", "repeats"]) == ("3", "1")
    # l1 minus si per seed (100, 101, 102): -0.05, -0.05, +0.025: mean -2.50 pp, sd
    # 0.0433013, half-width 4.302653 * 0.0433013 / sqrt 3 = 10.76 pp: [-13.26, +8.26]
    assert t.loc["l1", "minus si: Δ mean [95% interval]"] == "-2.50 pp [-13.26 pp, +8.26 pp]"
    assert ("SI against L1: no difference detected over 3 repeats (+2.50 pp, 95% interval "
            "[-8.26, +13.26] pp, paired by seed: at this spread only a difference beyond "
            "±10.76 pp could be told from 0); the exact test detects no accuracy difference "
            "(Holm p = ") in md
    # random has one repeat, at seed 100: SI's repeat 0 (90%) against it (77.5%)
    assert ("SI against random: +12.50 pp (90.00% against 77.50%), one seed in common: no "
            "interval") in md

    # pruned against scratch: 90.00% (summary's compressed) and 87.50%
    t = table_starting(tables, "The compressed model (classifier only").set_index("model")
    assert (t.loc["compressed", "test acc"], t.loc["scratch", "test acc"]) == ("90.00%", "87.50%")
    assert t.loc["scratch", "params total"] == "607" and t.loc["scratch", "Δ vs e2e"] == "-5.00 pp"
    assert ("The compressed architecture from scratch against the compressed model: -2.50 pp "
            "(87.50% against 90.00%), one run each: no interval") in md
    assert "fine-tuned" not in md.split(report.CONTROLS_TITLE)[1].split("### McNemar")[0]

    # McNemar: compressed alone right on 1 image, e2e alone on 2: p = min(1, 2 * (1 + 3) / 2^3)
    t = table_starting(tables, "McNemar's exact test").set_index("model")
    assert list(t.index)[0] == "compressed" and list(t.index)[-2:] == ["scratch", "head"]
    assert (t.loc["compressed", "both right"], t.loc["compressed", "only model right"],
            t.loc["compressed", "only e2e right"], t.loc["compressed", "both wrong"],
            t.loc["compressed", "p-value"]) == ("35", "1", "2", "2", "1.000")
    # random repeat 0: right on the first 31 of 40, e2e alone on 6: p = 2 / 2^6
    assert (t.loc["random repeat 0", "only e2e right"], t.loc["random repeat 0", "p-value"]) == \
        ("6", "0.031")
    assert pd.read_csv(inputs.mcnemar_csv).set_index("model").loc[
        "random repeat 0", "p_value"] == 0.03125
    # Holm over the 9 tests of the table: the smallest p, random repeat 0's 0.03125, x 9
    assert t.loc["random repeat 0", "p (Holm)"] == "0.281"
    assert "Holm p ≥ 0.05 for compressed, si repeat 1," in md
    assert "no accuracy difference from e2e detected" in md

    # latency: e2e 2 ms / compressed 0.5 ms = 4x at batch 1; 0.4 ms / 50 µs = 8x at 256
    t = table_starting(tables, "Measured time per image").set_index("model")
    assert t.loc["compressed", "batch 1: speed-up vs e2e"] == "4.00×"
    assert t.loc["compressed", "batch 256: speed-up vs e2e"] == "8.00×"
    assert t.loc["e2e", "batch 1: speed-up vs e2e"] == "1.00×"
    assert t.loc["compressed", "batch 256: time per image (median)"].startswith("50.0 µs (IQR 5.00 µs")
    assert t.loc["e2e", "batch 1: time per image (median)"].startswith("2.00 ms (IQR 200 µs, 20 runs)")
    assert (t.loc["e2e", "device"], t.loc["e2e", "threads"]) == ("cpu", "2")

    # frontier: si at k = 8 (fraction 0.25): 0.625 and 0.65 -> 63.75 ± 1.77%
    t = table_starting(tables, "The accuracy–size frontier")
    row = t[(t["selector"] == "si") & (t["k"] == "8")].iloc[0]
    assert (row["fraction"], row["repeats"], row["test acc mean ± sd"]) == \
        ("0.25", "2", f"63.75 ± {100 * np.std([0.625, 0.65], ddof=1):.2f}%")
    assert len(t) == 4


def test_each_control_file_alone(tmp_path):
    files = control_files(tmp_path)
    for key, path in files.items():
        inputs = base_inputs(tmp_path)
        setattr(inputs, key, path)
        md = render(inputs, tmp_path)
        assert report.CONTROLS_TITLE in headings(md), key


def test_a_frontier_without_runs_shows_no_table(tmp_path):
    files = control_files(tmp_path)
    pd.read_csv(files["frontier_csv"]).head(0).to_csv(files["frontier_csv"], index=False)
    inputs = base_inputs(tmp_path)
    inputs.frontier_csv, inputs.selectors_csv = files["frontier_csv"], files["selectors_csv"]
    md = render(inputs, tmp_path)
    assert "### Selectors at the chosen k" in md and "### Accuracy against size" not in md


def test_latency_rows_of_the_layerwise_models_have_their_size(tmp_path):
    """The latency table's parameters and MACs of the layer-wise models (classifier only and
    fine-tuned) are those their metrics.json record, as for every other row."""
    inputs = base_inputs(tmp_path)
    r = tmp_path / "results"
    lw = write_training(r / "layerwise", test_acc=0.5, parameters=1234, macs=56789)
    ft = write_training(r / "layerwise/finetuned/si/repeat~0", test_acc=0.6, parameters=1234,
                        macs=56789)
    inputs.layerwise_metrics, inputs.layerwise_finetuned_metrics = lw["metrics"], ft["metrics"]
    inputs.latency_csv = write_csv(r / "latency/latency.csv", [
        {"model": m, "batch_size": 1, "seconds_per_image": 1e-3, "iqr_seconds_per_image": 1e-4,
         "measurements": 10, "device": "cpu", "threads": 1}
        for m in ("e2e", "compressed", "layerwise", "layerwise_finetuned")])
    t = table_starting(md_tables(render(inputs, tmp_path)), "Measured time per image")
    t = t.set_index("model")
    for name in ("layerwise", "layerwise_finetuned"):
        assert (t.loc[name, "params total"], t.loc[name, "MACs total"]) == ("1,234", "56,789"), name
    # e2e's from its checkpoint's arch, as in the summary
    summary = pd.read_csv(r / "report/summary.csv").set_index("model")
    assert t.loc["e2e", "params total"] == f"{summary.loc['e2e', 'params_total']:,}"


def test_latency_table_states_the_precision_each_model_was_timed_in(tmp_path):
    """latency.csv's precision (how each model was timed: as its trainings evaluated it) is a
    column of the report's latency table, model by model."""
    inputs = base_inputs(tmp_path)
    r = tmp_path / "results"
    inputs.latency_csv = write_csv(r / "latency/latency.csv", [
        {"model": m, "batch_size": 1, "seconds_per_image": 1e-3, "iqr_seconds_per_image": 1e-4,
         "measurements": 10, "device": "cuda:0", "threads": 1, "precision": p}
        for m, p in (("e2e", "bfloat16 autocast, channels_last"), ("compressed", "float32"))])
    t = table_starting(md_tables(render(inputs, tmp_path)), "Measured time per image")
    t = t.set_index("model")
    assert t.loc["e2e", "precision"] == "bfloat16 autocast, channels_last"
    assert t.loc["compressed", "precision"] == "float32"
