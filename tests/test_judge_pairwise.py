"""Pairwise judging through litellm against the fake `judge` persona: both orders, position-bias
handling, win rates with ties, failed samples, caching."""
from __future__ import annotations

import pytest

from replaygate.errors import ConfigError
from replaygate.model import Case, CaseResult, ErrorInfo, Message, Sample
from replaygate.replay.cache import ResponseCache
from replaygate.scoring import build_scorers, score_pairwise_sync, score_results_sync
from replaygate.scoring.pairwise import combine

REF = "refund within 30 days"


def spec(srv, model="judge", **extra):
    return {"name": "pref", "type": "pairwise", "model": f"openai/{model}", "api_base": srv.api_base,
            "timeout": 20, **extra}


def runs(pairs, failed=()):
    """(base_text, cand_text) per case -> cases, base results, candidate results."""
    cases, base, cand = {}, [], []
    for i, (b, c) in enumerate(pairs):
        cid = f"c{i}"
        cases[cid] = Case(id=cid, messages=[Message(role="user", content="How long for a refund?")],
                          reference=REF)
        base.append(CaseResult(id=cid, samples=[Sample(output=b)]))
        err = ErrorInfo("Timeout", "slow") if cid in failed else None
        cand.append(CaseResult(id=cid, samples=[Sample(output=None if err else c, error=err)]))
    return cases, base, cand


def prompts(srv):
    return [r["body"]["messages"][1]["content"] for r in srv.stats()["requests"]]


@pytest.mark.parametrize("first,second,value", [
    ("B", "A", 1.0),    # candidate preferred in both orders
    ("A", "B", 0.0),    # baseline preferred in both orders
    ("A", "A", 0.5),    # always the first position: disagreement -> tie
    ("B", "B", 0.5),
    ("tie", "tie", 0.5),
    ("B", "tie", 0.5),  # only agreement counts
])
def test_combine(first, second, value):
    assert combine(first, second) == value


def test_win_rate_with_swapped_positions(llm_server):
    cases, base, cand = runs([
        ("Refunds take a while.", "A refund is possible within 30 days."),  # candidate better
        ("Refund within 30 days.", "Ask support."),                          # baseline better
        ("30 days.", "30 days!"),                                            # equal -> tie
    ])
    out = score_pairwise_sync(cases, base, cand, spec(llm_server))
    assert out["metric"] == "pairwise.pref.win_rate"
    assert out["per_case"] == {"c0": 1.0, "c1": 0.0, "c2": 0.5}
    assert out["win_rate"] == pytest.approx(0.5) and out["n"] == 3
    assert out["counts"] == {"win": 1, "tie": 1, "loss": 1}
    assert out["details"]["c0"] == [{"repeat": 0, "first": "B", "second": "A", "value": 1.0}]
    # each case judged twice, with the answers in both positions
    ps = prompts(llm_server)
    assert len(ps) == 6
    c0 = [p for p in ps if "Refunds take a while." in p]
    assert len(c0) == 2
    assert sum("<answer_a>Refunds take a while." in p for p in c0) == 1
    assert sum("<answer_b>Refunds take a while." in p for p in c0) == 1
    assert out["judge_usage"]["calls"] == 6 and out["errors"] == {} and out["skipped"] == {}
    assert out["judge_usage"]["cost_unknown"] == 3 and any("no price known" in w for w in out["warnings"])
    priced = score_pairwise_sync(cases, base, cand, spec(llm_server, price={"input": 1, "output": 1}))
    assert priced["judge_usage"]["cost_usd"] > 0 and priced["judge_usage"]["cost_unknown"] == 0


def test_position_biased_judge_gives_ties(llm_server):
    cases, base, cand = runs([("x", "refund within 30 days"), ("refund within 30 days", "x")])
    out = score_pairwise_sync(cases, base, cand, spec(llm_server, model="judge@first"))
    assert out["per_case"] == {"c0": 0.5, "c1": 0.5} and out["counts"]["tie"] == 2


def test_failed_samples_missing_cases_and_judge_errors(llm_server):
    cases, base, cand = runs([("x", "refund within 30 days"), ("refund within 30 days", "y")],
                             failed={"c0"})
    base.append(CaseResult(id="only_base", samples=[Sample(output="a")]))
    out = score_pairwise_sync(cases, base, cand, spec(llm_server))
    assert out["per_case"] == {"c0": 0.0, "c1": 0.0}  # a failed candidate sample loses
    assert out["details"]["c0"][0]["note"] == "candidate failed"
    assert out["skipped"] == {"only_base": "not in the candidate run"}
    assert any("not compared" in w for w in out["warnings"])
    bad = score_pairwise_sync(cases, base[:2], cand, spec(llm_server, model="judge@malformed=5",
                                                          structured_output="off"))
    assert bad["per_case"] == {"c0": 0.0} and "malformed twice" in bad["errors"]["c1"]
    assert any("could not be judged" in w for w in bad["warnings"])


def test_identical_answers_tie_without_a_judge_call(llm_server):
    cases, base, cand = runs([("refund within 30 days", "refund within 30 days")])
    out = score_pairwise_sync(cases, base, cand, spec(llm_server))
    assert out["per_case"] == {"c0": 0.5} and llm_server.stats()["count"] == 0
    assert out["judge_usage"]["calls"] == 0


def test_repeats_pair_by_index_and_cache(llm_server, tmp_path):
    cases, base, cand = runs([("x", "refund within 30 days")])
    base[0].samples.append(Sample(repeat=1, output="refund within 30 days"))
    cand[0].samples.append(Sample(repeat=1, output="A refund within 30 days."))  # equally good
    with ResponseCache(tmp_path / "p.sqlite") as cache:
        out = score_pairwise_sync(cases, base, cand, spec(llm_server), cache=cache)
        assert out["per_case"] == {"c0": 0.75}  # a win and a tie
        assert len(llm_server.stats()["requests"]) == 4
        again = score_pairwise_sync(cases, base, cand, spec(llm_server), cache=cache, offline=True)
        assert again["per_case"] == out["per_case"] and len(llm_server.stats()["requests"]) == 4
        assert again["judge_usage"]["cache_hits"] == 4 and again["judge_usage"]["calls"] == 0


def test_pairwise_in_scorer_list_is_skipped_by_score_results(llm_server):
    scorers = build_scorers([spec(llm_server), {"name": "has", "type": "contains", "value": "30"}])
    assert scorers[0].info.informational is True
    cases, base, cand = runs([("30 days", "x")])
    score_results_sync(cases, base, scorers)
    assert list(base[0].samples[0].scores) == ["has"] and llm_server.stats()["count"] == 0
    out = score_pairwise_sync(cases, base, cand, scorers[0])
    assert out["per_case"] == {"c0": 0.0}
    with pytest.raises(ConfigError):
        build_scorers([{"name": "p", "type": "pairwise"}])
