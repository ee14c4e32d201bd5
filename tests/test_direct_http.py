"""The direct HTTP path (replay/openai_http.py) against litellm's path (issue 15): the same
requests through both, to the local fake server, compared field by field after normalisation:
what the server received, the normalised response, and the classified error.

Decision stated here: a stream WITHOUT a usage chunk has no token counts on the direct path
(usage_source None), where litellm counts them with its tokenizer (usage_source "estimated").
Everything else is equal, except the wording of error messages (the direct path gives the
provider's text and the HTTP status; litellm prefixes its exception names)."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from replaygate.replay import llm
from replaygate.replay.transport import transport_for
from replay_helpers import write_golden

TIMED = ("latency_ms", "ttft_ms")
KEY = "sk-direct-test-0123456789abcdefghijklmnop"
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "find a thing",
                                            "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                                                           "required": ["query"], "additionalProperties": False}}}]


def _send(request: dict, transport: str, stream: bool, timeout: float):
    try:
        return asyncio.run(llm.chat({**request, "transport": transport}, timeout=timeout, stream=stream))
    except llm.LLMError as e:
        return e


def both(srv, model: str, *, stream: bool = False, params: dict | None = None, tools=None,
         key_env: str | None = None, timeout: float = 10.0, api_base: str | None = None,
         prompt: str = "what is the capital of France"):
    """(litellm's result, direct result, [body litellm sent, body direct sent])."""
    request = {"model": f"openai/{model}", "messages": [{"role": "system", "content": "be brief"},
                                                        {"role": "user", "content": prompt}],
               "params": params or {}, "tools": tools or [], "api_base": api_base or srv.api_base,
               "api_key_env": key_env}
    srv.reset()
    a = _send(request, "litellm", stream, timeout)
    b = _send(request, "direct", stream, timeout)
    bodies = [r["body"] for r in srv.stats()["requests"]] if api_base is None else []
    return a, b, bodies


def untimed(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k not in TIMED}


def error_fields(e: llm.LLMError) -> dict:
    return {"type": e.type, "status": e.status, "retryable": e.retryable, "retry_after": e.retry_after,
            "auth": e.auth}


ANSWERS = [
    pytest.param("echo", False, {}, None, id="plain"),
    pytest.param("echo", True, {}, None, id="streamed-with-usage"),
    pytest.param("echo@no_usage", False, {}, None, id="no-usage-not-streamed"),
    pytest.param("tool:lookup", False, {}, TOOLS, id="tool-call"),
    pytest.param("tool:lookup", True, {}, TOOLS, id="tool-call-streamed"),
    pytest.param("echo", False, {"max_tokens": 3}, None, id="finish-length"),
    pytest.param("echo", True, {"max_tokens": 3}, None, id="finish-length-streamed"),
    pytest.param("echo@cached=4", False, {}, None, id="cached-tokens"),
    pytest.param("echo@cached=4", True, {}, None, id="cached-tokens-streamed"),
    pytest.param("json", False, {"temperature": 0, "seed": 7, "stop": ["\n\n"], "top_p": 0.5, "top_k": 3,
                                 "response_format": {"type": "json_object"}, "extra_body": {"min_p": 0.1}},
                 None, id="params-and-extra-body"),
]


@pytest.mark.parametrize("model, stream, params, tools", ANSWERS)
def test_answers_are_the_same_through_both_paths(llm_server, model, stream, params, tools):
    a, b, bodies = both(llm_server, model, stream=stream, params=params, tools=tools)
    assert isinstance(a, dict) and isinstance(b, dict), (a, b)
    assert bodies[0] == bodies[1]  # the server received the same request
    assert untimed(a) == untimed(b)
    assert b["latency_ms"] > 0
    assert (a["ttft_ms"] is None) == (b["ttft_ms"] is None) == (not stream)
    if stream:
        assert bodies[1]["stream_options"] == {"include_usage": True}
    if model == "tool:lookup":
        assert b["tool_calls"][0]["name"] == "lookup" and b["finish_reason"] == "tool_calls"
    if "max_tokens" in params:
        assert b["finish_reason"] == "length"
    if "cached" in model:
        assert b["cached_tokens"] == 4 and b["usage_source"] == "reported"


@pytest.mark.parametrize("stream", [False, True])
def test_hostile_text_goes_both_ways_alike(llm_server, stream):
    a, b, bodies = both(llm_server, "echo", stream=stream, prompt="nul \x00 and \ufffe \uffff and \U0001f600")
    assert bodies[0] == bodies[1]
    assert untimed(a) == untimed(b) and b["output"] == "nul \x00 and \ufffe \uffff and \U0001f600"


def test_a_lone_surrogate_is_sent_as_a_json_escape_where_litellm_cannot_encode_it(llm_server):
    # the replay engine refuses such a case before sending (UnsendableText); a judge prompt quoting
    # a model's answer may still hold one. A difference, on purpose: the escape is valid JSON.
    a, b, bodies = both(llm_server, "echo", prompt="lone \ud800 high")
    assert isinstance(a, llm.LLMError) and "surrogates not allowed" in a.message
    assert b["output"] == "lone \ud800 high" and len(bodies) == 1


def test_a_stream_without_usage_is_not_estimated_on_the_direct_path(llm_server):
    a, b, bodies = both(llm_server, "echo@no_usage", stream=True)
    assert bodies[0] == bodies[1]
    assert a["usage_source"] == "estimated" and a["input_tokens"] and a["output_tokens"]
    assert b["usage_source"] is None and b["input_tokens"] is None and b["output_tokens"] is None
    same = ("output", "tool_calls", "finish_reason", "model")
    assert {k: a[k] for k in same} == {k: b[k] for k in same}


ERRORS = [
    pytest.param("echo@status=500", False, id="500"),
    pytest.param("echo@status=500", True, id="500-streamed"),
    pytest.param("echo@r429=99,retry_after=7", False, id="429-retry-after"),
    pytest.param("echo@status=401", False, id="401"),
    pytest.param("echo@status=403", False, id="403"),
    pytest.param("echo@status=400", False, id="400"),
    pytest.param("echo@status=404", False, id="404"),
    pytest.param("echo@status=422", False, id="422"),
    pytest.param("echo@status=502", False, id="502"),
    pytest.param("echo@status=503", True, id="503-streamed"),
    pytest.param("echo@status=504", False, id="504"),
    pytest.param("echo@bad_json", False, id="malformed-json-body"),
]


@pytest.mark.parametrize("model, stream", ERRORS)
def test_errors_are_classified_the_same(llm_server, model, stream):
    a, b, bodies = both(llm_server, model, stream=stream)
    assert isinstance(a, llm.LLMError) and isinstance(b, llm.LLMError), (a, b)
    assert bodies[0] == bodies[1]
    assert error_fields(a) == error_fields(b)
    assert llm.classify(b) is b  # the engine and the judges take it as it is


def test_a_malformed_stream_is_a_retryable_server_error_on_both(llm_server):
    a, b, _ = both(llm_server, "echo@bad_json", stream=True)
    # litellm names it MidStreamFallbackError; the direct path InternalServerError
    assert (a.status, a.retryable, a.auth) == (b.status, b.retryable, b.auth) == (500, True, False)
    assert b.type == "InternalServerError"


@pytest.mark.parametrize("stream", [False, True])
def test_timeouts_are_classified_the_same(llm_server, stream):
    a, b, _ = both(llm_server, "echo@hang=4000", stream=stream, timeout=1.0)
    assert error_fields(a) == error_fields(b) == {"type": "Timeout", "status": 408, "retryable": True,
                                                  "retry_after": None, "auth": False}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once closed


def test_connection_refused_is_a_connection_failure_on_both(llm_server):
    base = f"http://127.0.0.1:{_closed_port()}/v1"
    a, b, _ = both(llm_server, "echo", api_base=base)
    assert error_fields(a) == error_fields(b) == {"type": "APIConnectionError", "status": None,
                                                  "retryable": True, "retry_after": None, "auth": False}


@pytest.mark.parametrize("echo", ["exact", "prefix", "one"])
def test_a_secret_in_an_error_body_is_scrubbed_on_both(llm_server, monkeypatch, echo):
    monkeypatch.setenv("DIRECT_TEST_KEY", KEY)
    llm_server.reset()

    def run():
        llm_server.configure(echo_key=echo)
        request = {"model": "openai/echo@status=400", "messages": [{"role": "user", "content": "hi"}],
                   "api_base": llm_server.api_base, "api_key_env": "DIRECT_TEST_KEY"}
        return [_send(request, t, False, 10.0) for t in ("litellm", "direct")]

    a, b = run()
    assert error_fields(a) == error_fields(b)
    for e in (a, b):
        assert KEY not in str(e) and KEY[:20] not in str(e)
        assert "you sent key" in e.message  # the body's text is kept, the key is not
    assert all(r["body"] == llm_server.stats()["requests"][0]["body"] for r in llm_server.stats()["requests"])


def test_a_missing_key_variable_fails_before_sending(llm_server, monkeypatch):
    monkeypatch.delenv("DIRECT_TEST_KEY", raising=False)
    a, b, bodies = both(llm_server, "echo", key_env="DIRECT_TEST_KEY")
    assert error_fields(a) == error_fields(b) and b.auth and b.type == "MissingCredentials"
    assert bodies == []


def test_auto_takes_the_direct_path_only_for_plain_openai_compatible_requests():
    base = {"api_base": "http://localhost:8000/v1", "messages": []}
    assert transport_for({**base, "model": "openai/meta-llama/Llama-3.1-8B"}) == "direct"
    assert transport_for({**base, "model": "openai/gpt-4o-mini", "params": {"temperature": 0}}) == "direct"
    # other providers, no api_base, litellm's reasoning-model rules, litellm-only keywords
    for req in ({**base, "model": "anthropic/claude-sonnet-4"}, {**base, "model": "hosted_vllm/llama"},
                {**base, "model": "ollama_chat/llama3"}, {"model": "openai/gpt-4o-mini", "messages": []},
                {**base, "model": "openai/o3-mini"}, {**base, "model": "openai/gpt-5-mini"},
                {**base, "model": "openai/echo", "params": {"num_retries": 2}},
                {**base, "model": "openai/echo", "transport": "litellm"}):
        assert transport_for(req) == "litellm", req
    assert transport_for({**base, "model": "hosted_vllm/llama", "transport": "direct"}) == "direct"


def test_the_direct_path_sends_hosted_vllm_names_without_the_prefix(llm_server):
    request = {"model": "hosted_vllm/echo", "messages": [{"role": "user", "content": "hello there"}],
               "api_base": llm_server.api_base, "transport": "direct"}
    out = asyncio.run(llm.chat(request, timeout=10))
    assert out["output"] == "hello there"
    assert llm_server.stats()["requests"][0]["body"]["model"] == "echo"


def test_many_concurrent_calls_share_pooled_connections(llm_server):
    from replaygate.replay import openai_http

    async def run():
        req = {"model": "openai/echo@latency=50", "api_base": llm_server.api_base}
        out = await asyncio.gather(*(llm.chat({**req, "messages": [{"role": "user", "content": f"q {i}"}]},
                                              timeout=20) for i in range(80)))
        pool = openai_http._pool(llm_server.api_base)
        clients, busy = len(pool.clients), list(pool.busy)
        await openai_http.aclose()
        return out, clients, busy

    out, clients, busy = asyncio.run(run())
    assert [o["output"] for o in out] == [f"q {i}" for i in range(80)]
    assert clients == 80 // openai_http.SHARD and busy == [0] * clients  # 16 connections a client


# ------------------------------------------------------------------ end to end

PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("LITELLM-IMPORTED\\n" if "litellm" in sys.modules else "LITELLM-ABSENT\\n"))
from replaygate.cli import main
sys.argv = ["replaygate"] + sys.argv[1:]
main()
"""


def _run(cfg: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent / "src"))
    return subprocess.run([sys.executable, "-c", PROBE, "run", "-c", str(cfg), "--variant", "local", "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=180)


def _comparable(run: dict) -> dict:
    """The run without what differs between two runs of the same requests: timings, stamps."""
    cases = []
    for c in run["cases"]:
        samples = [{k: v for k, v in s.items() if k not in TIMED and k != "cached_at"} for s in c["samples"]]
        cases.append({**c, "samples": samples})
    warnings = [w for w in run["warnings"] if not w.startswith("event-loop lag")]  # a timing too
    return {"cases": cases, "variant": run["variant"], "complete": run["complete"], "warnings": warnings,
            "provenance": run["provenance"], "summary_quality": run["summary"].get("quality")}


def test_a_run_on_the_direct_path_equals_the_litellm_run_and_never_imports_litellm(llm_server, tmp_path):
    rows = [{"id": f"q{i}", "input": f"question number {i}", "expected": f"question number {i}"} for i in range(6)]
    write_golden(tmp_path, rows)
    runs = {}
    for transport in ("auto", "litellm"):
        cfg = tmp_path / f"{transport}.yaml"
        cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
cache: false
variants:
  local: {{model: openai/gpt-4o-mini, api_base: "{llm_server.api_base}", transport: {transport}}}
scorers:
  - {{name: exact, type: equals}}
""")
        out = tmp_path / f"{transport}.json"
        r = _run(cfg, out)
        assert r.returncode == 0, r.stderr
        runs[transport] = (json.loads(out.read_text()), r.stderr)
    direct, direct_err = runs["auto"]
    via_litellm, litellm_err = runs["litellm"]
    assert "LITELLM-ABSENT" in direct_err  # nothing imported it: not the calls, not the pricing
    assert "LITELLM-IMPORTED" in litellm_err
    assert direct["environment"]["conditions"]["transport"] == "direct"
    assert via_litellm["environment"]["conditions"]["transport"] == "litellm"
    # priced from litellm's bundled cost map on both paths
    assert all(s["cost_usd"] and s["cost_usd"] > 0 for c in direct["cases"] for s in c["samples"])
    a, b = _comparable(direct), _comparable(via_litellm)
    a["variant"].pop("transport", None), b["variant"].pop("transport", None)
    assert a == b


def test_the_cache_key_does_not_depend_on_the_transport(llm_server):
    from replaygate.replay.cache import request_key
    from replaygate.replay.variants import build_variant
    from replaygate.model import Case, Message

    case = Case(id="c", messages=[Message(role="user", content="hi")])
    keys = {t: request_key(build_variant({"name": "v", "model": "openai/echo", "api_base": llm_server.api_base,
                                          "transport": t}).request(case), 0)
            for t in ("auto", "litellm", "direct")}
    assert len(set(keys.values())) == 1


def test_config_validates_transport(tmp_path):
    from click.testing import CliRunner

    from replaygate.cli import cli

    write_golden(tmp_path, [{"id": "a", "input": "hi"}])
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text("""\
version: 1
dataset: [{golden: golden.jsonl}]
variants:
  a: {model: openai/gpt-4o-mini, transport: direct}
  b: {model: openai/gpt-4o-mini, transport: fast}
scorers:
  - {name: judged, type: judge, criteria: correct, model: openai/x, transport: direct}
""")
    r = CliRunner().invoke(cli, ["validate", "-c", str(cfg)])
    assert r.exit_code == 2, r.output
    assert "variants.a.transport" in r.output and "needs an api_base" in r.output
    assert "variants.b.transport" in r.output
    assert "scorers[0].transport" in r.output
