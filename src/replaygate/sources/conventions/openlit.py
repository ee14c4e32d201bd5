"""OpenLit's fill-in values. Not a content family (OpenLit 1.44 writes v1.37+ attributes, older
releases v1.26 role lines: ``semconv`` / ``semconv126`` read them); what it adds of its own is a
value for every request parameter the app did not set, and a cost of 0 for a model missing from
its price list. Both would be taken as recorded facts: the defaults sent on replay (a seed of 0
is not "no seed"), an unknown price as free."""
from __future__ import annotations

from typing import Any

from replaygate.model import ToolCall

# what OpenLit's OpenAI instrumentation records for a parameter not given (handle_not_given)
_UNSET = {"seed": 0, "temperature": 1.0, "top_p": 1.0, "frequency_penalty": 0.0,
          "presence_penalty": 0.0}


def is_openlit(a: dict[str, Any]) -> bool:
    return a.get("telemetry.sdk.name") == "openlit"


def drop_unset(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without OpenLit's not-set values. An app that set one of them to exactly that
    value loses it here; for OpenAI the replayed request is the same (they are its defaults)."""
    return {k: v for k, v in params.items() if k not in _UNSET or v != _UNSET[k]}


def cost(value: float | None) -> float | None:
    """OpenLit writes 0 when the model is not in its price list: unknown, not free."""
    return None if value == 0 else value


def tool_call(a: dict[str, Any]) -> ToolCall | None:
    """The call an answer asked for, when OpenLit (1.34) put it beside an empty completion:
    ``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.args`` on the chat span."""
    name = a.get("gen_ai.tool.name")
    if not isinstance(name, str) or not name:
        return None
    args = a.get("gen_ai.tool.args")
    call_id = a.get("gen_ai.tool.call.id")
    return ToolCall(name=name, arguments=args if isinstance(args, str) and args else "{}",
                    id=call_id if isinstance(call_id, str) and call_id else None)
