"""replay/cache.py and replay/pricing.py."""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import sqlite3

import pytest

from replaygate.replay.cache import ResponseCache, request_key
from replaygate.replay.pricing import cost_usd

REQ = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
       "params": {"temperature": 0}, "api_base": None, "api_key_env": "OPENAI_API_KEY"}


def test_request_key_identity():
    k = request_key(REQ, 0)
    assert k == request_key(dict(reversed(list(REQ.items()))), 0)  # order-independent
    assert k != request_key(REQ, 1)  # repeats are independent samples
    assert k != request_key({**REQ, "params": {"temperature": 0.5}}, 0)
    assert k != request_key({**REQ, "api_base": "http://x"}, 0)
    assert k != request_key({**REQ, "tools": [{"type": "function"}]}, 0)
    # what is not part of the request identity: the key's env var name, an api key, None params
    assert k == request_key({**REQ, "api_key_env": "OTHER", "api_key": "sk-x"}, 0)
    assert k == request_key({**REQ, "params": {"temperature": 0, "seed": None}}, 0)


def test_cache_roundtrip_and_persistence(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    with ResponseCache(path) as c:
        assert c.get("k") is None
        c.put("k", {"output": "é", "latency_ms": 1.5})
        assert c.get("k") == {"output": "é", "latency_ms": 1.5}
        c.put("k", {"output": "new"})
        assert len(c) == 1
    with ResponseCache(path) as c:
        assert c.get("k") == {"output": "new"}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _writer(path, start):
    with ResponseCache(path) as c:
        for i in range(start, start + 50):
            c.put(f"k{i}", {"i": i})


def test_concurrent_processes_and_tasks(tmp_path):
    path = tmp_path / "c.sqlite"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in (0, 50)]
    for p in procs:
        p.start()
    cache = ResponseCache(path)

    async def many():
        async def one(i):
            await asyncio.sleep(0)
            cache.put(f"t{i}", {"i": i})
            return cache.get(f"t{i}")
        return await asyncio.gather(*(one(i) for i in range(100)))

    assert [r["i"] for r in asyncio.run(many())] == list(range(100))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert len(cache) == 200
    cache.close()


def test_price_from_config():
    price = {"input": 1.0, "output": 4.0}
    assert cost_usd("my/local", 1_000_000, 500_000, price=price) == pytest.approx(3.0)
    cached = {**price, "cached_input": 0.25}
    assert cost_usd("my/local", 1_000_000, 0, 400_000, price=cached) == pytest.approx(0.6 + 0.1)
    assert cost_usd("my/local", None, 10, price=price) is None


def test_price_from_litellm_cost_map():
    from replaygate.replay.llm import litellm_module
    entry = litellm_module().model_cost["gpt-4o-mini"]
    expect = 1000 * entry["input_cost_per_token"] + 200 * entry["output_cost_per_token"]
    assert cost_usd("openai/gpt-4o-mini", 1000, 200) == pytest.approx(expect)
    assert cost_usd("gpt-4o-mini", 1000, 200) == pytest.approx(expect)
    got = cost_usd("gpt-4o-mini", 1000, 200, cached_tokens=1000)
    assert got == pytest.approx(1000 * entry["cache_read_input_token_cost"]
                                + 200 * entry["output_cost_per_token"])
    assert got < expect


def test_unknown_price_is_none_not_zero():
    assert cost_usd("openai/echo", 10, 10) is None
    assert not math.isnan(cost_usd("x", 0, 0, price={"input": 0, "output": 0}))


def test_background_writes_visible_at_once_and_committed_on_flush(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    for i in range(200):
        cache.put(f"k{i}", {"i": i})
    assert cache.get("k199") == {"i": 199}  # visible before the commit
    assert set(cache.get_many(["k1", "k5", "nope", "k1"])) == {"k1", "k5"}
    cache.flush()
    other = sqlite3.connect(path)  # another connection sees every committed row
    assert other.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 200
    cache.close()
    with pytest.raises(ValueError):
        cache.put("late", {})


def test_read_only_cache_never_writes(tmp_path):
    path = tmp_path / "c.sqlite"
    missing = ResponseCache(path, read_only=True)  # offline with no cache yet: every lookup misses
    assert missing.get("k") is None and missing.get_many(["k"]) == {} and len(missing) == 0
    missing.close()
    assert not path.exists()
    with ResponseCache(path) as rw:
        rw.put("k", {"output": "x"})
    before = path.read_bytes()
    with ResponseCache(path, read_only=True) as ro:
        assert ro.get("k") == {"output": "x"} and ro.get_many(["k", "z"]) == {"k": {"output": "x"}}
        with pytest.raises(ValueError, match="read-only"):
            ro.put("z", {"output": "y"})
    assert path.read_bytes() == before
