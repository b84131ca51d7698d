"""The report: summary.csv numbers, every section, table and figure of report.md, from a
complete fake set of artefacts (tiny models, small tables, tiny PNGs)."""

import os
import re
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sicompress import markdown_report as report  # noqa: E402
from sicompress.artifacts import write_json  # noqa: E402
from sicompress.model import (build_model, checkpoint_payload, parameter_counts,  # noqa: E402
                              vgg_arch)
from sicompress.pruning import build_compressed, macs_per_image  # noqa: E402
from sicompress.markdown_report import ModelArtefacts, ReportInputs, summary_table, write_report  # noqa: E402

WIDTH = 0.0625  # conv channels 4, 4 | 8, 8 | 16, 16, 16 | 32 ...; pool3 output 16 x 4 x 4
CUT = "pool3"
SELECTED = {"channel": [3, 1, 5], "element": [5, 100, 17, 200]}
TEST_ACC = {"search": 0.4402, "e2e": 0.9012, "head": 0.8843, "compressed": 0.8711}
BENCHMARKS = {  # path below results/benchmarks -> (seconds, max_rss)
    "train_e2e.tsv": (3725.5, 2048.25),
    "layer_si/e2e.tsv": (61.0, "NA"),
    "lr_trial/lr~0.02_step~6.tsv": (120.25, 900.0),
}
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"


def config(source: str, path: str | None, unit: str) -> dict:
    return {
        "seed": 0,
        "data": {"source": source, "path": path, "val_fraction": 0.1, "si_fraction": 0.1,
                 "si_test_fraction": 0.1},
        "model": {"width": WIDTH, "classifier_hidden": [16], "dropout": 0.5},
        "train": {"epochs": 10, "batch_size": 128, "momentum": 0.9, "weight_decay": 5e-4,
                  "gamma": 0.1, "augment": True},
        "lr_search": {"lrs": [0.05, 0.02], "step_sizes": [6], "epochs": 2},
        "head": {"epochs": 4, "lr": None, "step_size": None, "classifier_hidden": [8],
                 "dropout": 0.5},
        "si": {"order": 5, "batch_size": 500},
        "compress": {"layer_metric": "si", "layer_tolerance": 0.01, "feature_unit": unit,
                     "feature_tolerance": 0.01, "patience": None, "max_features": None,
                     "epochs": 5, "lr": 0.01, "step_size": None, "classifier_hidden": [8],
                     "dropout": 0.0},
    }


def layer_si_table(arch: dict) -> pd.DataFrame:
    rows = []
    for split in ("train", "test"):
        rows.append([split, 0, "input", "input", 3, 32, 32, 3072, 0.27, 0.28])
        c, h = 3, 32
        for i, layer in enumerate(arch["features"], start=1):
            if layer["kind"] == "conv":
                c = layer["out"]
            else:
                h //= 2
            rows.append([split, i, layer["name"], layer["kind"], c, h, h, c * h * h,
                         0.3 + 0.01 * i, 0.4 + 0.01 * i])
    t = pd.DataFrame(rows, columns=["split", "layer_index", "layer", "kind", "channels", "height",
                                    "width", "features", "si", "center_si"])
    t["si_high"], t["si_soft"], t["order"], t["seconds"] = 0.1, 0.2, 5, 0.5
    return t


def history(epochs: int) -> pd.DataFrame:
    e = list(range(1, epochs + 1))
    return pd.DataFrame({"epoch": e, "lr": 0.02, "train_loss": [1.0 / x for x in e],
                         "train_acc": [0.5 + 0.04 * x for x in e], "val_loss": 0.9,
                         "val_acc": [0.5 + 0.03 * x for x in e], "seconds": 1.5})


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("png") / "tiny.png"
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path, dpi=10)
    plt.close(fig)
    return path


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    e2e = build_model(vgg_arch(WIDTH, hidden=[16]))
    head = build_model(vgg_arch(WIDTH, hidden=[8]))
    head.features.load_state_dict(e2e.features.state_dict())
    compressed = {unit: build_compressed(e2e, CUT, unit, sel, hidden=[8], dropout=0.0, seed=0)
                  for unit, sel in SELECTED.items()}
    return e2e, head, compressed


def make_inputs(root: Path, png: Path, models, *, unit: str, source: str,
                path: str | None) -> ReportInputs:
    res = root / "results"
    cfg = config(source, path, unit)

    def image(p: Path) -> Path:
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, p)
        return p

    write_json(res / "split" / "summary.json", {
        "n_official_train": 50000, "n_official_test": 10000,
        "totals": {"train": 45000, "val": 5000, "si_train": 5000, "si_test": 1000},
        "per_class": {s: {f"c{i}": n // 10 for i in range(10)}
                      for s, n in (("train", 45000), ("val", 5000), ("si_train", 5000),
                                   ("si_test", 1000))},
        "train_mean": [0.49, 0.48, 0.45], "train_std": [0.25, 0.24, 0.26]})

    lr_dir = res / "lr_search"
    lr_dir.mkdir(parents=True)
    pd.DataFrame({"lr": [0.05, 0.02], "step_size": [6, 6], "trial_step": [1, 1],
                  "val_acc": [0.3782, 0.4366], "val_loss": [1.6, 1.5], "best_epoch": [1, 2],
                  "epochs_run": [2, 2], "diverged": [True, False], "test_acc": [0.37, 0.44],
                  "seconds": [5.0, 6.0], "metrics": ["a", "b"], "chosen": [False, True]}
                 ).to_csv(lr_dir / "summary.csv", index=False)
    write_json(lr_dir / "best.json", {"lr": 0.02, "step_size": 6, "val_acc": 0.4366,
                                      "test_acc_of_trial": 0.44, "n_trials": 2, "n_diverged": 1})
    trial_curves = [image(lr_dir / f"lr~{lr}" / "step~6" / "curves.png") for lr in ("0.05", "0.02")]

    e2e, head, compressed = models
    nets = {"search": e2e, "e2e": e2e, "head": head, "compressed": compressed[unit]}
    arts = []
    for name, net in nets.items():
        d = res / name
        d.mkdir(parents=True)
        torch.save(checkpoint_payload(net), d / "model.pt")
        metrics = {"title": name, "best_epoch": 3, "val_acc": TEST_ACC[name] - 0.01,
                   "val_loss": 0.4, "test_acc": TEST_ACC[name], "test_loss": 0.41,
                   "epochs_run": 4, "train_seconds": 12.5, "parameters": parameter_counts(net),
                   "lr": 0.02, "step_size": 2, "settings": {}, "provenance": {}}
        if name == "search":
            metrics.update(grid_lr=0.02, grid_step=6, trial_step=1, full_epochs=10,
                           chosen_from_search={"lr": 0.02, "step_size": 6})
        if name == "compressed":
            metrics["compression"] = {"cut_layer": CUT, "unit": unit, "k": len(SELECTED[unit])}
            metrics["source_model"] = "results/e2e/model.pt"
        write_json(d / "metrics.json", metrics)
        history(4).to_csv(d / "history.csv", index=False)
        layer_si_table(net.arch).to_csv(d / "layer_si.csv", index=False)
        arts.append(ModelArtefacts(name=name, metrics=d / "metrics.json",
                                   history=d / "history.csv", curves=image(d / "curves.png"),
                                   model=d / "model.pt", layer_si=d / "layer_si.csv",
                                   layer_si_plot=image(d / "layer_si.png")))

    comp = res / "compress"
    write_json(comp / "cut.json", {"layer": CUT, "layer_index": 10, "value": 0.6358,
                                   "best_layer": "pool4", "best_layer_index": 14,
                                   "best_value": 0.6401, "metric": "si", "tolerance": 0.01,
                                   "split": "train"})
    sel = SELECTED[unit]
    n_cand = 16 if unit == "channel" else 16 * 4 * 4
    write_json(comp / "selected.json", {
        "unit": unit, "cut_layer": CUT, "shape": [16, 4, 4], "n_candidates": n_cand,
        "n_samples": 5000, "selected": sel, "kept": sorted(sel), "k": len(sel),
        "si_at_k": 0.61, "center_si_at_k": 0.55, "best_si": 0.615, "best_k": len(sel) + 2,
        "si_all": 0.6358, "center_si_all": 0.58, "tolerance": 0.01, "patience": None,
        "steps": len(sel) + 3, "stopped": "all steps run", "seconds": 3.2})
    steps = len(sel) + 3
    pd.DataFrame({"step": range(1, steps + 1), "feature": sel + list(range(6, 9)),
                  "si": [0.4 + 0.03 * i for i in range(steps)],
                  "center_si": [0.3 + 0.03 * i for i in range(steps)]}
                 ).to_csv(comp / "feature_ranking.csv", index=False)

    bench = []
    for rel, (s, rss) in reversed(BENCHMARKS.items()):  # not in workflow order
        p = res / "benchmarks" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{BENCH_HEADER}\n{s}\t0:00:00\t{rss}\tNA\tNA\tNA\tNA\tNA\tNA\t1.0\n")
        bench.append(p)

    return ReportInputs(config=cfg, split_summary=res / "split" / "summary.json",
                        lr_summary=lr_dir / "summary.csv", lr_best=lr_dir / "best.json",
                        lr_heatmap=image(lr_dir / "heatmap.png"), trial_curves=trial_curves,
                        models=arts, cut=comp / "cut.json", cut_plot=image(comp / "cut.png"),
                        selected=comp / "selected.json",
                        ranking=comp / "feature_ranking.csv",
                        feature_si_plot=image(comp / "feature_si.png"), benchmarks=bench)


CASES = [  # unit, source, path, JPEG caveat expected
    ("channel", "torchvision", "data/cifar10", False),
    ("element", "folder", "data/cifar10.tar.gz", True),
    ("channel", "folder", "data/cifar10-png", False),
]


@pytest.mark.parametrize("unit,source,path,jpeg", CASES)
def test_report(tmp_path, png, models, unit, source, path, jpeg):
    inputs = make_inputs(tmp_path, png, models, unit=unit, source=source, path=path)
    out_md = tmp_path / "results" / "report" / "report.md"
    out_csv = tmp_path / "results" / "report" / "summary.csv"
    write_report(inputs, out_md=out_md, out_csv=out_csv)
    md = out_md.read_text()

    # summary.csv: one row per model, numbers from the models and metrics
    table = pd.read_csv(out_csv)
    assert list(table.columns) == report.SUMMARY_COLUMNS
    assert list(table["model"]) == ["search", "e2e", "head", "compressed"]
    e2e, head, compressed = models
    nets = {"search": e2e, "e2e": e2e, "head": head, "compressed": compressed[unit]}
    for _, row in table.iterrows():
        net = nets[row["model"]]
        params, macs = parameter_counts(net), macs_per_image(net.arch)
        for part in ("features", "classifier", "total"):
            assert row[f"params_{part}"] == params[part]
            assert row[f"macs_{part}"] == macs[part]
        assert row["test_acc"] == pytest.approx(TEST_ACC[row["model"]])
        assert row["test_acc_change_vs_e2e"] == pytest.approx(TEST_ACC[row["model"]] - TEST_ACC["e2e"])
        assert row["test_acc_change_vs_head"] == pytest.approx(TEST_ACC[row["model"]] - TEST_ACC["head"])
        assert row["best_epoch"] == 3 and row["epochs_run"] == 4
    comp, full = table.iloc[3], table.iloc[1]
    assert comp["params_total"] < full["params_total"]
    assert comp["macs_features"] < full["macs_features"]
    pd.testing.assert_frame_equal(table, summary_table(inputs), check_dtype=False)

    # markdown: percentages and percentage points
    assert "90.12%" in md and "87.11%" in md
    assert f"{100 * (TEST_ACC['compressed'] - TEST_ACC['e2e']):+.2f} pp" in md
    assert f"{100 * (TEST_ACC['compressed'] - TEST_ACC['head']):+.2f} pp" in md

    # every section, in order
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings == report.SECTIONS

    # every table has a numbered title line, followed by a Markdown table
    lines = md.splitlines()
    titles = [(i, line) for i, line in enumerate(lines) if line.startswith("**Table ")]
    assert [int(re.match(r"\*\*Table (\d+):", t).group(1)) for _, t in titles] == \
        list(range(1, len(titles) + 1))
    for i, _ in titles:
        assert lines[i + 2].startswith("| ") and set(lines[i + 3]) <= set("|-: ")
    text = "\n".join(t for _, t in titles)
    for expected in ("Summary of the trained models", "Learning-rate search",
                     "SI and Center SI per layer", "steps of the forward selection",
                     "Parameters before (e2e) and after", "Multiply-accumulates per image",
                     "Test accuracy before (e2e, head) and after", "Wall time per job"):
        assert expected in text, expected
    assert text.count("SI and Center SI per layer") == 4  # search, e2e, head, compressed
    assert len(titles) == 1 + 1 + 4 + 1 + 3 + 1

    # every figure: a relative link that resolves, then an italic caption line
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    wanted = {inputs.lr_heatmap, *inputs.trial_curves, inputs.cut_plot, inputs.feature_si_plot}
    for m in inputs.models:
        wanted |= {m.curves, m.layer_si_plot}
    resolved = set()
    for link in links:
        assert not os.path.isabs(link.strip("<>"))
        target = (out_md.parent / link.strip("<>")).resolve()
        assert target.is_file(), link
        resolved.add(target)
    assert resolved == {Path(p).resolve() for p in wanted}
    for i, line in enumerate(lines):
        if line.startswith("!["):
            assert re.match(r"\*Figure \d+: .+\*$", lines[i + 2]), lines[i + 2]

    # search, cut and selection decisions
    assert "decided on validation accuracy only" in md
    assert "decided on si_train rows only" in md
    assert "**0.02**" in md and "**6**" in md
    chosen = md[md.index("## " + report.MODEL_TITLES["search"]):md.index("## " + report.MODEL_TITLES["e2e"])]
    assert "lr 0.02, step 6 of the full schedule, 1 in the trial" in chosen
    assert "Test accuracy of the best model: **44.02%**" in chosen
    assert "differs from the decisions above" not in md

    # unit- and source-specific sentences
    assert (report.ELEMENT_NOTE in md) == (unit == "element")
    assert (report.JPEG_CAVEAT in md) == jpeg
    assert ("JPEG copy of CIFAR-10" in md) == jpeg

    # wall time: every job, workflow order, total
    wall = md[md.index("## Wall time per job"):md.index("## Assumptions")]
    jobs = ["lr_trial lr~0.02_step~6", "train_e2e", "layer_si e2e"]
    positions = [wall.index(f"| {job} ") for job in jobs]
    assert positions == sorted(positions)
    total = sum(s for s, _ in BENCHMARKS.values())
    assert re.search(rf"\| \*\*total\*\* +\| +{total:.1f} \| +1:05:07 \|", wall)
    assert "1:02:06" in wall  # train_e2e 3725.5 s

    # assumptions: the subsets with their actual counts, the step scaling
    assum = md[md.index("## Assumptions"):]
    for s in ("5,000 of 50,000", "45,000", "1,000 of 10,000", "lowest index", "MACs",
              "2/10", "compress.lr"):
        assert s in assum, s


def test_benchmark_label():
    assert report.benchmark_label("results/benchmarks/train_e2e.tsv") == ("train_e2e", "train_e2e")
    assert report.benchmark_label("results/benchmarks/layer_si/e2e.tsv") == ("layer_si", "layer_si e2e")
    assert report.benchmark_label("x/benchmarks/lr_trial/lr~0.02_step~6.tsv") == \
        ("lr_trial", "lr_trial lr~0.02_step~6")
    assert report.benchmark_label("b/plot_layer_si/head.tsv", root="b") == \
        ("plot_layer_si", "plot_layer_si head")


def test_jpeg_source(monkeypatch):
    monkeypatch.delenv("CIFAR10_JPEG", raising=False)
    assert report.is_jpeg_source({"data": {"source": "folder", "path": "d/cifar.tgz"}})
    assert report.is_jpeg_source({"data": {"source": "folder", "path": "d/CIFAR_JPEG"}})
    assert report.is_jpeg_source({"data": {"source": "folder", "path": None}})  # $CIFAR10_JPEG
    assert not report.is_jpeg_source({"data": {"source": "folder", "path": "d/cifar-png"}})
    assert not report.is_jpeg_source({"data": {"source": "torchvision", "path": "x.tar.gz"}})


def test_counts_read_as_english():
    assert report._plural(1, "epoch") == "epoch" and report._plural(20, "epoch") == "epochs"
    assert report._plural(None, "epoch") == "epochs"
