"""Langfuse SDK observations: input and output as JSON (otel-genai.md §4.3)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from replaygate.sources.conventions.base import (AGENT, Content, EMBEDDINGS, INFERENCE, OTHER,
                                                 RETRIEVAL, TOOL)
from replaygate.sources.conventions.shapes import chat_input, chat_output, maybe_json
from replaygate.sources.otlp import Event

NAME = "langfuse"

# langfuse.observation.type -> (category, operation)
LANGFUSE_KINDS = {"generation": (INFERENCE, "chat"), "embedding": (EMBEDDINGS, "embeddings"),
                  "retriever": (RETRIEVAL, "retrieval"), "tool": (TOOL, "execute_tool"),
                  "agent": (AGENT, "invoke_agent"), "chain": (AGENT, "chain"), "span": (OTHER, None),
                  "event": (OTHER, None), "evaluator": (AGENT, "evaluator"), "guardrail": (AGENT, "guardrail")}


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    """Langfuse SDK generations: input and output as JSON (§4.3)."""
    if INPUT not in a and "langfuse.observation.output" not in a:
        return None
    msgs = chat_input(a.get(INPUT)) or []
    out = a.get("langfuse.observation.output")
    return Content("langfuse", msgs, chat_output(out) if out is not None else None)


INPUT = "langfuse.observation.input"
MODEL_PARAMETERS = "langfuse.observation.model.parameters"
USAGE_DETAILS = "langfuse.observation.usage_details"
COMPLETION_START = "langfuse.observation.completion_start_time"
FINISH_REASON = "langfuse.observation.metadata.finish_reason"

# The langfuse.openai wrapper records these when the call did not set them (OpenAI's own
# defaults, max_tokens "Infinity"): sending them on replay would add parameters the app never
# sent (and differ from another provider's defaults), so a recorded default counts as unset.
_WRAPPER_DEFAULTS = {"temperature": 1, "top_p": 1, "frequency_penalty": 0, "presence_penalty": 0}

# usage_details key -> usage field. The SDK copies the provider's usage object as it is: OpenAI
# chat (prompt_tokens...), OpenAI responses / Anthropic (input_tokens...), or Langfuse's own
# names (input, output, input_cached_tokens...).
_USAGE = {"input": "input_tokens", "output": "output_tokens", "total": "total_tokens",
          "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens",
          "input_tokens": "input_tokens", "output_tokens": "output_tokens",
          "total_tokens": "total_tokens", "input_cached_tokens": "cached_tokens",
          "cache_read_input_tokens": "cached_tokens", "input_cache_read": "cached_tokens",
          "output_reasoning_tokens": "reasoning_tokens", "output_reasoning": "reasoning_tokens"}
_USAGE_DETAILS = {("prompt_tokens_details", "cached_tokens"): "cached_tokens",
                  ("input_tokens_details", "cached_tokens"): "cached_tokens",
                  ("completion_tokens_details", "reasoning_tokens"): "reasoning_tokens",
                  ("output_tokens_details", "reasoning_tokens"): "reasoning_tokens"}


def model_params(a: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded model parameters, without the values the wrapper filled in."""
    p = maybe_json(a.get(MODEL_PARAMETERS))
    if not isinstance(p, dict):
        return None
    return {k: v for k, v in p.items()
            if not (k in _WRAPPER_DEFAULTS and v == _WRAPPER_DEFAULTS[k] and type(v) is int)
            and not (k == "max_tokens" and v in ("Infinity", "inf"))}


def usage(a: dict[str, Any]) -> dict[str, Any] | None:
    """usage_details in any of the key sets the SDK copies (see ``_USAGE``)."""
    u = maybe_json(a.get(USAGE_DETAILS))
    if not isinstance(u, dict):
        return None
    out = {_USAGE[k]: v for k, v in u.items() if k in _USAGE and v is not None}
    for (outer, inner), name in _USAGE_DETAILS.items():
        d = u.get(outer)
        if isinstance(d, dict) and d.get(inner) is not None and name not in out:
            out[name] = d[inner]
    return out


def request_tools(a: dict[str, Any]) -> list | None:
    """Tool definitions the wrapper keeps beside the messages: input = {tools, messages}."""
    raw = maybe_json(a.get(INPUT))
    if isinstance(raw, dict) and isinstance(raw.get("tools"), list):
        return raw["tools"]
    return None


def ttft_ms(a: dict[str, Any], start_ns: int) -> float | None:
    """completion_start_time (the first streamed chunk, ISO-8601 UTC) after the span start."""
    t = maybe_json(a.get(COMPLETION_START))
    if not isinstance(t, str) or not start_ns:
        return None
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    ms = (when.timestamp() * 1e9 - start_ns) / 1e6
    return round(ms, 3) if ms >= 0 else None


def finish_reason(a: dict[str, Any]) -> Any:
    return maybe_json(a.get(FINISH_REASON))
