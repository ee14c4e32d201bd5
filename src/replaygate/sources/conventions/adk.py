"""Google ADK call_llm spans: the Gemini request and response as JSON."""
from __future__ import annotations

from typing import Any

from replaygate.model import Message, ToolCall
from replaygate.sources.conventions.base import Content
from replaygate.sources.conventions.shapes import (args_text, maybe_json, norm_role,
                                                   output_from_messages, to_text)
from replaygate.sources.otlp import Event

NAME = "google-adk"

ADK_REQUEST = "gcp.vertex.agent.llm_request"
ADK_RESPONSE = "gcp.vertex.agent.llm_response"
ADK_TOOL_ARGS = "gcp.vertex.agent.tool_call_args"

GEMINI_PARAMS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                 "max_output_tokens": "max_tokens", "seed": "seed", "stop_sequences": "stop",
                 "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}


def gemini_message(d: Any) -> list[Message]:
    """A Gemini Content {role: user | model, parts: [{text} | {function_call} | {function_response}]}."""
    if not isinstance(d, dict):
        return []
    role = "assistant" if d.get("role") == "model" else norm_role(d.get("role"))
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for p in d.get("parts") or []:
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("text"), str) and not p.get("thought"):
            texts.append(p["text"])
        fc = p.get("function_call") or p.get("functionCall")
        if isinstance(fc, dict):
            calls.append(ToolCall(name=str(fc.get("name")), arguments=args_text(fc.get("args", {})),
                                  id=fc.get("id")))
        fr = p.get("function_response") or p.get("functionResponse")
        if isinstance(fr, dict):
            results.append(Message(role="tool", content=to_text(fr.get("response", "")),
                                   tool_call_id=fr.get("id"), name=fr.get("name")))
    out = [Message(role=role, content="".join(texts) if texts else None, tool_calls=calls)] \
        if texts or calls else []
    return out + results


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    """Google ADK call_llm spans: the Gemini request and response as JSON."""
    req = maybe_json(a.get(ADK_REQUEST))
    if not isinstance(req, dict):
        return None
    msgs: list[Message] = []
    config = req.get("config") if isinstance(req.get("config"), dict) else {}
    system = config.get("system_instruction")
    if system:
        msgs.append(Message(role="system", content=to_text(system) if not isinstance(system, dict)
                            else "".join(to_text(p.get("text", "")) for p in system.get("parts") or []
                                         if isinstance(p, dict))))
    for c in req.get("contents") or []:
        msgs.extend(gemini_message(c))
    output = None
    resp = maybe_json(a.get(ADK_RESPONSE))
    if isinstance(resp, dict) and isinstance(resp.get("content"), dict):
        output = output_from_messages(gemini_message(resp["content"]) or [Message("assistant", "")],
                                       resp.get("finish_reason"))
    return Content("google-adk", msgs, output)
