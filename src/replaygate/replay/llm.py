"""The one place that talks to litellm (imported lazily, offline and quiet).

Public, stable for the engine and the LLM judges:

``request`` shape (what ``chat`` sends and what ``cache.request_key`` hashes)::

    {"model": "openai/gpt-4o-mini",          # any litellm model string
     "messages": [{"role": ..., "content": ...}, ...],   # OpenAI wire form
     "tools": [...],                          # optional, OpenAI tool definitions
     "params": {"temperature": 0, ...},       # optional, passed to litellm as keyword arguments
     "api_base": "http://...",                # optional
     "api_key_env": "OPENAI_API_KEY",         # optional: NAME of the env var; the key is read here,
                                              # never stored in the request, the cache or a message
     "transport": "auto"}                     # optional: auto | litellm | direct (transport.py);
                                              # not part of the cache key

``await chat(request, timeout=30, stream=False) -> dict`` (the normalised response)::

    {"output": str|None, "tool_calls": [{"id", "name", "arguments"}], "finish_reason",
     "input_tokens", "output_tokens", "cached_tokens", "usage_source", "ttft_ms" (streamed only),
     "latency_ms", "model"}

``usage_source`` says where the token counts come from: ``"reported"`` by the provider,
``"estimated"`` by litellm's tokenizer (a stream without a usage chunk: llama.cpp's server sends
none), or None when there are no counts (a response without usage: litellm's zeros are dropped).

``await embed(model, texts, api_base=None, api_key=None, timeout=30, api_key_env=None)
-> list[list[float]]``.

``chat`` sends an OpenAI-compatible request named with an ``api_base`` over the direct pooled
HTTP client (openai_http.py, chosen by transport.py) instead of litellm: same request body, same
normalised response and error classification (tests/test_direct_http.py), except that a stream
without a usage chunk has no counts there (``usage_source`` None, not litellm's estimate).

Both raise ``LLMError`` (``.type``, ``.status``, ``.retryable``, ``.retry_after``, ``.auth``) for
any provider failure. litellm's own retries are off (``max_retries=0``): the engine retries.
Latency is timed here with ``time.perf_counter`` from send to the full response (not litellm's
``_response_ms``).
"""
from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

_LITELLM = None


def set_offline_env() -> None:
    """litellm reads these at import: use the bundled cost map, never fetch anything."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def litellm_module():
    """Import litellm once, after making it offline (local cost map) and quiet."""
    global _LITELLM
    if _LITELLM is None:
        set_offline_env()
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.drop_params = False
        _LITELLM = litellm
    return _LITELLM


class LLMError(Exception):
    """A classified provider failure. ``retryable``: 429, 5xx, timeout, connection error."""

    def __init__(self, type: str, message: str, *, status: int | None = None,
                 retryable: bool = False, retry_after: float | None = None, auth: bool = False):
        super().__init__(message)
        self.type = type
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.auth = auth

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


_NOT_RETRYABLE_STATUS = {400, 401, 403, 404, 409, 413, 422}
# litellm raises a bare APIError for some statuses; name those by status for reports
_NAME_BY_STATUS = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
                   404: "NotFoundError", 429: "RateLimitError", 500: "InternalServerError",
                   502: "BadGatewayError", 503: "ServiceUnavailableError"}


def _retry_after(exc: BaseException) -> float | None:
    headers = None
    resp = getattr(exc, "response", None)
    if resp is not None:
        headers = getattr(resp, "headers", None)
    headers = headers or getattr(exc, "litellm_response_headers", None)
    if not headers:
        return None
    return _retry_after_value(headers.get("retry-after") or headers.get("Retry-After"))


def _scrub(text: str, secret: str | None) -> str:
    from .secrets import scrub

    return scrub(text[:8000], secret)[:2000]  # a huge error page is cut before it is searched


def _connection_failure(exc: BaseException) -> bool:
    """True when the cause chain shows no HTTP answer at all (refused, DNS, reset), not a
    provider status."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 12:
        if getattr(cur, "provider_status_code", None) is not None:
            return False  # the provider did answer with a status
        if isinstance(cur, ConnectionError) or type(cur).__name__ in (
                "APIConnectionError", "ConnectError", "ClientConnectorError", "RemoteProtocolError"):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


# how the providers' clients say no key was given before any request was sent (the OpenAI client
# raises it as a bare error that litellm reports as a 500, a retryable server error otherwise)
_MISSING_CREDENTIALS = re.compile(
    r"missing credentials|api_key client option must be set|no key is set|missing \w+ api key"
    r"|api key (?:is )?(?:not set|required|missing)", re.IGNORECASE)


def classify(exc: BaseException, secret: str | None = None) -> LLMError:
    """Map a litellm / httpx / asyncio exception to an ``LLMError``."""
    if isinstance(exc, LLMError):
        return exc
    name = type(exc).__name__
    message = _scrub(str(exc) or name, secret)
    if _MISSING_CREDENTIALS.search(message):
        return LLMError("MissingCredentials", message, status=None, retryable=False, auth=True)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or name in ("Timeout", "APITimeoutError"):
        return LLMError("Timeout", message, status=408, retryable=True)
    if _connection_failure(exc):
        # litellm reports a refused connection as a 500 "Connection error.": no server answered
        return LLMError("APIConnectionError", message, status=None, retryable=True)
    status = getattr(exc, "status_code", None)
    if name in ("APIError", "OpenAIError") and status in _NAME_BY_STATUS:
        name = _NAME_BY_STATUS[status]
    if name == "APIConnectionError":
        # litellm also wraps non-HTTP failures here; a connection problem is worth a retry
        return LLMError(name, message, status=None, retryable=True)
    if isinstance(status, int) or name in ("AuthenticationError", "PermissionDeniedError", "RateLimitError"):
        return _by_status(name, message, status, _retry_after(exc))
    if isinstance(exc, (ConnectionError, OSError)):
        return LLMError(name, message, retryable=True)
    return LLMError(name, message, retryable=False)


def _retry_after_value(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP-date: fall back to our backoff


# the names litellm's OpenAI exception mapping gives these statuses (a 504 is its Timeout, 408)
_NAME_BY_STATUS_DIRECT = {**_NAME_BY_STATUS, 408: "Timeout", 422: "BadRequestError", 504: "Timeout"}


def http_error(status: int, message: str, *, retry_after: Any = None, secret: str | None = None,
               name: str | None = None) -> LLMError:
    """An ``LLMError`` for an HTTP error answer, classified as ``classify`` does litellm's
    exception for the same status (the direct path, openai_http.py)."""
    message = _scrub(message, secret)
    name = name or _NAME_BY_STATUS_DIRECT.get(status, "APIError")
    if name == "Timeout":
        status = 408
    if _MISSING_CREDENTIALS.search(message):
        return LLMError("MissingCredentials", message, status=None, retryable=False, auth=True)
    return _by_status(name, message, status, _retry_after_value(retry_after))


def _by_status(name: str, message: str, status: int | None, retry_after: float | None) -> LLMError:
    """What both paths conclude once an error's name and HTTP status are known: auth, rate limit
    (with its Retry-After), else retryable by status."""
    if name in ("AuthenticationError", "PermissionDeniedError") or status in (401, 403):
        return LLMError(name, message, status=status, retryable=False, auth=True)
    if name == "RateLimitError" or status == 429:
        return LLMError("RateLimitError", message, status=429, retryable=True, retry_after=retry_after)
    retryable = (status >= 500 or status == 408) and status not in _NOT_RETRYABLE_STATUS
    return LLMError(name, message, status=status, retryable=retryable)


def _api_key(api_key_env: str | None) -> str | None:
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env)
    if not key:
        raise LLMError("MissingCredentials", f"environment variable {api_key_env} is not set",
                       status=None, auth=True)
    return key


def provider_key_names(model: str) -> list[str]:
    """The environment variables litellm reads the key of ``model``'s provider from when they are
    missing (e.g. ``["OPENAI_API_KEY"]``); empty when they are set or the provider is unknown."""
    try:
        found = litellm_module().validate_environment(model=model)
    except Exception:  # an unknown provider: nothing to name
        return []
    return list(found.get("missing_keys") or [])


def credentials_hint(model: str, api_key_env: str | None, api_base: str | None = None) -> str:
    """Which variable a user should set (or fix) for ``model``: the one the config names, else
    the provider's default that litellm reads."""
    if api_key_env:
        state = "is not set" if not os.environ.get(api_key_env) else "holds a key the provider rejected"
        return f"the variant's api_key_env {api_key_env} {state}"
    names = provider_key_names(model)
    if names:
        return (f"set {' or '.join(names)} (litellm's variable for this provider), or name your own "
                "with api_key_env:")
    if api_base:
        return f"{api_base} refused the request without a key: name the variable with api_key_env:"
    return "the provider's key from the environment was rejected: check it, or name it with api_key_env:"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _usage(usage: Any) -> tuple[int | None, int | None, int | None]:
    if usage is None:
        return None, None, None
    details = _get(usage, "prompt_tokens_details")
    cached = _get(details, "cached_tokens")
    if cached is None:
        cached = _get(usage, "cache_read_input_tokens")
    return _get(usage, "prompt_tokens"), _get(usage, "completion_tokens"), cached


def _tool_calls(raw: Any) -> list[dict]:
    out = []
    for tc in raw or []:
        fn = _get(tc, "function")
        out.append({"id": _get(tc, "id"), "name": _get(fn, "name") or "",
                    "arguments": _get(fn, "arguments") or ""})
    return out


def _call_kwargs(request: dict, timeout: float) -> tuple[dict, str | None]:
    key = _api_key(request.get("api_key_env"))
    kw: dict[str, Any] = dict(request.get("params") or {})
    kw.pop("model", None)
    kw.update(model=request["model"], messages=request["messages"], timeout=timeout, max_retries=0)
    if request.get("tools"):
        kw["tools"] = request["tools"]
    if request.get("api_base"):
        kw["api_base"] = request["api_base"]
    if key:
        kw["api_key"] = key
    elif request.get("api_base"):
        # a local OpenAI-compatible server needs no key, but the OpenAI client insists on one
        kw["api_key"] = "sk-none"
    return kw, key


async def chat(request: dict, *, timeout: float, stream: bool = False) -> dict:
    """Send one chat completion; return the normalised response (see module docstring). An
    OpenAI-compatible endpoint named with an ``api_base`` goes the direct path (openai_http.py)
    unless the request says ``transport: litellm``."""
    if request.get("api_base") and request.get("transport") != "litellm":
        from .transport import transport_for

        if transport_for(request) == "direct":
            from .openai_http import chat as direct_chat

            return await direct_chat(request, timeout=timeout, stream=stream)
    litellm = litellm_module()
    kw, key = _call_kwargs(request, timeout)
    if stream:
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
    start = time.perf_counter()
    try:
        # our own deadline over the whole response too: litellm's timeout does not bound a stream
        if stream:
            result = await asyncio.wait_for(_streamed(litellm, kw, start), timeout)
        else:
            result = _from_response(await asyncio.wait_for(litellm.acompletion(**kw), timeout))
    except LLMError:
        raise
    except Exception as exc:  # every provider failure is classified, never propagated raw
        raise classify(exc, key) from None
    result["latency_ms"] = (time.perf_counter() - start) * 1000.0
    return result


def _from_response(resp: Any) -> dict:
    choice = resp.choices[0] if resp.choices else None
    msg = _get(choice, "message")
    inp, out, cached = _usage(_get(resp, "usage"))
    source = "reported"
    if not inp and not out:
        # litellm fills a response without usage with zeros; a real call never has 0 input tokens
        inp = out = cached = source = None
    return {"output": _get(msg, "content"), "tool_calls": _tool_calls(_get(msg, "tool_calls")),
            "finish_reason": _get(choice, "finish_reason"), "input_tokens": inp, "output_tokens": out,
            "cached_tokens": cached, "usage_source": source, "ttft_ms": None, "model": _get(resp, "model")}


def _stream_usage_source(stream: Any, usage: Any) -> str | None:
    """Whether a stream's usage came from the provider. litellm yields a usage chunk at the end
    either way: the provider's, or one it counted itself when the provider sent none. The
    provider's own usage chunks are the ones kept in the stream wrapper's ``chunks``."""
    if usage is None:
        return None
    chunks = getattr(stream, "chunks", None)
    if chunks is None:
        return "estimated"  # cannot tell: never claim a provider's count we did not see
    return "reported" if any(_get(c, "usage") is not None for c in chunks) else "estimated"


async def _streamed(litellm, kw: dict, start: float) -> dict:
    resp = await litellm.acompletion(**kw)
    parts: list[str] = []
    calls: dict[int, dict] = {}
    ttft = None
    finish = model = usage = None
    async for chunk in resp:
        model = _get(chunk, "model") or model
        usage = _get(chunk, "usage") or usage
        for choice in _get(chunk, "choices") or []:
            delta = _get(choice, "delta")
            text = _get(delta, "content")
            deltas = _get(delta, "tool_calls") or []
            if ttft is None and (text or deltas):
                ttft = (time.perf_counter() - start) * 1000.0
            if text:
                parts.append(text)
            for i, tc in enumerate(deltas):
                idx = _get(tc, "index", i) or 0
                slot = calls.setdefault(idx, {"id": None, "name": "", "arguments": ""})
                fn = _get(tc, "function")
                slot["id"] = _get(tc, "id") or slot["id"]
                slot["name"] += _get(fn, "name") or ""
                slot["arguments"] += _get(fn, "arguments") or ""
            finish = _get(choice, "finish_reason") or finish
    inp, out, cached = _usage(usage)
    return {"output": "".join(parts) if parts or not calls else None,
            "tool_calls": [calls[i] for i in sorted(calls)], "finish_reason": finish,
            "input_tokens": inp, "output_tokens": out, "cached_tokens": cached,
            "usage_source": _stream_usage_source(resp, usage), "ttft_ms": ttft, "model": model}


async def embed(model: str, texts: list[str], *, api_base: str | None = None,
                api_key: str | None = None, timeout: float = 30.0,
                api_key_env: str | None = None) -> list[list[float]]:
    """Embedding vectors for ``texts`` (same order). ``api_key`` or ``api_key_env`` (a name)."""
    litellm = litellm_module()
    key = api_key or _api_key(api_key_env)
    kw: dict[str, Any] = {"model": model, "input": list(texts), "timeout": timeout, "max_retries": 0}
    if api_base:
        kw["api_base"] = api_base
    if key:
        kw["api_key"] = key
    elif api_base:
        kw["api_key"] = "sk-none"
    try:
        resp = await asyncio.wait_for(litellm.aembedding(**kw), timeout)
    except Exception as exc:
        raise classify(exc, key) from None
    data = sorted(resp.data, key=lambda d: _get(d, "index", 0))
    return [list(_get(d, "embedding")) for d in data]
