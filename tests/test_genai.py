"""Span -> Case extraction rules, one convention quirk at a time (spans built in memory)."""
from __future__ import annotations

import json

import pytest

from replaygate.sources import genai
from replaygate.sources.otlp import Event, SpanRecord


def span(attrs: dict, events: list[Event] | None = None, status: int = 0, name: str = "x",
         start: int = 1_000_000_000, end: int = 1_250_000_000) -> SpanRecord:
    return SpanRecord("ab" * 16, "cd" * 8, None, name, 3, start, end, attrs, events or [], status,
                      "boom" if status == 2 else "", {"service.name": "svc"}, "scope", "mem")


def case_of(attrs, events=None, **kw):
    s = span(attrs, events, **kw)
    cat, op = genai.classify(s)
    assert cat == genai.INFERENCE
    res = genai.extract(s, s.events, op, include_errors=kw.get("status") == 2)
    assert res.case is not None, res.skip
    return res.case, res.convention


def test_prefix_collision_prompt_name_is_not_a_message():
    attrs = {"gen_ai.prompt.name": "p", "gen_ai.prompt.version": "2",
             "gen_ai.prompt.variable.user": "Al", "gen_ai.prompt.0.role": "user",
             "gen_ai.prompt.0.content": "hi", "gen_ai.prompt.prompt_filter_results": "[]",
             "gen_ai.request.model": "m"}
    assert genai.rebuild_indexed(attrs, "gen_ai.prompt") == [{"role": "user", "content": "hi"}]
    case, conv = case_of(attrs)
    assert conv == "openllmetry"
    assert [(m.role, m.content) for m in case.messages] == [("user", "hi")]
    assert case.vars == {"user": "Al"}
    assert case.metadata["prompt_name"] == "p"
    # the non-message prompt keys stay filterable; the message keys do not bloat metadata
    assert "gen_ai.prompt.name" in case.metadata["attributes"]
    assert "gen_ai.prompt.0.content" not in case.metadata["attributes"]


def test_rebuild_indexed_nests_and_orders_numerically():
    attrs = {f"p.{i}.v": i for i in (10, 2, 0, 1)}
    attrs["p.0.tool_calls.1.name"] = "b"
    attrs["p.0.tool_calls.0.name"] = "a"
    assert genai.rebuild_indexed(attrs, "p") == [
        {"v": 0, "tool_calls": [{"name": "a"}, {"name": "b"}]}, {"v": 1}, {"v": 2}, {"v": 10}]


@pytest.mark.parametrize("raw, expected", [
    ("tool_calls", "tool_call"), ("function_call", "tool_call"), ("STOP", "stop"),
    ('["STOP"]', "stop"), (["length", "stop"], "length"), ("max_tokens", "length"),
    ("end_turn", "stop"), ("content_filter", "content_filter"), (None, None), ([], None),
    ("weird", "weird"),
])
def test_normalize_finish_reason(raw, expected):
    assert genai.normalize_finish_reason(raw) == expected


def test_classify_uses_attributes_not_names():
    assert genai.classify(span({"gen_ai.operation.name": "embeddings"}, name="openai.chat"))[0] == genai.EMBEDDINGS
    assert genai.classify(span({"openinference.span.kind": "RETRIEVER"}))[0] == genai.RETRIEVAL
    assert genai.classify(span({"llm.request.type": "rerank"}))[0] == genai.UNSUPPORTED
    assert genai.classify(span({"gen_ai.tool.name": "t"}))[0] == genai.TOOL
    assert genai.classify(span({"llm.model_name": "m"}))[0] == genai.INFERENCE
    assert genai.classify(span({"http.method": "GET"}, name="chat gpt-4o"))[0] == genai.OTHER
    assert genai.classify(span({"gen_ai.operation.name": "generate_content"})) == (genai.INFERENCE, "generate_content")


def test_otel_parts_tool_responses_media_and_double_encoded_system():
    msgs = [{"role": "user", "parts": [{"type": "text", "content": "see "},
                                       {"type": "uri", "modality": "image", "uri": "https://x/y.png"}]},
            {"role": "assistant", "parts": [{"type": "reasoning", "content": "hmm"},
                                            {"type": "tool_call", "id": "c1", "name": "a", "arguments": {"q": 1}},
                                            {"type": "tool_call", "id": "c2", "name": "b", "arguments": "{\"r\":2}"}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": " c1", "result": "one"},
                                       {"type": "tool_call_response", "id": "c2", "response": {"v": 2}}]},
            {"role": "developer", "parts": [{"text": "gemini-style part"}]}]
    system = json.dumps(json.dumps([{"type": "text", "content": "Be nice."}]))  # encoded twice
    out = {"role": "assistant", "parts": [{"type": "text", "content": "done"}], "finish_reason": "stop"}
    case, conv = case_of({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                          "gen_ai.input.messages": json.dumps(msgs),
                          "gen_ai.system_instructions": system,
                          "gen_ai.output.messages": out})  # a single object, structured
    assert conv == "otel-genai-1.37"
    roles = [m.role for m in case.messages]
    # developer maps to system, so the separate system instructions are not added twice
    assert roles == ["user", "assistant", "tool", "tool", "system"]
    assert case.messages[0].content == [{"type": "text", "text": "see "},
                                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    calls = case.messages[1].tool_calls
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [("c1", "a", {"q": 1}), ("c2", "b", {"r": 2})]
    assert calls[1].arguments == "{\"r\":2}"  # text arguments kept verbatim
    assert [(m.tool_call_id, m.content) for m in case.messages[2:4]] == [("c1", "one"), ("c2", '{"v": 2}')]
    assert case.recorded.output == "done" and case.recorded.finish_reason == "stop"


def test_system_instructions_prepended_when_input_has_no_system():
    case, _ = case_of({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                       "gen_ai.system_instructions": [{"type": "text", "content": "S"}],
                       "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "U"}]}]})
    assert [(m.role, m.content) for m in case.messages] == [("system", "S"), ("user", "U")]


def test_details_event_supplies_content_for_a_bare_span():
    details = Event(genai.DETAILS_EVENT, 5, {
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Q"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "A"}],
                                    "finish_reason": "length"}]})
    case, conv = case_of({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}, [details])
    assert conv == "otel-genai-1.37"
    assert case.recorded.output == "A" and case.recorded.finish_reason == "length"


def test_legacy_choice_with_top_level_tool_calls_and_lowest_index():
    events = [Event("gen_ai.user.message", 1, {}, {"content": "go"}),
              Event("gen_ai.choice", 3, {}, {"index": 1, "finish_reason": "stop", "message": {"content": "second"}}),
              Event("gen_ai.choice", 2, {}, {"index": 0, "finish_reason": "tool_calls", "tool_calls": [
                  {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})]
    case, conv = case_of({"gen_ai.system": "openai", "gen_ai.request.model": "m"}, events)
    assert conv == "otel-genai-events"
    assert case.recorded.finish_reason == "tool_call"
    assert [(c.id, c.name) for c in case.recorded.tool_calls] == [("t", "f")]


def test_no_content_and_error_spans_are_skipped_with_reasons():
    s = span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3})
    res = genai.extract(s, [], "chat")
    assert res.case is None and res.skip == genai.SKIP_NO_CONTENT
    assert res.convention.endswith("(no content)")
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "error.type": "timeout",
             "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "q"}]}]}
    res = genai.extract(span(attrs, status=2), [], "chat")
    assert res.skip == genai.SKIP_ERROR
    case, _ = case_of(attrs, status=2)  # include_errors
    assert case.recorded.error.type == "timeout" and case.recorded.error.message == "boom"
    assert case.recorded.output is None


def test_params_aliases_and_coercion():
    a = {"gen_ai.request.model": "m", "gen_ai.request.temperature": "0.3", "gen_ai.request.top_k": 40.0,
         "gen_ai.request.max_completion_tokens": "128", "gen_ai.openai.request.seed": 9,
         "llm.chat.stop_sequences": '["x", "y"]', "gen_ai.request.presence_penalty": 0.5,
         "gen_ai.request.choice.count": 2, "gen_ai.request.reasoning.level": "low",
         "gen_ai.output.type": "json", "gen_ai.request.stream": True}
    assert genai.request_params(a) == {
        "model": "m", "temperature": 0.3, "top_k": 40, "presence_penalty": 0.5, "max_tokens": 128,
        "seed": 9, "n": 2, "stop": ["x", "y"], "response_format": {"type": "json_object"}, "reasoning_effort": "low",
        "stream": True}


def test_recorded_latency_tokens_ttft_and_cost():
    case, _ = case_of({"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "q",
                       "gen_ai.completion.0.content": "a", "gen_ai.usage.input_tokens": "10",
                       "gen_ai.usage.output_tokens": 4, "gen_ai.usage.cache_read.input_tokens": 6,
                       "gen_ai.response.time_to_first_chunk": 0.125, "llm.cost.total": 0.5},
                      start=2_000_000_000, end=2_345_600_000)
    r = case.recorded
    assert (r.latency_ms, r.ttft_ms, r.input_tokens, r.output_tokens, r.cached_tokens, r.cost_usd) == \
           (pytest.approx(345.6), 125.0, 10, 4, 6, 0.5)


def test_openinference_tool_calls_in_history_and_output():
    a = {"openinference.span.kind": "LLM", "llm.model_name": "m",
         "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "weather?",
         "llm.input_messages.1.message.role": "assistant",
         "llm.input_messages.1.message.tool_calls.0.tool_call.id": "t1",
         "llm.input_messages.1.message.tool_calls.0.tool_call.function.name": "w",
         "llm.input_messages.1.message.tool_calls.0.tool_call.function.arguments": "{\"c\": \"P\"}",
         "llm.input_messages.2.message.role": "tool", "llm.input_messages.2.message.tool_call_id": "t1",
         "llm.input_messages.2.message.content": "sunny",
         "llm.output_messages.0.message.role": "assistant",
         "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "w2",
         "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{}"}
    case, conv = case_of(a)
    assert conv == "openinference"
    assert case.messages[1].tool_calls[0].name == "w" and case.messages[2].tool_call_id == "t1"
    assert case.recorded.tool_calls[0].name == "w2" and case.recorded.output is None


def test_retrieval_documents_in_each_convention():
    oi = span({"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "A",
               "retrieval.documents.1.document.content": "B"})
    otel = span({"gen_ai.operation.name": "retrieval",
                 "gen_ai.retrieval.documents": json.dumps([{"id": 1, "content": "C"}, {"id": 2}])})
    ollm = span({"traceloop.span.kind": "task"},
                [Event("db.query.result", 1, {"db.query.result.document": "D"})])
    assert genai.retrieval_documents(oi) == ["A", "B"]
    assert genai.retrieval_documents(otel) == ["C"]
    assert genai.retrieval_documents(ollm) == ["D"]


def test_credentials_never_reach_case_metadata():
    key = "sk-proj-" + "A1b2C3d4" * 4
    s = span({"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "q",
              "llm.headers": f"{{'Authorization': 'Bearer {key}'}}",
              "http.request.header.x-api-key": [key], "openai.api_key": key,
              "gen_ai.openai.api_base": f"https://proxy.example/?k={key}",
              "gen_ai.usage.input_tokens": 3})
    s.resource["proxy.auth"] = f"Basic {key}"
    case = genai.extract(s, [], "chat").case
    dumped = json.dumps(case.to_dict())
    assert key not in dumped
    assert case.metadata["attributes"]["gen_ai.openai.api_base"] == "https://proxy.example/?k=[REDACTED]"
    assert case.metadata["attributes"]["gen_ai.usage.input_tokens"] == 3  # "token" is not a secret
    assert case.metadata["resource"]["proxy.auth"] == "[REDACTED]"


@pytest.mark.parametrize("raw, expected", [("11", 11), (11.0, 11), ("1e400", None), ("NaN", None),
                                           (True, None), ("x", None), (None, None)])
def test_counts_are_coerced_to_finite_ints(raw, expected):
    assert genai._usage({"gen_ai.usage.input_tokens": raw})["input_tokens"] == expected


def test_vercel_ai_sdk_do_generate_span():
    msgs = [{"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "t1", "toolName": "weather",
                                               "args": {"city": "Oslo"}}]},
            {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "t1", "toolName": "weather",
                                          "result": {"temp": -3}}]}]
    attrs = {"ai.operationId": "ai.generateText.doGenerate", "ai.model.id": "gpt-4o", "ai.model.provider": "openai.chat",
             "ai.prompt.messages": json.dumps(msgs), "ai.response.text": "It is -3C.",
             "ai.response.finishReason": "stop", "ai.usage.promptTokens": 30, "ai.usage.completionTokens": 5,
             "ai.prompt.tools": [json.dumps({"type": "function", "name": "weather",
                                             "parameters": {"type": "object"}})]}
    case, conv = case_of(attrs)
    assert conv == "vercel-ai"
    assert [m.role for m in case.messages] == ["system", "user", "assistant", "tool"]
    assert case.messages[2].tool_calls[0].arguments == '{"city": "Oslo"}'
    assert (case.messages[3].tool_call_id, case.messages[3].content) == ("t1", '{"temp": -3}')
    assert case.params["model"] == "gpt-4o" and case.metadata["provider"] == "openai"  # not "openai.chat"
    assert case.tools[0]["function"]["name"] == "weather"
    assert (case.recorded.output, case.recorded.input_tokens, case.recorded.output_tokens) == ("It is -3C.", 30, 5)
    outer = span({"ai.operationId": "ai.generateText", "ai.model.id": "gpt-4o"})
    assert genai.classify(outer)[0] == genai.AGENT  # the wrapper is context, not a second case
    calls = span({"ai.operationId": "ai.streamText.doStream", "ai.model.id": "m",
                  "ai.prompt.messages": json.dumps([{"role": "user", "content": "go"}]),
                  "ai.response.toolCalls": json.dumps([{"toolCallType": "function", "toolCallId": "c",
                                                       "toolName": "f", "args": "{\"a\":1}"}]),
                  "ai.response.finishReason": "tool-calls"})
    res = genai.extract(calls, [], "chat")
    assert res.case.recorded.finish_reason == "tool_call"
    assert res.case.recorded.tool_calls[0].arguments == '{"a":1}'


@pytest.mark.parametrize("raw, expected", [
    ("json", {"type": "json_object"}), ("json_object", {"type": "json_object"}), ("text", None),
    ("speech", None), ("json_schema", None), ('{"type": "json_schema", "json_schema": {"name": "x"}}',
                                             {"type": "json_schema", "json_schema": {"name": "x"}})])
def test_response_format_in_the_form_the_chat_api_takes(raw, expected):
    assert genai.request_params({"gen_ai.output.type": raw}).get("response_format") == expected


def test_choice_count_is_recorded_but_not_replayed():
    case, _ = case_of({"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "q", "gen_ai.request.choice.count": 3})
    assert "n" not in case.params and case.metadata["request_n"] == 3


def test_non_chat_parts_are_flagged():
    msgs = [{"role": "user", "parts": [{"type": "text", "content": "listen"},
                                       {"type": "blob", "modality": "audio", "content": "AAA"}]}]
    case, _ = case_of({"gen_ai.request.model": "m", "gen_ai.input.messages": msgs})
    assert case.messages[0].content[1]["type"] == "blob"
    assert "content parts the chat API may not accept: blob" in case.metadata["warnings"]


def test_recorded_evaluation_events_are_kept():
    ev = Event(genai.EVALUATION_EVENT, 9, {"gen_ai.evaluation.name": "Relevance",
                                          "gen_ai.evaluation.score.value": 4.0,
                                          "gen_ai.evaluation.score.label": "relevant"})
    case, _ = case_of({"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "q"}, [ev])
    assert case.metadata["evaluations"] == [{"name": "Relevance", "score": 4.0, "label": "relevant"}]


def test_pydantic_ai_events_attribute_and_function_tools():
    """Pydantic AI instrumentation version 1 (Logfire's default event_mode "attributes"): the
    message events as one JSON list on the span, the tools in model_request_parameters."""
    events = [{"content": "Be terse.", "role": "system", "gen_ai.system": "openai", "event.name": "gen_ai.system.message"},
              {"content": "Weather in Oslo?", "role": "user", "gen_ai.system": "openai", "event.name": "gen_ai.user.message"},
              {"index": 0, "message": {"role": "assistant", "tool_calls": [
                  {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
               "gen_ai.system": "openai", "event.name": "gen_ai.choice"}]
    params = {"function_tools": [{"name": "weather", "description": "Weather now", "parameters_json_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}, "outer_typed_dict_key": None, "strict": None}],
        "allow_text_output": True, "output_tools": []}
    case, conv = case_of({"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                          "events": json.dumps(events), "model_request_parameters": json.dumps(params)})
    assert conv == "otel-genai-events"
    assert [(m.role, m.content) for m in case.messages] == [("system", "Be terse."), ("user", "Weather in Oslo?")]
    [call] = case.recorded.tool_calls
    assert (call.name, call.arguments, call.id) == ("weather", '{"city": "Oslo"}', "c1")
    assert case.tools[0]["function"]["parameters"] == {"type": "object", "properties": {"city": {"type": "string"}}}
    assert "events" not in case.metadata["attributes"]  # content, not a filter attribute


def test_vercel_cached_tokens_from_provider_metadata():
    """AI SDK 4 records no ai.usage key for cached tokens; providers report them in
    providerMetadata (Anthropic: cacheReadInputTokens, OpenAI: cachedPromptTokens)."""
    base = {"ai.operationId": "ai.generateText.doGenerate", "ai.model.provider": "anthropic.messages",
            "ai.model.id": "claude-x", "ai.prompt.messages": json.dumps([{"role": "user", "content": "hi"}]),
            "ai.response.text": "hello", "ai.usage.promptTokens": 50, "ai.usage.completionTokens": 3}
    case, _ = case_of({**base, "ai.response.providerMetadata": json.dumps(
        {"anthropic": {"cacheReadInputTokens": 40, "cacheCreationInputTokens": 0}})})
    assert case.recorded.cached_tokens == 40 and case.metadata["provider"] == "anthropic"
    case, _ = case_of({**base, "ai.response.providerMetadata": json.dumps({"openai": {"cachedPromptTokens": 7}})})
    assert case.recorded.cached_tokens == 7
    case, _ = case_of(base)
    assert case.recorded.cached_tokens is None
