"""McNemar's exact test and mean ± sd, against hand computations and scipy / statistics."""

import math
import statistics

import numpy as np
import pytest

from sicompress.stats import format_mean_sd, holm, mcnemar_exact, mean_sd


def pairs(both_correct: int, only_a: int, only_b: int, both_wrong: int, seed: int = 0):
    """Per-image correctness of two classifiers with these counts, in a shuffled order."""
    a = np.array([1] * both_correct + [1] * only_a + [0] * only_b + [0] * both_wrong, bool)
    b = np.array([1] * both_correct + [0] * only_a + [1] * only_b + [0] * both_wrong, bool)
    order = np.random.default_rng(seed).permutation(a.size)
    return a[order], b[order]


def test_a_case_by_hand():
    out = mcnemar_exact(*pairs(20, 1, 9, 5))
    assert out == {"n": 35, "both_correct": 20, "only_a": 1, "only_b": 9, "both_wrong": 5,
                   "p_value": 0.021484375}  # 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024


def test_no_discordant_pair_gives_one():
    assert mcnemar_exact(*pairs(7, 0, 0, 3))["p_value"] == 1.0
    assert mcnemar_exact(np.zeros(0, bool), np.zeros(0, bool))["p_value"] == 1.0


def test_equal_discordant_counts_give_one():
    assert mcnemar_exact(*pairs(3, 4, 4, 1))["p_value"] == 1.0  # 2 * tail > 1, capped


def test_symmetric_in_a_and_b():
    a, b = pairs(50, 13, 30, 7, seed=3)
    ab, ba = mcnemar_exact(a, b), mcnemar_exact(b, a)
    assert ab["p_value"] == ba["p_value"]
    assert (ab["only_a"], ab["only_b"]) == (ba["only_b"], ba["only_a"])


@pytest.mark.parametrize("only_a,only_b", [(0, 1), (0, 30), (2, 17), (40, 61), (350, 420),
                                           (1200, 1310), (4000, 4190), (4990, 5010)])
def test_against_scipy(only_a, only_b):
    scipy_stats = pytest.importorskip("scipy.stats")
    out = mcnemar_exact(*pairs(10, only_a, only_b, 10, seed=only_a))
    expected = scipy_stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
    assert out["p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_against_exact_fractions_far_in_the_tail():
    # n_d = 10,000 and a tiny p: a float sum would under- or overflow, the exact one does not
    out = mcnemar_exact(*pairs(0, 4600, 5400, 0))
    log_p = math.log(2) + math.log(sum(math.comb(10_000, i) for i in range(4601))) \
        - 10_000 * math.log(2)
    assert 0 < out["p_value"] < 1e-12
    assert math.log(out["p_value"]) == pytest.approx(log_p, rel=1e-12)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same length"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="bool"):
        mcnemar_exact(np.ones(3, int), np.ones(3, int))


def test_mean_sd_against_numpy_and_statistics():
    values = [0.912, 0.905, 0.9185, 0.9]
    mean, sd = mean_sd(values)
    assert mean == pytest.approx(statistics.mean(values), rel=1e-12)
    assert sd == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert sd == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    one = mean_sd([0.5])
    assert one[0] == 0.5 and math.isnan(one[1])
    with pytest.raises(ValueError):
        mean_sd([])


def test_format_mean_sd():
    assert format_mean_sd(0.91234, 0.0045, scale=100, unit="%") == "91.23 ± 0.45%"
    assert format_mean_sd(0.5, math.nan, scale=100, unit="%") == "50.00%"
    assert format_mean_sd(math.nan, math.nan) == "–"


def test_holm_by_hand():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04, but
    # never below the step before it: 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.2]) == [0.2] and holm([]) == []
    # ties keep their order and their adjusted values agree
    assert holm([0.01, 0.01, 0.5]) == pytest.approx([0.03, 0.03, 0.5])
    with pytest.raises(ValueError, match="p-values"):
        holm([0.1, 1.5])


# ----------------------------------------------------------------------------------------
# Intervals and the pooled exact test, against scipy.stats and hand computations

from scipy import stats as scipy_stats  # noqa: E402

from sicompress.stats import (detectable, mean_interval, paired_interval,  # noqa: E402
                              pooled_exact_test, sign_test_p, welch_interval)


def test_paired_interval_is_scipys_paired_t():
    a = [0.7150, 0.7150, 0.7159, 0.7170, 0.7141]
    b = [0.7168, 0.7155, 0.7147, 0.7190, 0.7160]
    ours = paired_interval(a, b)
    ci = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert ours["kind"] == "paired" and ours["n"] == 5 and ours["df"] == 4
    assert ours["lo"] == pytest.approx(ci.low, abs=1e-12)
    assert ours["hi"] == pytest.approx(ci.high, abs=1e-12)
    assert ours["delta"] == pytest.approx(np.mean(np.subtract(a, b)), abs=1e-15)


def test_paired_interval_by_hand():
    # d = (1, 2, 3): mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.302653
    out = paired_interval([2, 4, 6], [1, 2, 3])
    assert out["delta"] == 2
    assert out["half_width"] == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-12)


def test_welch_interval_is_scipys_welch():
    a = [0.71, 0.72, 0.705, 0.73]
    b = [0.69, 0.70, 0.72, 0.68, 0.71, 0.70]
    ours = welch_interval(a, b)
    res = scipy_stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert ours["kind"] == "welch"
    assert ours["lo"] == pytest.approx(ci.low, abs=1e-12)
    assert ours["hi"] == pytest.approx(ci.high, abs=1e-12)
    assert ours["df"] == pytest.approx(res.df, rel=1e-12)


def test_one_value_gives_no_interval():
    for out in (paired_interval([0.7], [0.6]), welch_interval([0.7], [0.6, 0.61]),
                mean_interval([0.5])):
        assert math.isnan(out["lo"]) and math.isnan(out["hi"]) and out["n"] == 1
    assert paired_interval([0.7], [0.6])["delta"] == pytest.approx(0.1)


def test_mean_interval_is_scipys_t_interval():
    x = [0.051, 0.049, 0.06, 0.058]
    lo, hi = scipy_stats.t.interval(0.95, 3, loc=np.mean(x), scale=scipy_stats.sem(x))
    out = mean_interval(x)
    assert out["lo"] == pytest.approx(lo, abs=1e-12) and out["hi"] == pytest.approx(hi, abs=1e-12)


def test_detectable_by_hand():
    assert detectable(1.0, 4) == pytest.approx(3.182446305284263 / 2, rel=1e-12)
    assert math.isnan(detectable(1.0, 1))


@pytest.mark.parametrize("k, n", [(0, 0), (3, 10), (10, 10), (480, 1000), (4700, 10000)])
def test_sign_test_is_scipys_binomtest(k, n):
    expected = 1.0 if n == 0 else scipy_stats.binomtest(k, n, 0.5).pvalue
    assert sign_test_p(k, n - k) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_pooled_exact_test_one_stratum_is_binomtest():
    out = pooled_exact_test([(13, 30)])
    assert out["p_value"] == pytest.approx(scipy_stats.binomtest(13, 43, 0.5).pvalue, rel=1e-12)


def test_pooled_exact_test_sums_strata_by_hand():
    # (3, 0) and (2, 1): 5 of 6 discordant images favour a;
    # p = 2 * (C(6,0) + C(6,1)) / 2^6 = 14 / 64
    out = pooled_exact_test([(3, 0), (2, 1)])
    assert (out["only_a"], out["only_b"], out["strata"]) == (5, 1, 2)
    assert out["p_value"] == 14 / 64
    # 500 against 500 discordant images: no accuracy difference at all, p = 1
    assert pooled_exact_test([(250, 250), (250, 250)])["p_value"] == 1.0
