"""The real `snakemake` command on the tiny synthetic configuration, and a dry run of the study."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import torch
from scipy.stats import binomtest
from sklearn.neighbors import NearestCentroid, NearestNeighbors

from sicompress.decisions import choose_cut, choose_k
from sicompress.activations import layer_activations
from sicompress.model import load_model

from conftest import ROOT, SMOKE, macs_by_hooks, snakemake  # noqa: F401  (smoke_run: a fixture)

pytestmark = pytest.mark.workflow


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = dry_run_output.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M) if m.group(1) != "total"}


def test_dry_run_of_the_study_lists_every_stage(tmp_path):
    out = snakemake("-n", workdir=tmp_path).stdout
    counts = job_counts(out)
    grid = 4 * 2  # lr_search.lrs x lr_search.step_sizes in config.yaml
    assert counts["prepare_data"] == 1 and counts["split"] == 1
    assert counts["lr_trial"] == grid
    assert counts["select_lr"] == counts["train_e2e"] == counts["train_head"] == 1
    # the search's chosen trial, e2e, head, compressed, the layer-wise pruned model, fine-tuned
    assert counts["layer_si"] == 6 and counts["plot_layer_si"] == 6
    for rule in ("cut_layers", "rank_features", "choose_features", "train_compressed",
                 "train_scratch", "measure_latency", "summarize_controls", "report"):
        assert counts[rule] == 1, rule
    # controls: 3 selectors x 10 repeats at the chosen k (less the study's own), and
    # 3 fractions x 3 selectors x 10 repeats on the frontier; no fine-tuning by default
    assert counts["train_control"] == (3 * 10 - 1) + 3 * 3 * 10 and "finetune" not in counts
    # layer-wise: one ranking, 4 widths, the choice, 3 selectors x 10 repeats less its own
    assert counts["prune_layers"] == counts["choose_layerwise_width"] == 1
    assert counts["train_layerwise_width"] == 4 and counts["train_layerwise_control"] == 29
    assert counts["summarize_layerwise"] == 1
    # its recipes that train through the network: layerwise.retrain_repeats (3) seeds, every
    # selector fine-tuned, the architecture from scratch
    assert counts["finetune_layerwise"] == 3 * 3 and counts["train_layerwise_scratch"] == 3
    # features computed once per frozen extractor: e2e's whole one, its prefix to the cut,
    # and the layer-wise pruned ones (si, l1, random per repeat)
    assert counts["cache_e2e_features"] == counts["cache_cut_features"] == 1
    assert counts["cache_layerwise_features"] == 1 + 1 + 10

    # the rules that train or compute SI hold the GPU; the light ones do not
    gpu_rules = {"lr_trial", "train_e2e", "train_head", "layer_si", "rank_features",
                 "train_compressed", "train_control", "train_scratch", "measure_latency",
                 "prune_layers", "train_layerwise_width", "train_layerwise_control",
                 "finetune_layerwise", "train_layerwise_scratch",
                 "cache_e2e_features", "cache_cut_features", "cache_layerwise_features"}
    seen = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if not m or m.group(1) == "all":
            continue
        holds_gpu = re.search(r"resources:.*\bgpu=1\b", block) is not None
        assert holds_gpu == (m.group(1) in gpu_rules), m.group(1)
        seen.add(m.group(1))
    assert seen == set(counts) - {"all"}


def test_building_the_dag_imports_no_torch(tmp_path):
    """Snakemake builds the DAG on a login node: the Snakefile and the rule files must not import
    torch (seconds of import, and perhaps not even installed there). A `torch` that fails on
    import stands first on the path; a dry run of the study must not reach it."""
    blocker = tmp_path / "blocker"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text(
        'raise ImportError("torch was imported while the DAG was built")\n')
    path = [str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])]
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    proc = subprocess.run([exe, "--directory", str(tmp_path / "run"), "-n"], cwd=ROOT, text=True,
                          capture_output=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(path)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "torch was imported" not in out
    assert job_counts(proc.stdout)["train_e2e"] == 1


def test_dry_run_of_the_gpu_quick_study_lists_every_rule(tmp_path):
    env_archive = str(tmp_path / "cifar10-jpeg.tar.gz")  # not read by a dry run
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    proc = subprocess.run([exe, "--directory", str(tmp_path), "-n", "--configfile",
                           str(ROOT / "config" / "gpu-quick.yaml")], cwd=ROOT, text=True,
                          capture_output=True, timeout=600,
                          env={**os.environ, "CIFAR10_JPEG": env_archive})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    rules = {"prepare_data", "split", "lr_trial", "select_lr", "train_e2e", "train_head",
             "layer_si", "plot_layer_si", "cut_layers", "rank_features", "choose_features",
             "train_compressed", "train_control", "measure_latency", "summarize_controls",
             "prune_layers", "train_layerwise_width", "choose_layerwise_width",
             "train_layerwise_control", "summarize_layerwise", "report", "all",
             "finetune_layerwise", "finetune",
             "cache_e2e_features", "cache_cut_features", "cache_layerwise_features",
             "choose_layerwise_channels"}
    assert set(counts) == rules
    # search, e2e, head, compressed, (c) fine-tuned, layer-wise, layer-wise fine-tuned
    assert counts["lr_trial"] == 2 and counts["layer_si"] == 7


def test_smoke_workflow_writes_every_output(smoke_run):
    r = smoke_run / "results"
    expected = [
        "data/cifar10.npz", "split/split.npz", "split/summary.json",
        "lr_search/summary.csv", "lr_search/best.json", "lr_search/heatmap.png",
    ]
    for lr in ("0.05", "0.01"):
        for name in ("model.pt", "history.csv", "metrics.json", "curves.png"):
            expected.append(f"lr_search/lr~{lr}/step~4/{name}")
    for model in ("search", "e2e", "head", "compressed"):
        for name in ("model.pt", "history.csv", "metrics.json", "curves.png", "layer_si.csv", "layer_si.png"):
            expected.append(f"{model}/{name}")
    for model in ("e2e", "head", "compressed", "scratch"):
        expected.append(f"{model}/predictions.npz")
    for name in ("model.pt", "history.csv", "metrics.json", "curves.png", "predictions.npz"):
        expected.append(f"scratch/{name}")
        for selector in ("si", "l1", "random"):
            for point in ("chosen", "frac~0.25", "frac~0.5"):
                for repeat in (0, 1):
                    if (selector, point, repeat) != ("si", "chosen", 0):  # the study's own
                        expected.append(f"controls/{selector}/{point}/repeat~{repeat}/{name}")
    expected += ["controls/selectors.csv", "controls/frontier.csv", "controls/mcnemar.csv",
                 "controls/frontier.png", "latency/latency.csv"]
    expected += ["compress/cut.json", "compress/cut.png", "compress/feature_ranking.csv",
                 "compress/feature_ranking.json", "compress/selected.json",
                 "compress/feature_si.png",
                 "report/report.md", "report/summary.csv", "report/report.html"]
    expected += [f"benchmarks/{job}.tsv" for job in (
        "prepare_data", "split", "lr_trial/lr~0.05_step~4", "lr_trial/lr~0.01_step~4", "select_lr",
        "train_e2e", "train_head", "layer_si/search", "layer_si/e2e", "layer_si/head",
        "layer_si/compressed",
        "cut_layers", "rank_features", "choose_features", "train_compressed",
        "train_control/l1/chosen/repeat~0", "train_control/random/frac~0.5/repeat~1",
        "train_scratch", "measure_latency", "summarize_controls", "cache_features/e2e",
        "cache_features/cut", "cache_features/layerwise/si", "cache_features/layerwise/l1",
        "cache_features/layerwise/random~1")]
    for cache in ("e2e", "cut", "layerwise/si", "layerwise/l1", "layerwise/random~0",
                  "layerwise/random~1"):  # the smoke config's two repeats
        expected += [f"features/{cache}/{name}" for name in (
            "features.json", "train.npy", "val.npy", "train_labels.npy", "val_labels.npy")]
    missing = [p for p in expected if not (r / p).is_file() or (r / p).stat().st_size == 0]
    assert not missing, missing
    for p in expected:
        if p.endswith(".png"):
            assert (r / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
    for log in ("data/prepare_data.log", "split/split.log", "e2e/train.log", "head/train.log",
                "e2e/layer_si.log", "lr_search/select_lr.log", "compress/cut_layers.log",
                "compress/rank_features.log", "compress/choose_features.log", "compressed/train.log",
                "controls/l1/chosen/repeat~1.log", "scratch/train.log",
                "latency/measure_latency.log", "report/report.log"):
        assert (smoke_run / "logs" / log).stat().st_size > 0, log
    # nothing half-written left behind
    assert not list(r.rglob("*.tmp*"))


def test_the_study_list_says_where_each_model_is(smoke_run):
    """sicompress.study lists the models; the smoke run (every switch on but the (c)
    fine-tuning) wrote each one's files in the folder the list gives, and its metrics say
    what the list says it is."""
    import yaml

    from sicompress import study

    config = yaml.safe_load(SMOKE.read_text())
    config.setdefault("compress", {})["finetune_epochs"] = 0
    config["controls"] = {"scratch": True}
    config["layerwise"] = {"enabled": True, "scratch": True, "finetune": {"epochs": 2}}
    made = study.made(config)
    assert made == ["search", "e2e", "head", "compressed", "scratch", "layerwise",
                    "layerwise_finetuned"]
    for name in made:
        folder = smoke_run / study.model(name).folder
        for f in ("model.pt", "metrics.json", "history.csv", "curves.png"):
            assert (folder / f).is_file(), (name, f)
    comp = {name: json.loads((smoke_run / study.model(name).folder / "metrics.json")
                             .read_text()).get("compression", {}) for name in made}
    assert comp["scratch"]["from_scratch"] is True
    assert comp["layerwise"]["method"] == "layerwise" and comp["layerwise"]["selector"] == "si"
    assert comp["layerwise_finetuned"]["finetuned_from"].endswith("layerwise/model.pt")
    assert not (smoke_run / study.model("finetuned").folder).exists()


def test_every_optional_model_is_a_report_input():
    """The report's optional inputs come from the study's list: each optional model's
    metrics (and layer SI figure, where it has one) is a field of ReportInputs that the
    report reads, the report rule gets exactly those `config` makes, and no field of an
    optional model is left that the list does not feed."""
    import dataclasses

    import yaml

    from sicompress import study
    from sicompress.markdown_report import ReportInputs

    fields = {f.name for f in dataclasses.fields(ReportInputs)}
    pairs = study.report_inputs()
    assert pairs == [("scratch", "metrics"), ("finetuned", "metrics"),
                     ("finetuned", "layer_si_plot"), ("layerwise", "metrics"),
                     ("layerwise", "layer_si_plot"), ("layerwise_finetuned", "metrics"),
                     ("layerwise_finetuned", "layer_si_plot")]
    assert {f"{m}_{k}" for m, k in pairs} <= fields
    optional = {m.name for m in study.MODELS if m.switch}
    per_model = {f for f in fields for k in ("_metrics", "_layer_si_plot")
                 if f.endswith(k) and f.removesuffix(k) in optional}
    assert per_model == {f"{m}_{k}" for m, k in pairs}
    config = yaml.safe_load(SMOKE.read_text())  # (c) not fine-tuned: no finetuned_*
    config.setdefault("compress", {})["finetune_epochs"] = 0
    config["controls"] = {"scratch": True}
    config["layerwise"] = {"enabled": True, "scratch": True, "finetune": {"epochs": 2}}
    assert [m for m, k in study.report_inputs(config) if k == "metrics"] == \
        ["scratch", "layerwise", "layerwise_finetuned"]
    assert study.always() == ["search", "e2e", "head", "compressed"]


def test_smoke_split_and_search(smoke_run):
    r = smoke_run / "results"
    summary = json.loads((r / "split/summary.json").read_text())
    assert summary["totals"]["val"] == 100 and summary["totals"]["train"] == 900
    table = pd.read_csv(r / "lr_search/summary.csv")
    assert len(table) == 2 and table["chosen"].sum() == 1
    best = json.loads((r / "lr_search/best.json").read_text())
    chosen = table[table["chosen"]].iloc[0]
    assert best["lr"] == chosen["lr"] and best["step_size"] == chosen["step_size"]
    assert chosen["val_acc"] == table["val_acc"].max()  # decided on validation accuracy
    trial = json.loads((r / "lr_search/lr~0.05/step~4/metrics.json").read_text())
    assert trial["trial_step"] == 1  # step 4 of 6 epochs scaled to a 2-epoch trial: round(4 * 2 / 6)
    assert len(pd.read_csv(r / "lr_search/lr~0.05/step~4/history.csv")) == 2
    # the chosen trial's best model, copied to results/search for the per-layer SI and report
    trial_dir = r / f"lr_search/lr~{best['lr']:g}/step~{best['step_size']}"
    for name in ("model.pt", "history.csv", "curves.png"):
        assert (r / "search" / name).read_bytes() == (trial_dir / name).read_bytes(), name
    searched = json.loads((r / "search/metrics.json").read_text())
    assert searched["test_acc"] == best["test_acc_of_trial"]
    assert load_model(r / "search/model.pt").arch == load_model(trial_dir / "model.pt").arch


def test_smoke_trainings(smoke_run, device):
    r = smoke_run / "results"
    best = json.loads((r / "lr_search/best.json").read_text())
    e2e = json.loads((r / "e2e/metrics.json").read_text())
    head = json.loads((r / "head/metrics.json").read_text())
    hist = pd.read_csv(r / "e2e/history.csv")
    assert list(hist.columns) == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds",
                               "images_per_s"]
    assert len(hist) == 6 and e2e["lr"] == best["lr"]
    assert e2e["best_epoch"] == int(hist.loc[hist["val_acc"].idxmax(), "epoch"])
    assert e2e["val_acc"] == hist["val_acc"].max()
    # test accuracy and loss recounted from the test images: the predictions each training
    # wrote, and torch's cross-entropy of the saved model in float32 (the trainings evaluate
    # in bf16 on CUDA: a looser tolerance there)
    data = np.load(r / "data/cifar10.npz")
    labels = data["y_test"]
    images = torch.from_numpy(data["x_test"]).permute(0, 3, 1, 2)
    for name, m in (("e2e", e2e), ("head", head)):
        pred = np.load(r / name / "predictions.npz")
        assert np.array_equal(pred["label"], labels), name
        assert m["test_acc"] == pytest.approx(np.mean(pred["predicted"] == labels), abs=1e-12)
        with torch.no_grad():
            logits = load_model(r / name / "model.pt")(images)
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels).long()).item()
        assert m["test_loss"] == pytest.approx(loss, rel=1e-4 if device.type == "cpu" else 0.05)
        assert m["provenance"]["seed"] == 0 and m["provenance"]["code_version"]
        assert m["provenance"]["config"]["data"]["source"] == "synthetic"
    assert len(pd.read_csv(r / "head/history.csv")) == 2
    # the classifier-only trainings read the cached features (the default), e2e the images
    assert head["inputs"] == "cached" and e2e["inputs"] == "images"
    assert head["settings"]["augment"] is False and e2e["settings"]["augment"] is True
    cache = json.loads((r / "features/e2e/features.json").read_text())
    assert cache["images"] == {"train": 900, "val": 100} and cache["dtype"] == "float16"
    assert head["images_seen"] == 2 * 900 and e2e["images_seen"] == 6 * 900

    # checkpoints: plain data, rebuilt by load_model; head shares e2e's extractor exactly
    raw = torch.load(r / "e2e/model.pt", weights_only=True)
    assert raw["arch"]["features"][0]["name"] == "conv1_1"
    m_e2e, m_head = load_model(r / "e2e/model.pt"), load_model(r / "head/model.pt")
    assert not m_e2e.training and not m_head.training
    for (k, a), (_, b) in zip(m_e2e.features.state_dict().items(), m_head.features.state_dict().items()):
        assert torch.equal(a, b), k
    assert e2e["parameters"]["total"] == sum(p.numel() for p in m_e2e.parameters())


def test_smoke_controls(smoke_run):
    """Every control keeps its selector's channels, tables have a row per run, and the
    per-image comparisons and accuracies agree with the predictions the trainings wrote."""
    r = smoke_run / "results"
    sel = json.loads((r / "compress/selected.json").read_text())
    n = sel["n_candidates"]
    ranking = pd.read_csv(r / "compress/feature_ranking.csv")["feature"].tolist()
    e2e_state = torch.load(r / "e2e/model.pt", weights_only=True)["state_dict"]
    labels = np.load(r / "data/cifar10.npz")["y_test"]

    def expected_channels(selector, k, seed):
        if selector == "si":
            return ranking[:k]
        if selector == "random":
            return np.random.default_rng(seed).choice(n, size=k, replace=False).tolist()
        # l1: the last conv kept (the compressed model's), its filters' L1 norms in the e2e model
        layers = load_model(r / "compressed/model.pt").arch["features"]
        last = [layer["name"] for layer in layers if layer["kind"] == "conv"][-1]
        norms = e2e_state[f"features.{last}.conv.weight"].abs().sum(dim=(1, 2, 3)).tolist()
        return sorted(range(n), key=lambda o: (-norms[o], o))[:k]

    runs = 0
    for selector in ("si", "l1", "random"):
        for point, k in (("chosen", sel["k"]), ("frac~0.25", max(1, int(0.25 * n + 0.5))),
                         ("frac~0.5", max(1, int(0.5 * n + 0.5)))):
            for repeat in (0, 1):
                d = r / ("compressed" if (selector, point, repeat) == ("si", "chosen", 0)
                         else f"controls/{selector}/{point}/repeat~{repeat}")
                m = json.loads((d / "metrics.json").read_text())
                c = m["compression"]
                assert (c["selector"], c["repeat"], c["seed"], c["k"]) == (selector, repeat,
                                                                           repeat, k), d
                want = expected_channels(selector, k, repeat)
                assert c["kept"] == sorted(want), d
                pred = np.load(d / "predictions.npz")
                assert np.array_equal(pred["label"], labels), d
                assert np.mean(pred["predicted"] == pred["label"]) == pytest.approx(m["test_acc"])
                runs += 1
    assert runs == 18

    frontier = pd.read_csv(r / "controls/frontier.csv")
    assert len(frontier) == 3 * 2 * 2  # selectors x fractions x repeats
    assert not frontier.duplicated(["selector", "fraction", "repeat"]).any()
    selectors = pd.read_csv(r / "controls/selectors.csv")
    assert len(selectors) == 3 * 2

    # McNemar's counts against e2e, recounted from the predictions
    e2e_ok = np.load(r / "e2e/predictions.npz")["predicted"] == labels
    mc = pd.read_csv(r / "controls/mcnemar.csv")
    comp_ok = np.load(r / "compressed/predictions.npz")["predicted"] == labels
    row = mc[mc["model"] == "compressed"].iloc[0]
    assert (row["only_model"], row["only_e2e"]) == (int(np.sum(comp_ok & ~e2e_ok)),
                                                   int(np.sum(~comp_ok & e2e_ok)))
    b, c = int(row["only_model"]), int(row["only_e2e"])  # McNemar: binomial test of b of b + c
    assert row["p_value"] == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)

    # SI against each control at the chosen k: the exact test's per-seed discordant images
    # recounted from the predictions and summed, against scipy's binomtest
    compared = pd.read_csv(r / "controls/comparisons.csv")
    for other in ("l1", "random"):
        row = compared[(compared["a"] == "si") & (compared["b"] == other)
                       & compared["what"].str.startswith("chosen")].iloc[0]
        only_si = only_other = 0
        for repeat in (0, 1):
            d_si = r / ("compressed" if repeat == 0 else f"controls/si/chosen/repeat~{repeat}")
            ok_si = np.load(d_si / "predictions.npz")["predicted"] == labels
            ok_other = np.load(r / f"controls/{other}/chosen/repeat~{repeat}/predictions.npz")[
                "predicted"] == labels
            only_si += int(np.sum(ok_si & ~ok_other))
            only_other += int(np.sum(~ok_si & ok_other))
        assert (row["only_a"], row["only_b"], row["n"], row["kind"]) == \
            (only_si, only_other, 2, "paired"), other
        # no discordant image (the same predictions): nothing tells them apart, p = 1
        expected = 1.0 if only_si + only_other == 0 else \
            binomtest(only_si, only_si + only_other, 0.5).pvalue
        assert row["p_value"] == pytest.approx(expected, rel=1e-9)
    assert (compared["p_holm"].dropna() >= compared["p_value"].dropna() - 1e-15).all()

    scratch = json.loads((r / "scratch/metrics.json").read_text())
    assert scratch["settings"]["train_only"] == "all" and scratch["epochs_run"] == 6
    assert scratch["compression"]["kept"] == sorted(sel["selected"])
    lat = pd.read_csv(r / "latency/latency.csv")
    assert sorted(zip(lat["model"], lat["batch_size"])) == sorted(
        (m, b) for m in ("e2e", "head", "compressed", "scratch", "layerwise",
                         "layerwise_finetuned") for b in (1, 256))
    # the cost columns against counts made apart: torch's parameters, MACs by forward hooks
    folders = {"e2e": "e2e", "head": "head", "compressed": "compressed", "scratch": "scratch",
               "layerwise": "layerwise", "layerwise_finetuned": "layerwise/finetuned/si/repeat~0"}
    for name, folder in folders.items():
        model = load_model(r / folder / "model.pt")
        rows = lat[lat["model"] == name]
        assert set(rows["parameters"]) == {sum(p.numel() for p in model.parameters())}, name
        assert set(rows["macs"]) == {macs_by_hooks(model)["total"]}, name


def test_smoke_layerwise_recipes(smoke_run):
    """Every recipe x selector x repeat of the layer-wise network ran as configured, and the
    recipe table and its McNemar tests agree with the files each training wrote."""
    r = smoke_run / "results"
    labels = np.load(r / "data/cifar10.npz")["y_test"]
    best = json.loads((r / "lr_search/best.json").read_text())
    base = load_model(r / "layerwise/model.pt")
    table = pd.read_csv(r / "layerwise/recipes.csv")
    expected = [("classifier only", s, k) for s in ("si", "l1", "random") for k in (0, 1)] \
        + [("fine-tuned", s, k) for s in ("si", "l1", "random") for k in (0, 1)] \
        + [("from scratch", "architecture", k) for k in (0, 1)]
    assert list(zip(table["recipe"], table["selector"], table["repeat"])) == expected
    for (recipe, selector, repeat), (_, row) in zip(expected, table.iterrows()):
        if recipe == "classifier only":
            d = r / ("layerwise" if (selector, repeat) == ("si", 0)
                     else f"layerwise/controls/{selector}/repeat~{repeat}")
        elif recipe == "fine-tuned":
            d = r / f"layerwise/finetuned/{selector}/repeat~{repeat}"
        else:
            d = r / f"layerwise/scratch/repeat~{repeat}"
        m = json.loads((d / "metrics.json").read_text())
        pred = np.load(d / "predictions.npz")
        assert np.array_equal(pred["label"], labels), d
        assert row["test_acc"] == pytest.approx(np.mean(pred["predicted"] == labels)), d
        assert row["epochs"] == len(pd.read_csv(d / "history.csv")), d
        assert row["images_seen"] == row["epochs"] * 900, d  # the smoke split's 900 train images
        model = load_model(d / "model.pt")
        assert model.arch["features"] == base.arch["features"], d  # one architecture
        assert row["params_total"] == sum(p.numel() for p in model.parameters()), d
        if recipe == "fine-tuned":  # from the classifier-only run of the same channels
            start = r / ("layerwise" if (selector, repeat) == ("si", 0)
                         else f"layerwise/controls/{selector}/repeat~{repeat}")
            assert model.arch["compression"]["kept"] == \
                load_model(start / "model.pt").arch["compression"]["kept"], d
            assert m["settings"]["train_only"] == "all" and m["epochs_run"] == 2
            assert m["lr"] == pytest.approx(best["lr"] * 0.1) and m["step_size"] == 2
            assert m["settings"]["seed"] == repeat
        if recipe == "from scratch":  # random weights: not the pruned e2e's
            assert m["settings"]["train_only"] == "all" and m["epochs_run"] == 6
            assert not torch.equal(model.features.conv1_1.conv.weight,
                                   base.features.conv1_1.conv.weight)
    # McNemar against e2e, recounted, with Holm's adjustment over the table's family
    e2e_ok = np.load(r / "e2e/predictions.npz")["predicted"] == labels
    mc = pd.read_csv(r / "layerwise/mcnemar.csv")
    assert len(mc) == len(expected)
    ok = np.load(r / "layerwise/scratch/repeat~1/predictions.npz")["predicted"] == labels
    row = mc[mc["model"] == "layerwise from scratch architecture repeat 1"].iloc[0]
    assert (row["only_model"], row["only_e2e"]) == (int(np.sum(ok & ~e2e_ok)),
                                                   int(np.sum(~ok & e2e_ok)))
    p = sorted(mc["p_value"])
    m_tests = len(p)
    smallest = mc.loc[mc["p_value"].idxmin()]
    assert smallest["p_holm"] == pytest.approx(min(1.0, m_tests * p[0]))
    assert (mc["p_holm"] >= mc["p_value"] - 1e-15).all()
    report = (r / "report/report.md").read_text()
    assert "Layer-wise pruning, every recipe" in report


def test_smoke_jobs_ran_on_the_test_device(smoke_run, device):
    """Every job that trains or computes SI ran where the tests asked (SICOMPRESS_DEVICE)."""
    logs = smoke_run / "logs"
    for log in ("e2e/train.log", "head/train.log", "compressed/train.log", "scratch/train.log",
                "controls/random/frac~0.25/repeat~1.log"):
        assert f"images on {device}" in (logs / log).read_text(), log
    for log in ("e2e/layer_si.log", "compress/rank_features.log"):
        assert re.search(rf"\bon {device}\b", (logs / log).read_text()), log


def test_smoke_outputs_carry_provenance(smoke_run):
    """The decisions, the SI tables and the split say which code and which settings made them."""
    r = smoke_run / "results"
    cut = json.loads((r / "compress/cut.json").read_text())
    sel = json.loads((r / "compress/selected.json").read_text())
    ranked = json.loads((r / "compress/feature_ranking.json").read_text())
    split = json.loads((r / "split/summary.json").read_text())
    side = json.loads((r / "e2e/layer_si.json").read_text())
    for p in (cut["provenance"], sel["provenance"], ranked["provenance"], split["provenance"], side):
        assert p["code_version"] and p["torch_version"] and p["settings"]
    assert cut["provenance"]["settings"]["tolerance"] == 0.01  # config.yaml's layer_tolerance
    assert sel["provenance"]["settings"]["tolerance"] == 0.01  # feature_tolerance
    assert ranked["provenance"]["settings"]["unit"] == "channel"
    assert split["provenance"]["settings"]["seed"] == 0
    table = pd.read_csv(r / "e2e/layer_si.csv")
    assert side["settings"]["order"] == 3 == table["order"].iloc[0]  # smoke.yaml's si.order
    assert side["settings"]["rows"] == table.groupby("split").size().to_dict()
    assert (table["precision"] == side["settings"]["precision"]).all()


def test_smoke_layer_si(smoke_run):
    r = smoke_run / "results"
    cut = json.loads((r / "compress/cut.json").read_text())
    tables = {m: pd.read_csv(r / f"{m}/layer_si.csv", keep_default_na=False)
              for m in ("search", "e2e", "head", "compressed")}
    for model, t in tables.items():
        assert sorted(t["split"].unique()) == ["test", "train"]
        # the input, the extractor (all 18 layers, or the kept prefix), then the classifier:
        # smoke.yaml's classifiers have one hidden layer (fc1) before the logits
        extractor = 19 if model != "compressed" else cut["layer_index"] + 1
        for _, part in t.groupby("split"):
            assert part["layer_index"].tolist() == list(range(extractor + 2))
            assert part["layer"].tolist()[extractor:] == ["fc1", "logits"]
            assert part["kind"].tolist()[extractor:] == ["fc", "logits"]
            assert part["channels"].tolist()[extractor:] == [16, 10]
    # the input rows against scikit-learn on the normalised si_train and si_test images
    data, split = np.load(r / "data/cifar10.npz"), np.load(r / "split/split.npz")
    for model, t in tables.items():
        normalize = load_model(r / f"{model}/model.pt").normalize
        for part, x, y in (("train", data["x_train"], data["y_train"]),
                           ("test", data["x_test"], data["y_test"])):
            x, y = x[split[f"si_{part}"]], y[split[f"si_{part}"]]
            with torch.no_grad():
                flat = normalize(torch.from_numpy(x).permute(0, 3, 1, 2)).flatten(1).double()
            flat = flat.numpy()
            idx = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(flat).kneighbors(
                flat, return_distance=False)
            assert (idx[:, 0] == np.arange(len(flat))).all()  # no duplicate images
            row = t[(t["split"] == part) & (t["layer"] == "input")].iloc[0]
            assert row["si"] == pytest.approx(np.mean(y[idx[:, 1]] == y), abs=1e-12), model
            assert row["center_si"] == pytest.approx(
                NearestCentroid().fit(flat, y).score(flat, y), abs=1e-12), model

    e2e, head, comp = tables["e2e"], tables["head"], tables["compressed"]
    source = "results/e2e/layer_si.csv"
    assert (tables["search"]["reused_from"] == "").all() and (e2e["reused_from"] == "").all()
    # head: the same frozen extractor, so every extractor row is e2e's, copied; its own
    # classifier's rows measured
    extractor = head["kind"].isin(["input", "conv", "pool"])
    assert (head.loc[extractor, "reused_from"] == source).all()
    assert (head.loc[~extractor, "reused_from"] == "").all()
    values = ["split", "layer", "si", "center_si", "si_high", "si_soft"]
    pd.testing.assert_frame_equal(head.loc[extractor, values], e2e.loc[extractor, values])
    # compressed: the rows before the sliced conv (the cut conv, or the conv before a cut
    # pool) are e2e's; from the sliced conv on, measured
    arch = load_model(r / "e2e/model.pt").arch["features"]
    sliced = max(i + 1 for i, layer in enumerate(arch[:cut["layer_index"]])
                 if layer["kind"] == "conv")
    for _, part in comp.groupby("split"):
        assert (part["reused_from"] == source).tolist() == \
            [i < sliced for i in part["layer_index"]]
    for model, reused in (("search", 0), ("e2e", 0), ("head", 19), ("compressed", sliced)):
        side = json.loads((r / f"{model}/layer_si.json").read_text())["settings"]
        assert side["reused_rows"] == {"train": reused, "test": reused}, model
        assert side["computed_rows"] == {k: n - reused for k, n in side["rows"].items()}
        assert side["reused_from"] == (source if reused else None)


def test_smoke_compression(smoke_run):
    r = smoke_run / "results"
    e2e_si = pd.read_csv(r / "e2e/layer_si.csv")
    cut = json.loads((r / "compress/cut.json").read_text())
    del cut["provenance"]  # test_smoke_outputs_carry_provenance
    train = e2e_si[e2e_si["split"] == "train"]
    row = train[train["layer"] == cut["layer"]].iloc[0]
    assert cut == {**choose_cut(train, "si", 0.01), "si": row["si"], "center_si": row["center_si"],
                   "split": "train", "source": "results/e2e/layer_si.csv", "n_layers": 18,
                   "forced": False}
    ranking = pd.read_csv(r / "compress/feature_ranking.csv")
    sel = json.loads((r / "compress/selected.json").read_text())
    assert sel["cut_layer"] == cut["layer"] and sel["unit"] == "channel"
    assert sel["k"] == choose_k(ranking["si"], 0.01)["k"]
    assert sel["selected"] == ranking["feature"].tolist()[:sel["k"]]
    assert len(ranking) == sel["n_candidates"] == sel["shape"][0]  # ranked to the end
    # the cut layer's SI is the layer table's number wherever it is shown
    assert (sel["si_all"], sel["center_si_all"]) == (row["si"], row["center_si"])

    e2e, comp = load_model(r / "e2e/model.pt"), load_model(r / "compressed/model.pt")
    assert not comp.training and comp.arch["compression"]["kept"] == sorted(sel["selected"])
    images = torch.from_numpy(np.load(r / "data/cifar10.npz")["x_test"][:16]).permute(0, 3, 1, 2)
    with torch.no_grad():
        got = comp.features(comp.normalize(images))
    torch.testing.assert_close(got,
                               layer_activations(e2e, images, cut["layer"])[:, sel["kept"]])
    metrics = json.loads((r / "compressed/metrics.json").read_text())
    assert metrics["compression"]["k"] == sel["k"]
    assert metrics["parameters"]["total"] == sum(p.numel() for p in comp.parameters())
    assert metrics["parameters"]["features"] < json.loads((r / "e2e/metrics.json").read_text())["parameters"]["features"]


def test_smoke_report(smoke_run):
    """The report's numbers are those of the files the jobs wrote (tests/test_report.py reads
    every table; this checks the chain from the rule's outputs to the report's text)."""
    r = smoke_run / "results"
    summary = pd.read_csv(r / "report/summary.csv")
    md = (r / "report/report.md").read_text()
    assert summary["model"].tolist() == ["search", "e2e", "head", "compressed"]
    for model in ("search", "e2e", "head", "compressed"):
        m = json.loads((r / f"{model}/metrics.json").read_text())
        row = summary[summary["model"] == model].iloc[0]
        assert row["test_acc"] == pytest.approx(m["test_acc"])
        assert row["params_total"] == m["parameters"]["total"]
        assert re.search(rf"^\| {model} +\| +{100 * m['test_acc']:.2f}% +\| +"
                         rf"{100 * m['val_acc']:.2f}% +\| +{m['best_epoch']} +\|", md, flags=re.M), model
    cut = json.loads((r / "compress/cut.json").read_text())
    sel = json.loads((r / "compress/selected.json").read_text())
    assert f"cut after **{cut['layer']}** (layer {cut['layer_index']})" in md
    assert f"Kept k = **{sel['k']}** {sel['unit']}s with SI {sel['si_at_k']:.4f}" in md
    best = json.loads((r / "lr_search/best.json").read_text())
    assert f"initial lr **{best['lr']:g}**, StepLR step **{best['step_size']}** epochs" in md
    # no verdict without its interval: every sentence that says one training beats another
    # gives the 95% interval and n beside it
    verdicts = [s for s in re.split(r"(?<=;)\s|(?<=\.)\s(?=[A-Z(-])", md)
                if re.search(r" beats .* by [+-]\d", s)]
    assert all("95% interval" in s and "n = " in s for s in verdicts), verdicts
    # and every reading names its repeats
    assert all(re.search(r"n = \d+|over \d+ repeats|one run each|one seed in common", s)
               for s in re.split(r"(?<=;)\s", md) if "no difference detected over" in s)
    assert "within the spread" not in md and "cannot tell" not in md
    html = (r / "report/report.html").read_text(errors="replace")
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:2000].lower()


def test_bad_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: ten\nlr_search:\n  lrs: []\n")
    proc = snakemake("--cores", "1", "--configfile", str(SMOKE), str(bad), workdir=tmp_path / "run",
                     check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "train.epochs: 'ten' is not an integer" in out
    assert "lr_search.lrs: must not be empty" in out
    assert not (tmp_path / "run" / "results").exists()  # no job started


@pytest.mark.parametrize("controls,message", [
    ("controls:\n  selectors: [l1, random]\n", "controls.selectors must include si"),
    ("compress:\n  feature_unit: element\n", "l1 (filter norms) needs compress.feature_unit"),
    ("controls:\n  frontier: [0.5, 1.5]\n", "controls.frontier[1]: 1.5 must be <= 1"),
    ("controls:\n  selectors: [si, fpgm]\n", "controls.selectors[1]: 'fpgm' is not one of"),
    ("layerwise:\n  retrain_repeats: 3\n", "layerwise.retrain_repeats (3) must be at most "
                                           "controls.repeats (2)"),
])
def test_bad_controls_stop_before_any_job(tmp_path, controls, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(controls)
    proc = snakemake("-n", "--configfile", str(SMOKE), str(bad), workdir=tmp_path / "run",
                     check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr, \
        (proc.stdout + proc.stderr)[-2000:]


def test_every_rule_has_its_cluster_settings(tmp_path):
    """profiles/slurm gives every rule of the workflow its threads and its resources (a rule
    without them would run on the cluster with the defaults, a GPU rule asking for a GPU even
    where SICOMPRESS_SLURM_GPUS=0): checked here without a cluster."""
    rules = set(snakemake("--list-rules", workdir=tmp_path).stdout.split()) - {"all"}
    assert {"train_e2e", "prune_layers", "report"} <= rules
    profile = yaml.safe_load((ROOT / "profiles/slurm/profile.yaml").read_text())
    assert set(profile["set-threads"]) == rules, set(profile["set-threads"]) ^ rules
    assert set(profile["set-resources"]) == rules, set(profile["set-resources"]) ^ rules
    for rule, res in profile["set-resources"].items():
        assert "runtime" in res and "mem_mb" in res, rule


def test_lint_is_clean(tmp_path):
    proc = snakemake("--lint", workdir=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Congratulations" in out, out[-3000:]


def dry_run_jobs(workdir: Path, *extra_config: Path) -> dict[str, int]:
    configs = [str(SMOKE), *map(str, extra_config)]
    out = snakemake("-n", "--cores", "2", "--configfile", *configs, workdir=workdir).stdout
    return {} if "Nothing to be done" in out else job_counts(out)


def test_partial_reruns(smoke_run, tmp_path):
    assert dry_run_jobs(smoke_run) == {}  # a finished run is up to date

    tolerance = tmp_path / "tolerance.yaml"
    tolerance.write_text("compress:\n  feature_tolerance: 0.05\n")
    jobs = dry_run_jobs(smoke_run, tolerance)
    # k is chosen again from the same ranking: no ranking, no frontier training (their k come
    # from fractions), only what depends on the chosen k
    assert set(jobs) == {"choose_features", "train_compressed", "layer_si", "plot_layer_si",
                         "train_control", "train_scratch", "measure_latency",
                         "summarize_controls", "report", "all"}, jobs
    assert jobs["layer_si"] == 1  # only the compressed model's
    assert jobs["train_control"] == 3 * 2 - 1  # the chosen k's: 3 selectors x 2 repeats

    grid = tmp_path / "grid.yaml"
    grid.write_text("lr_search:\n  lrs: [0.05, 0.02]\n")
    jobs = dry_run_jobs(smoke_run, grid)
    assert jobs["lr_trial"] == 1  # only the new grid point
    assert {"select_lr", "train_e2e", "train_head", "train_compressed"} <= set(jobs)
    assert "prepare_data" not in jobs and "split" not in jobs


def test_a_training_reruns_only_for_the_keys_it_reads(smoke_run, tmp_path):
    """train_compressed and train_scratch take from the compress section only the keys they
    read: turning on the fine-tuning (compress.finetune_epochs) adds it and what reads it, and
    retrains neither (nor the longest training of the study, the scratch run); the classifier's
    architecture, which the scratch run reads, still retrains it."""
    finetune = tmp_path / "finetune.yaml"
    finetune.write_text("compress:\n  finetune_epochs: 1\n")
    jobs = dry_run_jobs(smoke_run, finetune)
    assert "finetune" in jobs, jobs
    assert not {"train_compressed", "train_scratch", "train_control", "rank_features"} \
        & set(jobs), jobs

    hidden = tmp_path / "hidden.yaml"
    hidden.write_text("compress:\n  classifier_hidden: [12]\n")
    jobs = dry_run_jobs(smoke_run, hidden)
    assert {"train_compressed", "train_scratch"} <= set(jobs), jobs


def test_classifier_features_rerun_the_classifier_only_trainings(smoke_run, tmp_path):
    """classifier_features.source changes what the classifier-only trainings read (and so
    their results): they and what reads them run again, nothing before them; the caches'
    storage type redoes the caches too."""
    trainings = {"train_head", "train_compressed", "train_control", "train_layerwise_width",
                 "train_layerwise_control"}
    augmented = tmp_path / "augmented.yaml"
    augmented.write_text("classifier_features:\n  source: augmented\n")
    jobs = dry_run_jobs(smoke_run, augmented)
    assert trainings <= set(jobs), jobs
    assert not {"train_e2e", "lr_trial", "rank_features", "prune_layers", "train_scratch",
                "cache_e2e_features", "cache_cut_features"} & set(jobs), jobs

    dtype = tmp_path / "dtype.yaml"
    dtype.write_text("classifier_features:\n  dtype: float32\n")
    jobs = dry_run_jobs(smoke_run, dtype)
    assert {"cache_e2e_features", "cache_cut_features", "cache_layerwise_features"} | trainings \
        <= set(jobs), jobs
    assert not {"train_e2e", "rank_features", "prune_layers", "train_scratch"} & set(jobs), jobs


def test_compute_settings_rerun_nothing_study_settings_do(smoke_run, tmp_path):
    """The compute section changes how fast a result comes, not what it is: the jobs read it
    from the config, not as params, so no job is planned again; a study setting still is."""
    compute = tmp_path / "compute.yaml"
    compute.write_text("compute:\n  compile: true\n  bf16: false\n  channels_last: false\n"
                       "  si_batch_size: 7\n  resume_every: 0\n")
    assert dry_run_jobs(smoke_run, compute) == {}

    epochs = tmp_path / "epochs.yaml"
    epochs.write_text("train:\n  epochs: 8\n")
    jobs = dry_run_jobs(smoke_run, epochs)
    assert jobs["train_e2e"] == 1 and jobs["layer_si"] == 6  # the trials scale their step by it
    assert {"train_head", "cut_layers", "rank_features", "train_compressed", "report"} <= set(jobs)
    assert "prepare_data" not in jobs and "split" not in jobs


def test_bad_image_stops_prepare_data_naming_the_file(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            folder = tmp_path / "images" / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (32, 32), (i, 0, 0)).save(folder / f"{i}.png")
    Image.new("RGB", (28, 28)).save(tmp_path / "images/train/dog/small.png")
    cfg = tmp_path / "folder.yaml"
    cfg.write_text(f"data:\n  source: folder\n  path: {tmp_path / 'images'}\n")
    proc = snakemake("results/data/cifar10.npz", "--cores", "1", "--configfile", str(SMOKE), str(cfg),
                     workdir=tmp_path / "run", check=False)
    assert proc.returncode != 0
    assert "train/dog/small.png is 28x28 RGB, expected 32x32 RGB" in proc.stdout + proc.stderr
    log = (tmp_path / "run/logs/data/prepare_data.log").read_text()
    assert "ERROR: DataError" in log and "small.png" in log
    assert not (tmp_path / "run/results/data/cifar10.npz").exists()
