"""Two trainings compared (sicompress.comparisons) and the report's reading of it
(markdown_report.reading): against scipy, hand counts, and simulated runs whose truth is known."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sicompress.comparisons import compare, comparison_table
from sicompress.markdown_report import reading
from sicompress.stats import holm


def write_predictions(path, labels, correct, rng):
    """predictions.npz whose `predicted` is right exactly where `correct` is."""
    wrong = (labels + 1 + rng.integers(0, 9, labels.size)) % 10
    np.savez(path, label=labels.astype(np.int64),
             predicted=np.where(correct, labels, wrong).astype(np.int64))


def test_pooled_test_counts_each_seeds_discordant_images(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200)
    a_runs, b_runs, expected = [], [], [0, 0]
    for seed in (10, 11, 12):
        ca, cb = rng.random(200) < 0.7, rng.random(200) < 0.6
        expected[0] += int(np.sum(ca & ~cb))
        expected[1] += int(np.sum(~ca & cb))
        write_predictions(tmp_path / f"a{seed}.npz", labels, ca, rng)
        write_predictions(tmp_path / f"b{seed}.npz", labels, cb, rng)
        a_runs.append({"seed": seed, "test_acc": ca.mean(), "predictions": tmp_path / f"a{seed}.npz"})
        b_runs.append({"seed": seed, "test_acc": cb.mean(), "predictions": tmp_path / f"b{seed}.npz"})
    row = compare(a_runs, b_runs, a="si", b="l1")
    assert (row["only_a"], row["only_b"]) == tuple(expected)
    assert row["p_value"] == pytest.approx(
        scipy_stats.binomtest(expected[0], sum(expected), 0.5).pvalue, rel=1e-9)
    ci = scipy_stats.ttest_rel([r["test_acc"] for r in a_runs],
                               [r["test_acc"] for r in b_runs]).confidence_interval(0.95)
    assert row["kind"] == "paired" and row["n"] == 3 and row["seeds"] == "10 11 12"
    assert (row["lo"], row["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_pairs_only_the_shared_seeds_and_falls_back_to_welch():
    a = [{"seed": s, "test_acc": v} for s, v in zip((0, 1, 2, 3), (0.70, 0.71, 0.69, 0.72))]
    b = [{"seed": s, "test_acc": v} for s, v in zip((0, 1, 2), (0.68, 0.70, 0.69))]
    row = compare(a, b, a="x", b="y")
    assert row["n"] == 3 and row["kind"] == "paired"
    assert row["delta"] == pytest.approx(np.mean([0.02, 0.01, 0.0]))
    c = [{"seed": s, "test_acc": v} for s, v in zip((7, 8, 9), (0.68, 0.70, 0.69))]
    row = compare(a, c, a="x", b="z")
    ci = scipy_stats.ttest_ind([r["test_acc"] for r in a], [r["test_acc"] for r in c],
                               equal_var=False).confidence_interval(0.95)
    assert row["kind"] == "welch" and math.isnan(row["p_value"])
    assert (row["lo"], row["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_a_repeated_seed_is_an_error():
    with pytest.raises(ValueError, match="repeat a seed"):
        compare([{"seed": 0, "test_acc": 0.5}] * 2, [{"seed": 0, "test_acc": 0.5}], a="a", b="b")


def test_the_family_is_holm_adjusted():
    rows = [dict(a="a", b=str(i), what="", n=1, lo=math.nan, hi=math.nan, delta=0.0,
                 p_value=p) for i, p in enumerate((0.01, 0.04, 0.03, math.nan))]
    table = comparison_table(rows)
    assert table["p_holm"].iloc[:3].tolist() == pytest.approx(holm([0.01, 0.04, 0.03]))
    assert math.isnan(table["p_holm"].iloc[3])


# ----------------------------------------------------------------------------------------
# The reading rule on simulated repeats: seeds shared by the two trainings (a seed effect
# common to both, as the classifier initialisation and batch order are), independent noise.


def simulate(rule, n: int, true_delta: float, draws: int = 400, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    fired = 0
    for _ in range(draws):
        shared = rng.normal(0.0, 1.0, n)  # the seed's effect on both
        a = 0.70 + 0.003 * shared + rng.normal(0.0, 0.003, n) + true_delta
        b = 0.70 + 0.003 * shared + rng.normal(0.0, 0.003, n)
        fired += rule(a, b)
    return fired / draws


def interval_rule(a, b) -> bool:
    row = compare([{"seed": s, "test_acc": v} for s, v in enumerate(a)],
                  [{"seed": s, "test_acc": v} for s, v in enumerate(b)], a="a", b="b")
    return reading.reading(row) == reading.BEATS


def old_rule(a, b) -> bool:
    """The report's earlier rule: |Δ mean| larger than the larger of the two sample sds."""
    return abs(np.mean(a) - np.mean(b)) > max(np.std(a, ddof=1), np.std(b, ddof=1))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_no_true_difference_beats_at_most_about_5_percent(n):
    # 400 draws: the binomial sd of a 5% rate is 1.1 pp; 3 pp of margin
    assert simulate(interval_rule, n, 0.0) <= 0.08


def test_the_old_rule_fails_that_bound():
    # it fires on pure noise about one time in five at 3 repeats: the test above can fail
    assert simulate(old_rule, 3, 0.0) > 0.08


def test_a_true_difference_of_3_sds_at_10_repeats_is_found():
    # the sd of one training's accuracy here is sqrt(2) * 0.003; 3 of them
    assert simulate(interval_rule, 10, 3 * math.sqrt(2) * 0.003) >= 0.95


def test_the_words_state_n_and_the_interval():
    row = compare([{"seed": s, "test_acc": v} for s, v in enumerate((0.72, 0.73, 0.74))],
                  [{"seed": s, "test_acc": v} for s, v in enumerate((0.70, 0.705, 0.71))],
                  a="a", b="b")
    v = reading.verdict(row, "SI", "L1")
    assert v["reading"] == reading.BEATS and v["first"] == "SI"
    assert "n = 3" in v["words"] and "95% interval [" in v["words"]
    # the same comparison with the sides swapped: the one ahead is still named first
    swapped = dict(row, delta=-row["delta"], lo=-row["hi"], hi=-row["lo"],
                   mean_a=row["mean_b"], mean_b=row["mean_a"])
    v2 = reading.verdict(swapped, "L1", "SI")
    assert (v2["first"], v2["second"]) == ("SI", "L1")
    assert (v2["delta"], v2["lo"], v2["hi"]) == pytest.approx((v["delta"], v["lo"], v["hi"]))
    tie = compare([{"seed": s, "test_acc": v} for s, v in enumerate((0.72, 0.70, 0.71))],
                  [{"seed": s, "test_acc": v} for s, v in enumerate((0.71, 0.71, 0.71))],
                  a="a", b="b")
    words = reading.verdict(tie, "SI", "L1")["words"]
    assert "no difference detected over 3 repeats" in words and "beats" not in words


def test_against_a_bound():
    assert reading.bound([0.002, 0.004, 0.003], 0.01)["reading"] == "met"
    assert reading.bound([0.05, 0.06, 0.055], 0.01)["reading"] == "not met"
    assert reading.bound([0.0, 0.02, 0.01], 0.01)["reading"] == "undecided"
    assert reading.bound([0.005], 0.01)["reading"] == reading.ONE_REPEAT
