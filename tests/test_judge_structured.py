"""Judges on small or weak models (issue 16, defect 3): structured output where the provider
supports it (with a fallback where it does not), placeholder echoes rejected. Against the fake
server's judge persona (tests/fakeserver.py); the real-model measurement is in
tests/test_realmodel.py."""
from __future__ import annotations

import pytest

from replaygate.errors import ConfigError
from replaygate.model import Case, CaseResult, Message, Sample
from replaygate.replay.cache import ResponseCache
from replaygate.scoring import build_scorers, score_pairwise_sync, score_results_sync
from replaygate.scoring.judge import SCORE_SCHEMA
from replaygate.scoring.judge_client import MalformedReply, parse_reply, placeholder_echo
from replaygate.scoring.pairwise import WINNER_SCHEMA


def spec(srv, model="judge", **extra):
    return {"name": extra.pop("name", "j"), "type": "judge", "rubric": "correctness",
            "model": f"openai/{model}", "api_base": srv.api_base, "timeout": 20, **extra}


def run(scorer_spec, n=3, **kw):
    cases = {f"c{i}": Case(id=f"c{i}", messages=[Message(role="user", content=f"refund window {i}?")],
                           reference="refund within 30 days") for i in range(n)}
    results = [CaseResult(id=cid, samples=[Sample(output="a refund within 30 days")]) for cid in cases]
    warnings = score_results_sync(cases, results, build_scorers([scorer_spec]), **kw)
    return [r.samples[0].scores[scorer_spec["name"]] for r in results], warnings


def bodies(srv):
    return [r["body"] for r in srv.stats()["requests"] if r["path"] == "/v1/chat/completions"]


def test_the_verdict_schema_is_sent_by_default(llm_server):
    scores, _ = run(spec(llm_server))
    assert [s.score for s in scores] == [1.0, 1.0, 1.0]
    fmt = bodies(llm_server)[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCORE_SCHEMA
    assert fmt["json_schema"]["strict"] is True
    assert list(SCORE_SCHEMA["properties"]) == ["reason", "score"]  # the reason is written first


def test_constrained_output_spares_the_correction_turn(llm_server):
    # the same judge that writes prose on its first try, once its decoding is constrained
    scores, _ = run(spec(llm_server, "judge@malformed=1"))
    assert all(s.score == 1.0 and s.details["judge"]["calls"] == 1 for s in scores)
    llm_server.reset()  # the per-prompt counters start again
    off, _ = run(spec(llm_server, "judge@malformed=1", structured_output="off", name="k"))
    assert all(s.score == 1.0 and s.details["judge"]["retried_malformed"] == 1 for s in off)


def test_a_placeholder_echo_is_not_a_verdict(llm_server, tmp_path):
    assert placeholder_echo({"reason": "<one or two sentences>", "score": 0}) == "<one or two sentences>"
    assert placeholder_echo({"claims": [{"claim": "<one claim>", "supported": True}]}) == "<one claim>"
    assert placeholder_echo({"reason": "answer says <b>30</b> days", "score": 7}) is None
    with pytest.raises(MalformedReply, match="placeholder"):
        parse_reply('{"reason": "<one or two sentences>", "score": 0}', lambda r: r)
    # echoed once: the correction turn gets a real verdict
    scores, _ = run(spec(llm_server, "judge@placeholder=1"))
    assert all(s.score == 1.0 and s.details["judge"]["retried_malformed"] == 1 for s in scores)
    # echoed every time: unscorable (never the echo's 0), and the outcome is cached
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        scores, warnings = run(spec(llm_server, "judge@placeholder=9", name="p"), cache=cache)
        assert all(s.score is None and "placeholder" in s.error.message for s in scores)
        asked = len(bodies(llm_server))
        again, _ = run(spec(llm_server, "judge@placeholder=9", name="p"), cache=cache)
        assert len(bodies(llm_server)) == asked and all(s.error is not None for s in again)


def forms(srv):
    return [(b.get("response_format") or {}).get("type") for b in bodies(srv)]


def test_auto_steps_down_to_the_form_the_provider_takes_once(llm_server):
    # llama-cpp-python's server: json_schema refused (422), json_object with a schema taken
    scores, warnings = run(spec(llm_server, "judge@json_object_only"), n=4, concurrency=1)
    assert [s.score for s in scores] == [1.0] * 4
    assert forms(llm_server) == ["json_schema"] + ["json_object"] * 4
    assert bodies(llm_server)[1]["response_format"]["schema"] == SCORE_SCHEMA
    assert any("rejected structured output as json_schema" in w and "json_object" in w for w in warnings)


def test_a_provider_without_structured_output_gets_the_plain_prompt(llm_server):
    scores, warnings = run(spec(llm_server, "judge@no_schema"), n=4, concurrency=1)
    assert [s.score for s in scores] == [1.0] * 4
    assert forms(llm_server) == ["json_schema", "json_object", None, None, None, None]
    assert any("in the prompt only" in w for w in warnings)


def test_json_schema_mode_does_not_fall_back(llm_server):
    scores, _ = run(spec(llm_server, "judge@no_schema", structured_output="json_schema"), n=2)
    assert all(s.score is None and "response_format is not supported" in s.error.message for s in scores)


def test_json_object_and_off_modes(llm_server):
    run(spec(llm_server, structured_output="json_object"), n=1)
    assert bodies(llm_server)[0]["response_format"] == {"type": "json_object", "schema": SCORE_SCHEMA}
    llm_server.reset()
    run(spec(llm_server, structured_output="off", name="o"), n=1)
    assert "response_format" not in bodies(llm_server)[0]
    with pytest.raises(ConfigError):
        build_scorers([spec(llm_server, structured_output="always")])
    # `structured_output: off` in YAML arrives as False
    assert build_scorers([spec(llm_server, structured_output=False)])[0].client.structured == "off"


def test_pairwise_asks_for_its_own_schema(llm_server):
    c = Case(id="c0", messages=[Message(role="user", content="refund window?")], reference="30 days refund")
    base = [CaseResult(id="c0", samples=[Sample(output="no idea")])]
    cand = [CaseResult(id="c0", samples=[Sample(output="a refund within 30 days")])]
    res = score_pairwise_sync({"c0": c}, base, cand, {"name": "pw", "type": "pairwise", "model": "openai/judge",
                                                      "api_base": llm_server.api_base})
    assert res["per_case"] == {"c0": 1.0}
    assert all(b["response_format"]["json_schema"]["schema"] == WINNER_SCHEMA for b in bodies(llm_server))
