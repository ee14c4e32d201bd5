"""OTel GenAI v1.26-v1.27 (and OpenLit): span events gen_ai.content.prompt /
gen_ai.content.completion, or the gen_ai.prompt / gen_ai.completion JSON attributes they carry."""
from __future__ import annotations

import ast
import re
from typing import Any

from replaygate.model import Message
from replaygate.sources.conventions.base import (COMPLETION_EVENT_126, Content, Output,
                                                 PROMPT_EVENT_126)
from replaygate.sources.conventions.shapes import (maybe_json, messages_from, norm_role,
                                                   normalize_finish_reason, openai_message,
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
        if isinstance(comp, dict) and set(comp) <= {"text", "finish_reason", "index"} and "text" in comp:
            # the deprecated completions form {"text": ...}
            output = Output(to_text(comp["text"]), [], normalize_finish_reason(comp.get("finish_reason")))
        elif isinstance(comp, list) and comp and isinstance(comp[0], dict):
            output = output_from_messages(openai_message(comp[0], "assistant"),
                                          comp[0].get("finish_reason"))
        else:
            output = Output(to_text(comp))
    if isinstance(prompt, str) and prompt[:1] not in ("[", "{", '"'):
        msgs = role_lines(prompt)
        if msgs is not None:
            return Content("otel-genai-1.26", msgs, output)
    return Content("otel-genai-1.26", messages_from(prompt), output)


_ROLE_LINE = re.compile(r"^(system|user|assistant|tool|developer|function): ?", re.IGNORECASE)


def role_lines(text: str) -> list[Message] | None:
    """OpenLit writes the prompt as "role: content" lines, one message after another (a
    message's own newlines continue it). None when the text does not start that way."""
    if not _ROLE_LINE.match(text):
        return None
    msgs: list[Message] = []
    for line in text.split("\n"):
        m = _ROLE_LINE.match(line)
        if m:
            msgs.append(Message(role=norm_role(m.group(1).lower()), content=line[m.end():]))
        else:
            msgs[-1].content = f"{msgs[-1].content}\n{line}"
    for msg in msgs:
        whole = _repr_of_messages(msg.content)
        if whole is not None:
            return whole
    return msgs


def _repr_of_messages(content: Any) -> list[Message] | None:
    """OpenLit (1.34) writes a message it cannot read (an assistant message whose content is
    None: one with tool calls) as "user: " + the Python repr of the WHOLE message list. That
    repr is the conversation as sent, tool calls included: the messages are taken from it."""
    if not isinstance(content, str) or not content.startswith("[{'role': "):
        return None
    try:
        value = ast.literal_eval(content)  # literals only: no code runs
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not (isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value)):
        return None
    out: list[Message] = []
    for m in value:
        out.extend(openai_message(m, str(m["role"])))
    return out
