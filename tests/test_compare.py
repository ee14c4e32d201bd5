"""compare_runs end to end on synthetic runs built from model.py dataclasses."""
import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

from replaygate.compare import compare_runs
from replaygate.compare.synthetic import make_run
from replaygate.errors import ConfigError, InputError

GATES = [{"metric": "quality.pass_rate", "max_decrease": 0.02},
         {"metric": "cost.mean", "max_increase": "10%"},
         {"metric": "latency.p95", "max_increase": "25%"},
         {"metric": "errors.rate", "max": 0.01}]


@pytest.fixture(scope="module")
def schema():
    text = resources.files("replaygate").joinpath("schemas/comparison.schema.json").read_text()
    return json.loads(text)


def _valid(out, schema):
    jsonschema.validate(json.loads(json.dumps(out, allow_nan=False)), schema)
    blocked = int(any(not g["passed"] for g in out["gates"]))
    assert out["exit_code"] == (3 if out["coverage"]["problems"] else blocked)
    return out


def _pair(n=300, drop=0.0, seed=0, repeats=1, **cand_kw):
    rng = np.random.default_rng(seed)
    shape = (n, repeats) if repeats > 1 else (n,)
    p_case = rng.beta(8, 1, n)
    base = rng.random(shape) < (p_case[:, None] if repeats > 1 else p_case)
    cand = base.copy()
    if drop:
        flip = rng.choice(np.flatnonzero(base.reshape(n, -1)[:, 0]), int(drop * n), replace=False)
        cand.reshape(n, -1)[flip] = False
    lat = rng.lognormal(6.5, 0.4, shape)
    return make_run(base, latency=lat, name="baseline"), make_run(cand, latency=cand_kw.pop("latency", lat), name="candidate", **cand_kw)


def test_fifteen_point_drop_fails_and_identical_passes(schema):
    base, cand = _pair(drop=0.15)
    out = _valid(compare_runs(base, cand, GATES, {}), schema)
    q = next(g for g in out["gates"] if g["metric"] == "quality.pass_rate")
    assert q["verdict"] == "fail" and not q["passed"]
    assert out["verdict"] == "fail" and out["exit_code"] == 1
    assert out["metrics"]["quality.pass_rate"]["delta"] == pytest.approx(-0.15)
    assert out["metrics"]["quality.pass_rate"]["test"] == "mcnemar_exact"
    assert out["metrics"]["quality.pass_rate"]["p_value"] < 1e-10
    assert out["n_regressions"] == 45 and len(out["regressions"]) == 45
    assert {r["case"] for r in out["regressions"]} <= {c.id for c in base.cases}
    assert out["holm"]["applied"] and out["holm"]["family_size"] == 4

    same = _valid(compare_runs(base, base, GATES, {}), schema)
    assert same["exit_code"] == 0 and same["verdict"] in ("pass", "inconclusive")
    assert all(g["passed"] for g in same["gates"])
    assert same["regressions"] == [] and same["n_paired"] == 300


def test_small_drop_within_noise_does_not_fail():
    base, cand = _pair(drop=0.01, seed=3)
    out = compare_runs(base, cand, [{"metric": "quality.pass_rate", "max_decrease": 0.0}], {})
    assert out["exit_code"] == 0
    assert out["gates"][0]["verdict"] == "inconclusive"
    assert out["gates"][0]["mde"] > 0.01  # says how large a drop could hide


def test_noninferior_needs_evidence_and_point_mode_uses_the_observed_change():
    base, cand = _pair(n=40, drop=0.0)
    ni = compare_runs(base, cand, [{"metric": "quality.pass_rate", "max_decrease": 0.01, "mode": "noninferior"}], {})
    assert ni["gates"][0]["verdict"] == "inconclusive" and not ni["gates"][0]["passed"]
    assert ni["exit_code"] == 1 and ni["verdict"] == "fail"
    base, cand = _pair(n=40, drop=0.05)
    pt = compare_runs(base, cand, [{"metric": "quality.pass_rate", "max_decrease": 0.01}], {"mode": "point"})
    assert pt["gates"][0]["verdict"] == "fail" and pt["exit_code"] == 1
    sig = compare_runs(base, cand, [{"metric": "quality.pass_rate", "max_decrease": 0.01}], {})
    assert sig["gates"][0]["verdict"] == "inconclusive" and sig["exit_code"] == 0


def test_relative_cost_gate_and_latency_quantile_gate(schema):
    n = 300
    rng = np.random.default_rng(4)
    cost = rng.uniform(1e-4, 3e-4, n)
    lat = rng.lognormal(6.5, 0.4, n)
    ok = np.ones(n, bool)
    base = make_run(ok, latency=lat, cost=cost)
    pricier = make_run(ok, latency=lat * rng.lognormal(0.4, 0.05, n), cost=cost * 1.3)
    out = _valid(compare_runs(base, pricier, GATES, {}), schema)
    by = {g["metric"]: g for g in out["gates"]}
    assert by["cost.mean"]["verdict"] == "fail" and by["cost.mean"]["scale"] == "relative"
    assert by["cost.mean"]["observed"] == pytest.approx(0.3)
    assert by["latency.p95"]["verdict"] == "fail"
    assert out["metrics"]["latency.p95"]["ratio"] == pytest.approx(1.49, abs=0.06)
    assert any("p99" in w for w in out["metrics"]["latency.p99"]["warnings"])
    assert out["metrics"]["cost.total"]["candidate"] == pytest.approx(cost.sum() * 1.3)


def test_error_rate_bound_uses_the_candidates_own_interval():
    n = 300
    ok = np.ones(n, bool)
    errs = np.zeros(n)
    errs[:24] = 1  # 8% errors
    out = compare_runs(make_run(ok), make_run(ok, errors=errs), [{"metric": "errors.rate", "max": 0.01}], {})
    g = out["gates"][0]
    assert g["verdict"] == "fail" and g["scale"] == "value"
    assert g["ci"][0] > 0.01 and g["candidate"] == pytest.approx(0.08)
    # errored samples also fail quality
    assert out["metrics"]["quality.pass_rate"]["delta"] == pytest.approx(-0.08)


def test_unknown_cost_is_reported_and_never_zero(schema):
    n = 50
    ok = np.ones(n, bool)
    cost = np.full(n, 1e-4, dtype=object)
    cost[3] = None
    out = _valid(compare_runs(make_run(ok), make_run(ok, cost=cost),
                              [{"metric": "cost.mean", "max_increase": "10%"},
                               {"metric": "cost.total", "max_increase": 0.0, "mode": "noninferior"}], {}), schema)
    assert out["metrics"]["cost.mean"]["candidate"] is None
    assert "unknown" in out["metrics"]["cost.mean"]
    sig, ni = out["gates"]
    assert sig["verdict"] == "inconclusive" and sig["passed"] and "unknown" in sig["reason"]
    assert ni["verdict"] == "inconclusive" and not ni["passed"]


def test_unpaired_cases_are_reported_not_dropped(schema):
    base, cand = _pair(n=60)
    cand.cases = cand.cases[5:] + [cand.cases[0].__class__(id="new-case")]
    out = _valid(compare_runs(base, cand, GATES, {}), schema)
    assert out["n_paired"] == 55
    assert out["only_in_baseline"] == [c.id for c in base.cases[:5]]
    assert out["only_in_candidate"] == ["new-case"]
    assert any("only in baseline" in w for w in out["warnings"])
    # coverage is part of the verdict: 55 of 60 is below the default min_coverage 1.0
    assert out["exit_code"] == 3 and out["verdict"] == "incomplete"
    cov = out["coverage"]
    assert (cov["paired"], cov["missing"], cov["extra"]) == (55, 5, 1)
    assert cov["missing_ids"] == out["only_in_baseline"]
    assert "covers 55 of the baseline's 60 cases" in cov["problems"][0] and out["only_in_baseline"][0] in cov["problems"][0]
    # a lower bar, set on purpose, lets the 55 paired cases decide
    ok = _valid(compare_runs(base, cand, GATES, {"min_coverage": 0.9}), schema)
    assert ok["exit_code"] in (0, 1) and ok["coverage"]["problems"] == []


def test_no_paired_case_and_incomplete_runs_are_never_a_pass(schema):
    base, cand = _pair(n=30)
    empty = cand.__class__(variant={"name": "cand"}, cases=[])
    out = _valid(compare_runs(base, empty, GATES, {"min_coverage": 0.0}), schema)
    assert out["exit_code"] == 3 and "no case is in both runs" in out["coverage"]["problems"][0]
    cand.complete, cand.incomplete_reasons = False, ["provider unreachable"]
    out = _valid(compare_runs(base, cand, GATES, {}), schema)
    assert out["exit_code"] == 3 and "candidate run is incomplete" in out["warnings"][0]
    assert "provider unreachable" in out["warnings"][0]


def test_repeats_are_clustered_and_their_gain_reported(schema):
    base, cand = _pair(n=100, repeats=4, seed=2)
    out = _valid(compare_runs(base, cand, GATES, {}), schema)
    m = out["metrics"]["quality.pass_rate"]
    assert m["test"] == "score_test_effective_n"  # fractions per case: no McNemar
    assert m["n"] == 100
    rep = m["repeats"]["baseline"]
    assert rep["mean_repeats"] == 4 and rep["within_case_variance"] > 0
    assert 0 < rep["se_reduction"] < 1


def test_gate_config_errors_name_the_field():
    base, cand = _pair(n=20)
    with pytest.raises(ConfigError) as e:
        compare_runs(base, cand, [{"metric": "latency.p96", "max_increase": "5%"}], {})
    assert e.value.field == "gates[0].metric"
    with pytest.raises(ConfigError) as e:
        compare_runs(base, cand, [{"metric": "cost.mean", "max_increase": "ten percent"}], {})
    assert e.value.field == "gates[0].max_increase"
    with pytest.raises(ConfigError) as e:
        compare_runs(base, cand, [{"metric": "cost.mean", "max": 1, "min": 0}], {})
    assert e.value.field == "gates[0]"
    with pytest.raises(ConfigError) as e:
        compare_runs(base, cand, [{"metric": "cost.mean", "max": 1}], {"mode": "strict"})
    assert e.value.field == "decision.mode"
    with pytest.raises(ConfigError):
        compare_runs(base, cand, [{"metric": "cost.mean", "max": 1, "confidence": 95}], {})


def test_duplicate_case_ids_are_an_input_error():
    base, _ = _pair(n=5)
    base.cases.append(base.cases[0])
    with pytest.raises(InputError, match="appears twice"):
        compare_runs(base, base, [], {})


def test_holm_can_be_switched_off_and_is_reported():
    base, cand = _pair(n=100, drop=0.1)
    on = compare_runs(base, cand, GATES, {})
    off = compare_runs(base, cand, GATES, {"holm": False})
    assert on["holm"]["applied"] and not off["holm"]["applied"]
    g_on = on["gates"][0]
    assert g_on["p_adjusted"] >= g_on["p_value"]
    assert g_on["holm"]["family_size"] == 4 and g_on["holm"]["adjusted_confidence"] > 0.95
    assert off["gates"][0]["p_adjusted"] == off["gates"][0]["p_value"]


def test_bootstrap_resamples_come_from_the_config_key():
    base, cand = _pair(n=60, drop=0.1)
    few = compare_runs(base, cand, GATES[:1], {"bootstrap": 2000})
    assert few["decision"]["resamples"] == 2000
    with pytest.raises(ConfigError) as e:
        compare_runs(base, cand, GATES[:1], {"bootstrap": 50})
    assert e.value.field == "decision.bootstrap"


def test_results_are_reproducible_for_a_seed():
    base, cand = _pair(n=80, drop=0.05, latency=None)
    a = compare_runs(base, cand, GATES, {}, seed=7)
    b = compare_runs(base, cand, GATES, {}, seed=7)
    assert a == b


def test_a_handful_of_cases_cannot_fail_a_bootstrap_gate():
    # three cases that all got worse: the bootstrap interval has zero width, yet a sign test
    # would give p = 1/8; the gate must say the evidence is too thin, not fail
    gates = [{"metric": "score.sim.mean", "max_decrease": 0.1}, {"metric": "latency.p99", "max_increase": "5%"}]
    base = make_run(np.ones(3, bool), latency=np.full(3, 100.0))
    cand = make_run(np.zeros(3, bool), latency=np.full(3, 900.0))
    out = compare_runs(base, cand, gates, {})
    assert [g["verdict"] for g in out["gates"]] == ["inconclusive", "inconclusive"]
    assert "too thin" in out["gates"][0]["reason"] and out["exit_code"] == 0
    ni = compare_runs(base, cand, gates, {"mode": "noninferior"})
    assert ni["exit_code"] == 1


def test_a_rule_guarding_the_good_direction_is_flagged(schema):
    base, cand = _pair(n=50)
    out = _valid(compare_runs(base, cand, [{"metric": "quality.pass_rate", "max_increase": 0.05},
                                           {"metric": "latency.mean", "max_increase": "10%"}], {}), schema)
    assert "fails when the metric improves" in out["gates"][0]["warnings"][0]
    assert out["gates"][1]["warnings"] == []


def test_pairwise_win_rate_is_compared_against_no_preference(schema):
    base, cand = _pair(n=200, seed=5)
    rng = np.random.default_rng(5)
    ids = [c.id for c in base.cases]
    worse = {cid: float(v) for cid, v in zip(ids, rng.choice([0.0, 0.5, 1.0], 200, p=[0.6, 0.2, 0.2]))}
    pw = {"metric": "pairwise.pref.win_rate", "per_case": worse, "warnings": ["pairwise 'pref': 3 cases not compared"]}
    gates = [{"metric": "pairwise.pref.win_rate", "min": 0.45}, {"metric": "pairwise.pref.win_rate", "max_decrease": 0.0}]
    out = _valid(compare_runs(base, cand, gates, {}, pairwise=[pw]), schema)
    m = out["metrics"]["pairwise.pref.win_rate"]
    assert m["baseline"] == 0.5 and m["candidate"] == pytest.approx(np.mean(list(worse.values())))
    assert m["delta"] == pytest.approx(m["candidate"] - 0.5) and m["ci"][1] < 0
    assert m["test"] == "bootstrap_t" and m["n"] == 200
    assert "3 cases not compared" in m["warnings"][0]
    assert [g["verdict"] for g in out["gates"]] == ["fail", "fail"] and out["exit_code"] == 1
    even = {cid: 0.5 for cid in ids}
    ok = compare_runs(base, cand, gates[:1], {}, pairwise=[{"metric": "pairwise.pref.win_rate", "per_case": even}])
    assert ok["exit_code"] == 0


def test_noninferior_passes_with_enough_evidence_and_relative_rules_on_rates():
    base, cand = _pair(n=300, drop=0.0, seed=6)
    ni = compare_runs(base, cand, [{"metric": "quality.pass_rate", "max_decrease": 0.05, "mode": "noninferior"}], {})
    assert ni["gates"][0]["verdict"] == "pass" and ni["exit_code"] == 0
    base, cand = _pair(n=300, drop=0.15, seed=6)
    rel = compare_runs(base, cand, [{"metric": "quality.pass_rate", "max_decrease": "5%"}], {})
    g = rel["gates"][0]
    # a relative tolerance on a 0/1 rate becomes 5% of the baseline rate
    assert g["tolerance"] == pytest.approx(0.05 * g["baseline"]) and g["verdict"] == "fail"


def test_bound_gates_on_bootstrap_metrics():
    base, cand = _pair(n=120, repeats=3, seed=7)
    low = compare_runs(base, cand, [{"metric": "quality.pass_rate", "min": 0.99}], {})
    high = compare_runs(base, cand, [{"metric": "quality.pass_rate", "min": 0.5}], {})
    assert low["gates"][0]["verdict"] == "fail" and low["gates"][0]["scale"] == "value"
    lo, hi = high["gates"][0]["ci"]
    assert lo <= high["gates"][0]["candidate"] <= hi
    assert high["gates"][0]["verdict"] == "pass"
