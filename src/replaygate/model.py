"""Core objects passed between stages (leaf module: imports nothing from replaygate).

Case -> (replay) -> Sample -> (scoring) -> CaseResult / Run -> (compare) -> comparison dict.
Every object round-trips through plain dicts (``to_dict`` / ``from_dict``) so the run JSON
is the contract between stages.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1

# The request parameters a case (a golden row, a recorded call, a cases.jsonl line) may carry into
# a replayed call. Cases are data, not configuration: any other litellm keyword (``api_base``,
# ``base_url``, ``api_key``, ``extra_headers``, ``mock_response``, ...) would let a dataset send the
# API key elsewhere or fake the answer. Loaders reject the rest; the variant filters again.
CASE_PARAMS = frozenset({
    "model", "temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty", "max_tokens",
    "max_completion_tokens", "seed", "n", "stop", "response_format", "reasoning_effort", "stream",
    "logprobs", "top_logprobs", "logit_bias", "tool_choice", "parallel_tool_calls",
})


def _pick(cls, d: dict) -> dict:
    names = _FIELD_NAMES.get(cls)
    if names is None:  # fields() is slow, and runs files read back every case through here
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return {k: v for k, v in d.items() if k in names}


_FIELD_NAMES: dict[type, frozenset[str]] = {}


@dataclass
class ToolCall:
    name: str
    arguments: str = "{}"  # JSON text exactly as the model produced it
    id: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "ToolCall":
        return cls(**_pick(cls, d))


@dataclass
class Message:
    role: str  # system | user | assistant | tool
    content: str | list[dict] | None = None  # text, or OpenAI-style content parts
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "Message":
        d = _pick(cls, d)
        d["tool_calls"] = [ToolCall.from_dict(t) for t in d.get("tool_calls") or []]
        return cls(**d)

    def to_openai(self) -> dict:
        """The chat-completions wire form of this message."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": t.id or f"call_{i}", "type": "function",
                 "function": {"name": t.name, "arguments": t.arguments}}
                for i, t in enumerate(self.tool_calls)
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass
class ErrorInfo:
    type: str  # e.g. RateLimitError, Timeout, ScorerError, CacheMiss
    message: str

    @classmethod
    def from_dict(cls, d: dict | None) -> "ErrorInfo | None":
        return None if d is None else cls(**_pick(cls, d))


@dataclass
class Recorded:
    """What the trace says the production call returned (the `recorded` baseline)."""
    output: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    error: ErrorInfo | None = None

    @classmethod
    def from_dict(cls, d: dict | None) -> "Recorded | None":
        if d is None:
            return None
        d = _pick(cls, d)
        d["tool_calls"] = [ToolCall.from_dict(t) for t in d.get("tool_calls") or []]
        d["error"] = ErrorInfo.from_dict(d.get("error"))
        return cls(**d)


@dataclass
class Case:
    """One replayable unit: a golden row or one recorded LLM call."""
    id: str
    messages: list[Message] = field(default_factory=list)
    tools: list[dict] = field(default_factory=list)  # OpenAI-style tool definitions
    params: dict[str, Any] = field(default_factory=dict)  # model, temperature, max_tokens, ...
    vars: dict[str, Any] = field(default_factory=dict)
    reference: Any = None  # the expected answer (golden `expected`)
    context: list[str] = field(default_factory=list)  # retrieved documents
    recorded: Recorded | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # source file, trace id, service, attrs

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        d = _pick(cls, d)
        d["messages"] = [Message.from_dict(m) for m in d.get("messages") or []]
        d["recorded"] = Recorded.from_dict(d.get("recorded"))
        return cls(**d)

    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                return content_text(m.content)
        return ""


def content_text(content: str | list[dict] | None) -> str:
    """Plain text of a message content (text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


@dataclass
class Score:
    score: float | None  # in [0, 1]; None when the scorer errored
    passed: bool | None
    reason: str = ""
    error: ErrorInfo | None = None
    # scorer-specific extras: unsupported claims, per-judgment values, judge usage (calls, tokens,
    # cost, latency: reported apart from the candidate's own)
    details: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "Score":
        d = _pick(cls, d)
        d["error"] = ErrorInfo.from_dict(d.get("error"))
        return cls(**d)


@dataclass
class Sample:
    """One output of one variant for one case (one per repeat)."""
    repeat: int = 0
    output: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None  # None = price unknown, never a silent 0
    # where the token counts come from: "reported" by the provider, "estimated" (litellm counted
    # them: the provider sent none), None = no counts or not known (older files)
    usage_source: str | None = None
    cached: bool = False  # served from the response cache (kept for compatibility: see provenance)
    # where the output and its timing came from: live (called in this run), cache (recorded
    # earlier, at cached_at), recorded (production, from a trace), batch (provider batch API)
    provenance: str = "live"
    cached_at: str | None = None  # ISO-8601 UTC of when a cached response was recorded
    error: ErrorInfo | None = None
    scores: dict[str, Score] = field(default_factory=dict)
    context: list[str] | None = None  # documents a `callable` variant retrieved (for groundedness)
    attempts: int | None = None  # requests sent for a live model call, retries included

    @classmethod
    def from_dict(cls, d: dict, recorded: bool = False) -> "Sample":
        """``recorded``: the sample belongs to a recorded variant (production's answers), for run
        files written before samples carried ``provenance``."""
        d = _pick(cls, d)
        d["tool_calls"] = [ToolCall.from_dict(t) for t in d.get("tool_calls") or []]
        d["error"] = ErrorInfo.from_dict(d.get("error"))
        d["scores"] = {k: Score.from_dict(v) for k, v in (d.get("scores") or {}).items()}
        if not d.get("provenance"):  # a run file from before provenance: only `cached` was kept
            d["provenance"] = "recorded" if recorded else "cache" if d.get("cached") else "live"
        return cls(**d)


@dataclass
class CaseResult:
    id: str
    source: dict[str, Any] = field(default_factory=dict)  # where the case came from (file, row/trace)
    input: str = ""  # the last user message, for reports
    expected: Any = None
    samples: list[Sample] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict, recorded: bool = False) -> "CaseResult":
        d = _pick(cls, d)
        d["samples"] = [Sample.from_dict(s, recorded) for s in d.get("samples") or []]
        return cls(**d)


@dataclass
class ScorerInfo:
    name: str
    type: str
    informational: bool = False
    threshold: float | None = None
    weight: float = 1.0

    @classmethod
    def from_dict(cls, d: dict) -> "ScorerInfo":
        return cls(**_pick(cls, d))


@dataclass
class Run:
    variant: dict[str, Any]  # name + the variant's config (never a key)
    environment: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    cases: list[CaseResult] = field(default_factory=list)
    scorers: list[ScorerInfo] = field(default_factory=list)
    # why complete is false: the replay stopped, or a scorer could not score (each one sentence)
    incomplete_reasons: list[str] = field(default_factory=list)
    # share of the samples from each provenance (live, cache, recorded, batch) and n
    provenance: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # judge / embedding calls made by scorers, per scorer: reported apart from the variant's own
    # cost and latency
    judge_usage: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        # schema_version first, for people reading the file
        return {"schema_version": d.pop("schema_version"), **d}

    @classmethod
    def from_dict(cls, d: dict) -> "Run":
        d = _pick(cls, d)
        recorded = bool((d.get("variant") or {}).get("recorded"))
        d["cases"] = [CaseResult.from_dict(c, recorded) for c in d.get("cases") or []]
        d["scorers"] = [ScorerInfo.from_dict(s) for s in d.get("scorers") or []]
        return cls(**d)
