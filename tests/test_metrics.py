"""metrics.py: per-case values and summaries from Run objects."""
import math

import numpy as np
import pytest

from replaygate.metrics import case_metrics, summarize
from replaygate.model import CaseResult, ErrorInfo, Run, Sample, Score, ScorerInfo


def _s(ok=True, info_ok=False, lat=100.0, cost=1e-4, err=None, ttft=None, tin=10, tout=5, crash=False):
    scores = {"must": Score(1.0 if ok else 0.0, ok), "style": Score(0.3, info_ok)}
    if crash:
        scores["must"] = Score(None, None, error=ErrorInfo("ScorerError", "boom"))
    return Sample(latency_ms=lat, cost_usd=cost, error=err, ttft_ms=ttft, input_tokens=tin,
                  output_tokens=tout, scores={} if err else scores, output=None if err else "x")


def _run(cases):
    return Run(variant={"name": "v"}, scorers=[ScorerInfo("must", "contains"),
                                               ScorerInfo("style", "judge", informational=True)],
               cases=[CaseResult(id=f"c{i}", samples=s) for i, s in enumerate(cases)])


def test_quality_counts_every_non_informational_scorer_and_fails_errors():
    run = _run([[_s()], [_s(ok=False)], [_s(err=ErrorInfo("Timeout", "t"))], [_s(crash=True)]])
    m = case_metrics(run)
    q = m["quality.pass_rate"].case_means()
    # a failed call fails; a sample the scorer could not score is missing (NaN), not a fail
    assert list(q[:3]) == [1.0, 0.0, 0.0] and np.isnan(q[3])
    assert m["quality.pass_rate"].value() == pytest.approx(1 / 3)
    # the informational scorer is reported but does not decide quality
    assert m["score.style.pass_rate"].value() == 0.0
    assert m["score.must.mean"].value() == pytest.approx(1 / 3)  # the call error scores 0; the crash is missing
    assert m["errors.rate"].value() == 0.25  # failed calls only
    # scoring errors: of the 3 answered samples, 1 could not be scored; the failed call is not counted
    assert m["scoring.errors.rate"].value() == pytest.approx(1 / 3)
    assert np.isnan(m["scoring.errors.rate"].values[2])


def test_a_known_fail_decides_quality_even_when_another_scorer_could_not_score():
    s = _s(ok=False)
    s.scores["other"] = Score(None, None, error=ErrorInfo("ScorerError", "no reference"))
    run = _run([[s]])
    run.scorers.append(ScorerInfo("other", "similarity"))
    assert case_metrics(run)["quality.pass_rate"].value() == 0.0


def test_repeats_are_averaged_within_a_case_first():
    run = _run([[_s(), _s(ok=False), _s(), _s()], [_s(ok=False)]])
    m = case_metrics(run)
    assert list(m["quality.pass_rate"].case_means()) == [0.75, 0.0]
    assert summarize(run)["quality.pass_rate"] == pytest.approx(0.375)  # mean of case means


def test_latency_quantiles_over_successful_samples():
    lats = [float(x) for x in range(1, 101)]
    run = _run([[_s(lat=x)] for x in lats] + [[_s(lat=5000.0, err=ErrorInfo("Timeout", "t"))]])
    summ = summarize(run)
    assert summ["latency.p50"] == 50.0 and summ["latency.p95"] == 95.0 and summ["latency.p99"] == 99.0
    assert summ["latency.mean"] == pytest.approx(50.5)
    assert "ttft.p50" not in summ  # not streamed


def test_ttft_only_for_streamed_calls():
    run = _run([[_s(ttft=20.0)], [_s(ttft=40.0)], [_s()]])
    summ = summarize(run)
    assert summ["ttft.p50"] == 20.0 and summ["ttft.p95"] == 40.0


def test_unknown_cost_is_none_with_a_reason_never_zero():
    run = _run([[_s(cost=2e-4)], [_s(cost=None)]])
    m = case_metrics(run)
    assert m["cost.mean"].value() is None and m["cost.total"].value() is None
    assert "1 of 2 samples" in m["cost.mean"].unknown
    assert summarize(run)["cost.mean"] is None


def test_unknown_cost_says_whether_a_price_or_the_token_counts_are_missing():
    """A price cannot help a sample without token counts (a stream with no usage chunk on the
    direct path): the reason says which of the two is missing, and how many of each."""
    run = _run([[_s(cost=2e-4)], [_s(cost=None)], [_s(cost=None, tin=None, tout=None)],
                [_s(cost=None, tin=None, tout=None)]])
    why = case_metrics(run)["cost.mean"].unknown
    assert "3 of 4 samples" in why
    assert "2 without token counts" in why and "1 with no price" in why
    only_tokens = case_metrics(_run([[_s(cost=None, tin=None, tout=None)]]))["cost.mean"].unknown
    assert "1 without token counts" in only_tokens and "no price" not in only_tokens


def test_errored_samples_without_cost_are_left_out_and_said_so():
    run = _run([[_s(cost=2e-4)], [_s(cost=4e-4)], [_s(cost=None, err=ErrorInfo("APIError", "500"))]])
    m = case_metrics(run)
    assert m["cost.mean"].value() == pytest.approx(3e-4)
    assert m["cost.total"].value() == pytest.approx(6e-4)
    assert "1 errored" in m["cost.mean"].note


def test_tokens_and_totals():
    run = _run([[_s(tin=10, tout=4), _s(tin=30, tout=6)], [_s(tin=50, tout=10)]])
    summ = summarize(run)
    assert summ["tokens.input.mean"] == pytest.approx((20 + 50) / 2)
    assert summ["tokens.output.mean"] == pytest.approx((5 + 10) / 2)
    assert summ["cost.total"] == pytest.approx(3e-4)


def test_no_counting_scorer_makes_quality_unknown():
    run = Run(variant={"name": "v"}, cases=[CaseResult(id="a", samples=[Sample(latency_ms=1.0)])])
    m = case_metrics(run)
    assert m["quality.pass_rate"].unknown and summarize(run)["quality.pass_rate"] is None
    assert math.isclose(summarize(run)["errors.rate"], 0.0)
    assert not any(k.startswith("score.") for k in m)


def test_scorers_missing_from_run_header_are_found_in_samples():
    run = Run(variant={"name": "v"}, cases=[CaseResult(id="a", samples=[
        Sample(scores={"judge": Score(0.9, True)})])])
    summ = summarize(run)
    assert summ["quality.pass_rate"] == 1.0 and summ["score.judge.mean"] == pytest.approx(0.9)
    assert np.isnan(case_metrics(run)["latency.mean"].values).all()
