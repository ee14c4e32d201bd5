"""What every convention module shares: span categories, GenAI event names, and the content a
convention finds on a span (``Content``)."""
from __future__ import annotations

from dataclasses import dataclass

from replaygate.model import Message, ToolCall

INFERENCE = "inference"
RETRIEVAL = "retrieval"
TOOL = "tool"
AGENT = "agent"
EMBEDDINGS = "embeddings"
UNSUPPORTED = "unsupported"  # a GenAI operation we do not replay (rerank, custom...)
OTHER = "other"  # not a GenAI span at all

LEGACY_MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                         "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
CHOICE_EVENT = "gen_ai.choice"
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
PROMPT_EVENT_126 = "gen_ai.content.prompt"
COMPLETION_EVENT_126 = "gen_ai.content.completion"
EVALUATION_EVENT = "gen_ai.evaluation.result"
GENAI_EVENT_NAMES = frozenset({*LEGACY_MESSAGE_EVENTS, CHOICE_EVENT, DETAILS_EVENT,
                               PROMPT_EVENT_126, COMPLETION_EVENT_126, EVALUATION_EVENT})


@dataclass
class Output:
    text: str | None = None
    tool_calls: list[ToolCall] | None = None
    finish_reason: str | None = None


@dataclass
class Content:
    convention: str
    messages: list[Message]
    output: Output | None
