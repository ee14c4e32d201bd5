"""The direct path: OpenAI-compatible chat completions over pooled httpx clients, without litellm.

litellm costs 2-3 s to import and 3-9 ms of CPU per call (bench/RESULTS.md), which saturates one
core long before a fast self-hosted endpoint (vLLM, llama.cpp server, Ollama's /v1, TGI, SGLang,
LM Studio) does. For those, named with an ``api_base``, litellm only forwards the request: this
module sends the same body (tests/test_direct_http.py compares both paths request by request)
and returns the normalised response of ``llm.chat`` with the same error classification.

Which requests take it (``transport_for``): ``transport: direct``, or ``auto`` (the default) for
an ``openai/...`` model with an ``api_base`` whose name litellm does not rewrite (its o-series
and GPT-5 rules reject or rename parameters) and whose params hold no litellm-only keyword.
Everything else stays on litellm: other providers, embeddings, the cost map.

Differences from the litellm path, on purpose:
- a stream without a usage chunk has no token counts (``usage_source`` None): litellm counts
  them with its tokenizer (``estimated``); the direct path does not estimate;
- error messages are the provider's own text with the HTTP status, not litellm's prefixes (the
  type, status, retryability, Retry-After and auth flag are the same).

Connections: per event loop and ``api_base``, clients of at most ``SHARD`` connections each,
added as requests in flight need them. One httpx client with many connections slows down as
concurrency rises (bench/RESULTS.md: 0.93 of ideal at C=16, 0.10 at C=64), while clients of 16
connections each kept 0.72 at C=64.
"""
from __future__ import annotations

import asyncio
import json
import time
import weakref
from typing import Any

import httpx
import orjson

from .llm import LLMError, _api_key, _scrub, http_error
from .transport import wire_model

SHARD = 16  # connections per client
MAX_SHARDS = 64
# litellm.litellm_core_utils.core_helpers.map_finish_reason, for what OpenAI-compatible servers send
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
           "function_call": "function_call", "content_filter": "content_filter", "eos": "stop",
           "eos_token": "stop", "stop_sequence": "stop", "end_turn": "stop", "max_tokens": "length",
           "tool_use": "tool_calls", "error": "stop", "content_filtered": "content_filter"}


def request_body(request: dict, stream: bool) -> tuple[dict, dict]:
    """(JSON body, extra headers) as litellm sends them for an ``openai/`` model."""
    params = dict(request.get("params") or {})
    extra_body = params.pop("extra_body", None) or {}
    extra_headers = params.pop("extra_headers", None) or {}
    params.pop("model", None)
    body: dict[str, Any] = {"model": wire_model(request["model"]), "messages": request["messages"]}
    body.update({k: v for k, v in params.items() if v is not None})
    if request.get("tools"):
        body["tools"] = request["tools"]
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(extra_body)
    return body, dict(extra_headers)


class _Pool:
    """Clients of at most SHARD connections for one api_base on one event loop; each request
    goes to the least busy, and a new client is opened when all are full."""

    def __init__(self) -> None:
        self.clients: list[httpx.AsyncClient] = []
        self.busy: list[int] = []

    def acquire(self) -> int:
        best = min(range(len(self.busy)), key=self.busy.__getitem__) if self.busy else -1
        if best < 0 or (self.busy[best] >= SHARD and len(self.clients) < MAX_SHARDS):
            limits = httpx.Limits(max_connections=SHARD, max_keepalive_connections=SHARD)
            self.clients.append(httpx.AsyncClient(limits=limits, timeout=None))
            self.busy.append(0)
            best = len(self.clients) - 1
        self.busy[best] += 1
        return best

    def release(self, i: int) -> None:
        self.busy[i] -= 1

    async def aclose(self) -> None:
        clients, self.clients, self.busy = self.clients, [], []
        for c in clients:
            await c.aclose()


_POOLS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Pool]]" = weakref.WeakKeyDictionary()


def _pool(api_base: str) -> _Pool:
    loop = asyncio.get_running_loop()
    per_loop = _POOLS.get(loop)
    if per_loop is None:
        per_loop = _POOLS[loop] = {}
    pool = per_loop.get(api_base)
    if pool is None:
        pool = per_loop[api_base] = _Pool()
    return pool


async def aclose() -> None:
    """Close this event loop's clients (idle keep-alive connections)."""
    pools = _POOLS.pop(asyncio.get_running_loop(), {})
    for p in pools.values():
        await p.aclose()


def _url(api_base: str) -> str:
    return api_base.rstrip("/") + "/chat/completions"


def _error_text(raw: bytes) -> str:
    """The provider's message from an error body ({"error": {"message"}} or any text)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:8000].decode("utf-8", "replace")
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message") is not None:
            return str(err["message"])
        if isinstance(err, str):
            return err
    return raw[:8000].decode("utf-8", "replace")


def _status_error(resp: httpx.Response, raw: bytes, key: str | None) -> LLMError:
    return http_error(resp.status_code, f"{_error_text(raw)} (HTTP {resp.status_code})",
                      retry_after=resp.headers.get("retry-after"), secret=key)


async def chat(request: dict, *, timeout: float, stream: bool = False) -> dict:
    """One chat completion, the normalised response of ``llm.chat`` (latency set by the caller's
    contract: send to full response)."""
    key = _api_key(request.get("api_key_env"))
    body, headers = request_body(request, stream)
    headers["Authorization"] = f"Bearer {key or 'sk-none'}"
    headers["Content-Type"] = "application/json"
    api_base = request["api_base"]
    pool = _pool(api_base)
    slot = pool.acquire()
    client = pool.clients[slot]
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            if stream:
                result = await _streamed(client, api_base, body, headers, timeout, key, start)
            else:
                resp = await client.post(_url(api_base), content=_dumps(body), headers=headers,
                                         timeout=timeout)
                raw = resp.content
                if resp.status_code >= 400:
                    raise _status_error(resp, raw, key)
                result = _from_json(raw, key)
    except LLMError:
        raise
    except (TimeoutError, httpx.TimeoutException):
        raise LLMError("Timeout", f"no complete answer from {api_base} within {timeout:g} s",
                       status=408, retryable=True) from None
    except (httpx.TransportError, OSError) as exc:  # refused, reset, closed mid-answer, DNS
        raise LLMError("APIConnectionError", _scrub(f"{type(exc).__name__}: {exc} ({api_base})", key),
                       status=None, retryable=True) from None
    finally:
        pool.release(slot)
    result["latency_ms"] = (time.perf_counter() - start) * 1000.0
    return result


def _bad_body(raw: bytes, key: str | None) -> LLMError:
    # litellm reports an unreadable 200 body as a retryable 500 (InternalServerError; in a
    # stream its MidStreamFallbackError)
    return http_error(500, "the server's answer is not a chat completion: "
                      + raw[:300].decode("utf-8", "replace"), secret=key)


def _dumps(body: dict) -> bytes:
    """orjson, or the json module (ASCII escapes, as the OpenAI client sends) for a text orjson
    cannot encode: a lone surrogate in a judged answer."""
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(body).encode("ascii")


def _loads(raw: bytes | str) -> Any:
    """orjson, or the json module for what orjson refuses and a provider may send: an escaped lone
    surrogate (``\\ud800``) that Python strings, and litellm's path, keep."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _usage(usage: Any) -> tuple[int | None, int | None, int | None]:
    if not isinstance(usage, dict):
        return None, None, None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = usage.get("cache_read_input_tokens")
    return usage.get("prompt_tokens"), usage.get("completion_tokens"), cached


def _tool_calls(raw: Any) -> list[dict]:
    out = []
    for tc in raw or []:
        fn = tc.get("function") or {}
        out.append({"id": tc.get("id"), "name": fn.get("name") or "", "arguments": fn.get("arguments") or ""})
    return out


def _finish(value: Any) -> str | None:
    return None if value is None else _FINISH.get(value, "stop")


def _from_json(raw: bytes, key: str | None) -> dict:
    try:
        data = _loads(raw)
        choices = data["choices"]
    except (ValueError, TypeError, KeyError):  # JSONDecodeError included
        raise _bad_body(raw, key) from None
    choice = choices[0] if choices else {}
    msg = choice.get("message") or {}
    inp, out, cached = _usage(data.get("usage"))
    source = "reported"
    if not inp and not out:  # as on the litellm path: no counts, or zeros, are no usage
        inp = out = cached = source = None
    return {"output": msg.get("content"), "tool_calls": _tool_calls(msg.get("tool_calls")),
            "finish_reason": _finish(choice.get("finish_reason")), "input_tokens": inp,
            "output_tokens": out, "cached_tokens": cached, "usage_source": source, "ttft_ms": None,
            "model": data.get("model")}


async def _streamed(client: httpx.AsyncClient, api_base: str, body: dict, headers: dict,
                    timeout: float, key: str | None, start: float) -> dict:
    parts: list[str] = []
    calls: dict[int, dict] = {}
    ttft = None
    finish = model = usage = None
    req = client.build_request("POST", _url(api_base), content=_dumps(body), headers=headers,
                               timeout=timeout)
    resp = await client.send(req, stream=True)
    try:
        if resp.status_code >= 400:
            raise _status_error(resp, await resp.aread(), key)
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, event: lines
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                chunk = _loads(payload)
            except ValueError:
                raise _bad_body(payload.encode(), key) from None
            if not isinstance(chunk, dict):
                raise _bad_body(payload.encode(), key)
            if isinstance(chunk.get("error"), dict):  # vLLM / SGLang: an error inside a 200 stream
                err = chunk["error"]
                code = err.get("code")
                status = code if isinstance(code, int) and 400 <= code < 600 else 500
                raise http_error(status, f"{err.get('message')} (in the stream)", secret=key)
            model = chunk.get("model") or model
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                deltas = delta.get("tool_calls") or []
                if ttft is None and (text or deltas):
                    ttft = (time.perf_counter() - start) * 1000.0
                if text:
                    parts.append(text)
                for i, tc in enumerate(deltas):
                    idx = tc.get("index", i) or 0
                    slot = calls.setdefault(idx, {"id": None, "name": "", "arguments": ""})
                    fn = tc.get("function") or {}
                    slot["id"] = tc.get("id") or slot["id"]
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
    finally:
        await resp.aclose()
    inp, out, cached = _usage(usage)
    # no usage chunk: no counts (litellm would estimate them with its tokenizer; we do not)
    source = "reported" if usage else None
    return {"output": "".join(parts) if parts or not calls else None,
            "tool_calls": [calls[i] for i in sorted(calls)], "finish_reason": _finish(finish),
            "input_tokens": inp, "output_tokens": out, "cached_tokens": cached,
            "usage_source": source, "ttft_ms": ttft, "model": model}
