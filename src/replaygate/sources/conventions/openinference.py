"""OpenInference (Arize / Phoenix): llm.input_messages.N.message.*, llm.output_messages.N.*, or the
raw provider request in input.value."""
from __future__ import annotations

from typing import Any

from replaygate.model import Message
from replaygate.sources.conventions.base import Content, Output
from replaygate.sources.conventions.shapes import (chat_output, first_set, maybe_json, messages_from,
                                                   openai_message, output_from_messages,
                                                   rebuild_indexed)
from replaygate.sources.otlp import Event

NAME = "openinference"

OPENINFERENCE_OP = {"LLM": "chat", "EMBEDDING": "embeddings", "RETRIEVER": "retrieval",
                    "RERANKER": "reranker", "TOOL": "execute_tool", "AGENT": "invoke_agent",
                    "CHAIN": "chain", "GUARDRAIL": "guardrail", "EVALUATOR": "evaluator",
                    "PROMPT": "prompt"}
# Vercel AI SDK: the doGenerate/doStream spans are the provider calls; the outer generateText /


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    inputs = rebuild_indexed(a, "llm.input_messages")
    outputs = rebuild_indexed(a, "llm.output_messages")
    if inputs or outputs:
        msgs: list[Message] = []
        for m in inputs:
            if isinstance(m, dict):
                msgs.extend(openai_message(m.get("message", m)))
        output = None
        if outputs and isinstance(outputs[0], dict):
            out = outputs[0].get("message", outputs[0])
            output = output_from_messages(openai_message(out, "assistant"),
                                           a.get("llm.finish_reason"))
        return Content("openinference", msgs, output)
    prompts = rebuild_indexed(a, "llm.prompts")  # legacy completions API
    if prompts:
        msgs = [Message("user", first_set(p.get("prompt", {}).get("text") if isinstance(p, dict) else p))
                for p in prompts]
        choices = rebuild_indexed(a, "llm.choices")
        text = choices[0].get("completion", {}).get("text") if choices and isinstance(choices[0], dict) else None
        return Content("openinference", msgs, Output(text) if text is not None else None)
    raw = maybe_json(a.get("input.value"))
    if isinstance(raw, dict) and isinstance(raw.get("messages"), list):
        msgs = messages_from(raw["messages"])
        output = None
        resp = maybe_json(a.get("output.value"))
        if isinstance(resp, dict) and isinstance(resp.get("choices"), list) and resp["choices"]:
            ch = resp["choices"][0]
            if isinstance(ch, dict) and isinstance(ch.get("message"), dict):
                output = output_from_messages(openai_message(ch["message"], "assistant"),
                                               ch.get("finish_reason"))
        return Content("openinference-raw", msgs, output)
    if isinstance(raw, list) and raw and all(isinstance(m, dict) and "role" in m for m in raw):
        # the message list itself (LlamaIndex, LangChain and hand-made spans), no llm.input_messages
        resp = a.get("output.value")
        return Content("openinference-raw", messages_from(raw),
                       chat_output(resp) if resp is not None else None)
    return None
