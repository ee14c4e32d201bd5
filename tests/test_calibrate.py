"""compare/calibrate.py: noise from A/A data and the sizes needed per gate."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from replaygate.compare import stats as st
from replaygate.compare.calibrate import calibrate, render_calibration, split_repeats
from replaygate.compare.synthetic import make_run
from replaygate.errors import InputError

GATES = [{"metric": "quality.pass_rate", "max_decrease": 0.03},
         {"metric": "score.sim.mean", "max_decrease": 0.02},
         {"metric": "latency.p95", "max_increase": "20%"},
         {"metric": "errors.rate", "max": 0.05}]


def _aa(n=400, seed=0, repeats=1):
    rng = np.random.default_rng(seed)
    p_case = rng.beta(3, 1, n)
    quality = rng.beta(4, 2, n)
    shape = (n, repeats)

    def one():
        passed = rng.random(shape) < p_case[:, None]
        score = np.clip(quality[:, None] + rng.normal(0, 0.15, shape), 0, 1)
        lat = rng.lognormal(6.5, 0.3, n)[:, None] * rng.lognormal(0, 0.2, shape)
        errors = rng.random(shape) < 0.01
        return make_run(passed, latency=lat, score=score, errors=errors)

    return one(), one(), p_case


def test_two_run_calibration_measures_the_flip_rate_and_sizes_the_gates():
    a, b, p_case = _aa()
    res = calibrate(a, b, GATES, {})
    assert res["source"].startswith("two runs") and res["n_cases"] == 400
    flip = res["noise"]["quality.pass_rate"]["flip_rate"]
    expected = np.mean(2 * p_case * (1 - p_case)) * 0.99 ** 2  # errors also fail a sample
    assert flip == pytest.approx(expected, abs=0.04)
    rec = {r["metric"]: r for r in res["recommendations"]}
    q = rec["quality.pass_rate"]
    a_h = 0.025 / 4
    need = q["cases_needed"]
    assert st.mde_paired_proportion(flip, need, a_h) <= 0.03 < st.mde_paired_proportion(flip, need - 1, a_h)
    # the score gate: (z + z) * sd / sqrt(n) <= tolerance
    sd = res["noise"]["score.sim.mean"]["sd_paired_difference"]
    k = sps.norm.ppf(1 - a_h) + sps.norm.ppf(0.8)
    assert rec["score.sim.mean"]["cases_needed"] == pytest.approx((k * sd / 0.02) ** 2, rel=0.1)
    assert rec["latency.p95"]["cases_needed"] >= 1
    e = rec["errors.rate"]
    assert e["cases_needed"] > 0 and "within 0.05" in e["note"]
    # nothing changed, so no gate may fail on the A/A pair
    assert all(g["verdict"] != "fail" for g in res["aa_gates"])
    json.dumps(res, allow_nan=False)  # plain JSON: no numpy scalars, no NaN
    text = render_calibration(res)
    assert "flip rate" in text and "quality.pass_rate max_decrease 0.03" in text


def test_one_run_with_repeats_is_split_into_even_and_odd_repeats():
    run, _, _ = _aa(n=150, repeats=4, seed=1)
    a, b = split_repeats(run)
    assert [len(c.samples) for c in a.cases[:3]] == [2, 2, 2]
    assert a.cases[0].samples[0] is run.cases[0].samples[0] and b.cases[0].samples[0] is run.cases[0].samples[1]
    res = calibrate(run, None, GATES, {})
    assert res["source"].startswith("even vs odd") and res["repeats"] == 2
    assert res["noise"]["score.sim.mean"]["repeats"]["baseline"]["se_reduction"] > 0


def test_small_data_set_recommends_repeats():
    a, b, _ = _aa(n=40, seed=2)
    res = calibrate(a, b, [{"metric": "score.sim.mean", "max_decrease": 0.01}], {})
    r = res["recommendations"][0]
    assert r["cases_needed"] > 40 and r["repeats_needed"] == math.ceil(r["cases_needed"] / 40)
    assert not r["enough_now"]


def test_deterministic_baseline_needs_few_cases_and_zero_tolerance_is_flagged():
    ok = np.ones(200, bool)
    run = make_run(ok)
    res = calibrate(run, run, [{"metric": "quality.pass_rate", "max_decrease": 0.1},
                               {"metric": "quality.pass_rate", "max_decrease": 0.0}], {})
    first, zero = res["recommendations"]
    assert res["noise"]["quality.pass_rate"]["flip_rate"] == 0
    assert first["cases_needed"] < 200 and first["enough_now"]
    assert "zero tolerance" in zero["note"]


def test_calibration_needs_repeats_or_a_second_run():
    with pytest.raises(InputError):
        calibrate(make_run(np.ones(10, bool)), None, [], {})


def test_a_rate_zero_in_every_sample_needs_the_samples_that_can_show_its_bound():
    # no error anywhere: the old variance floor (1e-12) recommended "1 case" for errors.rate max
    # 0.01; zero errors in n samples show a rate below 1% only once 0.99^n <= alpha
    ok = np.ones(300, bool)
    res = calibrate(make_run(ok), make_run(ok), [{"metric": "errors.rate", "max": 0.01},
                                                  {"metric": "quality.pass_rate", "min": 0.95}], {})
    rec = {r["metric"]: r for r in res["recommendations"]}
    assert rec["errors.rate"]["cases_needed"] >= math.log(0.025 / 2) / math.log(0.99)  # ~420
    assert rec["quality.pass_rate"]["cases_needed"] >= math.log(0.025 / 2) / math.log(0.95)
    # with 2 repeats and no event the worst design effect holds: a case counts once
    two = np.ones((300, 4), bool)
    res2 = calibrate(make_run(two), None, [{"metric": "errors.rate", "max": 0.01}], {})
    assert res2["recommendations"][0]["cases_needed"] >= math.log(0.025) / math.log(0.99)  # ~367


def test_relative_tolerances_are_shown_in_the_rules_terms():
    a, b, _ = _aa(n=400, seed=3)
    res = calibrate(a, b, [{"metric": "latency.p95", "max_increase": "20%"},
                           {"metric": "score.sim.mean", "max_decrease": "5%"}], {})
    p95, sim = res["recommendations"]
    assert p95["tolerance"] == pytest.approx(0.20) and p95["scale"] == "relative"  # not log(1.2) = 0.1823
    assert sim["tolerance"] == pytest.approx(0.05)
    text = render_calibration(res)
    assert "vs tolerance 20.0% (of the baseline)" in text and "0.1823" not in text
    # the detectable change is a relative change too: exp(k se_log) - 1
    k = sps.norm.ppf(1 - 0.025 / 2) + sps.norm.ppf(0.8)
    se = res["noise"]["latency.p95"]["se_log_ratio"]
    assert p95["mde_now"] == pytest.approx(math.expm1(k * se), rel=1e-6)
