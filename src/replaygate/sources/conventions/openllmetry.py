"""OpenLLMetry / Traceloop before semconv-ai 0.5: indexed gen_ai.prompt.N.* / gen_ai.completion.N.*."""
from __future__ import annotations

from typing import Any

from replaygate.model import Message
from replaygate.sources.conventions.base import Content
from replaygate.sources.conventions.shapes import (openai_message, output_from_messages,
                                                   rebuild_indexed)
from replaygate.sources.otlp import Event

NAME = "openllmetry"


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    prompts = rebuild_indexed(a, "gen_ai.prompt")
    completions = rebuild_indexed(a, "gen_ai.completion")
    if not prompts and not completions:
        return None
    msgs: list[Message] = []
    for p in prompts:
        if isinstance(p, dict):
            msgs.extend(openai_message(p))
    output = None
    if completions and isinstance(completions[0], dict):
        c = completions[0]
        output = output_from_messages(openai_message(c, "assistant"), c.get("finish_reason"))
    return Content("openllmetry", msgs, output)
