"""Vendor formats accepted with low priority (otel-genai.md §4.3): the Langfuse SDK, MLflow
tracing and Google ADK, written by hand from the spec's attribute table."""
from __future__ import annotations

import json
from pathlib import Path

from replaygate.sources import genai
from replaygate.sources.traces import import_traces


def _span(n: int, name: str, attrs: dict, parent: int | None = None) -> dict:
    sp = {"traceId": f"{n // 10 + 1:032x}", "spanId": f"{n + 1:016x}", "name": name, "kind": 1,
          "startTimeUnixNano": str(10**18 + n * 10**6), "endTimeUnixNano": str(10**18 + n * 10**6 + 8 * 10**8),
          "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                         for k, v in attrs.items()]}
    if parent is not None:
        sp["parentSpanId"] = f"{parent + 1:016x}"
    return sp


J = json.dumps

LANGFUSE = [
    _span(0, "support-agent", {"langfuse.observation.type": "agent"}),
    _span(1, "kb-search", {"langfuse.observation.type": "retriever"}, parent=0),
    _span(2, "OpenAI-generation", {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "gpt-4o-mini",
        "langfuse.observation.model.parameters": J({"temperature": 0.3, "max_tokens": 200}),
        "langfuse.observation.input": J([{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Where is my order?"}]),
        "langfuse.observation.output": J({"role": "assistant", "content": "It ships tomorrow."}),
        "langfuse.observation.usage_details": J({"input": 21, "output": 5, "total": 26}),
        "langfuse.session.id": "sess-1"}, parent=0),
]

MLFLOW = [
    _span(10, "ChatOpenAI", {
        "mlflow.spanType": J("CHAT_MODEL"),
        "mlflow.spanInputs": J({"messages": [{"role": "user", "content": "Translate 'cat' to French."}],
                                "model": "gpt-4o", "temperature": 0.0,
                                "tools": [{"type": "function", "function": {
                                    "name": "dictionary", "parameters": {"type": "object"}}}]}),
        "mlflow.spanOutputs": J({"id": "chatcmpl-9", "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "chat"}}]})}),
    _span(11, "retriever", {"mlflow.spanType": J("RETRIEVER"), "mlflow.spanInputs": J("cat")}),
]

ADK = [
    _span(20, "call_llm", {
        "gen_ai.system": "gcp.vertex.agent", "gen_ai.request.model": "gemini-2.0-flash",
        genai.ADK_REQUEST: J({
            "model": "gemini-2.0-flash",
            "config": {"system_instruction": "You are a weather bot.", "temperature": 0.2,
                       "max_output_tokens": 128,
                       "tools": [{"function_declarations": [
                           {"name": "get_weather", "description": "Weather for a city",
                            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}]},
            "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                         {"role": "model", "parts": [{"function_call": {"id": "fc1", "name": "get_weather",
                                                                        "args": {"city": "Paris"}}}]},
                         {"role": "user", "parts": [{"function_response": {"id": "fc1", "name": "get_weather",
                                                                           "response": {"temp_c": 18}}}]}]}),
        genai.ADK_RESPONSE: J({"content": {"role": "model", "parts": [{"text": "18 degrees and sunny."}]},
                               "finish_reason": "STOP",
                               "usage_metadata": {"prompt_token_count": 40, "candidates_token_count": 7}})}),
    _span(21, "execute_tool get_weather", {genai.ADK_TOOL_ARGS: J({"city": "Paris"})}),
]


def _import(tmp_path: Path, spans: list[dict]):
    f = tmp_path / "vendor.jsonl"
    f.write_text(J({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}) + "\n")
    return import_traces([f])


def test_langfuse_generation_with_model_parameters_and_usage(tmp_path):
    cases, stats = _import(tmp_path, LANGFUSE)
    assert len(cases) == 1 and stats.context_spans == {"agent": 1, "retrieval": 1}
    c = cases[0]
    assert [(m.role, m.content) for m in c.messages] == [("system", "Be brief."), ("user", "Where is my order?")]
    assert c.recorded.output == "It ships tomorrow."
    assert c.params == {"model": "gpt-4o-mini", "temperature": 0.3, "max_tokens": 200}
    assert (c.recorded.input_tokens, c.recorded.output_tokens) == (21, 5)
    assert c.metadata["convention"] == "langfuse" and c.metadata["conversation_id"] == "sess-1"
    assert "langfuse.observation.input" not in c.metadata["attributes"]  # content is not metadata


def test_mlflow_chat_model_span_with_json_encoded_attributes(tmp_path):
    cases, stats = _import(tmp_path, MLFLOW)
    assert len(cases) == 1 and stats.context_spans == {"retrieval": 1}
    c = cases[0]
    assert [(m.role, m.content) for m in c.messages] == [("user", "Translate 'cat' to French.")]
    assert (c.recorded.output, c.recorded.finish_reason) == ("chat", "stop")
    assert c.params["model"] == "gpt-4o" and c.params["temperature"] == 0.0
    assert [t["function"]["name"] for t in c.tools] == ["dictionary"]
    assert c.metadata["convention"] == "mlflow"


def test_google_adk_call_llm_with_tool_round_trip(tmp_path):
    cases, stats = _import(tmp_path, ADK)
    assert len(cases) == 1 and stats.context_spans == {"tool": 1}
    c = cases[0]
    assert [m.role for m in c.messages] == ["system", "user", "assistant", "tool"]
    assert c.messages[0].content == "You are a weather bot."
    call = c.messages[2].tool_calls[0]
    assert (call.name, json.loads(call.arguments), call.id) == ("get_weather", {"city": "Paris"}, "fc1")
    assert c.messages[3].tool_call_id == "fc1" and json.loads(c.messages[3].content) == {"temp_c": 18}
    assert (c.recorded.output, c.recorded.finish_reason) == ("18 degrees and sunny.", "stop")
    assert (c.recorded.input_tokens, c.recorded.output_tokens) == (40, 7)
    assert c.params == {"model": "gemini-2.0-flash", "temperature": 0.2, "max_tokens": 128}
    assert c.tools[0]["function"]["name"] == "get_weather"
    assert c.metadata["convention"] == "google-adk" and c.metadata["operation"] == "generate_content"
