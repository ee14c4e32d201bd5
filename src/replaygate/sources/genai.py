"""One recorded span (+ its GenAI events) -> one replayable Case, for every convention in use.

The content (messages and output) of each convention family is found by its module in
``sources/conventions/`` (the registry there lists them in priority order); the label it gives
is recorded in ``Case.metadata["convention"]``: ``otel-genai-1.37``, ``otel-genai-events``,
``otel-genai-1.26``, ``openllmetry``, ``openinference`` / ``openinference-raw``, ``vercel-ai``,
``langfuse``, ``mlflow``, ``google-adk``. This module classifies spans and builds the case:
parameters, usage, tools, filterable attributes.

Only inference spans become cases; the rest (retrieval, tools, agents) are classified so the
importer can use them as context or count them.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from replaygate.model import Case, ErrorInfo, Recorded
from replaygate.sources import conventions
from replaygate.sources import refs as content_refs
from replaygate.sources.conventions import langfuse, openlit, vercel
from replaygate.sources.conventions.adk import ADK_REQUEST, ADK_RESPONSE, ADK_TOOL_ARGS, GEMINI_PARAMS
from replaygate.sources.conventions.base import (  # noqa: F401  (re-exported: the importer's names)
    AGENT, CHOICE_EVENT, COMPLETION_EVENT_126, DETAILS_EVENT, EMBEDDINGS, EVALUATION_EVENT,
    GENAI_EVENT_NAMES, INFERENCE, LEGACY_MESSAGE_EVENTS, OTHER, PROMPT_EVENT_126, RETRIEVAL, TOOL,
    UNSUPPORTED, Content, Output)
from replaygate.sources.conventions.events import PYDANTIC_AI_EVENTS, attribute_events
from replaygate.sources.conventions.langfuse import LANGFUSE_KINDS
from replaygate.sources.conventions.mlflow import MLFLOW_KINDS
from replaygate.sources.conventions.openinference import OPENINFERENCE_OP
from replaygate.sources.conventions.shapes import (  # noqa: F401  (re-exported)
    first_set, maybe_json, messages_from, normalize_finish_reason, openai_message, otel_message,
    rebuild_indexed, to_list, to_num, to_text, tool_def)
from replaygate.sources.conventions.vercel import VERCEL_OP
from replaygate.sources.otlp import Event, SpanRecord


_OP_CATEGORY = {
    "chat": INFERENCE, "text_completion": INFERENCE, "generate_content": INFERENCE,
    "completion": INFERENCE, "generate": INFERENCE, "llm_call": INFERENCE,
    "responses": INFERENCE, "response": INFERENCE,
    "embeddings": EMBEDDINGS, "embedding": EMBEDDINGS,
    "retrieval": RETRIEVAL, "retriever": RETRIEVAL, "reranker": RETRIEVAL,
    "execute_tool": TOOL, "tool": TOOL,
    "invoke_agent": AGENT, "create_agent": AGENT, "invoke_workflow": AGENT, "plan": AGENT,
    "agent": AGENT, "chain": AGENT, "workflow": AGENT, "task": AGENT, "run_agent": AGENT,
    "guardrail": AGENT, "evaluator": AGENT, "prompt": AGENT,
    "agent_step": AGENT,  # Vercel AI SDK 7: one step of generateText's loop, around its chat span
}
# Operation names that are another emitter's name for a known one. LiteLLM's own OTel callback
# writes its call type (async and vendor-API variants); Semantic Kernel writes its activity names.
_OPERATION_ALIASES = {"acompletion": "chat", "atext_completion": "text_completion",
                      "aresponses": "responses", "anthropic_messages": "chat",
                      "agenerate_content": "generate_content",
                      "generate_content_stream": "generate_content",
                      "agenerate_content_stream": "generate_content", "aembedding": "embeddings",
                      "chat.completions": "chat", "chat.streaming_completions": "chat",
                      "text.completions": "text_completion",
                      "text.streaming_completions": "text_completion"}
_VENDOR_KINDS = (("langfuse.observation.type", LANGFUSE_KINDS), ("mlflow.spanType", MLFLOW_KINDS))
_MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name",
               "llm.request.model_name")

# Every key classify() reads starts with one of these (and every event name it reads with
# "gen_ai."): a span without any such key or event name is OTHER whatever else it holds, so
# the import counts such spans without decoding them (tested against classify).
SPAN_KEY_PREFIXES = ("gen_ai.", "llm.", "openinference.span.kind", "traceloop.span.kind",
                     "langfuse.observation.type", "mlflow.spanType", "ai.operationId",
                     "gcp.vertex.agent.")


def classify(span: SpanRecord) -> tuple[str, str | None]:
    """(category, operation) from attributes, never from the span name (§4.6)."""
    a = span.attributes
    kind = a.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        op = OPENINFERENCE_OP.get(kind.upper(), kind.lower())
        return _OP_CATEGORY.get(op, UNSUPPORTED), op
    for key in ("gen_ai.operation.name", "llm.request.type", "traceloop.span.kind"):
        op = a.get(key)
        if isinstance(op, str) and op:
            op = op.lower()
            op = _OPERATION_ALIASES.get(op, op)
            return _OP_CATEGORY.get(op, UNSUPPORTED), op
    for key, table in _VENDOR_KINDS:  # Langfuse SDK, MLflow (values may be JSON-encoded)
        kind = a.get(key)
        if isinstance(kind, str) and kind:
            kind = kind.strip('"').lower()
            return table.get(kind, (UNSUPPORTED, kind))
    vercel = a.get("ai.operationId")
    if isinstance(vercel, str) and vercel:
        return VERCEL_OP.get(vercel, (UNSUPPORTED, vercel))
    if ADK_REQUEST in a:  # Google ADK's call_llm span
        return INFERENCE, "generate_content"
    if ADK_TOOL_ARGS in a:
        return TOOL, "execute_tool"
    if "gen_ai.tool.name" in a or "gen_ai.tool.call.id" in a:
        return TOOL, "execute_tool"
    if any(k in a for k in _MODEL_KEYS) or any(e.name == PROMPT_EVENT_126 for e in span.events):
        return INFERENCE, "chat"
    return OTHER, None


# ---------------------------------------------------------------------------------------------
# value helpers


_TOOL_PREFIXES = ("gen_ai.tool.definitions", "llm.request.functions.", "llm.tools.", "ai.prompt.tools")


def _tools(a: dict[str, Any]) -> list[dict]:
    if not _key_plan(a).has_tools:
        return []
    for raw in (a.get("gen_ai.tool.definitions"), rebuild_indexed(a, "gen_ai.tool.definitions"),
                rebuild_indexed(a, "llm.request.functions"), rebuild_indexed(a, "llm.tools"),
                a.get("ai.prompt.tools")):
        raw = maybe_json(raw)
        if isinstance(raw, dict):
            raw = [raw]
        if raw and isinstance(raw, list):
            return [t for t in (tool_def(x) for x in raw) if t]
    return []


def _request_tools(a: dict[str, Any]) -> list[dict]:
    """Tool definitions inside a recorded raw request (OpenInference, MLflow, Langfuse,
    Gemini/ADK)."""
    for key in ("input.value", "mlflow.spanInputs"):
        if key in a:
            raw = maybe_json(a[key])
            if isinstance(raw, dict) and isinstance(raw.get("tools"), list):
                return [t for t in (tool_def(x) for x in raw["tools"]) if t]
    found = langfuse.request_tools(a)
    if found:
        return [t for t in (tool_def(x) for x in found) if t]
    params = maybe_json(a.get("model_request_parameters"))  # Pydantic AI
    if isinstance(params, dict) and isinstance(params.get("function_tools"), list):
        return [t for t in (tool_def(x) for x in params["function_tools"]) if t]
    if ADK_REQUEST in a:
        req = maybe_json(a[ADK_REQUEST])
        config = req.get("config") if isinstance(req, dict) else None
        if isinstance(config, dict) and isinstance(config.get("tools"), list):
            decls = [d for t in config["tools"] if isinstance(t, dict)
                     for d in t.get("function_declarations") or t.get("functionDeclarations") or []]
            return [t for t in (tool_def({"type": "function", **d}) for d in decls if isinstance(d, dict)) if t]
    return []


# ---------------------------------------------------------------------------------------------
# per-convention content


def find_content(span: SpanRecord, events: list[Event]) -> Content | None:
    """Try each convention in the priority order of the alias table (§4.4)."""
    a = span.attributes
    for ev in events:  # the details event carries the v1.37 attributes off-span
        if ev.name == DETAILS_EVENT:
            a = {**a, **ev.attributes}
    if PYDANTIC_AI_EVENTS in a:
        events = events + attribute_events(a)
    best: Content | None = None
    for finder in conventions.finders():
        found = finder(a, events)  # lazily: most spans stop at the first convention
        if found is None:
            continue
        if found.messages:
            if best is not None and best.output and not found.output:
                found.output = best.output
            return found
        if best is None:
            best = found  # a convention seen without input: remember it for the label
        elif best.output is None and found.output is not None:
            best.output = found.output
    return best


# ---------------------------------------------------------------------------------------------
# params, usage, provider

def _invocation_params(a: dict[str, Any]) -> dict[str, Any]:
    p = maybe_json(a.get("llm.invocation_parameters"))
    if isinstance(p, dict):
        return p
    p = langfuse.model_params(a)
    if p is not None:
        return p
    for key in ("input.value", "mlflow.spanInputs"):  # the raw request
        raw = maybe_json(a.get(key))
        if isinstance(raw, dict):
            return {k: v for k, v in raw.items() if k not in ("messages", "tools")}
    req = maybe_json(a.get(ADK_REQUEST))
    if isinstance(req, dict):  # Gemini: the parameters are in the generation config
        config = req.get("config") if isinstance(req.get("config"), dict) else {}
        out = {k: v for k, v in config.items() if isinstance(v, (int, float, str, list)) and k in GEMINI_PARAMS}
        out = {GEMINI_PARAMS[k]: v for k, v in out.items()}
        if req.get("model"):
            out["model"] = req["model"]
        return out
    return {}




# canonical field -> source keys, first match wins (§4.4). "inv." keys come from OpenInference
# llm.invocation_parameters (or the raw request in input.value).
_PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("gen_ai.request.model", "llm.request.model_name", "inv.model", "llm.model_name",
              "ai.model.id", "langfuse.observation.model.name", "gen_ai.response.model"),
    "temperature": ("gen_ai.request.temperature", "inv.temperature", "llm.temperature"),
    "top_p": ("gen_ai.request.top_p", "inv.top_p", "llm.top_p"),
    "top_k": ("gen_ai.request.top_k", "inv.top_k", "llm.top_k"),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", "llm.frequency_penalty",
                          "inv.frequency_penalty"),
    "presence_penalty": ("gen_ai.request.presence_penalty", "llm.presence_penalty",
                         "inv.presence_penalty"),
    "max_tokens": ("gen_ai.request.max_tokens", "gen_ai.request.max_completion_tokens",
                   "inv.max_tokens", "inv.max_completion_tokens"),
    "seed": ("gen_ai.request.seed", "gen_ai.openai.request.seed", "inv.seed", "ai.settings.seed"),
    "n": ("gen_ai.request.choice.count", "gen_ai.request.n", "inv.n"),
    "stop": ("gen_ai.request.stop_sequences", "llm.chat.stop_sequences", "inv.stop"),
    "response_format": ("gen_ai.output.type", "gen_ai.openai.request.response_format",
                        "inv.response_format"),
    "reasoning_effort": ("gen_ai.request.reasoning.level", "gen_ai.request.reasoning_effort",
                         "llm.request.reasoning_effort", "inv.reasoning_effort"),
    "stream": ("gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming",
               "gen_ai.request.is_stream", "inv.stream"),
}
_USAGE_KEYS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                     "ai.usage.inputTokens", "ai.usage.promptTokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion", "ai.usage.outputTokens", "ai.usage.completionTokens"),
    "cached_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                      "llm.token_count.prompt_details.cache_read", "gen_ai.usage.cached_tokens",
                      "ai.usage.cachedInputTokens", "ai.usage.inputTokenDetails.cacheReadTokens"),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                         "llm.usage.reasoning_tokens", "llm.token_count.completion_details.reasoning"),
}


def _alias_index(table: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, int]]:
    return {key: (name, rank) for name, keys in table.items() for rank, key in enumerate(keys)}


_PARAM_ALIAS = _alias_index(_PARAM_KEYS)


def _pick_aliases(alias: dict[str, tuple[str, int]], *sources: tuple[str, dict]) -> dict[str, Any]:
    """One pass over the attributes (not one lookup per alias): the best-ranked value per field."""
    best: dict[str, tuple[int, Any]] = {}
    for prefix, d in sources:
        if not d:
            continue
        if prefix:
            hits = [(alias.get(prefix + k), v) for k, v in d.items()]
        else:  # the attributes: only the keys that are aliases (a set intersection, in C)
            hits = [(alias[k], d[k]) for k in d.keys() & alias.keys()]
        for hit, v in hits:
            if hit is None or v is None or v == "":
                continue
            name, rank = hit
            if name not in best or rank < best[name][0]:
                best[name] = (rank, v)
    return {name: v for name, (_, v) in best.items()}


def _stop_list(v: Any) -> list[str] | None:
    stop = to_list(v)
    return [str(s) for s in stop] if stop else None


def _int_if_whole(v: Any) -> Any:
    f = to_num(v)
    return int(f) if f is not None and f.is_integer() else f


def _response_format(v: Any) -> Any:
    """As the chat API takes it: gen_ai.output.type "json" (or OpenAI's "json_object") becomes
    {"type": "json_object"}; "text"/"image"/"speech" and a bare "json_schema" (its schema was not
    recorded) are left out; a recorded object (OpenInference invocation params) is kept."""
    v = maybe_json(v)
    if isinstance(v, dict):
        return v
    if str(v).lower() in ("json", "json_object"):
        return {"type": "json_object"}
    return None


def _positive(n: int | None) -> int | None:
    """A token limit of 0 or less is an emitter's "not set" (OpenLit records -1): not sent."""
    return n if n is not None and n > 0 else None


_PARAM_CONV: dict[str, Callable[[Any], Any]] = {
    "model": str, "temperature": to_num, "top_p": to_num, "top_k": _int_if_whole,
    "frequency_penalty": to_num, "presence_penalty": to_num,
    "max_tokens": lambda v: _positive(to_num(v, int)), "seed": lambda v: to_num(v, int),
    "n": lambda v: to_num(v, int),
    "stop": _stop_list, "response_format": _response_format, "reasoning_effort": str,
    "stream": lambda v: v is True or str(v).lower() == "true",
}


def _first_present(a: dict[str, Any], planned: tuple) -> dict[str, Any]:
    """Per field, the value of its best-ranked alias key that is set (``_pick_aliases`` for
    the attributes alone, with the keys to look at worked out once per key set)."""
    out = {}
    for name, keys in planned:
        for k in keys:
            v = a[k]
            if v is not None and v != "":
                out[name] = v
                break
    return out


def request_params(a: dict[str, Any]) -> dict[str, Any]:
    """The recorded request parameters, in the chat-completions form replay sends (``n`` and
    ``stream`` are kept as a record; the replay engine decides what it sends)."""
    inv = _invocation_params(a)
    raw = (_pick_aliases(_PARAM_ALIAS, ("", a), ("inv.", inv)) if inv
           else _first_present(a, _key_plan(a).params))
    params = {}
    for name in _PARAM_KEYS:  # a stable key order
        if name in raw:
            v = _PARAM_CONV[name](raw[name])
            if v is not None:
                params[name] = v
    return params


def _usage(a: dict[str, Any]) -> dict[str, int | None]:
    raw = _first_present(a, _key_plan(a).usage)
    if "input_tokens" not in raw:
        raw = {**_vendor_usage(a), **raw}
    if "cached_tokens" not in raw and vercel.PROVIDER_METADATA in a:
        cached = vercel.cached_tokens(a)
        if cached is not None:
            raw = {**raw, "cached_tokens": cached}
    return {name: to_num(raw[name], int) if name in raw else None for name in _USAGE_KEYS}


_GEMINI_USAGE = {  # Gemini's usage_metadata (Google ADK)
    "prompt_token_count": "input_tokens", "candidates_token_count": "output_tokens",
    "total_token_count": "total_tokens", "cached_content_token_count": "cached_tokens",
    "thoughts_token_count": "reasoning_tokens",
}


def _vendor_usage(a: dict[str, Any]) -> dict[str, Any]:
    found = langfuse.usage(a)
    if found is not None:
        return found
    resp = maybe_json(a.get(ADK_RESPONSE))
    usage = resp.get("usage_metadata") if isinstance(resp, dict) else None
    if not isinstance(usage, dict):
        return {}
    return {_GEMINI_USAGE[k]: v for k, v in usage.items() if k in _GEMINI_USAGE and v is not None}


def provider_of(span: SpanRecord) -> str | None:
    a = span.attributes
    if "ai.model.provider" in a:  # Vercel AI SDK (its gen_ai.system is the same "openai.chat")
        return vercel.provider(a["ai.model.provider"])
    p = first_set(a.get("gen_ai.provider.name"), a.get("gen_ai.system"), a.get("llm.provider"),
                  a.get("llm.system"))
    return str(p).lower() if p is not None else None


def prompt_vars(a: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("llm.prompt_template.variables", "traceloop.prompt.template_variables"):
        v = maybe_json(a.get(key))
        if isinstance(v, dict):
            out.update(v)
    lead = _PROMPT_VARIABLE
    for k in _key_plan(a).var_keys:
        out[k[len(lead):]] = a[k]
    return out


_CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.system.instructions", "gen_ai.tool.definitions", "gen_ai.prompt", "gen_ai.completion",
    "input.value", "output.value", "llm.invocation_parameters", "llm.prompt_template.template",
    "llm.prompt_template.variables", "traceloop.entity.input", "traceloop.entity.output",
    "ai.prompt", "ai.prompt.messages", "ai.prompt.tools", "ai.response.text", "ai.response.toolCalls",
    "ai.response.object", "ai.response.providerMetadata",
    "events", "model_request_parameters",  # Pydantic AI
    "langfuse.observation.input", "langfuse.observation.output", "langfuse.trace.input",
    "langfuse.trace.output", "mlflow.spanInputs", "mlflow.spanOutputs", ADK_REQUEST, ADK_RESPONSE,
    ADK_TOOL_ARGS, "gcp.vertex.agent.tool_response"})
_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.",
                     "llm.output_messages.", "llm.tools.", "llm.request.functions.", "llm.prompts.",
                     "llm.choices.", "gen_ai.tool.definitions.", "retrieval.documents.")


def _is_content_key(k: str) -> bool:
    if k in _CONTENT_KEYS:
        return True
    if not k.startswith(_CONTENT_PREFIXES):
        return False
    # gen_ai.prompt.name / .version / .variable.* are plain metadata, .N.* is content
    for p in ("gen_ai.prompt.", "gen_ai.completion."):
        if k.startswith(p):
            return k[len(p):len(p) + 1].isdigit()
    return True


# Credentials recorded by instrumentations (OpenLLMetry's llm.headers, captured HTTP headers)
# must not reach cases.jsonl or run files: such keys are dropped, key-like values masked.
_SECRET_KEY = re.compile(r"api[_.-]?key|authori[sz]ation|secret|passw(or)?d|cookie|headers?\b|credential",
                         re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,})")
REDACTED = "[REDACTED]"

_dropped_key_memo: dict[str, bool] = {}  # attribute names repeat across spans


def _drop_key(k: str) -> bool:
    return _is_content_key(k) or _SECRET_KEY.search(k) is not None


def redact(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value) if ("sk-" in value or "earer" in value
                                                      or "asic" in value) else value
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _kept_keys(keys: Iterable[str]) -> tuple[str, ...]:
    memo = _dropped_key_memo
    kept = []
    for k in keys:
        drop = memo.get(k)
        if drop is None:
            drop = _drop_key(k)
            if len(memo) < 50_000:  # indexed keys (gen_ai.prompt.N...) must not grow it forever
                memo[k] = drop
        if not drop:
            kept.append(k)
    return tuple(kept)


def filterable_attributes(a: dict[str, Any]) -> dict[str, Any]:
    """The attributes minus message content and credentials (kept small for `where` filters)."""
    out = {}
    for k in _key_plan(a).kept:
        v = a[k]
        # redact's own tests inlined for the common values (short strings and numbers):
        # a string without a credential marker and a number are kept as they are
        t = type(v)
        if t is str:
            out[k] = v if "sk-" not in v and "earer" not in v and "asic" not in v else redact(v)
        elif t is int or t is float or t is bool:
            out[k] = v
        else:
            out[k] = redact(v)
    return out


_PROMPT_VARIABLE = "gen_ai.prompt.variable."


@dataclass(frozen=True, slots=True)
class _KeyPlan:
    """What extraction needs from the attribute names alone. Spans of one instrumentation
    share their set of names, so this is worked out once per set instead of scanning every
    name of every span again in each helper."""
    kept: tuple[str, ...]  # filterable_attributes' keys (not content, not credentials)
    var_keys: tuple[str, ...]  # gen_ai.prompt.variable.*
    has_tools: bool  # any tool-definition key
    usage: tuple[tuple[str, tuple[str, ...]], ...]  # usage field -> its alias keys present, best first
    params: tuple[tuple[str, tuple[str, ...]], ...]  # the same for the request parameters
    refs: tuple[str, ...]  # content stored by reference (gen_ai.input.messages_ref ...)


def _aliases_present(keys: tuple[str, ...], table: dict[str, tuple[str, ...]]) -> tuple:
    present = set(keys)
    return tuple((name, hits) for name, aliases in table.items()
                 if (hits := tuple(k for k in aliases if k in present)))


_key_plans: dict[tuple[str, ...], _KeyPlan] = {}
_KEY_PLAN_MAX_KEYS = 64  # bigger (indexed) key sets are planned per call, not remembered


def _key_plan(a: dict[str, Any]) -> _KeyPlan:
    keys = tuple(a)
    plan = _key_plans.get(keys)
    if plan is None:
        plan = _KeyPlan(_kept_keys(keys), tuple(k for k in keys if k.startswith(_PROMPT_VARIABLE)),
                        any(k.startswith(_TOOL_PREFIXES) for k in keys),
                        _aliases_present(keys, _USAGE_KEYS), _aliases_present(keys, _PARAM_KEYS),
                        tuple(k for k in keys if k in content_refs.REF_KEYS))
        if len(keys) <= _KEY_PLAN_MAX_KEYS:
            if len(_key_plans) >= 1024:
                _key_plans.clear()
            _key_plans[keys] = plan
    return plan


_resource_memo: dict[int, tuple[dict, dict]] = {}


def _resource_view(resource: dict[str, Any]) -> dict[str, Any]:
    """The redacted resource, computed once per resource object (spans of a batch share it)."""
    hit = _resource_memo.get(id(resource))
    if hit is not None and hit[0] is resource:
        return hit[1]
    view = filterable_attributes(resource)
    if len(_resource_memo) > 1024:
        _resource_memo.clear()
    _resource_memo[id(resource)] = (resource, view)
    return view


# ---------------------------------------------------------------------------------------------
# the case

SKIP_NO_CONTENT = "no content captured"
SKIP_ERROR = "error span"
SKIP_MALFORMED = "malformed content"


@dataclass
class Extraction:
    case: Case | None
    convention: str
    skip: str | None = None


def _detect_label(span: SpanRecord) -> str:
    a = span.attributes
    if "openinference.span.kind" in a or any(k.startswith("llm.") for k in a):
        return "openinference" if "openinference.span.kind" in a else "openllmetry"
    return "otel-genai-1.37" if "gen_ai.provider.name" in a else "otel-genai"


_SHAPE_ERRORS = (TypeError, AttributeError, ValueError, KeyError, IndexError, OverflowError)


def extract(span: SpanRecord, events: list[Event], operation: str | None = None,
            include_errors: bool = False, refs: content_refs.RefReader | None = None) -> Extraction:
    """Case for one inference span, or the reason it was skipped. Attribute values of an
    unexpected shape make the span count as malformed instead of failing the import. Content
    stored by reference is read through ``refs`` (see ``refs.py``)."""
    try:
        return _extract(span, events, operation, include_errors, refs)
    except _SHAPE_ERRORS:
        return Extraction(None, _detect_label(span), SKIP_MALFORMED)


def _extract(span: SpanRecord, events: list[Event], operation: str | None,
             include_errors: bool, refs: content_refs.RefReader | None = None) -> Extraction:
    a = span.attributes
    ref_problem = None
    ref_keys = _key_plan(a).refs
    if ref_keys:
        a, ref_problem = content_refs.resolve(a, ref_keys, refs)
        span = dataclasses.replace(span, attributes=a)
    content = find_content(span, events)
    is_error = span.status_code == 2 or a.get("error.type") is not None
    if content is None or not content.messages:
        label = (content.convention if content else _detect_label(span)) + " (no content)"
        return Extraction(None, label, SKIP_ERROR if is_error and not include_errors
                          else ref_problem or SKIP_NO_CONTENT)
    convention = content.convention
    if is_error and not include_errors:
        return Extraction(None, convention, SKIP_ERROR)

    usage = _usage(a)
    out = content.output or Output()
    if not out.tool_calls and openlit.is_openlit(a):
        call = openlit.tool_call(a)
        if call is not None:
            out = Output(out.text or None, [call], out.finish_reason)
    finish = normalize_finish_reason(first_set(a.get("gen_ai.response.finish_reasons"),
                                            a.get("gen_ai.response.finish_reason"),
                                            a.get("llm.response.finish_reason"),
                                            a.get("llm.finish_reason"),
                                            langfuse.finish_reason(a))) or out.finish_reason
    error = None
    if is_error:
        error = ErrorInfo(type=str(a.get("error.type") or "SpanError"),
                          message=span.status_message or str(a.get("error.type") or "error status"))
    recorded = Recorded(
        output=out.text, tool_calls=list(out.tool_calls or []), finish_reason=finish,
        latency_ms=(span.end_ns - span.start_ns) / 1e6 if span.end_ns >= span.start_ns > 0 else None,
        ttft_ms=_ttft_ms(a, span.start_ns),
        input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"],
        cached_tokens=usage["cached_tokens"],
        cost_usd=to_num(first_set(a.get("llm.cost.total"), a.get("gen_ai.usage.cost"))),
        error=error)
    tools = _tools(a) or _request_tools(a)
    warnings = [f"tool definition without parameters: {t['function'].get('name')}"
                for t in tools if not t["function"].get("parameters")]
    if content.output is None and not is_error:
        warnings.append("no output recorded")
    orphans = orphan_tool_results(content.messages)
    if orphans:  # OpenLit drops an assistant message without text, its tool calls with it
        warnings.append("tool result without the assistant tool call before it (a chat API refuses "
                        f"it on replay): {', '.join(orphans)}")
    odd = sorted({str(p.get("type")) for m in content.messages if isinstance(m.content, list)
                  for p in m.content if p.get("type") not in ("text", "image_url")})
    if odd:  # kept as recorded, but a chat-completions provider will not take them
        warnings.append(f"content parts the chat API may not accept: {', '.join(odd)}")
    metadata: dict[str, Any] = {
        "source": span.source, "trace_id": span.trace_id, "span_id": span.span_id,
        "parent_span_id": span.parent_span_id, "span_name": span.name,
        "service": span.resource.get("service.name"), "provider": provider_of(span),
        "operation": operation, "convention": convention,
        "response_model": first_set(a.get("gen_ai.response.model"), a.get("llm.response.model_name"),
                                 a.get("llm.model_name")),  # OpenInference: response model when known
        "response_id": a.get("gen_ai.response.id"),
        "conversation_id": first_set(a.get("gen_ai.conversation.id"), a.get("session.id"),
                                  a.get("langfuse.session.id")),
        "start_time_unix_nano": span.start_ns,
        "usage": {k: v for k, v in usage.items() if v is not None},
        "attributes": filterable_attributes(a),
        "resource": _resource_view(span.resource),
    }
    template = first_set(a.get("llm.prompt_template.template"), a.get("traceloop.prompt.template"))
    if template is not None:
        metadata["prompt_template"] = template
    prompt_name = first_set(a.get("gen_ai.prompt.name"), a.get("traceloop.prompt.key"))
    if prompt_name is not None:
        metadata["prompt_name"] = prompt_name
    evaluations = recorded_evaluations(events)
    if evaluations:
        metadata["evaluations"] = evaluations
    if warnings:
        metadata["warnings"] = warnings
    params = request_params(a)
    if openlit.is_openlit(a):
        params = openlit.drop_unset(params)
        recorded.cost_usd = openlit.cost(recorded.cost_usd)
    n = params.pop("n", None)  # replay compares one answer; asking for n would multiply the cost
    if n is not None and n != 1:
        metadata["request_n"] = n
    case = Case(id=f"{span.trace_id}:{span.span_id}", messages=content.messages, tools=tools,
                params=params, vars=prompt_vars(a), recorded=recorded,
                metadata={k: v for k, v in metadata.items() if v is not None})
    return Extraction(case, convention)


def orphan_tool_results(messages: list) -> list[str]:
    """Ids of tool messages that answer no tool call of an earlier assistant message."""
    called: set[str] = set()
    orphans = []
    for m in messages:
        if m.role == "assistant":
            called.update(c.id for c in m.tool_calls if c.id)
        elif m.role == "tool" and m.tool_call_id and m.tool_call_id not in called:
            orphans.append(m.tool_call_id)
    return orphans


def _ttft_ms(a: dict[str, Any], start_ns: int) -> float | None:
    """Time to the first streamed chunk: the semconv attribute (seconds), else the vendor's."""
    # Vercel AI SDK 7 records the TTFC metric's value on the span, under the metric's name
    ttfc = to_num(first_set(a.get("gen_ai.response.time_to_first_chunk"),
                            a.get("gen_ai.client.operation.time_to_first_chunk")))
    if ttfc is not None:
        return ttfc * 1000.0
    ms = to_num(a.get(vercel.MS_TO_FIRST_CHUNK))
    if ms is not None:
        return ms
    if langfuse.COMPLETION_START in a:
        return langfuse.ttft_ms(a, start_ns)
    return None


def recorded_evaluations(events: list[Event]) -> list[dict[str, Any]]:
    """Evaluations already attached to the call (gen_ai.evaluation.result events), kept so
    reports can show them next to replaygate's own scores."""
    out = []
    for ev in events:
        if ev.name != EVALUATION_EVENT:
            continue
        a = ev.attributes
        item = {"name": a.get("gen_ai.evaluation.name"), "score": to_num(a.get("gen_ai.evaluation.score.value")),
                "label": a.get("gen_ai.evaluation.score.label"),
                "explanation": a.get("gen_ai.evaluation.explanation"), "error": a.get("error.type")}
        out.append({k: v for k, v in item.items() if v is not None})
    return out


# ---------------------------------------------------------------------------------------------
# retrieval context

def _openinference_documents(a: dict[str, Any]) -> list[str]:
    for prefix in ("reranker.output_documents", "retrieval.documents"):
        docs = []
        for d in rebuild_indexed(a, prefix):
            doc = d.get("document", d) if isinstance(d, dict) else d
            text = doc.get("content") if isinstance(doc, dict) else doc
            if text:
                docs.append(to_text(text))
        if docs:
            return docs
    return []


# What the import's first pass looks for (otlp.decode_unit_for_join): a span can only give
# documents when one of these appears in it (every key and event name _retrieval_documents
# reads contains one), and a GenAI log event's name always starts with "gen_ai.".
JOIN_SPAN_MARKERS = ("documents", "db.query.result")
JOIN_LOG_MARKERS = ("gen_ai.",)


def retrieval_documents(span: SpanRecord) -> list[str]:
    """Document texts a retrieval (or reranker) span returned, in any convention. Raises
    ValueError when the documents have an unexpected shape."""
    try:
        return _retrieval_documents(span)
    except _SHAPE_ERRORS as e:
        raise ValueError(f"retrieval documents of unexpected shape: {e}") from None


def _retrieval_documents(span: SpanRecord) -> list[str]:
    a = span.attributes
    for k in a:
        if k.startswith(("reranker.output_documents.", "retrieval.documents.")):
            docs = _openinference_documents(a)
            if docs:
                return docs
            break
    docs = []
    raw = maybe_json(a.get("gen_ai.retrieval.documents"))
    if isinstance(raw, list):
        for d in raw:
            text = first_set(d.get("content"), d.get("text"), d.get("page_content"), d.get("document")) \
                if isinstance(d, dict) else d
            if text:
                docs.append(to_text(text))
    for ev in span.events:  # OpenLLMetry vector-DB spans
        if ev.name == "db.query.result" and ev.attributes.get("db.query.result.document"):
            docs.append(to_text(ev.attributes["db.query.result.document"]))
    return docs
