"""compare/stats.py against scipy, published worked examples and exact enumeration."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from replaygate.compare import stats as st


def test_mcnemar_exact_matches_scipy_binomtest():
    for n01, n10 in [(3, 12), (12, 3), (0, 5), (10, 10), (1, 40)]:
        want = sps.binomtest(min(n01, n10), n01 + n10, 0.5).pvalue
        assert st.mcnemar_exact(n01, n10) == pytest.approx(want, rel=1e-12)
    assert st.mcnemar_exact(0, 0) == 1.0


def test_mcnemar_exact_textbook_example():
    # Bentur et al. (2009) airway hyper-responsiveness, Fagerland et al. (2014): 1 vs 7
    # discordant pairs; exact conditional p = 2 * (1 + 8) / 2**8 = 0.0703
    assert st.mcnemar_exact(1, 7) == pytest.approx(18 / 256, abs=1e-12)
    # Cavo et al. (2012) complete response: 6 vs 16 discordant pairs
    assert st.mcnemar_exact(6, 16) == pytest.approx(0.052479, abs=5e-7)


def test_tango_interval_published_example():
    # Cavo et al. (2012), table [[59, 6], [16, 80]]: Tango asymptotic score CI
    # -0.0621 (95% CI -0.1240 to -0.0054) as published by Fagerland, Lydersen & Laake (2014)
    lo, hi = st.tango_interval(6, 16, 161, 0.025)
    assert lo == pytest.approx(-0.1240, abs=6e-5)
    assert hi == pytest.approx(-0.0054, abs=6e-5)


def test_tango_interval_inverts_the_score_test():
    lo, hi = st.tango_interval(4, 19, 120, 0.025, st.CONTINUITY)
    z = sps.norm.ppf(0.975)
    assert st.tango_z(4, 19, 120, lo, st.CONTINUITY) == pytest.approx(z, abs=1e-6)
    assert st.tango_z(4, 19, 120, hi, st.CONTINUITY) == pytest.approx(-z, abs=1e-6)
    assert lo < (4 - 19) / 120 < hi
    # no discordance at all: an interval around 0 that still has a width
    lo0, hi0 = st.tango_interval(0, 0, 50, 0.025)
    assert lo0 < 0 < hi0 and hi0 - lo0 > 0.05


@pytest.mark.parametrize("n,tol,gain", [(30, 0.0, 0.05), (100, 0.02, 0.02), (300, 0.02, 0.0),
                                        (300, 0.02, 0.005), (300, 0.0, 0.1), (100, 0.05, 0.005)])
def test_paired_proportion_gate_keeps_its_level_exactly(n, tol, gain):
    # exact enumeration of every 2x2 table: no Monte-Carlo error. The uncorrected score test
    # reaches 0.041 at (300, 0.02, 0.0); the continuity-corrected one must stay at nominal.
    assert st.paired_fail_probability(n, gain, gain + tol, -tol) <= 0.025
    # and the plain (uncorrected) score test is the one that is liberal there
    if (n, tol, gain) == (300, 0.02, 0.0):
        assert st.paired_fail_probability(n, gain, gain + tol, -tol, cc=0.0) > 0.035


def test_clopper_pearson_known_values():
    lo, hi = st.clopper_pearson(0, 300, 0.025)
    assert lo == 0.0
    assert hi == pytest.approx(1 - 0.025 ** (1 / 300), rel=1e-9)
    lo, hi = st.clopper_pearson(7, 20, 0.025)
    assert lo == pytest.approx(sps.beta.ppf(0.025, 7, 14), rel=1e-9)
    assert hi == pytest.approx(sps.beta.ppf(0.975, 8, 13), rel=1e-9)


def test_bootstrap_t_matches_a_brute_force_bootstrap_t_on_the_same_resamples():
    # the textbook bootstrap-t (Efron & Tibshirani 1993, 12.5), computed resample by resample
    # from the same multinomial counts, against the vectorised linear-statistics version
    rng = np.random.default_rng(4)
    n = 40
    b = rng.lognormal(6, 0.5, n)
    c = b * rng.lognormal(0.1, 0.3, n) + (rng.random(n) < 0.1) * 3000
    w = st.CaseWeights(n, 2000, seed=3)
    r = st.paired_mean_reps(w, b, c)[0]
    counts = w.gather(np.arange(n)).astype(float)  # (n, B)
    d = c - b
    est, se = d.mean(), d.std() / math.sqrt(n)
    m_b = (counts * d[:, None]).sum(0) / n
    sd_b = np.sqrt((counts * d[:, None] ** 2).sum(0) / n - m_b ** 2)
    t = (m_b - est) / (sd_b / math.sqrt(n))
    assert r.diff.est == pytest.approx(est) and r.diff.se == pytest.approx(se)
    assert np.allclose(np.sort(r.diff.t), np.sort(t), rtol=1e-9, atol=1e-9)
    lo_q, hi_q = np.quantile(t, [0.025, 0.975], method="inverted_cdf")
    assert r.diff.interval(0.025) == pytest.approx((est - hi_q * se, est - lo_q * se), rel=1e-9)
    # one-sided p-values invert the interval's bounds
    lo, hi = r.diff.interval(0.025)
    assert r.diff.p_greater(lo - 1e-6 * se) >= 0.025 - 1 / 2001 and r.diff.p_greater(lo + 0.05 * se) < 0.03
    assert r.diff.p_two_sided(0.0) == min(1.0, 2 * min(r.diff.p_greater(0.0), r.diff.p_less(0.0)))
    # the log ratio of the means: delta-method standard error at the original sample
    u = c / c.mean() - b / b.mean()
    assert r.log_ratio.est == pytest.approx(math.log(c.mean() / b.mean()))
    assert r.log_ratio.se == pytest.approx(u.std() / math.sqrt(n), rel=1e-9)
    # every case exactly 1.3x: no spread, the interval is the point
    exact = st.paired_mean_reps(w, b, 1.3 * b)[0].log_ratio
    assert exact.se == 0 and exact.interval(0.025) == (exact.est, exact.est)


def test_expanded_percentile_level_round_trips():
    for n in (5, 30, 300):
        a = st.expanded_alpha(0.025, n)
        assert a < 0.025
        assert st.unexpand_alpha(a, n) == pytest.approx(0.025, rel=1e-9)
    assert st.expanded_alpha(0.025, 100_000) == pytest.approx(0.025, rel=1e-3)


def test_mde_formulas():
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert st.mde_normal(0.1, 0.025) == pytest.approx(z * 0.1)
    # no noise flips: the MDE is about z^2/n, never 0
    assert 0.02 < st.mde_paired_proportion(0.0, 300, 0.025) < 0.04
    assert st.mde_paired_proportion(0.1, 300, 0.025) > st.mde_paired_proportion(0.02, 300, 0.025)


@pytest.mark.parametrize("n", [300, 1500, 20_000])
def test_bootstrap_standard_error_matches_theory(n):
    rng = np.random.default_rng(n)
    d = rng.lognormal(0, 0.8, n)
    w = st.CaseWeights(n, 10_000, seed=1)
    assert w.exact == (n <= st.EXACT_MAX_N)
    reps = st.weighted_means(w, d)[:, 0]
    se = d.std(ddof=0) / math.sqrt(n)
    assert reps.std() == pytest.approx(se, rel=0.04)
    assert reps.mean() == pytest.approx(d.mean(), abs=0.05 * se)


def test_cyclic_poisson_replicates_are_nearly_independent():
    n = 30_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    w = st.CaseWeights(n, 4000, seed=2)
    reps = st.weighted_means(w, x)[:, 0]
    # lag-1 correlation of the replicate series and correlation between the two halves
    r1 = np.corrcoef(reps[:-1], reps[1:])[0, 1]
    assert abs(r1) < 0.05
    assert abs(np.corrcoef(reps[:2000], reps[2000:])[0, 1]) < 0.07


@pytest.mark.parametrize("n,repeats", [(200, 1), (150, 3), (6000, 1), (3000, 2)])
def test_weighted_quantile_reps_are_exact_weighted_quantiles(n, repeats):
    rng = np.random.default_rng(n + repeats)
    case = np.repeat(np.arange(n), repeats)
    vals = rng.lognormal(6, 0.5, case.size)
    w = st.CaseWeights(n, 2000, seed=4)
    qs = [0.5, 0.95, 0.99]
    reps = st.weighted_quantile_reps(w, vals, case, qs)
    for b in (0, 7, 1999):
        wt = w.gather(case, slice(b, b + 1))[:, 0].astype(int)
        resample = np.repeat(vals, wt)
        for k, q in enumerate(qs):
            assert reps[b, k] == np.quantile(resample, q, method="inverted_cdf")
    assert not np.isnan(reps).any()


@pytest.mark.parametrize("n", [400, 3000])  # classic and cyclic-Poisson weights
def test_quantile_bootstrap_spread_matches_brute_force(n):
    rng = np.random.default_rng(9)
    vals = rng.lognormal(6, 0.5, n)
    reps = st.weighted_quantile_reps(st.CaseWeights(n, 4000, seed=5), vals, np.arange(n), [0.9])[:, 0]
    brute = np.array([np.quantile(vals[rng.integers(0, n, n)], 0.9, method="inverted_cdf") for _ in range(4000)])
    assert reps.std() == pytest.approx(brute.std(), rel=0.08)
    assert reps.mean() == pytest.approx(brute.mean(), rel=0.01)


def test_clustering_reports_the_gain_from_repeats():
    rng = np.random.default_rng(1)
    n, r = 400, 4
    truth = rng.normal(0, 1, n)
    vals = (truth[:, None] + rng.normal(0, 2, (n, r))).ravel()
    cl = st.clustering(vals, np.repeat(np.arange(n), r), n)
    assert cl.mean_repeats == pytest.approx(4)
    assert cl.within_var == pytest.approx(4.0, rel=0.1)
    # se with 4 repeats: sqrt((1 + 4/4)/n); with one: sqrt((1 + 4)/n)
    assert cl.se == pytest.approx(math.sqrt(2 / n), rel=0.1)
    assert cl.se_single == pytest.approx(math.sqrt(5 / n), rel=0.1)
    assert 0.25 < cl.se_reduction < 0.5
