"""The replay engine against the local fake server: shapes, interleaving, retries, errors,
error budget, cache modes."""
from __future__ import annotations

import json

import pytest

from replaygate.errors import RunIncomplete
from replaygate.model import Run
from replaygate.replay.engine import replay_sync, result_summary
from replay_helpers import live_requests, make_cases, model_variant, opts, recorded_cases


def test_recorded_vs_model_shapes_and_pricing(llm_server):
    cases = recorded_cases(5)
    warnings: list[str] = []
    out = replay_sync(cases, {"base": {"recorded": True},
                              "cand": model_variant(llm_server, "echo@latency=30"),
                              "priced": model_variant(llm_server, "echo", price={"input": 1, "output": 2})},
                      opts(), warnings=warnings)
    assert list(out) == ["base", "cand", "priced"]
    base, cand, priced = out["base"], out["cand"], out["priced"]
    assert [r.id for r in cand] == [c.id for c in cases]
    r0 = cand[0]
    assert (r0.input, r0.expected, r0.source) == ("question 0", "answer 0", {"file": "g.jsonl", "row": 0})
    s = r0.samples[0]
    assert s.output == "question 0" and s.error is None and not s.cached and s.scores == {}
    assert s.latency_ms >= 30 and (s.input_tokens, s.output_tokens) == (2, 2)
    assert s.cost_usd is None  # unknown model price: null, never 0
    assert any("openai/echo" in w and "price" in w for w in warnings)
    assert priced[0].samples[0].cost_usd == pytest.approx((2 * 1 + 2 * 2) / 1e6)
    b = base[3].samples[0]
    assert (b.output, b.latency_ms) == ("answer 3", 103.0)
    assert b.cost_usd and b.cost_usd > 0  # gpt-4o-mini is in litellm's cost map
    # recorded params (temperature) reach the server, the recorded model does not
    bodies = [r["body"] for r in live_requests(llm_server)]
    assert len(bodies) == 10 and all(b["temperature"] == 0.3 for b in bodies)
    assert {b["model"] for b in bodies} == {"echo@latency=30", "echo"}
    Run(variant={"name": "cand"}, cases=cand).to_dict()  # serialisable as the run contract


def test_variants_interleaved_case_by_case(llm_server):
    cases = make_cases(12)
    # a short server latency keeps both calls of a case in flight together: an instant answer let
    # the first A call finish and the next case's A go out while B still opened its connection
    replay_sync(cases, {"a": model_variant(llm_server, "const:A@latency=20"),
                        "b": model_variant(llm_server, "const:B@latency=20")}, opts(concurrency=2))
    order = [(r["prompt"], r["model"]) for r in live_requests(llm_server)]
    # with 2 workers, each case's A and B calls go out together
    for i in range(0, len(order), 2):
        assert order[i][0] == order[i + 1][0], order
        assert {order[i][1], order[i + 1][1]} == {"const:A@latency=20", "const:B@latency=20"}


def test_retry_on_500_then_success(llm_server):
    out = replay_sync(make_cases(4), {"v": model_variant(llm_server, "echo@fail=2")}, opts(max_retries=3))
    assert all(r.samples[0].output == r.input for r in out["v"])
    statuses = [r["status"] for r in live_requests(llm_server)]
    assert statuses.count(500) == 8 and statuses.count(200) == 4


def test_retries_exhausted_leave_an_error_sample(llm_server):
    out = replay_sync(make_cases(3), {"v": model_variant(llm_server, "echo@fail=9")}, opts(max_retries=2))
    for r in out["v"]:
        assert r.samples[0].error.type == "InternalServerError"
        assert "after 3 attempts" in r.samples[0].error.message
    assert len(live_requests(llm_server)) == 9


def test_retry_after_is_honoured(llm_server):
    out = replay_sync(make_cases(2), {"v": model_variant(llm_server, "echo@r429=1,retry_after=0.4")},
                      opts(max_retries=1))
    assert all(r.samples[0].error is None for r in out["v"])
    by_prompt: dict[str, list[float]] = {}
    for r in live_requests(llm_server):
        by_prompt.setdefault(r["prompt"], []).append(r["t"])
    for times in by_prompt.values():
        assert len(times) == 2 and times[1] - times[0] >= 0.4


def test_timeout_is_retried_then_an_error(llm_server):
    out = replay_sync(make_cases(2), {"v": model_variant(llm_server, "echo@hang=3000")},
                      opts(timeout_s=0.3, max_retries=1, warmup=False))
    assert [r.samples[0].error.type for r in out["v"]] == ["Timeout", "Timeout"]
    assert len(live_requests(llm_server)) == 4


@pytest.mark.parametrize("status,etype", [(400, "BadRequestError"), (404, "NotFoundError")])
def test_client_errors_not_retried(llm_server, status, etype):
    out = replay_sync(make_cases(3), {"v": model_variant(llm_server, f"echo@status={status}")},
                      opts(max_retries=3))
    assert [r.samples[0].error.type for r in out["v"]] == [etype] * 3
    assert len(live_requests(llm_server)) == 3


def test_auth_error_stops_the_run_without_retry(llm_server):
    with pytest.raises(RunIncomplete) as ei:
        replay_sync(make_cases(20), {"base": {"recorded": True}, "v": model_variant(llm_server, "echo@auth")},
                    opts(concurrency=1, max_retries=3))
    e = ei.value
    assert e.exit_code == 3 and "authentication failed" in str(e) and "'v'" in str(e)
    assert len(live_requests(llm_server)) == 1  # no retry, no further case
    partial = e.partial["v"]
    assert len(partial) == 20 and partial[0].samples[0].error.type == "AuthenticationError"
    assert partial[5].samples[0].error.type == "NotRun"
    assert len(e.partial["base"]) == 20


def test_error_budget_stops_with_reason(llm_server):
    with pytest.raises(RunIncomplete) as ei:
        replay_sync(make_cases(60), {"v": model_variant(llm_server, "echo@status=400")},
                    opts(concurrency=2, max_error_rate=0.2, min_calls_for_budget=10))
    assert "error budget exceeded" in str(ei.value) and "max_error_rate 0.2" in str(ei.value)
    assert 10 <= len(live_requests(llm_server)) < 20
    counts = result_summary(ei.value.partial)["v"]["errors"]
    assert counts["BadRequestError"] >= 10 and counts["NotRun"] > 30


def test_error_budget_not_hit_by_few_errors(llm_server):
    llm_server.configure(answers={}, options={})
    out = replay_sync(make_cases(20), {"v": model_variant(llm_server, "wrong-0")},
                      opts(max_error_rate=0.2))
    assert result_summary(out)["v"]["errors"] == {}


def test_cache_rw_then_free_rerun_offline_refresh_off(llm_server, tmp_path):
    cases = make_cases(6)
    variants = {"v": model_variant(llm_server, "echo")}
    first = replay_sync(cases, variants, opts(tmp_path))
    n = len(live_requests(llm_server))
    assert n == 6
    again = replay_sync(cases, variants, opts(tmp_path))
    assert len(live_requests(llm_server)) == n  # nothing re-sent
    assert all(r.samples[0].cached for r in again["v"])
    assert [r.samples[0].output for r in again["v"]] == [r.samples[0].output for r in first["v"]]
    assert [r.samples[0].latency_ms for r in again["v"]] == [r.samples[0].latency_ms for r in first["v"]]
    offline = replay_sync(cases, variants, opts(tmp_path, cache_mode="offline"))
    assert all(r.samples[0].cached for r in offline["v"])
    replay_sync(cases, variants, opts(tmp_path, cache_mode="refresh"))
    assert len(live_requests(llm_server)) == 2 * n
    replay_sync(cases, variants, opts(tmp_path, cache_mode="off"))
    assert len(live_requests(llm_server)) == 3 * n
    # the cache holds responses, not requests or keys
    raw = (tmp_path / "cache.sqlite").read_bytes()
    assert b"sk-" not in raw


def test_offline_miss_is_an_incomplete_run(llm_server, tmp_path):
    cases = make_cases(4)
    variants = {"v": model_variant(llm_server, "echo")}
    replay_sync(cases[:2], variants, opts(tmp_path))
    with pytest.raises(RunIncomplete) as ei:
        replay_sync(cases, variants, opts(tmp_path, cache_mode="offline"))
    assert "offline" in str(ei.value)
    samples = [r.samples[0] for r in ei.value.partial["v"]]
    assert [s.cached for s in samples] == [True, True, False, False]
    assert [s.error.type for s in samples[2:]] == ["CacheMiss", "CacheMiss"]
    assert len(live_requests(llm_server)) == 2


def test_errors_are_not_cached(llm_server, tmp_path):
    variants = {"v": model_variant(llm_server, "echo@fail=1")}
    out = replay_sync(make_cases(2), variants, opts(tmp_path, max_retries=0))
    assert all(r.samples[0].error for r in out["v"])
    out = replay_sync(make_cases(2), variants, opts(tmp_path, max_retries=0))
    assert all(r.samples[0].error is None and not r.samples[0].cached for r in out["v"])


def test_warmup_before_timed_calls(llm_server):
    out = replay_sync(make_cases(3), {"v": model_variant(llm_server, "echo")}, opts(concurrency=3))
    reqs = llm_server.stats()["requests"]
    assert reqs[0]["prompt"] == "replaygate warm-up" and reqs[0]["body"]["max_tokens"] == 1
    assert sum(r["prompt"] == "replaygate warm-up" for r in reqs) == 1
    # client start-up (hundreds of ms on the first litellm call) is not in any sample
    assert max(r.samples[0].latency_ms for r in out["v"]) < 200


def test_recorded_missing_and_run_variant(llm_server, tmp_path):
    cases = recorded_cases(3)
    cases[1].recorded = None
    stored = Run(variant={"name": "old"}, cases=replay_sync(cases[:2], {"v": {"recorded": True}}, opts())["v"])
    stored.cases[0].samples[0].scores = {"x": {"score": 1.0, "passed": True}}  # type: ignore[dict-item]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(stored.to_dict()))
    out = replay_sync(cases, {"rec": {"recorded": True}, "old": {"run": str(path)}}, opts())
    assert [r.samples[0].error and r.samples[0].error.type for r in out["rec"]] == [None, "NoRecordedOutput", None]
    old = out["old"]
    assert old[0].samples[0].output == "answer 0" and old[0].samples[0].scores == {}
    assert old[1].samples[0].error.type == "NoRecordedOutput"
    assert old[2].samples[0].error.type == "MissingInRun"
    assert live_requests(llm_server) == []


def test_tools_pass_through_and_calls_captured(llm_server):
    tools = [{"type": "function", "function": {"name": "refund", "parameters": {"type": "object"}}}]
    cases = make_cases(2, tools=tools)
    out = replay_sync(cases, {"v": model_variant(llm_server, "tool:refund")}, opts())
    s = out["v"][1].samples[0]
    assert s.finish_reason == "tool_calls" and s.tool_calls[0].name == "refund"
    assert json.loads(s.tool_calls[0].arguments) == {"query": "question 1"}
    assert all(r["body"]["tools"] == tools for r in live_requests(llm_server))


def test_unreachable_provider_stops_the_run():
    dead = {"model": "openai/echo", "api_base": "http://127.0.0.1:9/v1"}  # nothing listens there
    with pytest.raises(RunIncomplete) as ei:
        replay_sync(make_cases(40), {"v": dead}, opts(concurrency=2, max_retries=1, warmup=False))
    assert "provider unreachable" in str(ei.value) and "127.0.0.1:9" in str(ei.value)
    errors = result_summary(ei.value.partial)["v"]["errors"]
    assert 5 <= sum(n for t, n in errors.items() if t != "NotRun") <= 7 and errors["NotRun"] >= 33
    with pytest.raises(RunIncomplete):  # a run smaller than 5 calls: all of them failing is enough
        replay_sync(make_cases(2), {"v": dead}, opts(max_retries=0, warmup=False))


def test_an_endpoint_that_answered_once_is_not_unreachable(llm_server):
    # HTTP errors are answers: the run completes with error samples (no budget configured)
    out = replay_sync(make_cases(8), {"v": model_variant(llm_server, "echo@status=503")},
                      opts(max_retries=0))
    assert result_summary(out)["v"]["errors"] == {"ServiceUnavailableError": 8}


def test_warm_ups_finish_before_the_loop_lag_monitor_starts(llm_server, tmp_path, monkeypatch):
    """The first call imports the HTTP client (litellm: seconds), blocking the loop while no
    timed call is in flight: that is not a lag any timing suffered, so the monitor starts after
    every endpoint that will be called was warmed up. A variant served wholly from the cache is
    not warmed up at all."""
    from replaygate.replay import engine as eng
    from replaygate.replay import looplag

    events: list[str] = []
    warmup, start = eng._Engine._warmup, looplag.LoopLag.start

    async def traced_warmup(self, v):
        await warmup(self, v)
        events.append(f"warm {v.name}")

    def traced_start(self):
        events.append("monitor")
        start(self)

    monkeypatch.setattr(eng._Engine, "_warmup", traced_warmup)
    monkeypatch.setattr(looplag.LoopLag, "start", traced_start)
    cases = make_cases(6)
    cached = model_variant(llm_server, "echo@latency=5")
    replay_sync(cases, {"c": cached}, opts(tmp_path))  # fills the cache for variant c
    events.clear()
    llm_server.reset()
    stats: dict = {}
    out = replay_sync(cases, {"a": model_variant(llm_server, "echo@latency=20"), "c": cached,
                              "b": model_variant(llm_server, "wrong-0@latency=20")},
                      opts(tmp_path), stats=stats)
    assert events[:3] == ["warm a", "warm b", "monitor"]  # c's answers all come from the cache
    assert all(s.cached for r in out["c"] for s in r.samples)
    assert stats["loop_lag_ms"]["n"] > 0
    warm = [r for r in llm_server.stats(bodies=False)["requests"] if r not in live_requests(llm_server, bodies=False)]
    assert len(warm) == 2  # one warm-up per called endpoint, none for the cached one
