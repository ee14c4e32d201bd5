"""Batch mode (replay/batch.py) end to end against the local server's /v1/files and /v1/batches,
through litellm's real batch calls: run file with provenance batch, resume after kill -9 while
polling without a second submission, partially failed, expired, failed, cached requests never
resubmitted, latency gates not decided on batch samples."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from replay_helpers import write_golden

N = 6


def setup(tmp_path, srv, *, model="answers", extra_variant="", candidate=None, gates="[]", n=N):
    write_golden(tmp_path, [{"id": f"q{i}", "input": f"question {i}", "expected": f"answer {i}"}
                            for i in range(n)])
    srv.configure(answers={f"question {i}": f"answer {i}" for i in range(n)})
    cand = candidate or ""
    (tmp_path / "replaygate.yaml").write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  v: {{model: "openai/{model}", api_base: "{srv.api_base}", batch: {{poll_interval_s: 0.05, poll_max_s: 0.1}}{extra_variant}}}
{cand}cache: cache.sqlite
scorers:
  - {{name: right, type: icontains}}
gates: {gates}
""")
    return tmp_path / "replaygate.yaml"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "replaygate.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def paths(srv) -> dict:
    return srv.stats(summary=True)["by_path"]


def samples(run_path):
    run = json.loads(run_path.read_text())
    return run, [s for c in run["cases"] for s in c["samples"]]


def test_run_batch_end_to_end_scores_and_compares(tmp_path, llm_server):
    cfg = setup(tmp_path, llm_server)
    out = tmp_path / "run.json"
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    by = paths(llm_server)
    assert by.get("/v1/batches") == 1 and by.get("/v1/files") == 1
    assert by.get("batch:/v1/chat/completions") == N
    assert "/v1/chat/completions" not in by  # no live call, not even a warm-up
    run, ss = samples(out)
    assert run["complete"] is True
    assert {s["provenance"] for s in ss} == {"batch"}
    assert all(s["latency_ms"] is None and s["ttft_ms"] is None for s in ss)
    assert [s["output"] for s in ss] == [f"answer {i}" for i in range(N)]
    assert all(s["scores"]["right"]["score"] == 1 for s in ss)
    assert run["provenance"]["batch"] == 1.0
    # the batch lines are the live path's request bodies: model without litellm's prefix, messages
    reqs = [r for r in llm_server.stats()["requests"] if r["path"] == "batch:/v1/chat/completions"]
    assert {r["body"]["model"] for r in reqs} == {"answers"}
    assert sorted(r["prompt"] for r in reqs) == sorted(f"question {i}" for i in range(N))
    # the state file is empty once collected; compare works on the run as on any other
    state = json.loads((tmp_path / "cache.sqlite.batches.json").read_text())
    assert state["batches"] == []
    res = cli("compare", out, out, "--format", "json")
    assert res.returncode == 0, res.stderr

    # a rerun finds every answer in the cache: nothing submitted, provenance cache
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    assert paths(llm_server).get("/v1/batches") == 1
    _, ss = samples(out)
    assert {s["provenance"] for s in ss} == {"cache"}


def test_cached_requests_are_never_put_in_a_batch(tmp_path, llm_server):
    cfg = setup(tmp_path, llm_server, n=3)
    assert cli("run", "-c", cfg, "--variant", "v", "-o", tmp_path / "a.json").returncode == 0
    setup(tmp_path, llm_server, n=5)  # two new cases
    llm_server.reset()
    llm_server.configure(answers={f"question {i}": f"answer {i}" for i in range(5)})
    res = cli("run", "-c", cfg, "--variant", "v", "-o", tmp_path / "b.json")
    assert res.returncode == 0, res.stderr
    sent = [r["prompt"] for r in llm_server.stats()["requests"] if r["path"] == "batch:/v1/chat/completions"]
    assert sorted(sent) == ["question 3", "question 4"]
    _, ss = samples(tmp_path / "b.json")
    assert [s["provenance"] for s in ss] == ["cache"] * 3 + ["batch"] * 2


def test_kill_while_polling_then_rerun_polls_the_same_batch(tmp_path, llm_server):
    cfg = setup(tmp_path, llm_server)
    llm_server.configure(batch={"hold": True})
    out = tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "run", "-c", str(cfg), "--variant", "v",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while paths(llm_server).get("/v1/batches/retrieve", 0) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert not out.exists()
    state = json.loads((tmp_path / "cache.sqlite.batches.json").read_text())
    assert len(state["batches"]) == 1
    batch_id = state["batches"][0]["batch_id"]
    assert "sk-" not in json.dumps(state)
    llm_server.configure(batch={"hold": False})
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    assert paths(llm_server).get("/v1/batches") == 1  # exactly one submission
    assert paths(llm_server).get("/v1/files") == 1
    polled = {r["body"]["batch_id"] for r in llm_server.stats()["requests"] if r["path"] == "/v1/batches/retrieve"}
    assert polled == {batch_id}
    _, ss = samples(out)
    assert {s["provenance"] for s in ss} == {"batch"} and all(s["error"] is None for s in ss)


def test_partially_failed_batch_errors_are_counted_and_retried_on_rerun(tmp_path, llm_server):
    # fail=1: each request's first answer is an HTTP 500 (in the error file), the second succeeds
    cfg = setup(tmp_path, llm_server, model="answers@fail=1")
    out = tmp_path / "run.json"
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    run, ss = samples(out)
    assert [s["error"]["type"] for s in ss] == ["InternalServerError"] * N
    assert "/v1/chat/completions" not in paths(llm_server)  # no live call, not even a warm-up
    assert run["complete"] is True  # errors are measured outcomes, like provider errors live
    assert run["summary"]["errors.rate"] == 1.0
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    assert paths(llm_server).get("/v1/batches") == 2  # the failed lines were submitted again
    _, ss = samples(out)
    assert all(s["error"] is None and s["provenance"] == "batch" for s in ss)


def test_expired_batch_keeps_the_answered_part_and_resubmits_the_rest(tmp_path, llm_server):
    cfg = setup(tmp_path, llm_server)
    llm_server.configure(batch={"end": "expired", "done": 2})
    out = tmp_path / "run.json"
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    _, ss = samples(out)
    ok = [s for s in ss if s["error"] is None]
    assert len(ok) == 2 and {s["provenance"] for s in ok} == {"batch"}
    assert sorted(s["error"]["type"] for s in ss if s["error"]) == ["BatchExpired"] * (N - 2)
    llm_server.configure(batch={"end": "completed"})
    llm_server.reset()
    llm_server.configure(answers={f"question {i}": f"answer {i}" for i in range(N)})
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    sent = [r for r in llm_server.stats()["requests"] if r["path"] == "batch:/v1/chat/completions"]
    assert len(sent) == N - 2  # only the expired part
    _, ss = samples(out)
    assert all(s["error"] is None for s in ss)
    assert sorted(s["provenance"] for s in ss) == ["batch"] * (N - 2) + ["cache"] * 2


def test_failed_batch_is_an_error_per_request(tmp_path, llm_server):
    cfg = setup(tmp_path, llm_server)
    llm_server.configure(batch={"end": "failed"})
    out = tmp_path / "run.json"
    res = cli("run", "-c", cfg, "--variant", "v", "-o", out)
    assert res.returncode == 0, res.stderr
    _, ss = samples(out)
    assert [s["error"]["type"] for s in ss] == ["BatchFailed"] * N
    assert "fake batch failure" in ss[0]["error"]["message"]


def test_latency_gate_is_not_decided_on_batch_samples(tmp_path, llm_server):
    base = f'  base: {{model: "openai/answers@latency=1", api_base: "{llm_server.api_base}"}}\nbaseline: base\ncandidate: v\n'
    gates = '[{metric: quality.pass_rate, max_decrease: 0.1}, {metric: latency.p95, max_increase: "25%"}]'
    cfg = setup(tmp_path, llm_server, candidate=base, gates=gates, n=12)
    res = cli("gate", "-c", cfg, "--format", "json", "-o", tmp_path / "cmp.json")
    assert "latency.p95 cannot be decided" in res.stderr
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    lat = [g for g in cmp["gates"] if g["metric"] == "latency.p95"][0]
    assert lat["verdict"] == "inconclusive", lat
    assert "batch samples are never timed" in lat["reason"]
    assert "100% batch" in lat["reason"] and "100% live" in lat["reason"]
    assert paths(llm_server).get("/v1/batches") == 1
    assert res.returncode in (0, 1), res.stderr


@pytest.mark.parametrize("variant, msg", [
    ('model: "anthropic/claude-3-5-haiku-20241022"', "not supported"),
    ("recorded: true", "calls a model"),
])
def test_unsupported_batch_variant_is_a_config_error(tmp_path, variant, msg):
    write_golden(tmp_path, [{"id": "q0", "input": "x"}])
    (tmp_path / "replaygate.yaml").write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  v: {{{variant}, batch: true}}
cache: cache.sqlite
scorers: []
""")
    res = cli("run", "-c", tmp_path / "replaygate.yaml", "--variant", "v", "-o", tmp_path / "r.json")
    assert res.returncode == 2, res.stderr
    assert msg in res.stderr and "Traceback" not in res.stderr
    assert "replaygate.yaml" in res.stderr
    res = cli("validate", "-c", tmp_path / "replaygate.yaml")
    assert res.returncode == 2 and msg in (res.stderr + res.stdout)


def test_batch_price_from_litellm_cost_map_or_said_not_applied():
    from replaygate.model import Sample
    from replaygate.replay.batch import batch_cost
    from replaygate.replay.pricing import cost_usd

    s = Sample(repeat=0, input_tokens=1000, output_tokens=500)
    cost, note = batch_cost("openai/gpt-4o-mini", s, None)
    assert note is None
    assert cost == pytest.approx(cost_usd("openai/gpt-4o-mini", 1000, 500) / 2)  # the batch column: half
    cost, note = batch_cost("openai/gpt-3.5-turbo", s, None)  # no batch price in the map
    assert cost == pytest.approx(cost_usd("openai/gpt-3.5-turbo", 1000, 500)) and cost > 0
    assert "batch discount not applied" in note
    assert batch_cost("openai/echo", s, None) == (None, None)  # unknown stays unknown, never 0
    cost, note = batch_cost("openai/echo", s, {"input": 1.0, "output": 2.0})
    assert cost == pytest.approx(1000 * 1e-6 + 500 * 2e-6) and "as given" in note


def test_output_and_error_lines_map_back_by_custom_id():
    from replaygate.replay.batch import parse_lines

    lines = [
        {"custom_id": "k1", "response": {"status_code": 200, "body": {
            "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}}, "error": None},
        {"custom_id": "k2", "response": {"status_code": 429, "body": {"error": {"message": "slow down"}}}},
        {"custom_id": "k3", "response": None, "error": {"code": "batch_expired", "message": "expired"}},
        "not an object", {"no": "custom id"},
    ]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode() + b"{broken\n"
    got = dict(parse_lines(data))
    assert set(got) == {"k1", "k2", "k3"}
    r = got["k1"]["response"]
    assert (r["output"], r["input_tokens"], r["output_tokens"], r["latency_ms"]) == ("hi", 3, 1, None)
    assert got["k2"]["error"] == {"type": "RateLimitError", "message": "slow down"}
    assert got["k3"]["error"]["type"] == "BatchExpired"


def test_unreadable_state_file_is_an_input_error_naming_it(tmp_path, llm_server):
    cfg = setup(tmp_path, llm_server, n=2)
    (tmp_path / "cache.sqlite.batches.json").write_text("{not json")
    res = cli("run", "-c", cfg, "--variant", "v", "-o", tmp_path / "r.json")
    assert res.returncode == 2 and "cache.sqlite.batches.json" in res.stderr
    assert "Traceback" not in res.stderr
    assert paths(llm_server).get("/v1/batches") is None  # nothing submitted


def test_missing_key_at_submission_stops_the_run_exit_3(tmp_path, llm_server, monkeypatch):
    cfg = setup(tmp_path, llm_server, n=2, extra_variant=", api_key_env: RG_BATCH_TEST_KEY")
    monkeypatch.delenv("RG_BATCH_TEST_KEY", raising=False)
    res = cli("run", "-c", cfg, "--variant", "v", "-o", tmp_path / "r.json")
    assert res.returncode == 3, res.stderr
    assert "RG_BATCH_TEST_KEY" in res.stderr and "Traceback" not in res.stderr
    assert paths(llm_server).get("/v1/batches") is None


def test_gate_batch_sends_a_request_shared_by_both_variants_once(tmp_path, llm_server):
    # the baseline sends the same requests as the candidate: one batch line each, both sides answered
    base = f'  base: {{model: "openai/answers", api_base: "{llm_server.api_base}"}}\nbaseline: base\ncandidate: v\n'
    cfg = setup(tmp_path, llm_server, candidate=base, n=4)
    res = cli("gate", "-c", cfg, "--batch", "--format", "json", "-o", tmp_path / "cmp.json",
              "--save-runs", tmp_path / "runs")
    assert res.returncode == 0, res.stderr
    assert paths(llm_server).get("batch:/v1/chat/completions") == 4
    assert paths(llm_server).get("/v1/batches") == 1
    for side in ("baseline", "candidate"):
        run, ss = samples(tmp_path / "runs" / f"{side}.json")
        assert {s["provenance"] for s in ss} == {"batch"} and all(s["error"] is None for s in ss)
        assert run["environment"]["conditions"]["batch"] is True


def test_fake_server_refuses_an_invalid_input_file_as_openai_does(llm_server):
    """The fake's checks are what make the end-to-end tests prove the file's shape: a duplicated
    custom_id or a wrong url fails the batch."""
    import asyncio

    from replaygate.replay.llm import litellm_module

    lt = litellm_module()
    kw = {"custom_llm_provider": "openai", "api_base": llm_server.api_base, "api_key": "sk-test"}

    def line(cid, url="/v1/chat/completions"):
        return json.dumps({"custom_id": cid, "method": "POST", "url": url,
                           "body": {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}})

    async def status_of(text: str) -> str:
        f = await lt.acreate_file(file=("in.jsonl", text.encode()), purpose="batch", **kw)
        b = await lt.acreate_batch(completion_window="24h", endpoint="/v1/chat/completions",
                                   input_file_id=f.id, **kw)
        for _ in range(5):
            b = await lt.aretrieve_batch(batch_id=b.id, **kw)
        return b.status

    assert asyncio.run(status_of(line("a") + "\n" + line("b") + "\n")) == "completed"
    assert asyncio.run(status_of(line("a") + "\n" + line("a") + "\n")) == "failed"
    assert asyncio.run(status_of(line("a", url="/v1/embeddings") + "\n")) == "failed"


def test_submission_retries_never_wait_beyond_max_retry_wait():
    import asyncio

    from replaygate.replay.batch import _retrying
    from replaygate.replay.llm import LLMError

    calls = []

    async def slow_down():
        calls.append(1)
        raise LLMError("RateLimitError", "slow down", status=429, retryable=True, retry_after=3600)

    with pytest.raises(LLMError) as info:
        asyncio.run(_retrying("creating the batch", slow_down, 3, 0.01, None, cap_s=1.0))
    assert len(calls) == 1 and "beyond the 1 s cap" in info.value.message

    async def flaky():
        calls.append(2)
        if calls.count(2) < 3:
            raise LLMError("InternalServerError", "boom", status=500, retryable=True)
        return "ok"

    assert asyncio.run(_retrying("x", flaky, 3, 0.001, None, cap_s=1.0)) == "ok"
