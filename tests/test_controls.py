"""The controls' summary (sicompress.controls) on small fabricated training files."""

import json

import numpy as np
import pandas as pd
import pytest

from sicompress.controls import summarize_controls
from sicompress.model import build_model
from sicompress.stats import mean_sd

from conftest import macs_by_hooks
from control_files import LABELS, arch, write_run, write_training

SELECTORS = ["si", "l1", "random"]
CHOSEN_ACC = {"si": [0.91, 0.90, 0.92], "l1": [0.88, 0.89, 0.93], "random": [0.80, 0.82, 0.81]}
FRACTIONS = [0.25, 0.5]


def correct_with(only_model: int, only_e2e: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of a model and of e2e on the 40 images with these counts."""
    n = LABELS.size
    both = n - only_model - only_e2e - both_wrong
    model = np.array([1] * both + [1] * only_model + [0] * only_e2e + [0] * both_wrong, bool)
    e2e = np.array([1] * both + [0] * only_model + [1] * only_e2e + [0] * both_wrong, bool)
    return model, e2e


@pytest.fixture
def study(tmp_path):
    """Fabricated control trainings: 3 selectors x 3 repeats at the chosen k, 3 selectors x
    2 fractions x 2 repeats on the frontier; e2e, head, scratch; no fine-tuned model."""
    compressed, e2e = correct_with(only_model=1, only_e2e=9, both_wrong=2)  # the hand case
    runs = []
    for s in SELECTORS:
        for r, acc in enumerate(CHOSEN_ACC[s]):
            runs.append(write_run(tmp_path, "chosen", s, r, k=6, test_acc=acc,
                                  correct=compressed if (s, r) == ("si", 0) else None))
    for s in SELECTORS:
        for f in FRACTIONS:
            for r in range(2):
                runs.append(write_run(tmp_path, "frontier", s, r, fraction=f, k=int(32 * f),
                                      test_acc=0.7 + f / 2 + r / 100))
    refs = {"e2e": write_training(tmp_path / "e2e", correct=e2e, parameters=5000, model=True),
            "head": write_training(tmp_path / "head", correct=np.ones(40, bool), parameters=4000,
                                   model=True),
            "scratch": write_training(tmp_path / "scratch", correct=e2e, parameters=607,
                                      macs=6005),
            "finetuned": None}
    return tmp_path, runs, refs


def summarize(tmp_path, runs, refs):
    out = {k: tmp_path / "out" / f"{k}.{'png' if k == 'plot' else 'csv'}"
           for k in ("selectors", "frontier", "mcnemar", "comparisons", "plot")}
    tables = summarize_controls(runs, refs, selectors_csv=out["selectors"],
                                frontier_csv=out["frontier"], mcnemar_csv=out["mcnemar"],
                                comparisons_csv=out["comparisons"], plot=out["plot"],
                                log=lambda m: None)
    return tables, out


def test_tables_have_one_row_per_run(study):
    tmp_path, runs, refs = study
    tables, out = summarize(tmp_path, runs, refs)
    sel = pd.read_csv(out["selectors"])
    assert len(sel) == 9 and list(sel["selector"]) == ["si"] * 3 + ["l1"] * 3 + ["random"] * 3
    assert list(sel["repeat"]) == [0, 1, 2] * 3 and list(sel["seed"]) == [100, 101, 102] * 3
    assert set(sel["k"]) == {6} and set(sel["params_total"]) == {607} and set(sel["macs_total"]) == {6005}
    fr = pd.read_csv(out["frontier"])
    assert len(fr) == len(SELECTORS) * len(FRACTIONS) * 2
    assert fr.groupby(["selector", "fraction", "repeat"]).size().eq(1).all()
    assert sorted(set(zip(fr["fraction"], fr["k"]))) == [(0.25, 8), (0.5, 16)]
    pd.testing.assert_frame_equal(sel, tables["selectors"], check_dtype=False)


def test_mean_and_sd_by_hand(study):
    """The repeats of a table, summarised as the report does (stats.mean_sd), by hand."""
    tmp_path, runs, refs = study
    tables, _ = summarize(tmp_path, runs, refs)
    sel = tables["selectors"]
    l1 = sel[sel["selector"] == "l1"]["test_acc"].tolist()
    assert l1 == [0.88, 0.89, 0.93]  # repeats 0, 1, 2 as their metrics.json record them
    # mean 0.9; deviations -0.02, -0.01, 0.03; sd = sqrt((0.0004 + 0.0001 + 0.0009) / 2)
    # = sqrt(0.0007) = 0.0264575131...
    mean, sd = mean_sd(l1)
    assert mean == pytest.approx(0.9, abs=1e-12)
    assert sd == pytest.approx(0.026457513110645906, rel=1e-9)
    fr = tables["frontier"]
    part = fr[(fr["selector"] == "random") & (fr["fraction"] == 0.25)]["test_acc"].tolist()
    assert part == pytest.approx([0.825, 0.835])  # 0.7 + 0.25 / 2 + repeat / 100
    # mean 0.83; deviations -0.005, 0.005; sd = sqrt(2 * 0.000025 / 1) = 0.0070710678...
    mean, sd = mean_sd(part)
    assert mean == pytest.approx(0.83, abs=1e-12)
    assert sd == pytest.approx(0.0070710678118654755, rel=1e-9)


def test_mcnemar_counts_by_hand(study):
    tmp_path, runs, refs = study
    _, out = summarize(tmp_path, runs, refs)
    t = pd.read_csv(out["mcnemar"]).set_index("model")
    assert list(t.index) == ["compressed", "si repeat 1", "si repeat 2", "l1 repeat 0",
                             "l1 repeat 1", "l1 repeat 2", "random repeat 0", "random repeat 1",
                             "random repeat 2", "scratch", "head"]
    row = t.loc["compressed"]
    assert (row["n"], row["both_correct"], row["only_model"], row["only_e2e"], row["both_wrong"]) \
        == (40, 28, 1, 9, 2)
    assert row["p_value"] == 0.021484375  # 2 * (1 + 10) / 2^10
    assert row["test_acc_model"] == pytest.approx(29 / 40) and row["test_acc_e2e"] == pytest.approx(37 / 40)
    assert t.loc["scratch", "only_model"] == t.loc["scratch", "only_e2e"] == 0
    assert t.loc["scratch", "p_value"] == 1.0
    assert (t.loc["head", "only_model"], t.loc["head", "only_e2e"]) == (3, 0)  # e2e wrong on 3
    assert t.loc["head", "p_value"] == pytest.approx(2 / 8)
    # one family: Holm over the 11 tests, by hand for the smallest (compressed's)
    assert t["p_holm"].min() == pytest.approx(11 * 0.021484375)
    assert (t["p_holm"] >= t["p_value"]).all()


def test_si_against_each_control_by_hand(study):
    """comparisons.csv: SI minus L1 at the chosen k, paired by seed (100, 101, 102), against
    scipy's paired t-interval; the exact test on the per-seed discordant images counted here
    from the predictions, against scipy's binomtest; scratch against the compressed model, one
    run each; Holm over the file."""
    from scipy import stats as scipy_stats

    from sicompress.controls import read_predictions
    from sicompress.stats import holm

    tmp_path, runs, refs = study
    _, out = summarize(tmp_path, runs, refs)
    t = pd.read_csv(out["comparisons"], keep_default_na=True)
    row = t[(t["a"] == "si") & (t["b"] == "l1") & t["what"].str.startswith("chosen")].iloc[0]
    ci = scipy_stats.ttest_rel(CHOSEN_ACC["si"], CHOSEN_ACC["l1"]).confidence_interval(0.95)
    # d = 0.03, 0.01, -0.01: mean 0.01, sd 0.02, half-width t(0.975, 2) 0.02 / sqrt(3)
    assert (row["kind"], row["n"], row["seeds"]) == ("paired", 3, "100 101 102")
    assert row["delta"] == pytest.approx(0.01, abs=1e-12)
    assert (row["lo"], row["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row["half_width"] == pytest.approx(4.302652729749464 * 0.02 / np.sqrt(3))
    chosen = {(r["selector"], r["repeat"]): r for r in runs if r["group"] == "chosen"}
    only_si = only_l1 = 0
    for repeat in range(3):
        label, p_si = read_predictions(chosen[("si", repeat)]["predictions"])
        _, p_l1 = read_predictions(chosen[("l1", repeat)]["predictions"])
        only_si += int(np.sum((p_si == label) & (p_l1 != label)))
        only_l1 += int(np.sum((p_si != label) & (p_l1 == label)))
    assert (row["only_a"], row["only_b"]) == (only_si, only_l1)
    assert row["p_value"] == pytest.approx(
        scipy_stats.binomtest(only_si, only_si + only_l1, 0.5).pvalue, rel=1e-9)
    # the frontier: each fraction's SI against each other selector, k in the name
    assert set(t["what"]) == {"chosen k (k = 6)", "fraction 0.25 (k = 8)",
                              "fraction 0.5 (k = 16)", "one run each"}
    scratch = t[t["a"] == "scratch"].iloc[0]
    assert (scratch["b"], scratch["n"]) == ("compressed", 1) and np.isnan(scratch["lo"])
    # scratch is right where e2e is (37), the compressed model on 29: 9 against 1
    assert (scratch["only_a"], scratch["only_b"]) == (9, 1)
    assert scratch["p_value"] == 0.021484375
    tested = t["p_value"].notna()
    assert t.loc[tested, "p_holm"].tolist() == pytest.approx(holm(t.loc[tested, "p_value"]))


def test_macs_counted_from_the_checkpoint_when_not_recorded(study, monkeypatch):
    tmp_path, runs, refs = study
    seen = {}
    from sicompress import figures
    monkeypatch.setattr(figures, "plot_frontier",
                        lambda frontier, path, chosen, references: seen.update(references))
    summarize(tmp_path, runs, refs)
    assert seen["e2e"]["macs_total"] == macs_by_hooks(build_model(arch()))["total"]
    assert seen["scratch"] == {"test_acc": pytest.approx(37 / 40), "params_total": 607,
                               "macs_total": 6005}


def test_plot_is_a_png_of_readable_size(study):
    tmp_path, runs, refs = study
    _, out = summarize(tmp_path, runs, refs)
    from PIL import Image
    with Image.open(out["plot"]) as im:
        assert im.format == "PNG" and 600 <= im.width <= 1300


def test_a_label_mismatch_names_the_files(study):
    tmp_path, runs, refs = study
    path = runs[4]["predictions"]
    with np.load(path) as z:
        label, predicted = z["label"].copy(), z["predicted"]
    label[[0, 1]] = label[[1, 0]]  # two test images swapped
    np.savez(path, label=label, predicted=predicted)
    with pytest.raises(ValueError, match=rf"{path}.*{refs['e2e']['predictions']}.*2 of 40 labels"):
        summarize(tmp_path, runs, refs)


def test_a_run_the_files_contradict_is_an_error(study):
    tmp_path, runs, refs = study
    runs[0] = dict(runs[0], selector="l1")
    with pytest.raises(ValueError, match=rf"{runs[0]['metrics']} records selector 'si'"):
        summarize(tmp_path, runs, refs)


def test_a_run_listed_twice_is_an_error(study):
    tmp_path, runs, refs = study
    with pytest.raises(ValueError, match="are the same run"):
        summarize(tmp_path, runs + [runs[3]], refs)


def test_a_missing_prediction_array_is_named(study):
    tmp_path, runs, refs = study
    np.savez(refs["head"]["predictions"], label=LABELS)
    with pytest.raises(ValueError, match=rf"{refs['head']['predictions']} lacks .*predicted"):
        summarize(tmp_path, runs, refs)


def test_no_frontier_runs(study):
    tmp_path, runs, refs = study
    tables, out = summarize(tmp_path, [r for r in runs if r["group"] == "chosen"], refs)
    assert tables["frontier"].empty and out["plot"].exists()
    assert list(pd.read_csv(out["frontier"]).columns)[:3] == ["selector", "fraction", "k"]


def test_metrics_without_compression_record(study):
    tmp_path, runs, refs = study
    m = json.loads(runs[0]["metrics"].read_text())
    del m["compression"]
    runs[0]["metrics"].write_text(json.dumps(m))
    with pytest.raises(ValueError, match="no 'compression' record"):
        summarize(tmp_path, runs, refs)


def test_a_test_accuracy_the_predictions_contradict_is_logged(study):
    tmp_path, runs, refs = study
    lines = []
    summarize_controls(runs, refs, selectors_csv=tmp_path / "s.csv", frontier_csv=tmp_path / "f.csv",
                       mcnemar_csv=tmp_path / "m.csv", plot=tmp_path / "f.png", log=lines.append)
    warned = [line for line in lines if line.startswith("WARNING")]
    # the study's si repeat 0 records 0.91 but its predictions are right on 29 of 40
    assert len(warned) == 1 and "compressed: test_acc 0.910000" in warned[0] and "0.725000" in warned[0]


def test_the_rule_step_passes_its_inputs(study):
    """The step of rule summarize_controls (`jobs.run`) with the snakemake object's containers."""
    from types import SimpleNamespace

    from sicompress import jobs

    iocontainers = pytest.importorskip("snakemake.iocontainers")
    tmp_path, runs, refs = study
    named = {"metrics": [str(r["metrics"]) for r in runs],
             "predictions": [str(r["predictions"]) for r in runs],
             "models": [str(r["model"]) for r in runs]}
    for name in ("e2e", "head", "scratch"):  # no finetuned: not configured
        for key in ("metrics", "predictions", "model"):
            named[f"{name}_{key}"] = str(refs[name][key])
    out = {k: str(tmp_path / "rule" / f"{k}.{'png' if k == 'plot' else 'csv'}")
           for k in ("selectors", "frontier", "mcnemar", "comparisons", "plot")}
    job = SimpleNamespace(
        rule="summarize_controls", threads=1,
        input=iocontainers.Namedlist(fromdict=named), output=iocontainers.Namedlist(fromdict=out),
        log=[str(tmp_path / "rule.log")],
        params=SimpleNamespace(runs=[{k: r[k] for k in ("group", "selector", "fraction", "repeat")}
                                     for r in runs]))
    jobs.run(job)
    mcnemar = pd.read_csv(out["mcnemar"])
    assert list(mcnemar["model"])[-2:] == ["scratch", "head"]
    assert len(pd.read_csv(out["selectors"])) == 9 and len(pd.read_csv(out["frontier"])) == 12
    # SI against l1 and random at the chosen k and at 2 fractions, scratch against compressed
    assert len(pd.read_csv(out["comparisons"])) == 2 + 2 * 2 + 1
