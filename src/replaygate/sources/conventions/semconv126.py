"""OTel GenAI v1.26-v1.27 (and OpenLit): span events gen_ai.content.prompt /
gen_ai.content.completion, or the gen_ai.prompt / gen_ai.completion JSON attributes they carry."""
from __future__ import annotations

from typing import Any

from replaygate.sources.conventions.base import (COMPLETION_EVENT_126, Content, Output,
                                                 PROMPT_EVENT_126)
from replaygate.sources.conventions.shapes import (maybe_json, messages_from, openai_message,
                                                   output_from_messages, to_text)
from replaygate.sources.otlp import Event

NAME = "otel-genai-1.26"


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    prompt = a.get("gen_ai.prompt")
    completion = a.get("gen_ai.completion")
    for ev in events:
        if ev.name == PROMPT_EVENT_126:
            prompt = ev.attributes.get("gen_ai.prompt", prompt)
        elif ev.name == COMPLETION_EVENT_126:
            completion = ev.attributes.get("gen_ai.completion", completion)
    if prompt is None and completion is None:
        return None
    output = None
    if completion is not None:
        comp = maybe_json(completion)
        if isinstance(comp, list) and comp and isinstance(comp[0], dict):
            output = output_from_messages(openai_message(comp[0], "assistant"),
                                           comp[0].get("finish_reason"))
        else:
            output = Output(to_text(comp))
    return Content("otel-genai-1.26", messages_from(prompt), output)
