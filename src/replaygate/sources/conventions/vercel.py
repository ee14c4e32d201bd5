"""Vercel AI SDK: ai.prompt.messages / ai.response.* on the doGenerate / doStream spans."""
from __future__ import annotations

from typing import Any

from replaygate.model import Message, ToolCall
from replaygate.sources.conventions.base import AGENT, Content, EMBEDDINGS, INFERENCE, Output, TOOL
from replaygate.sources.conventions.shapes import (args_text, content_parts, first_set, maybe_json,
                                                   norm_role, normalize_finish_reason,
                                                   openai_message, to_text)
from replaygate.sources.otlp import Event

NAME = "vercel-ai"

MS_TO_FIRST_CHUNK = "ai.response.msToFirstChunk"  # doStream spans
PROVIDER_METADATA = "ai.response.providerMetadata"
# providerMetadata.<provider>.<key> holding cached prompt tokens (v4 has no ai.usage key for them)
_CACHED_KEYS = ("cachedPromptTokens", "cacheReadInputTokens", "cachedInputTokens", "cachedContentTokenCount")

# the doGenerate/doStream spans are the provider calls; the outer generateText /
# streamText spans wrap them (and their tool loops), so they are context.
VERCEL_OP = {"ai.generateText.doGenerate": (INFERENCE, "chat"), "ai.streamText.doStream": (INFERENCE, "chat"),
             "ai.generateObject.doGenerate": (INFERENCE, "chat"), "ai.streamObject.doStream": (INFERENCE, "chat"),
             "ai.generateText": (AGENT, "ai.generateText"), "ai.streamText": (AGENT, "ai.streamText"),
             "ai.generateObject": (AGENT, "ai.generateObject"), "ai.streamObject": (AGENT, "ai.streamObject"),
             "ai.toolCall": (TOOL, "execute_tool"), "ai.embed.doEmbed": (EMBEDDINGS, "embeddings"),
             "ai.embedMany.doEmbed": (EMBEDDINGS, "embeddings"), "ai.embed": (EMBEDDINGS, "embeddings"),
             "ai.embedMany": (EMBEDDINGS, "embeddings")}


def tool_call(c: dict) -> ToolCall:
    """A tool call: arguments in ``args`` (v4) or ``input`` (v5 on), as JSON text or an object."""
    args = c.get("args") if c.get("args") is not None else c.get("input")
    return ToolCall(name=str(c.get("toolName")), arguments=args_text(args), id=c.get("toolCallId"))


def tool_result(res: Any) -> Any:
    """A tool result: the value (v4) or, from v5 on, a typed output {type: text | json |
    error-text | error-json | content, value}."""
    if isinstance(res, dict) and set(res) <= {"type", "value", "providerOptions"} and "value" in res \
            and isinstance(res.get("type"), str):
        return res["value"]
    return res


def provider(value: Any) -> str | None:
    """ai.model.provider names the provider and its API ("openai.chat", "openai.responses",
    "anthropic.messages", "google.generative-ai"): the provider is the part before the dot."""
    if not isinstance(value, str) or not value:
        return None
    return value.split(".", 1)[0].lower()


def cached_tokens(a: dict[str, Any]) -> Any:
    meta = maybe_json(a.get(PROVIDER_METADATA))
    if not isinstance(meta, dict):
        return None
    for per_provider in meta.values():
        if isinstance(per_provider, dict):
            for k in _CACHED_KEYS:
                if per_provider.get(k) is not None:
                    return per_provider[k]
    return None


def vercel_message(d: Any) -> list[Message]:
    """Vercel AI SDK message: content is text or parts {type: text | tool-call | tool-result}."""
    if not isinstance(d, dict):
        return []
    content = d.get("content")
    if not isinstance(content, list):
        return openai_message(d)
    role = norm_role(d.get("role"))
    texts: list[dict] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for p in content:
        t = p.get("type") if isinstance(p, dict) else None
        if t == "tool-call":
            calls.append(tool_call(p))
        elif t == "tool-result":
            res = tool_result(first_set(p.get("result"), p.get("output")))
            results.append(Message(role="tool", content=to_text(res) if res is not None else "",
                                   tool_call_id=p.get("toolCallId")))
        elif p is not None:
            texts.append(p)
    out = [Message(role=role, content=content_parts(texts), tool_calls=calls)] if texts or calls else []
    return out + results


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    """Vercel AI SDK spans (ai.generateText.doGenerate / ai.streamText.doStream)."""
    raw = maybe_json(a.get("ai.prompt.messages"))
    if raw is None:
        prompt = maybe_json(a.get("ai.prompt"))  # {system?, prompt? | messages?} on outer spans
        if isinstance(prompt, dict):
            raw = prompt.get("messages") or (
                [{"role": "system", "content": prompt["system"]}] if prompt.get("system") else []) + (
                [{"role": "user", "content": prompt["prompt"]}] if prompt.get("prompt") else [])
    text, calls = a.get("ai.response.text"), maybe_json(a.get("ai.response.toolCalls"))
    if raw is None and text is None and calls is None:
        return None
    msgs = [m for d in (raw if isinstance(raw, list) else []) for m in vercel_message(d)]
    output = None
    if text is not None or calls:
        output = Output(text, [tool_call(c) for c in (calls if isinstance(calls, list) else [])
                               if isinstance(c, dict)],
                        normalize_finish_reason(a.get("ai.response.finishReason")))
    return Content("vercel-ai", msgs, output)
