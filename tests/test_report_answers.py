"""The report's first screen: each answer's sentence from hand-set numbers.

The study is fabricated as in test_report_controls (tiny files with the keys the writers
write); the numbers the answers read (the summary's sizes and accuracies, the selectors' and
the layer-wise recipes' repeats, McNemar's p) are set here by hand, and each expected sentence
is typed out with the means and intervals worked by hand. Two repeats paired by seed with
differences d1, d2: mean (d1 + d2) / 2, half-width t(0.975, 1) sd / sqrt 2 = 12.7062 |d1 - d2| / 2.
"""

import re
from pathlib import Path

import pandas as pd
import pytest

from sicompress import markdown_report as report
from sicompress.comparisons import compare, comparison_table
from sicompress.markdown_report import ReportInputs, render_report, summary_table

from control_files import write_training
from test_report import md_tables
from test_report_controls import base_inputs, write_csv, write_json


def answers_of(md: str) -> str:
    """The text of the section Answers, whose bullets are one line each."""
    start = md.index("## Answers\n")
    return md[start:md.index("\n## ", start + 1)]


def answer(md: str, question: str) -> str:
    """The line of one answer, from its question on."""
    lines = [line for line in answers_of(md).splitlines() if line.startswith(f"- **{question}")]
    assert len(lines) == 1, (question, answers_of(md))
    return lines[0]


def sized_table(inputs: ReportInputs) -> pd.DataFrame:
    """The summary table with hand-set sizes and accuracies: e2e 1,000 parameters, 10,000
    MACs, test accuracy 90%; compressed 250, 4,000 and 88%."""
    table = summary_table(inputs).set_index("model")
    for name, params, macs, acc in (("e2e", 1000, 10000, 0.90), ("compressed", 250, 4000, 0.88)):
        table.loc[name, ["params_total", "macs_total", "test_acc"]] = [params, macs, acc]
    table["test_acc_change_vs_e2e"] = table["test_acc"] - 0.90
    return table.reset_index()


def runs_of(values: list[float]) -> list[dict]:
    """Repeats r = 0, 1, ... with seed r (no predictions: no exact test)."""
    return [{"seed": r, "test_acc": a} for r, a in enumerate(values)]


def with_selectors(inputs: ReportInputs, root: Path, accs: dict[str, list[float]]) -> None:
    """selectors.csv and comparisons.csv (SI against each other selector) as inputs."""
    c = root / "results/controls"
    rows = [compare(runs_of(accs["si"]), runs_of(v), a="si", b=s, what="chosen k (k = 6)")
            for s, v in accs.items() if s != "si"]
    c.mkdir(parents=True, exist_ok=True)
    comparison_table(rows).to_csv(c / "comparisons.csv", index=False)
    inputs.comparisons_csv = c / "comparisons.csv"
    inputs.selectors_csv = write_csv(c / "selectors.csv", [
        {"selector": s, "repeat": i, "seed": i, "k": 6, "n_candidates": 32, "test_acc": a,
         "params_total": 607, "macs_total": 6005}
        for s, values in accs.items() for i, a in enumerate(values)])


def mcnemar_csv(root: Path, p: float) -> Path:
    return write_csv(root / "results/controls/mcnemar.csv", [
        {"model": "compressed", "n": 40, "both_correct": 30, "only_model": 2, "only_e2e": 4,
         "both_wrong": 4, "p_value": p, "p_holm": p, "test_acc_model": 0.88,
         "test_acc_e2e": 0.90}])


def layerwise_files(root: Path, recipes: dict[tuple[str, str], list[float]],
                    finetuned_acc: float | None) -> dict:
    """The layer-wise section's inputs: one conv pruned, two widths, the classifier-only
    network (100 parameters, 2,000 MACs, test accuracy 50%) and, with `finetuned_acc`, it
    fine-tuned; recipes.csv with the hand-set accuracies of each (recipe, selector), repeat r
    at seed r, and comparisons.csv of them."""
    r = root / "results/layerwise"
    pruned = write_json(r / "pruned.json", {
        "cut_layer": "conv1_1", "pool": 2, "tolerance": 0.01, "batchnorm": "reestimate",
        "bn_images": 30, "n_samples": 10, "channels_before": 4, "channels_after": 2,
        "seconds": 0.5, "layers": [{"layer": "conv1_1", "before": 4, "after": 2, "map": [2, 2],
                                    "si_at_k": 0.3, "best_si": 0.31, "best_k": 3,
                                    "seconds": 0.5}]})
    width = write_json(r / "width.json", {
        "width": 8, "center_si": 0.6, "reference_width": 16, "reference_center_si": 0.6,
        "tolerance": 0.01, "widths": [{"width": w, "si": 0.4, "center_si": 0.6, "val_acc": 0.5,
                                       "parameters": 100 * w} for w in (8, 16)]})
    sides = {key: runs_of(values) for key, values in recipes.items()}
    rows = [compare(sides[(recipe, "si")], sides[(recipe, sel)], a="si", b=sel, what=recipe)
            for recipe, sel in recipes
            if recipe != "from scratch" and sel != "si" and (recipe, "si") in sides]
    if ("fine-tuned", "si") in sides and ("from scratch", "architecture") in sides:
        rows.append(compare(sides[("fine-tuned", "si")], sides[("from scratch", "architecture")],
                            a="si fine-tuned", b="from scratch", what="the pruned architecture"))
    r.mkdir(parents=True, exist_ok=True)
    comparison_table(rows).to_csv(r / "comparisons.csv", index=False)
    files = {"layerwise_pruned": pruned, "layerwise_width": width,
             "layerwise_comparisons": r / "comparisons.csv",
             "layerwise_metrics": write_training(r, test_acc=0.50, parameters=100,
                                                 macs=2000)["metrics"],
             "layerwise_recipes": write_csv(r / "recipes.csv", [
                 {"recipe": recipe, "selector": sel, "repeat": i, "seed": i, "test_acc": a,
                  "params_total": 100, "macs_total": 2000, "epochs": 2, "images_seen": 180}
                 for (recipe, sel), values in recipes.items() for i, a in enumerate(values)])}
    if finetuned_acc is not None:
        files["layerwise_finetuned_metrics"] = write_training(
            r / "finetuned/si/repeat~0", test_acc=finetuned_acc, parameters=100,
            macs=2000)["metrics"]
    return files


def table_number(md: str, start: str) -> int:
    """The number of the one table whose title starts with `start`."""
    found = [n for n, title in enumerate(md_tables(md), start=1) if title.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


def render(inputs: ReportInputs, root: Path, table: pd.DataFrame | None = None) -> str:
    table = sized_table(inputs) if table is None else table
    return render_report(inputs, table, root / "results/report")


# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("p,reading", [
    (0.2, "McNemar's exact test detects no accuracy difference (Holm p = 0.200; no evidence "
          "that they are the same)"),
    (0.001, "McNemar's exact test finds their accuracies differ (Holm p = 0.001)"),
])
def test_what_c_costs(tmp_path, p, reading):
    inputs = base_inputs(tmp_path)
    inputs.mcnemar_csv = mcnemar_csv(tmp_path, p)
    md = render(inputs, tmp_path)
    # 1 - 250/1,000 = 75%, 1 - 4,000/10,000 = 60%; 88% - 90% = -2 points
    assert answer(md, "What does the compression (c) cost against e2e?") == (
        "- **What does the compression (c) cost against e2e?** 75.00% of the parameters and "
        "60.00% of the multiply-accumulates per image removed (cut after conv4_3, 6 of its 32 "
        "channels kept, a new classifier), for a change in test accuracy of -2.00 pp (88.00% "
        f"against 90.00%); {reading} ([Tables 8–10](#size-cost-and-accuracy-before-and-after)).")
    assert table_number(md, "Parameters before (e2e) and after compression") == 8
    assert table_number(md, "Test accuracy before (e2e, head) and after compression") == 10


def test_si_loses_to_l1_and_no_difference_from_random_is_detected(tmp_path):
    inputs = base_inputs(tmp_path)
    # SI 0.80, 0.82; L1 0.90, 0.92: d = -0.10, -0.10, sd 0, the interval is the point -10 pp;
    # random 0.81, 0.85: d = -0.01, -0.03: mean -2 pp, half-width 12.7062 pp: [-14.71, +10.71]
    with_selectors(inputs, tmp_path, {"si": [0.80, 0.82], "l1": [0.90, 0.92],
                                      "random": [0.81, 0.85]})
    md = render(inputs, tmp_path)
    line = answer(md, "Do SI's channels beat")
    assert line == (
        "- **Do SI's channels beat L1's and random ones?** At (c)'s cut and k = 6 (classifier "
        "only, 2 repeats each): L1 beats SI by +10.00 pp (91.00% against 81.00%; 95% interval "
        "[+10.00, +10.00] pp, paired by seed, n = 2); SI against random: no difference detected "
        "over 2 repeats (-2.00 pp, 95% interval [-14.71, +10.71] pp, paired by seed) "
        "([Table 11](#selectors-at-the-chosen-k)).")
    assert "SI beats" not in line
    assert table_number(md, "Test accuracy at the chosen k by channel selector") == 11


def test_si_beats_random_and_one_seed_in_common_is_not_read(tmp_path):
    inputs = base_inputs(tmp_path)
    # SI 0.90, 0.92 against random 0.80, 0.81: d = 0.10, 0.11: mean +10.50 pp, half-width
    # 12.7062 * 0.5 = 6.35 pp: [+4.15, +16.85]; L1 has one repeat (seed 0): no interval
    with_selectors(inputs, tmp_path, {"si": [0.90, 0.92], "l1": [0.95],
                                      "random": [0.80, 0.81]})
    line = answer(render(inputs, tmp_path), "Do SI's channels beat")
    assert "(classifier only, 1 to 2 repeats): " in line
    assert ("SI against L1: -5.00 pp (90.00% against 95.00%), one seed in common: no "
            "interval; ") in line
    assert ("SI beats random by +10.50 pp (91.00% against 80.50%; 95% interval [+4.15, +16.85] "
            "pp, paired by seed, n = 2)") in line


def test_layerwise_answers(tmp_path):
    inputs = base_inputs(tmp_path)
    recipes = {
        # classifier only: SI 0.50, 0.52; L1 0.60, 0.62 (d = -0.10, -0.10: L1 ahead, [10, 10]);
        # random 0.40, 0.42 (d = 0.10, 0.10: SI ahead)
        ("classifier only", "si"): [0.50, 0.52], ("classifier only", "l1"): [0.60, 0.62],
        ("classifier only", "random"): [0.40, 0.42],
        # fine-tuned: SI 0.70, 0.74; L1 0.71, 0.73 (d = -0.01, +0.01: mean 0, half-width
        # 12.7062 * 0.01 = 12.71 pp); random one repeat (seed 0: d = 0)
        ("fine-tuned", "si"): [0.70, 0.74], ("fine-tuned", "l1"): [0.71, 0.73],
        ("fine-tuned", "random"): [0.70],
        # the architecture from scratch 0.60, 0.64: d = 0.10, 0.10 behind SI fine-tuned
        ("from scratch", "architecture"): [0.60, 0.64]}
    for key, path in layerwise_files(tmp_path, recipes, finetuned_acc=0.895).items():
        setattr(inputs, key, path)
    md = render(inputs, tmp_path)
    recipes_table = table_number(md, "Layer-wise pruning, every recipe")
    line = answer(md, "Do SI's channels beat")
    assert line.endswith(
        "Layer-wise, at SI's channel counts in every conv layer: classifier only: L1 beats SI by "
        "+10.00 pp (61.00% against 51.00%; 95% interval [+10.00, +10.00] pp, paired by seed, "
        "n = 2); classifier only: SI beats random by +10.00 pp (51.00% against 41.00%; 95% "
        "interval [+10.00, +10.00] pp, paired by seed, n = 2); fine-tuned: SI against L1: no "
        "difference detected over 2 repeats (+0.00 pp, 95% interval [-12.71, +12.71] pp, paired "
        "by seed); "
        "fine-tuned: SI against random: +0.00 pp (70.00% against 70.00%), one seed in common: "
        f"no interval ([Table {recipes_table}](#layer-wise-si-pruning-of-every-conv-layer)).")
    line = answer(md, "Pruned, or trained from scratch?")
    assert line.endswith(
        "Layer-wise, SI's pruned network fine-tuned beats the same architecture from scratch by "
        "+10.00 pp (72.00% against 62.00%; 95% interval [+10.00, +10.00] pp, paired by seed, "
        "n = 2), at the budgets of "
        f"[Table {recipes_table}](#layer-wise-si-pruning-of-every-conv-layer).")


def test_pruned_or_from_scratch_at_c(tmp_path):
    """(c)'s architecture from scratch against the compressed model: one run each, the exact
    test on the test images (9 images only scratch gets right, 1 only the compressed one:
    p = 2 (1 + 10) / 2^10 = 0.0215)."""
    inputs = base_inputs(tmp_path)
    inputs.scratch_metrics = write_training(tmp_path / "results/scratch", test_acc=0.85,
                                             parameters=250)["metrics"]
    row = dict(compare([{"seed": 0, "test_acc": 0.85}], [{"seed": 0, "test_acc": 0.88}],
                       a="scratch", b="compressed", what="one run each"),
               only_a=9, only_b=1, p_value=0.021484375, p_holm=0.021484375)
    inputs.comparisons_csv = write_csv(tmp_path / "results/controls/comparisons.csv", [row])
    md = render(inputs, tmp_path)
    versus_table = table_number(md, "The compressed model (classifier only")
    assert answer(md, "Pruned, or trained from scratch?") == (
        "- **Pruned, or trained from scratch?** (c)'s architecture from scratch against the "
        "compressed model: -3.00 pp (85.00% against 88.00%), one run each: no interval; the "
        "exact test finds the accuracies differ (Holm p = 0.021) "
        f"([Table {versus_table}](#pruned-from-scratch)).")


@pytest.mark.parametrize("accs,verdict", [
    # losses 0.005, 0.003, 0.004 of e2e's 90%: mean 0.4 points, sd 0.1, half-width
    # 4.3027 * 0.1 / sqrt 3 = 0.25: [0.15, 0.65], within 1 point
    ([0.895, 0.897, 0.896], "reaches it (fine-tuned)"),
    # losses 0.0, 0.02: mean 1 point, half-width 12.7 points: the interval straddles 1
    ([0.90, 0.88], "cannot decide it (fine-tuned: the interval straddles the bound)"),
])
def test_the_claim_is_read_on_the_repeats(tmp_path, accs, verdict):
    inputs = base_inputs(tmp_path)
    files = layerwise_files(tmp_path, {("classifier only", "si"): [0.5] * len(accs),
                                       ("fine-tuned", "si"): accs}, finetuned_acc=accs[0])
    for key, path in files.items():
        setattr(inputs, key, path)
    md = render(inputs, tmp_path)
    line = answer(md, "Does the layer-wise pruning")
    result_table = table_number(md, "The layer-wise pruned model against e2e")
    assert f"this run {verdict}: " in line
    assert line.endswith(f"([Table {result_table}](#layer-wise-si-pruning-of-every-conv-layer)).")
    if len(accs) == 3:
        assert ("fine-tuned, the layer-wise network removes 90.00% of the parameters and 80.00% "
                "of the multiply-accumulates and its test accuracy changes by -0.40 pp (95% "
                "interval [-0.65 pp, -0.15 pp], n = 3): met") in line


@pytest.mark.parametrize("finetuned", [[0.885, 0.884], None])
def test_the_claim_not_reached(tmp_path, finetuned):
    """Fine-tuned, 1.5 and 1.6 points lost: mean 1.55, half-width 12.7062 * 0.05 = 0.64, the
    interval [0.91, 2.19] straddles 1 -> undecided; classifier only, 40 points lost in both
    repeats: not met. Without the fine-tuning only the classifier-only network is read."""
    inputs = base_inputs(tmp_path)
    recipes = {("classifier only", "si"): [0.5, 0.5]}
    if finetuned:
        recipes[("fine-tuned", "si")] = finetuned
    files = layerwise_files(tmp_path, recipes, finetuned[0] if finetuned else None)
    for key, path in files.items():
        setattr(inputs, key, path)
    line = answer(render(inputs, tmp_path), "Does the layer-wise pruning")
    assert ("classifier only, the layer-wise network removes 90.00% of the parameters and "
            "80.00% of the multiply-accumulates and its test accuracy changes by -40.00 pp (95% "
            "interval [-40.00 pp, -40.00 pp], n = 2): not met") in line
    if finetuned:
        assert "this run cannot decide it (fine-tuned: the interval straddles the bound): " in line
        assert ("fine-tuned, the layer-wise network removes 90.00% of the parameters and "
                "80.00% of the multiply-accumulates and its test accuracy changes by -1.55 pp "
                "(95% interval [-2.19 pp, -0.91 pp], n = 2): undecided") in line
    else:
        assert "this run does not reach it: " in line


def test_what_was_not_run_is_said(tmp_path):
    md = render(base_inputs(tmp_path), tmp_path)
    assert answer(md, "Do SI's channels beat").endswith(
        "Not compared: the controls of (c) are not among this report's inputs.")
    assert answer(md, "Pruned, or trained from scratch?").endswith(
        "(c)'s pruned architecture was not trained from scratch (`controls.scratch`).")
    assert answer(md, "Does the layer-wise pruning").endswith(
        "Layer-wise pruning was not run (`layerwise.enabled`).")
    assert "McNemar's exact test finds" not in md and "detects no accuracy difference" not in md


def test_the_answers_come_first_and_link_to_headings(tmp_path):
    inputs = base_inputs(tmp_path)
    with_selectors(inputs, tmp_path, {"si": [0.8, 0.82], "l1": [0.9, 0.92]})
    md = render(inputs, tmp_path)
    assert report.sections(inputs)[:2] == ["Answers", "Summary"]
    # every link of the answers is a heading's anchor as GitHub writes it
    headings = {"#" + re.sub(r"[^\w\- ]", "", h.lstrip("#").strip().lower()).replace(" ", "-")
                for h in md.splitlines() if h.startswith("## ") or h.startswith("### ")}
    links = re.findall(r"\]\((#[^)]+)\)", answers_of(md))
    assert links and set(links) <= headings, (links, headings)
    assert "#selectors-at-the-chosen-k" in links


def test_every_figure_is_a_paragraph_of_its_own(tmp_path):
    """A figure right under a paragraph or a list item joins it (Markdown's lazy
    continuation): the width's choice and the claim's bullets each end with a blank line."""
    inputs = base_inputs(tmp_path)
    files = layerwise_files(tmp_path, {("classifier only", "si"): [0.5, 0.5]}, 0.885)
    for key, path in files.items():
        setattr(inputs, key, path)
    lw = tmp_path / "results/layerwise"
    inputs.layerwise_kept_plot, inputs.layerwise_width_plot, inputs.layerwise_layer_si_plot = \
        lw / "kept.png", lw / "width.png", lw / "layer_si.png"
    lines = render(inputs, tmp_path).splitlines()
    figures = [i for i, line in enumerate(lines) if line.startswith("![Figure")]
    # the heatmap and one trial, two per model, the cut and feature SI, three layer-wise
    assert len(figures) == 2 + 4 * 2 + 2 + 3
    assert all(lines[i - 1] == "" for i in figures), [lines[i - 1] for i in figures if lines[i - 1]]
