"""Model calls for judges and embeddings: through ``replay.llm`` (litellm's real HTTP path), cached
in the ``ResponseCache`` under keys of their own, with usage kept apart from the candidate's.

A judge reply is parsed as JSON robustly (code fences and surrounding prose are tolerated); a
reply that echoes the prompt's placeholder (``"<one or two sentences>"``) is not a verdict. A reply
that cannot be used is answered once with a correction turn, and a second failure is a scorer
error. The final outcome is cached either way, malformed included (a rerun does not pay again
for the same failure; ``--refresh`` asks again).

Structured output (``structured_output``, per judge): ``auto`` (default) sends the verdict's JSON
Schema as OpenAI's ``response_format: {type: json_schema}`` (OpenAI, vLLM, Ollama and llama.cpp's
own server constrain decoding to it); a provider that rejects that form is asked with
``{type: json_object, schema}`` (llama-cpp-python's server, Together, Fireworks), and one that
rejects that too with the plain prompt; each step down happens once per run and is warned about.
``json_schema`` and ``json_object`` send only that form (a rejection is the sample's error);
``off`` sends none. The configured form is part of the request, so of the cache key.
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
STRUCTURED_MODES = ("auto", "json_schema", "json_object", "off")
# ... and those of the scorers that ask a model for a JSON verdict (judge, pairwise)
# (YAML reads a bare `off` as false: accepted as "off")
# transport: auto | litellm | direct, as for a variant (replay/transport.py); not for embeddings,
# which always go through litellm
JUDGE_PARAMS: dict[str, dict] = {**MODEL_PARAMS, "structured_output": {"enum": [*STRUCTURED_MODES, False]},
                                 "transport": {"enum": ["auto", "litellm", "direct"]}}
# a whole string value that is an angle-bracketed hint: the prompt's shape line copied back
_PLACEHOLDER = re.compile(r"^\s*<[^<>]{1,80}>\s*$")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
CORRECTION = ("Your previous reply could not be used ({problem}). Reply again with only the JSON "
              "object in the shape asked for, and no other text.")


class MalformedReply(ValueError):
    """The judge's reply is not JSON of the asked shape."""


def placeholder_echo(value: Any) -> str | None:
    """The first string in a parsed reply that is one of the prompt's placeholders (``"<one or
    two sentences>"``): a small model that copies the shape line back has given no verdict, even
    when the copy carries a number (``"score": 0``)."""
    if isinstance(value, str):
        return value if _PLACEHOLDER.match(value) else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for v in items:
        found = placeholder_echo(v)
        if found is not None:
            return found
    return None


def parse_reply(text: str | None, parse: Callable[[dict], T]) -> T:
    """JSON object -> no placeholder echo -> the scorer's own parser. Raises MalformedReply."""
    reply = extract_json(text)
    echo = placeholder_echo(reply)
    if echo is not None:
        raise MalformedReply(f"the reply repeats the prompt's placeholder {clip(echo, 40)!r} instead of a verdict")
    return parse(reply)


# the forms each mode tries, in order, when the provider rejects one (None: the plain prompt)
LADDERS: dict[str, tuple[str | None, ...]] = {"auto": ("json_schema", "json_object", None),
                                              "json_schema": ("json_schema",),
                                              "json_object": ("json_object",), "off": (None,)}


def response_format(form: str | None, schema: dict | None) -> dict | None:
    """The ``response_format`` of one form for a verdict schema: OpenAI's ``json_schema``, or
    ``json_object`` with the schema beside it (llama-cpp-python's server reads ``schema`` there)."""
    if form is None or schema is None:
        return None
    if form == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": schema.get("title", "verdict"),
                                                   "schema": schema, "strict": True}}


def _rejection(err) -> bool:
    """A provider error that can mean "this request parameter is not supported": a 4xx, or any
    error naming response_format (llama-cpp-python's server answers its own validation error,
    "response_format.type: Input should be 'text' or 'json_object'", with HTTP 500)."""
    if err is None or err.auth:
        return False
    return "response_format" in err.message or (not err.retryable and err.status in (400, 404, 415, 422, None))


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
    structured: str = "auto"  # one of STRUCTURED_MODES
    transport: str = "auto"  # replay/transport.py
    # position in LADDERS[structured]: moves on when the provider rejects a form
    structured_step: int = 0

    @classmethod
    def from_spec(cls, spec: dict) -> "ModelClient":
        return cls(model=spec["model"], api_base=spec.get("api_base"), api_key_env=spec.get("api_key_env"),
                   # a judge should be repeatable: temperature 0 unless the config says otherwise
                   params={"temperature": 0, **spec.get("params", {})}, price=spec.get("price"),
                   timeout=float(spec.get("timeout", 60.0)), retries=int(spec.get("retries", 2)),
                   structured=spec.get("structured_output", "auto") or "off",
                   transport=spec.get("transport", "auto"))

    def request(self, messages: list[dict], schema: dict | None = None, step: int = 0) -> dict:
        """The request with the response format of ``schema`` in the ladder's form ``step``;
        step 0, the configured form, is what the cache key is made of."""
        params = self.params
        fmt = response_format(LADDERS[self.structured][step], schema)
        if fmt is not None and "response_format" not in params:
            params = {**params, "response_format": fmt}
        req = {"model": self.model, "messages": messages, "params": params}
        if self.api_base:
            req["api_base"] = self.api_base
        if self.api_key_env:
            req["api_key_env"] = self.api_key_env
        if self.transport != "auto":
            req["transport"] = self.transport  # not part of the cache key
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
        costs seconds, not retries x samples. The ScorerFailure carries the provider error as
        ``.llm_error`` (a rejected response_format is told apart by it)."""
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
                # an error naming response_format is about the request, not a passing fault
                too_long = exc.retry_after is not None and exc.retry_after > ctx.max_retry_wait
                if not exc.retryable or attempt == self.retries or "response_format" in exc.message \
                        or too_long:
                    message = f"judge model call failed ({self.model}): {exc}"
                    if too_long:  # never wait longer than the cap: the attempt is an error
                        message = (f"Retry-After {exc.retry_after:g} s is beyond the {ctx.max_retry_wait:g} s "
                                   f"cap on waits (max_retry_wait): {message}")
                    if exc.auth:
                        message += f" (credentials: {self.credentials_hint()})"
                        ctx.broken.setdefault(self.endpoint, (exc.type, message))
                    elif exc.type == "APIConnectionError" and self.endpoint not in ctx.answered:
                        fails = ctx.connect_failures[self.endpoint] = ctx.connect_failures.get(self.endpoint, 0) + 1
                        if fails >= UNREACHABLE_AFTER:
                            ctx.broken.setdefault(self.endpoint, (exc.type, message))
                    failure = ScorerFailure(message, exc.type)
                    failure.llm_error = exc  # type: ignore[attr-defined]
                    raise failure from None
                await asyncio.sleep(min(exc.retry_after or 0.5 * 2 ** attempt, ctx.max_retry_wait))
        raise AssertionError("unreachable")

    def credentials_hint(self) -> str:
        from replaygate.replay.llm import credentials_hint
        return credentials_hint(self.model, self.api_key_env, self.api_base)

    async def _chat(self, ctx: ScoringContext, messages: list[dict], usage: Usage,
                    schema: dict | None = None) -> dict:
        from replaygate.replay import llm
        ladder = LADDERS[self.structured]
        start = self.structured_step
        while True:
            sent: list[int] = []

            def call():
                # the form is chosen when the call goes out (after the concurrency limit): a
                # rejection seen by an earlier call spares the calls that were waiting
                step = self.structured_step
                sent.append(step)
                return llm.chat(self.request(messages, schema, step), timeout=self.timeout)

            try:
                resp = await self._with_retries(ctx, call)
                break
            except ScorerFailure as exc:
                step = sent[-1] if sent else self.structured_step
                form = ladder[step] if schema is not None else None
                if form is None or step + 1 >= len(ladder) or not _rejection(getattr(exc, "llm_error", None)):
                    if ladder[self.structured_step] is None and form is None and step > start:
                        self.structured_step = start  # the plain prompt failed too: not the format's fault
                    raise
                if self.structured_step == step:  # one step down per rejection, not one per caller
                    self.structured_step = step + 1
                    nxt = ladder[step + 1]
                    note = (f"judge model {self.model!r} rejected structured output as {form} ({exc}); "
                            + (f"asking with {nxt} instead" if nxt else
                               "asking for JSON in the prompt only (structured_output: off skips the attempt)"))
                    if note not in ctx.warnings:
                        ctx.warnings.append(note)
        usage.add_call(resp, self.price)
        return resp

    async def ask_json(self, ctx: ScoringContext, prompt: Prompt, messages: list[dict], repeat: int,
                       parse: Callable[[dict], T], usage: Usage, schema: dict | None = None) -> T:
        """A parsed verdict for ``messages`` (rendered from ``prompt``; ``schema``: the verdict's
        JSON Schema, for structured output): from the cache when there, else from the model, with
        one correction turn on a malformed reply. The final outcome is cached, malformed included."""
        from replaygate.replay.cache import request_key
        key = _key("judge", {"prompt": prompt.id, "request": request_key(self.request(messages, schema), repeat)})
        if ctx.cache is not None and not ctx.refresh:
            hit = ctx.cache.get(key)
            if hit is not None and hit.get("malformed"):
                usage.cache_hits += 1
                raise ScorerFailure(f"judge reply malformed twice ({hit['malformed']}; cached: "
                                    f"--refresh asks again)", details={"judge": usage.as_dict()})
            if hit is not None:
                try:
                    verdict = parse_reply(hit.get("output"), parse)
                    usage.cache_hits += 1
                    return verdict
                except MalformedReply:
                    pass  # a parser change made an old entry unusable: ask again
        if ctx.offline:
            raise ScorerFailure(f"judge reply for {prompt.id} not in the cache (offline)", "CacheMiss")
        resp = await self._chat(ctx, messages, usage, schema)
        try:
            verdict = parse_reply(resp.get("output"), parse)
        except MalformedReply as first:
            usage.retried_malformed += 1
            retry = messages + [{"role": "assistant", "content": resp.get("output") or ""},
                                {"role": "user", "content": CORRECTION.format(problem=first)}]
            resp = await self._chat(ctx, retry, usage, schema)
            try:
                verdict = parse_reply(resp.get("output"), parse)
            except MalformedReply as second:
                problem = f"{first}; then {second}"
                if ctx.cache is not None:  # the same request fails the same way: do not pay again
                    ctx.cache.put(key, {"output": resp.get("output"), "malformed": problem,
                                        "model": resp.get("model")})
                raise ScorerFailure(f"judge reply malformed twice ({problem})",
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
