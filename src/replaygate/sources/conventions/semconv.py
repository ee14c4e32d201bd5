"""OTel GenAI v1.37+: gen_ai.input.messages / output.messages / system_instructions (JSON strings
on spans, structured values on the details event)."""
from __future__ import annotations

from typing import Any

from replaygate.sources.conventions.base import Content
from replaygate.sources.conventions.shapes import (first_set, messages_from, otel_output,
                                                   system_message)
from replaygate.sources.otlp import Event

NAME = "otel-genai-1.37"


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    if ("gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
            and "gen_ai.system_instructions" not in a and "gen_ai.system.instructions" not in a):
        return None
    msgs = messages_from(a.get("gen_ai.input.messages"))
    system = system_message(first_set(a.get("gen_ai.system_instructions"),
                                    a.get("gen_ai.system.instructions")))
    if system is not None and not any(m.role == "system" for m in msgs):
        msgs.insert(0, system)
    return Content("otel-genai-1.37", msgs, otel_output(a.get("gen_ai.output.messages")))
