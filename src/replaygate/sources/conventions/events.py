"""OTel GenAI v1.28-v1.36 events gen_ai.{system,user,assistant,tool}.message and gen_ai.choice,
as log records (joined by trace/span id) or span events."""
from __future__ import annotations

from typing import Any

from replaygate.model import Message
from replaygate.sources.conventions.base import CHOICE_EVENT, Content, LEGACY_MESSAGE_EVENTS, Output
from replaygate.sources.conventions.shapes import (maybe_json, normalize_finish_reason,
                                                   openai_message, output_from_messages, to_num)
from replaygate.sources.otlp import Event

NAME = "otel-genai-events"


_PAYLOAD_KEYS = frozenset({"content", "role", "message", "tool_calls", "finish_reason", "index"})


def event_payload(ev: Event) -> dict:
    """Legacy message event content: the log body, or, on span events, the attributes
    (some emitters put a JSON body into gen_ai.event.content)."""
    if isinstance(ev.body, dict):
        return ev.body
    if isinstance(ev.body, str):
        # Semantic Kernel logs the whole body as JSON text through Python logging
        parsed = maybe_json(ev.body) if ev.body[:1] == "{" else None
        if isinstance(parsed, dict) and parsed.keys() & _PAYLOAD_KEYS:
            return parsed
        return {"content": ev.body}
    raw = maybe_json(ev.attributes.get("gen_ai.event.content"))
    if isinstance(raw, dict):
        return raw
    return ev.attributes


PYDANTIC_AI_EVENTS = "events"


def attribute_events(a: dict[str, Any]) -> list[Event]:
    """Pydantic AI (instrumentation version 1, event_mode "attributes", Logfire's default) puts the
    message events on the span as one JSON list under ``events``, each body with its
    ``event.name``."""
    raw = a.get(PYDANTIC_AI_EVENTS)
    if not isinstance(raw, str) or "event.name" not in raw:
        return []
    items = maybe_json(raw)
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("event.name"), str):
            body = {k: v for k, v in item.items() if k not in ("event.name", "gen_ai.system")}
            out.append(Event(item["event.name"], 0, {}, body))
    return out


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    msgs: list[Message] = []
    choices: list[tuple[int, dict]] = []
    seen = False
    for ev in events:
        role = LEGACY_MESSAGE_EVENTS.get(ev.name)
        if role is not None:
            seen = True
            body = event_payload(ev)
            if "content" not in body and "tool_calls" not in body:
                continue  # content capture was off: structure without text
            d = dict(body)
            d["role"] = body.get("role") or role
            msgs.extend(openai_message(d, role))
        elif ev.name == CHOICE_EVENT:
            seen = True
            body = event_payload(ev)
            choices.append((to_num(body.get("index"), int) or 0, body))
    if not seen:
        return None
    output = None
    if choices:
        _, body = min(choices, key=lambda c: c[0])
        message = maybe_json(body.get("message"))  # Semantic Kernel: a JSON string
        if not isinstance(message, dict):
            message = {}
        d = {"role": "assistant", **message}
        if "tool_calls" in body and "tool_calls" not in message:  # YAML-model placement
            d["tool_calls"] = body["tool_calls"]
        if "content" in d or d.get("tool_calls"):
            output = output_from_messages(openai_message(d, "assistant"), body.get("finish_reason"))
        else:
            output = Output(None, [], normalize_finish_reason(body.get("finish_reason")))
    return Content("otel-genai-events", msgs, output)
