"""The Markdown report, read against the files its numbers come from.

Its inputs are written by the real writers: the smoke study run by the real `snakemake`
command (the session's `smoke_run`, shared with the workflow tests), and for the variants the
smoke run has not (a folder of PNG or JPEG images, torchvision, element selection) the real
prepare_data and rank_features/choose_features on the smoke run's data and model. Every number of the
report is compared with the file it comes from, or with a slow reference (parameters counted
on the loaded model, MACs from forward hooks); a key a writer stops writing fails the render.
"""

import json
import re
import shutil
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sicompress import markdown_report as report
from sicompress.compression import choose_features, rank_features
from sicompress.data import prepare_data
from sicompress.markdown_report import ModelArtefacts, ReportInputs, cells, write_report
from sicompress.model import load_model

from conftest import ROOT, macs_by_hooks

MODELS = ["search", "e2e", "head", "compressed"]
QUIET = {"log": lambda m: None}


# ----------------------------------------------------------------------------------------
# Helpers: the report's inputs from a finished run, and its tables read back


def run_inputs(workdir: Path, **changes) -> ReportInputs:
    """ReportInputs of a finished run, as the report rule passes them; `changes` replace
    fields. The config is the resolved one the trainings recorded."""
    r = workdir / "results"
    config = json.loads((r / "e2e/metrics.json").read_text())["provenance"]["config"]
    models = [ModelArtefacts(name=m, metrics=r / m / "metrics.json", history=r / m / "history.csv",
                             curves=r / m / "curves.png", model=r / m / "model.pt",
                             layer_si=r / m / "layer_si.csv", layer_si_plot=r / m / "layer_si.png")
              for m in MODELS]
    fields = dict(
        config=config, split_summary=r / "split/summary.json",
        lr_summary=r / "lr_search/summary.csv", lr_best=r / "lr_search/best.json",
        lr_heatmap=r / "lr_search/heatmap.png",
        trial_curves=[r / f"lr_search/lr~{lr:g}/step~{step:g}/curves.png"  # the rule's order
                      for lr in config["lr_search"]["lrs"]
                      for step in config["lr_search"]["step_sizes"]], models=models,
        cut=r / "compress/cut.json", cut_plot=r / "compress/cut.png",
        selected=r / "compress/selected.json", ranking=r / "compress/feature_ranking.csv",
        feature_si_plot=r / "compress/feature_si.png",
        benchmarks=sorted((r / "benchmarks").rglob("*.tsv")), data=r / "data/cifar10.npz",
        selectors_csv=r / "controls/selectors.csv", frontier_csv=r / "controls/frontier.csv",
        frontier_plot=r / "controls/frontier.png", mcnemar_csv=r / "controls/mcnemar.csv",
        comparisons_csv=r / "controls/comparisons.csv",
        latency_csv=r / "latency/latency.csv", scratch_metrics=r / "scratch/metrics.json",
        layerwise_pruned=r / "layerwise/pruned.json", layerwise_kept_plot=r / "layerwise/kept.png",
        layerwise_width=r / "layerwise/width.json", layerwise_width_plot=r / "layerwise/width.png",
        layerwise_metrics=r / "layerwise/metrics.json",
        layerwise_layer_si_plot=r / "layerwise/layer_si.png",
        layerwise_recipes=r / "layerwise/recipes.csv",
        layerwise_finetuned_metrics=r / "layerwise/finetuned/si/repeat~0/metrics.json",
        layerwise_finetuned_layer_si_plot=r / "layerwise_finetuned/layer_si.png",
        layerwise_mcnemar=r / "layerwise/mcnemar.csv",
        layerwise_comparisons=r / "layerwise/comparisons.csv")
    fields.update(changes)
    return ReportInputs(**fields)


def md_tables(md: str) -> dict[str, pd.DataFrame]:
    """Every numbered table of report.md as {title: cells as text}, in order."""
    lines = md.splitlines()
    out = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"\*\*Table (\d+): (.+)\*\*", line)
        if not m:
            continue
        assert int(m.group(1)) == len(out) + 1, line  # numbered in order
        rows = []
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            rows.append([c.strip() for c in row.strip("|").split(" | ")])
        assert set(lines[i + 3]) <= set("|-: "), lines[i + 3]
        out[m.group(2)] = pd.DataFrame(rows[2:], columns=rows[0])
    return out


def table_starting(tables: dict[str, pd.DataFrame], start: str) -> pd.DataFrame:
    found = [t for title, t in tables.items() if title.startswith(start)]
    assert len(found) == 1, (start, list(tables))
    return found[0]


def pct(x) -> str:
    return f"{100 * float(x):.2f}%"


# ----------------------------------------------------------------------------------------
# One source for the assumptions; templates shipped with the package


def test_readme_assumptions_are_the_template():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## How the study is set up (assumptions)"):]
    section = section[:section.index("\n## ", 1)]
    m = re.search(r"-->\n(.*)<!-- end of assumptions.md -->", section, flags=re.S)
    assert m, "README's assumptions section lost its markers"
    assert m.group(1) == report.ASSUMPTIONS.read_text(), (
        "README's assumptions differ from src/sicompress/templates/assumptions.md, their one "
        "source: edit that file and copy it between the markers in README.md")


def test_templates_are_package_data():
    import importlib.resources
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["sicompress"]
    templates = importlib.resources.files("sicompress") / "templates"
    names = sorted(p.name for p in templates.iterdir() if not p.name.startswith("."))
    # the template of every part of the report, the shared macros and the assumptions
    assert names == sorted([f"{part.NAME}.md.j2" for part in report.PARTS]
                           + ["macros.md.j2", "assumptions.md"])
    for name in names:  # each matched by a package-data pattern, so a wheel carries it
        assert any(Path("templates", name).match(p) for p in patterns), name


def test_a_missing_key_fails_the_render():
    env = report.environment()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("stopped: {{ sel.stopped }}").render(sel={"k": 3})


# ----------------------------------------------------------------------------------------
# The smoke run's report, number by number against its sources


@pytest.mark.workflow
def test_summary_against_metrics_and_models(smoke_run):
    r = smoke_run / "results"
    table = pd.read_csv(r / "report/summary.csv")
    assert list(table.columns) == report.SUMMARY_COLUMNS and list(table["model"]) == MODELS
    acc = {m: json.loads((r / m / "metrics.json").read_text())["test_acc"] for m in MODELS}
    for _, row in table.iterrows():
        metrics = json.loads((r / row["model"] / "metrics.json").read_text())
        net = load_model(r / row["model"] / "model.pt")
        for key in ("test_acc", "val_acc", "best_epoch", "epochs_run", "train_seconds"):
            assert row[key] == pytest.approx(metrics[key]), (row["model"], key)
        params = {"features": sum(p.numel() for p in net.features.parameters()),
                  "classifier": sum(p.numel() for p in net.classifier.parameters()),
                  "total": sum(p.numel() for p in net.parameters())}
        for part, value in params.items():
            assert row[f"params_{part}"] == value == metrics["parameters"][part], part
        for part, value in macs_by_hooks(net).items():
            assert row[f"macs_{part}"] == value, (row["model"], part)
        for ref in ("e2e", "head"):
            assert row[f"test_acc_change_vs_{ref}"] == pytest.approx(acc[row["model"]] - acc[ref])


@pytest.mark.workflow
def test_report_against_its_sources(smoke_run):
    r = smoke_run / "results"
    md = (r / "report/report.md").read_text()
    tables = md_tables(md)
    metrics = {m: json.loads((r / m / "metrics.json").read_text()) for m in MODELS}
    summary = pd.read_csv(r / "report/summary.csv")

    e2e_row, comp_row = summary.iloc[1], summary.iloc[3]
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings == report.sections(run_inputs(smoke_run))
    assert report.CONTROLS_TITLE in headings and report.LAYERWISE_TITLE in headings

    # Table 1: summary, from metrics.json and summary.csv
    t = table_starting(tables, "Summary of the trained models")
    assert list(t["model"]) == MODELS
    for (_, row), (_, src) in zip(t.iterrows(), summary.iterrows()):
        m = metrics[row["model"]]
        assert row["test acc"] == pct(m["test_acc"]) and row["val acc"] == pct(m["val_acc"])
        assert row["best epoch"] == str(m["best_epoch"])
        assert row["params total"] == f"{m['parameters']['total']:,}"
        assert row["MACs total"] == f"{src['macs_total']:,}"

    # the search: every trial of lr_search/summary.csv, the choice of best.json
    grid = pd.read_csv(r / "lr_search/summary.csv")
    best = json.loads((r / "lr_search/best.json").read_text())
    t = table_starting(tables, "Learning-rate search: validation accuracy")
    assert sorted(map(float, t["lr"])) == sorted(grid["lr"])
    for _, row in t.iterrows():
        src = grid[grid["lr"] == float(row["lr"])].iloc[0]
        assert row["val acc"] == pct(src["val_acc"])
        assert row["trial step"] == str(src["trial_step"])
        assert (row["chosen"] == "**yes**") == bool(src["chosen"])
    assert f"initial lr **{best['lr']:g}**, StepLR step **{best['step_size']}** epochs " \
           f"(validation accuracy {pct(best['val_acc'])})" in md

    # per model: the paragraph from metrics.json, the layer table from layer_si.csv
    for name in MODELS:
        m = metrics[name]
        part = md[md.index("## " + report.MODEL_TITLES[name]):]
        assert f"Best epoch by validation accuracy: **{m['best_epoch']}** (validation accuracy " \
               f"{pct(m['val_acc'])}). Test accuracy of the best model: **{pct(m['test_acc'])}**" \
               f" (test loss {m['test_loss']:.4f})" in part
        si = pd.read_csv(r / name / "layer_si.csv")
        t = table_starting(tables, report.MODEL_TITLES[name] + ": SI and Center SI per layer")
        assert len(t) == si["layer_index"].nunique()
        for _, row in t.iterrows():
            for col, metric, split in (("SI train", "si", "train"), ("SI test", "si", "test"),
                                       ("CSI train", "center_si", "train"),
                                       ("CSI test", "center_si", "test")):
                src = si[(si["layer_index"] == int(row["#"])) & (si["split"] == split)].iloc[0]
                assert row["layer"] == src["layer"]
                assert row[col] == f"{src[metric]:.4f}", (name, row["layer"], col)
        # the caption says which rows were copied from e2e's table (a prefix of the extractor)
        title = [t for t in tables if t.startswith(report.MODEL_TITLES[name] + ": SI and")][0]
        reused = si[(si["split"] == "train") & si["reused_from"].notna()]
        if reused.empty:
            assert title.endswith("; every row measured on this model"), title
        else:
            n = len(reused)
            first = f"rows 0–{n - 1} (input to {reused['layer'].iloc[-1]}) are e2e's" if n > 1 \
                else "row 0 (input) is e2e's"
            assert f"; {first}, copied from its table" in title, title
            assert title.endswith("; the other rows are measured on this model"), title
    assert t["layer"].iloc[-1] == "logits"  # the classifier's rows are in the tables

    # the decisions: cut.json, selected.json, feature_ranking.csv
    cut = json.loads((r / "compress/cut.json").read_text())
    sel = json.loads((r / "compress/selected.json").read_text())
    assert f"cut after **{cut['layer']}** (layer {cut['layer_index']}), whose SI is " \
           f"{cut['value']:.4f}. The best layer is {cut['best_layer']} (layer " \
           f"{cut['best_layer_index']}) with SI {cut['best_value']:.4f}" in md
    assert f"Kept k = **{sel['k']}** channels with SI {sel['si_at_k']:.4f} and Center SI " \
           f"{sel['center_si_at_k']:.4f}" in md
    assert f"The selection stopped: {sel['stopped']}." in md
    ranking = pd.read_csv(r / "compress/feature_ranking.csv")
    t = table_starting(tables, "First")
    assert len(t) == min(report.RANKING_ROWS, len(ranking))
    for (_, row), (_, src) in zip(t.iterrows(), ranking.iterrows()):
        assert (row["step"], row["channel"], row["SI"]) == \
            (str(int(src["step"])), str(int(src["feature"])), f"{src['si']:.4f}")
        assert row["kept"] == ("yes" if src["step"] <= sel["k"] else "no")
    e2e, comp = summary.iloc[1], summary.iloc[3]
    t = table_starting(tables, "Parameters before (e2e) and after")
    assert list(t["before (e2e)"]) == [f"{e2e[f'params_{p}']:,}" for p in ("features", "classifier", "total")]
    assert list(t["after (compressed)"]) == [f"{comp[f'params_{p}']:,}" for p in ("features", "classifier", "total")]
    assert t["reduction"].iloc[2] == \
        f"{100 * (e2e['params_total'] - comp['params_total']) / e2e['params_total']:.2f}%"
    assert "differs from the decisions above" not in md

    # latency: each model's size is the one its training recorded (the layer-wise ones too)
    t = table_starting(tables, "Measured time per image").set_index("model")
    recorded = {m: r / m / "metrics.json" for m in ("e2e", "head", "compressed", "scratch")}
    recorded.update(layerwise=r / "layerwise/metrics.json",
                    layerwise_finetuned=r / "layerwise/finetuned/si/repeat~0/metrics.json")
    assert set(t.index) == set(recorded)
    for name, path in recorded.items():
        assert t.loc[name, "params total"] == \
            f"{json.loads(path.read_text())['parameters']['total']:,}", name

    # the first screen: (c)'s cost against e2e, from summary.csv
    cost = md[md.index("## Answers"):md.index("## Summary")]
    assert f"{100 * (1 - comp_row['params_total'] / e2e_row['params_total']):.2f}% of the " \
           f"parameters and {100 * (1 - comp_row['macs_total'] / e2e_row['macs_total']):.2f}% " \
           f"of the multiply-accumulates per image removed" in cost

    # wall time: one row per benchmark file, seconds as written, the total their sum
    t = table_starting(tables, "Wall time per job")
    bench = {report.benchmark_label(p)[1]: pd.read_csv(p, sep="\t")["s"].iloc[0]
             for p in (r / "benchmarks").rglob("*.tsv")}
    assert set(t["job"][:-1]) == set(bench) and t["job"].iloc[-1] == "**total**"
    for _, row in t.iloc[:-1].iterrows():
        assert row["seconds"] == f"{bench[row['job']]:.1f}", row["job"]
    # the total to 0.1 s (sums in another order may round the last digit the other way)
    assert abs(float(t["seconds"].iloc[-1]) - sum(bench.values())) <= 0.05 + 1e-9

    # this run's settings: counts of split/summary.json, the format recorded by prepare_data
    split = json.loads((r / "split/summary.json").read_text())
    t = table_starting(tables, "The settings and counts of this run").set_index("setting")["value"]
    totals = split["totals"]
    assert t["val"].startswith(f"{totals['val']:,} of {split['n_official_train']:,} images")
    assert t["si_test"].startswith(f"{totals['si_test']:,} of {split['n_official_test']:,} images")
    assert t["train"].startswith(f"{totals['train']:,} images")
    with np.load(r / "data/cifar10.npz") as z:
        assert t["data"] == f"source synthetic, image format {z['image_format']}"
    assert str(np.load(r / "data/cifar10.npz")["image_format"]) == "synthetic"
    assert report.ASSUMPTIONS.read_text() in md

    # every figure: a relative link to a file of the run, then its numbered caption
    lines = md.splitlines()
    links = [(i, m.group(1)) for i, line in enumerate(lines)
             if (m := re.fullmatch(r"!\[Figure \d+\]\((.+)\)", line))]
    targets = {(r / "report" / link).resolve() for _, link in links}
    assert targets == {p.resolve() for p in [
        r / "lr_search/heatmap.png", *(r / "lr_search").glob("lr~*/step~*/curves.png"),
        *(r / m / f for m in MODELS for f in ("curves.png", "layer_si.png")),
        r / "compress/cut.png", r / "compress/feature_si.png", r / "controls/frontier.png",
        r / "layerwise/kept.png", r / "layerwise/width.png", r / "layerwise/layer_si.png",
        r / "layerwise_finetuned/layer_si.png"]}
    for n, (i, _) in enumerate(links, start=1):
        assert re.fullmatch(rf"\*Figure {n}: .+\*", lines[i + 2]), lines[i + 2]
        assert lines[i - 1] == "", lines[i - 1]  # a paragraph of its own


@pytest.mark.workflow
def test_the_report_is_rendered_again_identically(smoke_run):
    """run_inputs passes what the report rule passes (the variants below rest on it)."""
    again = smoke_run / "results/report_again"  # beside results/report: the same image links
    try:
        write_report(run_inputs(smoke_run), out_md=again / "report.md",
                     out_csv=again / "summary.csv")
        for name in ("report.md", "summary.csv"):
            assert (again / name).read_text() == (smoke_run / "results/report" / name).read_text()
    finally:
        shutil.rmtree(again, ignore_errors=True)


@pytest.mark.workflow
def test_a_key_the_writer_drops_fails_the_report(smoke_run, tmp_path):
    r = tmp_path / "results"
    shutil.copytree(smoke_run / "results", r)
    sel = json.loads((r / "compress/selected.json").read_text())
    del sel["stopped"]
    (r / "compress/selected.json").write_text(json.dumps(sel))
    with pytest.raises(jinja2.UndefinedError, match="stopped"):
        write_report(run_inputs(tmp_path), out_md=tmp_path / "report.md",
                     out_csv=tmp_path / "summary.csv")


# ----------------------------------------------------------------------------------------
# Variants the smoke run has not: the data's recorded format, torchvision, element selection


def image_folder(workdir: Path, root: Path, fmt: str) -> Path:
    """A few of the smoke run's images per class as files train/<class>/*, test/<class>/*."""
    with np.load(workdir / "results/data/cifar10.npz") as z:
        for split in ("train", "test"):
            x, y = z[f"x_{split}"], z[f"y_{split}"]
            for c, name in enumerate(z["classes"]):
                d = root / split / str(name)
                d.mkdir(parents=True)
                for n in np.flatnonzero(y == c)[:2]:
                    Image.fromarray(x[n]).save(d / f"{n}.img", format=fmt)
    return root


@pytest.mark.workflow
@pytest.mark.parametrize("folder,fmt,jpeg", [
    ("cifar10-jpeg", "PNG", False),   # a name that says JPEG does not make the data JPEG
    ("images", "JPEG", True),
])
def test_data_format_is_the_one_prepare_data_read(smoke_run, tmp_path, folder, fmt, jpeg):
    root = image_folder(smoke_run, tmp_path / folder, fmt)
    summary = prepare_data("folder", str(root), tmp_path / "data.npz", **QUIET)
    assert summary["image_format"] == fmt
    inputs = run_inputs(smoke_run, data=tmp_path / "data.npz")
    inputs.config = {**inputs.config, "data": {**inputs.config["data"], "source": "folder",
                                               "path": str(root)}}
    write_report(inputs, out_md=tmp_path / "report.md", out_csv=tmp_path / "summary.csv")
    intro = (tmp_path / "report.md").read_text().split("## Summary")[0]
    assert ("a JPEG copy of CIFAR-10" in intro) == jpeg
    assert ("not strictly comparable with published ones" in intro) == jpeg
    if not jpeg:
        assert f"`{folder}` (image format {fmt}, as read)" in intro


@pytest.mark.workflow
def test_torchvision_and_an_unrecorded_format(smoke_run, tmp_path):
    inputs = run_inputs(smoke_run)
    inputs.config = {**inputs.config, "data": {**inputs.config["data"], "source": "torchvision"}}
    write_report(inputs, out_md=tmp_path / "a.md", out_csv=tmp_path / "a.csv")
    assert "The data are the canonical CIFAR-10 release" in (tmp_path / "a.md").read_text()
    inputs.config["data"] = {**inputs.config["data"], "source": "folder", "path": "x/c.tar.gz"}
    inputs.data = None  # e.g. an npz from before the format was recorded
    write_report(inputs, out_md=tmp_path / "b.md", out_csv=tmp_path / "b.csv")
    md = (tmp_path / "b.md").read_text()
    assert "`c.tar.gz` (image format not recorded" in md and "JPEG copy" not in md


@pytest.mark.workflow
def test_element_selection(smoke_run, tmp_path):
    r = smoke_run / "results"
    rank_features(model_path=r / "e2e/model.pt", data_npz=r / "data/cifar10.npz",
                  split_npz=r / "split/split.npz", cut_json=r / "compress/cut.json",
                  ranking_csv=tmp_path / "ranking.csv", info_json=tmp_path / "ranking.json",
                  unit="element", max_features=12, **QUIET)
    out = choose_features(ranking_csv=tmp_path / "ranking.csv", info_json=tmp_path / "ranking.json",
                          selected_json=tmp_path / "sel.json", **QUIET)
    inputs = run_inputs(smoke_run, ranking=tmp_path / "ranking.csv", selected=tmp_path / "sel.json")
    write_report(inputs, out_md=tmp_path / "report.md", out_csv=tmp_path / "summary.csv")
    md = (tmp_path / "report.md").read_text()
    assert 'With unit "element" the conv layers do not shrink' in md
    assert f"Kept k = **{out['k']}** elements" in md
    c, h, w = out["shape"]
    t = table_starting(md_tables(md), "First")
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    for (_, row), f in zip(t.iterrows(), ranking["feature"]):
        assert row["element"] == str(f)
        assert row["(c, y, x)"] == str(tuple(int(v) for v in np.unravel_index(f, (c, h, w))))
    # the compressed model of the run kept channels: the report says it differs
    assert "**this differs from the decisions above**" in md


def test_benchmark_label():
    assert report.benchmark_label("results/benchmarks/train_e2e.tsv") == ("train_e2e", "train_e2e")
    assert report.benchmark_label("results/benchmarks/layer_si/e2e.tsv") == ("layer_si", "layer_si e2e")
    assert report.benchmark_label("x/benchmarks/lr_trial/lr~0.02_step~6.tsv") == \
        ("lr_trial", "lr_trial lr~0.02_step~6")
    assert report.benchmark_label("b/plot_layer_si/head.tsv", root="b") == \
        ("plot_layer_si", "plot_layer_si head")


def test_counts_read_as_english():
    assert cells.plural(1, "epoch") == "epoch" and cells.plural(20, "epoch") == "epochs"
    assert cells.plural(None, "epoch") == "epochs"


@pytest.mark.workflow
def test_the_layerwise_recipe_table_against_each_trainings_files(smoke_run):
    """The layer-wise section's first table: mean ± sd of each recipe x selector computed here
    from every run's own metrics.json (statistics.stdev), every repeat, and the epochs."""
    import statistics

    r = smoke_run / "results"
    md = (r / "report/report.md").read_text()
    lw = md[md.index("## Layer-wise SI pruning"):]
    first = re.search(r"\*\*Table \d+: (.+)\*\*", lw).group(1)
    assert first.startswith("Layer-wise pruning, every recipe")
    table = table_starting(md_tables(md), "Layer-wise pruning, every recipe")

    def folder(recipe, selector, repeat):
        if recipe == "classifier only":
            return r / ("layerwise" if (selector, repeat) == ("si", 0)
                        else f"layerwise/controls/{selector}/repeat~{repeat}")
        if recipe == "fine-tuned":
            return r / f"layerwise/finetuned/{selector}/repeat~{repeat}"
        return r / f"layerwise/scratch/repeat~{repeat}"

    rows = [("classifier only", s) for s in ("si", "l1", "random")] \
        + [("fine-tuned", s) for s in ("si", "l1", "random")] + [("from scratch", "architecture")]
    assert list(zip(table["recipe"], table["selector"])) == rows
    for (recipe, selector), (_, row) in zip(rows, table.iterrows()):
        ms = [json.loads((folder(recipe, selector, k) / "metrics.json").read_text())
              for k in (0, 1)]
        accs = [m["test_acc"] for m in ms]
        assert row["test acc mean ± sd"] == (f"{100 * statistics.mean(accs):.2f} ± "
                                             f"{100 * statistics.stdev(accs):.2f}%")
        assert row["each repeat"] == ", ".join(pct(a) for a in accs)
        assert row["epochs"] == str(ms[0]["epochs_run"])
        assert row["params total"] == f"{ms[0]['parameters']['total']:,}"
