"""Model calls for judges and embeddings: through ``replay.llm`` (litellm's real HTTP path), cached
in the ``ResponseCache`` under keys of their own, with usage kept apart from the candidate's.

A judge reply is parsed as JSON robustly (code fences and surrounding prose are tolerated); a
reply that still cannot be used is answered once with a correction turn, and a second failure is
a scorer error. Only replies that parsed are cached, so a rerun never replays a bad verdict.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from replaygate.scoring.base import ScorerFailure, ScoringContext
from replaygate.scoring.judgeprompts import Prompt
from replaygate.scoring.textutil import clip

T = TypeVar("T")
UNREACHABLE_AFTER = 3  # connection failures, with no answer yet, after which an endpoint is dead

# Config keys shared by everything that calls a model (judge, pairwise, embedding_similarity).
MODEL_PARAMS: dict[str, dict] = {
    "model": {"type": "string", "minLength": 1},
    "api_base": {"type": "string"},
    "api_key_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    "params": {"type": "object"},
    "price": {"type": "object", "additionalProperties": False, "required": ["input", "output"],
              "properties": {"input": {"type": "number", "minimum": 0},
                             "output": {"type": "number", "minimum": 0},
                             "cached_input": {"type": "number", "minimum": 0}}},
    "timeout": {"type": "number", "exclusiveMinimum": 0},
    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
}
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
CORRECTION = ("Your previous reply could not be used ({problem}). Reply again with only the JSON "
              "object in the shape asked for, and no other text.")


class MalformedReply(ValueError):
    """The judge's reply is not JSON of the asked shape."""


def extract_json(text: str | None) -> dict:
    """The first JSON object in ``text``: the whole text, a fenced block, or an object embedded in
    prose. Raises MalformedReply."""
    if not text or not text.strip():
        raise MalformedReply("empty reply")
    candidates = [text.strip()] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for c in candidates:
        try:
            value = json.loads(c)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise MalformedReply(f"no JSON object in the reply: {clip(text, 60)!r}")


@dataclass
class Usage:
    """Judge / embedding usage for one score: fresh calls' tokens, cost, latency; cache hits."""
    model: str
    calls: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_ms: float = 0.0
    retried_malformed: int = 0

    def add_call(self, resp: dict, price: dict | None) -> None:
        from replaygate.replay.pricing import cost_usd
        self.calls += 1
        self.input_tokens += resp.get("input_tokens") or 0
        self.output_tokens += resp.get("output_tokens") or 0
        self.latency_ms += resp.get("latency_ms") or 0.0
        cost = cost_usd(self.model, resp.get("input_tokens"), resp.get("output_tokens"),
                        resp.get("cached_tokens"), price)
        # unknown price: None for the whole score, never a silent 0
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost

    def as_dict(self) -> dict:
        return {"model": self.model, "calls": self.calls, "cache_hits": self.cache_hits,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": self.cost_usd if self.calls else 0.0, "latency_ms": round(self.latency_ms, 3),
                "retried_malformed": self.retried_malformed}


def _key(kind: str, ident: dict) -> str:
    from replaygate.replay.cache import canonical_json
    return hashlib.sha256(canonical_json({"kind": kind, **ident}).encode("utf-8")).hexdigest()


@dataclass
class ModelClient:
    """One configured judge / embedding model (from a scorer spec's model keys)."""
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = field(default_factory=lambda: {"temperature": 0})
    price: dict | None = None
    timeout: float = 60.0
    retries: int = 2

    @classmethod
    def from_spec(cls, spec: dict) -> "ModelClient":
        return cls(model=spec["model"], api_base=spec.get("api_base"), api_key_env=spec.get("api_key_env"),
                   # a judge should be repeatable: temperature 0 unless the config says otherwise
                   params={"temperature": 0, **spec.get("params", {})}, price=spec.get("price"),
                   timeout=float(spec.get("timeout", 60.0)), retries=int(spec.get("retries", 2)))

    def request(self, messages: list[dict]) -> dict:
        req = {"model": self.model, "messages": messages, "params": self.params}
        if self.api_base:
            req["api_base"] = self.api_base
        if self.api_key_env:
            req["api_key_env"] = self.api_key_env
        return req

    @property
    def endpoint(self) -> tuple:
        return (self.model, self.api_base, self.api_key_env)

    async def _with_retries(self, ctx: ScoringContext, call: Callable[[], Any]) -> Any:
        """Retry retryable provider errors (429, 5xx, timeouts) with backoff; others fail now.
        A failure is a ScorerFailure typed by the provider error (AuthenticationError,
        APIConnectionError, ...), so the run can tell a scorer that cannot score at all from one
        that missed a few samples. Once the endpoint refused our credentials, or never answered
        a few connections in a row, later samples fail at once (``ctx.broken``): a dead judge
        costs seconds, not retries x samples."""
        from replaygate.replay.llm import LLMError
        for attempt in range(self.retries + 1):
            try:
                async with ctx.semaphore:
                    broken = ctx.broken.get(self.endpoint)  # checked after the wait: calls queue
                    if broken is not None:
                        raise ScorerFailure(broken[1], broken[0])
                    result = await call()
                ctx.answered.add(self.endpoint)
                return result
            except LLMError as exc:
                if not exc.retryable or attempt == self.retries:
                    message = f"judge model call failed ({self.model}): {exc}"
                    if exc.auth:
                        message += f" (credentials: {self.credentials_hint()})"
                        ctx.broken.setdefault(self.endpoint, (exc.type, message))
                    elif exc.type == "APIConnectionError" and self.endpoint not in ctx.answered:
                        fails = ctx.connect_failures[self.endpoint] = ctx.connect_failures.get(self.endpoint, 0) + 1
                        if fails >= UNREACHABLE_AFTER:
                            ctx.broken.setdefault(self.endpoint, (exc.type, message))
                    raise ScorerFailure(message, exc.type) from None
                await asyncio.sleep(min(exc.retry_after or 0.5 * 2 ** attempt, 10.0))
        raise AssertionError("unreachable")

    def credentials_hint(self) -> str:
        from replaygate.replay.llm import credentials_hint
        return credentials_hint(self.model, self.api_key_env, self.api_base)

    async def _chat(self, ctx: ScoringContext, messages: list[dict], usage: Usage) -> dict:
        from replaygate.replay import llm
        resp = await self._with_retries(ctx, lambda: llm.chat(self.request(messages), timeout=self.timeout))
        usage.add_call(resp, self.price)
        return resp

    async def ask_json(self, ctx: ScoringContext, prompt: Prompt, messages: list[dict], repeat: int,
                       parse: Callable[[dict], T], usage: Usage) -> T:
        """A parsed verdict for ``messages`` (rendered from ``prompt``): from the cache when there,
        else from the model, with one correction turn on a malformed reply."""
        from replaygate.replay.cache import request_key
        key = _key("judge", {"prompt": prompt.id, "request": request_key(self.request(messages), repeat)})
        if ctx.cache is not None and not ctx.refresh:
            hit = ctx.cache.get(key)
            if hit is not None:
                try:
                    verdict = parse(extract_json(hit.get("output")))
                    usage.cache_hits += 1
                    return verdict
                except MalformedReply:
                    pass  # a parser change made an old entry unusable: ask again
        if ctx.offline:
            raise ScorerFailure(f"judge reply for {prompt.id} not in the cache (offline)", "CacheMiss")
        resp = await self._chat(ctx, messages, usage)
        try:
            verdict = parse(extract_json(resp.get("output")))
        except MalformedReply as first:
            usage.retried_malformed += 1
            retry = messages + [{"role": "assistant", "content": resp.get("output") or ""},
                                {"role": "user", "content": CORRECTION.format(problem=first)}]
            resp = await self._chat(ctx, retry, usage)
            try:
                verdict = parse(extract_json(resp.get("output")))
            except MalformedReply as second:
                raise ScorerFailure(f"judge reply malformed twice ({first}; then {second})",
                                    details={"judge": usage.as_dict()}) from None
        if ctx.cache is not None:
            ctx.cache.put(key, {k: resp.get(k) for k in ("output", "input_tokens", "output_tokens",
                                                           "model")})
        return verdict

    async def embed(self, ctx: ScoringContext, texts: list[str], usage: Usage) -> list[list[float]]:
        """Embedding vectors, each text cached on its own (model, api_base, text)."""
        from replaygate.replay import llm
        keys = [_key("embedding", {"model": self.model, "api_base": self.api_base, "text": t}) for t in texts]
        out: list[list[float] | None] = [None] * len(texts)
        for i, k in enumerate(keys):
            hit = ctx.cache.get(k) if ctx.cache is not None and not ctx.refresh else None
            if hit is not None:
                out[i] = hit["embedding"]
                usage.cache_hits += 1
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:
            if ctx.offline:
                raise ScorerFailure("embedding not in the cache (offline)", "CacheMiss")
            start = time.perf_counter()
            vectors = await self._with_retries(ctx, lambda: llm.embed(
                self.model, [texts[i] for i in missing], api_base=self.api_base,
                api_key_env=self.api_key_env, timeout=self.timeout))
            usage.calls += 1
            usage.latency_ms += (time.perf_counter() - start) * 1000.0
            usage.cost_usd = None  # llm.embed reports no token usage: price unknown, not 0
            for i, vec in zip(missing, vectors):
                out[i] = vec
                if ctx.cache is not None:
                    ctx.cache.put(keys[i], {"embedding": vec})
        return out  # type: ignore[return-value]
