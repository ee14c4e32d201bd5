"""Langfuse SDK observations: input and output as JSON (otel-genai.md §4.3)."""
from __future__ import annotations

from typing import Any

from replaygate.sources.conventions.base import (AGENT, Content, EMBEDDINGS, INFERENCE, OTHER,
                                                 RETRIEVAL, TOOL)
from replaygate.sources.conventions.shapes import chat_input, chat_output
from replaygate.sources.otlp import Event

NAME = "langfuse"

# langfuse.observation.type -> (category, operation)
LANGFUSE_KINDS = {"generation": (INFERENCE, "chat"), "embedding": (EMBEDDINGS, "embeddings"),
                  "retriever": (RETRIEVAL, "retrieval"), "tool": (TOOL, "execute_tool"),
                  "agent": (AGENT, "invoke_agent"), "chain": (AGENT, "chain"), "span": (OTHER, None),
                  "event": (OTHER, None), "evaluator": (AGENT, "evaluator"), "guardrail": (AGENT, "guardrail")}


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    """Langfuse SDK generations: input and output as JSON (§4.3)."""
    if "langfuse.observation.input" not in a and "langfuse.observation.output" not in a:
        return None
    msgs = chat_input(a.get("langfuse.observation.input")) or []
    out = a.get("langfuse.observation.output")
    return Content("langfuse", msgs, chat_output(out) if out is not None else None)
