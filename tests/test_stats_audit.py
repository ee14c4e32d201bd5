"""Scenarios of the statistics audit (issue 11), each a wrong verdict or misleading output that
compare_runs gave before: zero baselines with relative tolerances, ratio round-off, degenerate
intervals for rates with repeats, point mode, the p-value beside a mean, cosmetics."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from replaygate.compare import compare_runs
from replaygate.compare import stats as st
from replaygate.compare.synthetic import make_run
from replaygate.model import Run

N = 200


def _gates(out):
    return {g["metric"]: g for g in out["gates"]}


@pytest.mark.parametrize("mode", ["point", "significant", "noninferior"])
def test_an_increase_from_a_zero_baseline_is_beyond_any_relative_tolerance(mode):
    ok = np.ones(N, bool)
    base, cand = make_run(ok, cost=np.zeros(N)), make_run(ok, cost=np.full(N, 0.01))
    gates = [{"metric": "cost.mean", "max_increase": "10%"}, {"metric": "cost.total", "max_increase": "10%"}]
    out = compare_runs(base, cand, gates, {"mode": mode})
    for g in out["gates"]:
        assert g["verdict"] == "fail" and not g["passed"], g
        assert "baseline is 0" in g["reason"] and g["tolerance"] == 0
    assert out["exit_code"] == 1
    # the same zero baseline and no change passes (nothing increased)
    same = compare_runs(base, base, gates, {"mode": "point"})
    assert same["exit_code"] == 0


def test_error_rate_with_repeats_from_zero_fails_a_relative_gate():
    ok = np.ones((N, 2), bool)
    e1 = np.zeros((N, 2))
    e1[:, 0] = 1  # 0% -> 50%
    out = compare_runs(make_run(ok), make_run(ok, errors=e1), [{"metric": "errors.rate", "max_increase": "10%"}], {})
    g = out["gates"][0]
    assert g["verdict"] == "fail" and out["exit_code"] == 1


def test_ratio_replicates_have_no_round_off_garbage():
    ok = np.ones((400, 2), bool)
    eb, ec = np.zeros((400, 2)), np.zeros((400, 2))
    eb[0, 0] = 1  # 1/800 samples
    ec.ravel()[:200] = 1  # 200/800
    out = compare_runs(make_run(ok, errors=eb), make_run(ok, errors=ec),
                       [{"metric": "errors.rate", "max_increase": "10%"}], {})
    g = out["gates"][0]
    assert g["verdict"] == "fail"
    assert all(abs(v) < 10 for v in g["ci"]), g["ci"]
    # replicate means of a sparse column are exactly 0 where the resample holds no event, on
    # the classic and on the FFT (cyclic Poisson) path, so ratios are 0, 1 or +inf, never 1e16
    for n in (300, 3000):
        b = np.zeros(n)
        b[:2] = 1.0
        c = np.zeros(n)
        c[: n // 3] = 1.0
        r = st.paired_mean_reps(st.CaseWeights(n, 2000, 1), b, c)[0]
        ratios = r.ratio_reps
        assert np.all(r.base_reps >= 0) and np.all(r.base_reps[r.base_reps > 0] >= 1.0 / (3 * n))
        zero = r.base_reps == 0
        assert zero.any() and np.all(np.isinf(ratios[zero]))
        assert np.all(np.abs(ratios[~zero]) < 10 * n)


@pytest.mark.parametrize("metric,rule", [("errors.rate", {"max": 0.01}), ("quality.pass_rate", {"min": 0.99}),
                                         ("errors.rate", {"max_increase": 0.01})])
def test_twenty_clean_samples_cannot_show_a_rate_beyond_one_percent(metric, rule):
    run = make_run(np.ones((10, 2), bool))  # 10 cases x 2 repeats, no error, all pass
    out = compare_runs(run, run, [{"metric": metric, **rule, "mode": "noninferior"}], {})
    g = out["gates"][0]
    assert g["verdict"] == "inconclusive" and not g["passed"]
    lo, hi = g["ci"]
    assert hi - lo > 0.2  # about Clopper-Pearson's 0/10, not the bootstrap's [0, 0]
    if "max" in rule:
        # no event at all: repeats count as one sample per case (the worst design effect)
        assert hi == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-6)


def test_effective_counts_reduce_to_counts_without_repeats_and_bound_the_design_effect():
    rng = np.random.default_rng(0)
    b = (rng.random(200) < 0.8).astype(float)
    c = (rng.random(200) < 0.7).astype(float)
    ones = np.ones(200)
    e = st.effective_counts(b, c, ones, ones)
    assert e.n == 200 and e.deff == 1
    assert e.gains == np.sum((b == 0) & (c == 1)) and e.losses == np.sum((b == 1) & (c == 0))
    # repeats of a case that always behaves the same carry no extra information: deff = r
    r3 = np.full(200, 3)
    e3 = st.effective_counts(b, c, r3, r3)
    assert e3.deff == pytest.approx(3, rel=0.02) and e3.n == pytest.approx(200, rel=0.02)
    # independent repeats: deff ~ 1, so 3 repeats count as ~3x the samples
    bi = (rng.random((200, 3)) < 0.8).mean(1)
    ci = (rng.random((200, 3)) < 0.7).mean(1)
    ei = st.effective_counts(bi, ci, r3, r3)
    assert ei.deff < 1.35 and ei.n > 440
    assert st.design_effect(np.zeros(50), np.full(50, 4.0)) == 4.0


def test_clopper_pearson_and_binomial_tests_take_effective_counts():
    for k, n in [(0, 10), (3, 20), (20, 20), (7, 300)]:
        ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert st.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
        for p0 in (0.01, 0.2, 0.9):
            assert st.binom_p_greater(k, n, p0) == pytest.approx(
                sps.binomtest(k, n, p0, alternative="greater").pvalue, rel=1e-9, abs=1e-15)
            assert st.binom_p_less(k, n, p0) == pytest.approx(
                sps.binomtest(k, n, p0, alternative="less").pvalue, rel=1e-9, abs=1e-15)
    # fractional effective counts lie between their whole neighbours
    lo2, hi2 = st.clopper_pearson(2, 10)
    lo, hi = st.clopper_pearson(2.5, 10.0)
    lo3, hi3 = st.clopper_pearson(3, 10)
    assert lo2 < lo < lo3 and hi2 < hi < hi3


def test_point_mode_compares_point_estimates_whatever_n_is():
    base = make_run(np.ones(9, bool), latency=np.full(9, 500.0))
    cand = make_run(np.ones(9, bool), latency=np.full(9, 1500.0))
    out = compare_runs(base, cand, [{"metric": "latency.mean", "max_increase": "10%", "mode": "point"}], {})
    g = out["gates"][0]
    assert g["verdict"] == "fail" and "evidence is thin" in g["reason"] and out["exit_code"] == 1
    rng = np.random.default_rng(0)
    lat = rng.lognormal(6, 0.3, 50)
    out = compare_runs(make_run(np.ones(50, bool), latency=lat), make_run(np.ones(50, bool), latency=lat * 3),
                       [{"metric": "latency.p95", "max_increase": "10%", "mode": "point"}], {})
    assert out["gates"][0]["verdict"] == "fail" and out["exit_code"] == 1
    # thin evidence still cannot decide the statistical modes
    sig = compare_runs(base, cand, [{"metric": "latency.mean", "max_increase": "10%"}], {})
    assert sig["gates"][0]["verdict"] == "inconclusive"


def test_the_p_value_beside_a_mean_tests_the_mean():
    # most cases get a little faster, a few get much slower: the median difference is negative
    # while the mean rises; a signed-rank p-value (a location test) says the opposite of the
    # interval. The p-value shown must be the bootstrap one for the mean, agreeing with it.
    rng = np.random.default_rng(2)
    n = 300
    lat = rng.lognormal(7, 0.3, n)
    d = np.where(rng.random(n) < 0.1, 1800.0, -20.0) + rng.normal(0, 5, n)
    out = compare_runs(make_run(np.ones(n, bool), latency=lat), make_run(np.ones(n, bool), latency=lat + d), [], {})
    m = out["metrics"]["latency.mean"]
    assert m["test"] == "bootstrap_t" and np.median(d) < 0 < m["delta"]
    lo, hi = m["ci"]
    assert lo > 0 and m["p_value"] < 0.05
    flat = compare_runs(make_run(np.ones(n, bool), latency=lat), make_run(np.ones(n, bool), latency=lat + rng.normal(0, 50, n)), [], {})
    fm = flat["metrics"]["latency.mean"]
    assert (fm["ci"][0] < 0 < fm["ci"][1]) == (fm["p_value"] > 0.05)


def test_cosmetics_mde_capped_and_empty_runs_say_nothing_to_compare():
    one = make_run(np.ones(1, bool))
    out = compare_runs(one, one, [{"metric": "quality.pass_rate", "max_decrease": 0.01}], {})
    assert out["metrics"]["quality.pass_rate"]["mde"] is None  # was 1.89 ("188.7 pts")
    assert out["gates"][0]["mde"] is None
    assert any("too few" in w for w in out["metrics"]["quality.pass_rate"]["warnings"])
    empty_a, empty_b = Run(variant={"name": "a"}, cases=[]), Run(variant={"name": "b"}, cases=[])
    out = compare_runs(empty_a, empty_b, [{"metric": "score.judge.mean", "max_decrease": 0.1}], {})
    assert "nothing to compare" in out["gates"][0]["reason"]
    json.dumps(out, allow_nan=False)


def test_no_negative_zero_in_intervals():
    from replaygate.report import fmt
    assert fmt.interval("latency.mean", [0.0, -0.0]) == "[+0, +0]"
    assert fmt.interval("errors.rate", [-1e-19, 0.0]) == "[+0.0, +0.0] pts"
    assert "-0.0" not in fmt.gate_interval("cost.mean", {"ci": [-0.0, 0.2], "scale": "relative"})


def test_p95_mde_is_stated_on_the_log_scale_of_the_ratio():
    from replaygate.compare import paired_comparisons
    rng = np.random.default_rng(5)
    n = 400
    speed = rng.lognormal(6.5, 0.5, n)
    base = make_run(np.ones(n, bool), latency=speed * rng.lognormal(0, 0.3, n))
    cand = make_run(np.ones(n, bool), latency=speed * rng.lognormal(0, 0.3, n))
    gate = [{"metric": "latency.p95", "max_increase": "10%"}]
    g = compare_runs(base, cand, gate, {})["gates"][0]
    ratio = paired_comparisons(base, cand).comps["latency.p95"].ratio_reps
    k = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    se_log = np.nanstd(np.log(ratio))
    assert g["mde"] == pytest.approx(1.1 * math.exp(k * se_log) - 1, rel=1e-9)
    assert g["mde"] > 0.1 + k * np.nanstd(ratio - 1)  # the linear MDE understated it


def test_log_ratio_bounds_and_mde_never_overflow():
    """A log-ratio bound or spread from a handful of wild cases is beyond exp's range: an
    unbounded ratio (or no MDE), never an OverflowError that kills the comparison."""
    from replaygate.compare.gates import _expm1, _log_mde
    assert _expm1(1e4) == float("inf") and _expm1(-1e4) == -1.0
    assert _expm1(float("inf")) == float("inf") and _expm1(float("-inf")) == -1.0
    assert abs(_expm1(0.5) - 0.6487212707001282) < 1e-12
    assert _log_mde(1, 0.1, 1e3, 0.05) is None
    assert 0.1 < _log_mde(1, 0.1, 0.1, 0.05) < 1
