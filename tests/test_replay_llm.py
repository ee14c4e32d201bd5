"""replay/llm.py against the local fake server (litellm's real HTTP path)."""
from __future__ import annotations

import asyncio
import json

import pytest

from replaygate.replay.llm import LLMError, chat, embed


def req(srv, model, text="hello world", **extra):
    return {"model": f"openai/{model}", "messages": [{"role": "user", "content": text}],
            "api_base": srv.api_base, **extra}


def run(coro):
    return asyncio.run(coro)


def test_chat_normalised(llm_server):
    r = run(chat(req(llm_server, "echo@latency=50", params={"temperature": 0}), timeout=10))
    assert r["output"] == "hello world" and r["finish_reason"] == "stop"
    assert (r["input_tokens"], r["output_tokens"]) == (2, 2)
    assert r["latency_ms"] >= 50 and r["ttft_ms"] is None and r["model"]
    assert llm_server.stats()["requests"][0]["body"]["temperature"] == 0


def test_chat_stream_ttft_and_usage(llm_server):
    async def twice():  # the first call in a process pays litellm's client set-up
        await chat(req(llm_server, "echo", text="warm"), timeout=10, stream=True)
        return await chat(req(llm_server, "echo@ttft=120,chunk_delay=30", text="a b c d"),
                          timeout=10, stream=True)
    r = run(twice())
    assert r["output"] == "a b c d" and r["output_tokens"] == 4 and r["input_tokens"] == 4
    assert 120 <= r["ttft_ms"] < r["latency_ms"]
    assert r["latency_ms"] >= r["ttft_ms"] + 3 * 30 * 0.9
    body = llm_server.stats()["requests"][-1]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls(llm_server, stream):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    r = run(chat(req(llm_server, "tool:lookup", text="order 7", tools=tools), timeout=10, stream=stream))
    assert r["finish_reason"] == "tool_calls" and r["output"] in (None, "")
    [tc] = r["tool_calls"]
    assert tc["name"] == "lookup" and json.loads(tc["arguments"]) == {"query": "order 7"} and tc["id"]
    assert llm_server.stats()["requests"][0]["body"]["tools"] == tools


def test_cached_tokens(llm_server):
    r = run(chat(req(llm_server, "echo@cached=1"), timeout=10))
    assert r["cached_tokens"] == 1


@pytest.mark.parametrize("model,etype,retryable,auth,status", [
    ("echo@r429=1,retry_after=3", "RateLimitError", True, False, 429),
    ("echo@fail=1", "InternalServerError", True, False, 500),
    ("echo@status=503", None, True, False, 503),
    ("echo@auth", "AuthenticationError", False, True, 401),
    ("echo@status=403", "PermissionDeniedError", False, True, 403),
    ("echo@status=400", "BadRequestError", False, False, 400),
    ("echo@status=404", "NotFoundError", False, False, 404),
])
def test_error_classification(llm_server, model, etype, retryable, auth, status):
    with pytest.raises(LLMError) as ei:
        run(chat(req(llm_server, model), timeout=10))
    e = ei.value
    assert (e.retryable, e.auth, e.status) == (retryable, auth, status)
    if etype:
        assert e.type == etype
    if status == 429:
        assert e.retry_after == 3.0


def test_timeout_is_retryable(llm_server):
    with pytest.raises(LLMError) as ei:
        run(chat(req(llm_server, "echo@hang=2000"), timeout=0.3))
    assert ei.value.type == "Timeout" and ei.value.retryable


def test_connection_error_is_retryable():
    with pytest.raises(LLMError) as ei:
        run(chat({"model": "openai/echo", "messages": [{"role": "user", "content": "x"}],
                  "api_base": "http://127.0.0.1:9/v1"}, timeout=5))
    # litellm calls it a 500 "Connection error."; no server answered, and we say so
    assert ei.value.retryable and ei.value.type == "APIConnectionError" and ei.value.status is None


def test_api_key_from_env_never_in_error(llm_server, monkeypatch):
    monkeypatch.setenv("RG_TEST_KEY", "sk-very-secret-value-123")
    with pytest.raises(LLMError) as ei:
        run(chat(req(llm_server, "echo@auth", api_key_env="RG_TEST_KEY"), timeout=10))
    assert "sk-very-secret-value-123" not in str(ei.value)
    # the key does reach the server as a bearer token, i.e. it was used
    assert run(chat(req(llm_server, "echo", api_key_env="RG_TEST_KEY"), timeout=10))["output"]
    monkeypatch.delenv("RG_TEST_KEY")
    with pytest.raises(LLMError) as ei:
        run(chat(req(llm_server, "echo", api_key_env="RG_TEST_KEY"), timeout=10))
    assert ei.value.auth and "RG_TEST_KEY" in ei.value.message


def test_embed(llm_server):
    vecs = run(embed("openai/emb", ["red apple pie", "red apple tart", "tax law"],
                     api_base=llm_server.api_base, api_key="sk-test", timeout=10))
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert len(vecs) == 3 and len(vecs[0]) == 64
    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2])
