"""The fake server itself, exercised through litellm's real HTTP path."""
from __future__ import annotations

import json
import math
import time

import litellm
import pytest

from fakeserver import FakeServer, embed_text, parse_model

litellm.suppress_debug_info = True
KEY = "sk-test"


def ask(srv, model, text, **kw):
    return litellm.completion(model=f"openai/{model}", api_base=srv.api_base, api_key=KEY,
                              messages=[{"role": "user", "content": text}], max_retries=0,
                              timeout=kw.pop("timeout", 10), **kw)


def test_parse_model_grammar():
    assert parse_model("openai/echo@latency=5,auth") == ("echo", {"latency": "5", "auth": ""})
    assert parse_model("const:a@b.c") == ("const:a@b.c", {})  # not an option list: kept as text
    assert parse_model("wrong-15") == ("wrong-15", {})


def test_echo_with_usage_and_stats(llm_server):
    r = ask(llm_server, "echo", "hello there world")
    assert r.choices[0].message.content == "hello there world"
    assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == 3
    st = llm_server.stats()
    assert st["count"] == 1 and st["requests"][0]["prompt"] == "hello there world"
    assert st["requests"][0]["model"] == "echo" and st["requests"][0]["status"] == 200


def test_answers_wrong_and_const(llm_server):
    prompts = [f"question {i}" for i in range(200)]
    llm_server.configure(answers={p: f"answer {i}" for i, p in enumerate(prompts)}, wrong_answer="nope")
    assert ask(llm_server, "answers", "question 7").choices[0].message.content == "answer 7"
    assert ask(llm_server, "answers", "not configured").choices[0].message.content == "UNKNOWN"
    wrong = [p for p in prompts if ask(llm_server, "wrong-20", p).choices[0].message.content == "nope"]
    assert 20 <= len(wrong) <= 60  # ~20% of 200, chosen by hash
    again = [p for p in prompts if ask(llm_server, "wrong-20", p).choices[0].message.content == "nope"]
    assert wrong == again  # deterministic
    assert ask(llm_server, "const:fixed text", "x").choices[0].message.content == "fixed text"


def test_noisy_is_random_per_request(llm_server):
    llm_server.configure(answers={"q": "a"}, wrong_answer="w", seed=3)
    outs = [ask(llm_server, "noisy-50", "q").choices[0].message.content for _ in range(40)]
    assert 5 < outs.count("w") < 35


def test_tool_call_and_json(llm_server):
    r = ask(llm_server, "tool:lookup", "order 42",
            tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}])
    tc = r.choices[0].message.tool_calls[0]
    assert tc.function.name == "lookup" and json.loads(tc.function.arguments) == {"query": "order 42"}
    assert r.choices[0].finish_reason == "tool_calls"
    assert json.loads(ask(llm_server, "json", "a b").choices[0].message.content) == {"answer": "a b", "words": 2}


def test_streaming_with_usage_and_ttft(llm_server):
    t0 = time.perf_counter()
    chunks = list(ask(llm_server, "echo@ttft=150", "one two three", stream=True,
                      stream_options={"include_usage": True}))
    first_after = time.perf_counter() - t0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    usage = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert usage and usage[-1].completion_tokens == 3
    assert first_after >= 0.15


def test_errors_500_then_ok_429_retry_after_and_401(llm_server):
    with pytest.raises(litellm.InternalServerError):
        ask(llm_server, "echo@fail=1", "p")
    assert ask(llm_server, "echo@fail=1", "p").choices[0].message.content == "p"
    with pytest.raises(litellm.RateLimitError) as ei:
        ask(llm_server, "echo@r429=1,retry_after=7", "p")
    assert ei.value.response.headers.get("retry-after") == "7"
    with pytest.raises(litellm.AuthenticationError):
        ask(llm_server, "echo@auth", "p")
    assert [r["status"] for r in llm_server.stats()["requests"]] == [500, 200, 429, 401]


def test_hang_beyond_timeout_and_latency(llm_server):
    with pytest.raises(litellm.Timeout):
        ask(llm_server, "echo@hang=3000", "p", timeout=0.3)
    t0 = time.perf_counter()
    ask(llm_server, "echo@latency=200", "p")
    assert time.perf_counter() - t0 >= 0.2


def test_embeddings_similar_texts_are_close(llm_server):
    r = litellm.embedding(model="openai/emb", api_base=llm_server.api_base, api_key=KEY,
                          input=["the cat sat on the mat", "the cat sat on a mat", "quarterly tax report"],
                          timeout=10)
    v = [d["embedding"] for d in r.data]
    cos = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731  (vectors are normalised)
    assert math.isclose(cos(v[0], v[0]), 1.0, rel_tol=1e-9)
    assert cos(v[0], v[1]) > 0.7 > cos(v[0], v[2])
    assert v[0] == embed_text("the cat sat on the mat")
    assert r.usage.prompt_tokens == 6 + 6 + 3


def test_default_options_via_config_and_reset(llm_server):
    llm_server.configure(options={"status": 404})
    with pytest.raises(litellm.NotFoundError):
        ask(llm_server, "echo", "p")
    llm_server.reset()
    assert ask(llm_server, "echo", "p").choices[0].message.content == "p"
    assert llm_server.stats()["count"] == 1


def test_standalone_server_survives_client_and_is_stoppable():
    with FakeServer() as srv:
        assert srv.stats(summary=True) == {"count": 0, "by_path": {}}
        proc = srv.proc
    assert proc.poll() is not None
