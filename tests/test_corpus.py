"""Every capture of the real-emitter corpus (tests/corpus/, made by real instrumentation packages
against the fake server) imports to exactly the cases its calls made.

The scenario is the same for every emitter (tests/corpus/README.md): chat with parameters, a tool
call, the tool's result sent back, a stream with cached tokens, an embedding, an error. What an
emitter does not record is listed per emitter below (``LOSSY``): those are the emitter's gaps,
asserted so that a new version that records more shows up here.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from replaygate.sources.nested import SKIP_NESTED_DUPLICATE
from replaygate.sources.parallel import import_to_jsonl
from replaygate.sources.traces import import_traces, read_cases_jsonl

CAPTURES = Path(__file__).parent / "corpus" / "captures"

SYSTEM = "You are a terse assistant."
QUESTION = "What is the capital of France?"
WEATHER_Q = "Weather in Paris?"
CALL_ARGS = {"query": WEATHER_Q}
PY_TOOL = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
JS_TOOL = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"],
           "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}
ALL_PARAMS = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "seed": 7, "stop": ["END"],
              "presence_penalty": 0.1, "frequency_penalty": 0.2}


def spec(convention, provider="openai", *, params=ALL_PARAMS, tools=PY_TOOL, tool_call_out=True,
         cached=2, ttft=False, first_model="echo", stream_param=None, skipped=None, finish=True,
         usage=True, embeddings="embeddings"):
    """What the import must give for one capture; the keyword arguments are its gaps."""
    return dict(convention=convention, provider=provider, params=params, tools=tools,
                tool_call_out=tool_call_out, cached=cached, ttft=ttft, first_model=first_model,
                stream_param=stream_param, finish=finish, usage=usage,
                skipped=skipped if skipped is not None else {"error span": 1, "unsupported operation": 1},
                embeddings=embeddings)


def without(*keys):
    return {k: v for k, v in ALL_PARAMS.items() if k not in keys}


EXPECTED = {
    # the emitter records neither tool definitions, cached tokens nor TTFT; 2.1b0 no stop
    # sequences and no embeddings span
    "openai-v2-events": spec("otel-genai-events", params=without("stop"), tools=None, cached=None,
                             skipped={"error span": 1}),
    "openai-v2-latest": spec("otel-genai-1.37", tools=None, cached=None),
    "openinference": spec("openinference", stream_param=True),
    "openllmetry": spec("otel-genai-1.37", params=without("seed", "stop"), stream_param=True),
    # the wrapper drops stop, finish reasons of unstreamed calls and the provider; TTFT comes from
    # completion_start_time
    "langfuse": spec("langfuse", provider=None, params=without("stop"), ttft=True, finish=False),
    # LiteLLM keeps seed, stop and the penalties only on its raw_gen_ai_request child span (as a
    # Python repr), and the tool calls of the answer nowhere (output parts are empty)
    "litellm": spec("otel-genai-1.37", params=without("seed", "stop", "presence_penalty",
                                                      "frequency_penalty"),
                    tool_call_out=False, cached=None, stream_param=True, embeddings="embedding"),
    # v4 records no cached tokens; Vercel's seed is ai.settings.seed
    "vercel-ai-4": spec("vercel-ai", tools=JS_TOOL, cached=None, ttft=True, first_model="echo@cached=3",
                        skipped={"error span": 1, "unsupported operation": 2}),
    "vercel-ai-5": spec("vercel-ai", tools=JS_TOOL, ttft=True, first_model="echo@cached=3",
                        skipped={"error span": 1, "unsupported operation": 2}),
    "vercel-ai-6": spec("vercel-ai", tools=JS_TOOL, ttft=True, first_model="echo@cached=3",
                        skipped={"error span": 1, "unsupported operation": 2}),
    # the OpenTelemetry integration puts the seed on the agent span only
    "vercel-ai-7": spec("otel-genai-1.37", params=without("seed"), tools=JS_TOOL, ttft=True,
                        first_model="echo@cached=3",
                        skipped={"error span": 1, "unsupported operation": 2}),
    "vercel-ai-7-legacy": spec("vercel-ai", tools=JS_TOOL, ttft=True, first_model="echo@cached=3",
                               skipped={"error span": 1, "unsupported operation": 2}),
    # the JS instrumentation records no span for the failed call and no usage for the stream
    "openinference-js": spec("openinference", stream_param=True, cached=None, usage=False,
                             skipped={"unsupported operation": 1}),
}


def _import(name: str):
    cases, stats = import_traces([CAPTURES / f"{name}.jsonl"])
    return sorted(cases, key=lambda c: c.metadata["start_time_unix_nano"]), stats


def _args(text: str):
    return json.loads(text)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_imports_exactly(name):
    exp = EXPECTED[name]
    cases, stats = _import(name)
    assert len(cases) == 4, [c.params.get("model") for c in cases]
    assert {k: v for k, v in stats.skipped.items()} == exp["skipped"]
    assert "agent_step" not in stats.unsupported_operations  # Vercel 7's step spans are context
    for c in cases:
        assert c.metadata["convention"] == exp["convention"]
        assert c.metadata.get("provider") == exp["provider"]
    chat, tool_call, tool_result, stream = cases

    # 1. chat with a system prompt and the parameters
    assert [(m.role, m.content) for m in chat.messages] == [("system", SYSTEM), ("user", QUESTION)]
    params = {k: v for k, v in chat.params.items() if k not in ("model", "stream")}
    assert chat.params["model"] == exp["first_model"]
    assert params == exp["params"]
    assert chat.recorded.output == QUESTION
    assert chat.recorded.finish_reason == ("stop" if exp["finish"] else None)
    if exp["usage"]:
        assert (chat.recorded.input_tokens, chat.recorded.output_tokens) == (11, 6)

    # 2. the tool call: tools offered, the call and its arguments
    assert [(m.role, m.content) for m in tool_call.messages] == [("user", WEATHER_Q)]
    if exp["tools"] is None:
        assert tool_call.tools == []
    else:
        assert [t["function"]["name"] for t in tool_call.tools] == ["get_weather"]
        assert tool_call.tools[0]["function"]["parameters"] == exp["tools"]
        assert tool_call.tools[0]["function"]["description"] == "Current weather for a city"
        assert "inputSchema" not in tool_call.tools[0]["function"]
    if exp["tool_call_out"]:
        [call] = tool_call.recorded.tool_calls
        assert (call.name, _args(call.arguments), call.id) == ("get_weather", CALL_ARGS, "call_c80a6b5cbcb6")
    else:
        assert tool_call.recorded.tool_calls == []
    if exp["finish"]:
        assert tool_call.recorded.finish_reason == "tool_call"

    # 3. the tool's result sent back: the assistant's call and the tool message joined by id
    user, assistant, tool = tool_result.messages
    assert (user.role, user.content) == ("user", WEATHER_Q)
    assert assistant.role == "assistant" and assistant.content in (None, "")
    [sent] = assistant.tool_calls
    assert (sent.name, _args(sent.arguments), sent.id) == ("get_weather", CALL_ARGS, "call_c80a6b5cbcb6")
    assert (tool.role, tool.tool_call_id, json.loads(tool.content)) == ("tool", "call_c80a6b5cbcb6", {"temp_c": 21})
    assert tool_result.recorded.output == "It is sunny in Paris."

    # 4. the stream: usage with cached tokens, time to the first chunk
    assert [(m.role, m.content) for m in stream.messages] == [("user", "Stream these five words back")]
    assert stream.recorded.output == "Stream these five words back"
    assert stream.params.get("stream") == exp["stream_param"]
    assert stream.recorded.cached_tokens == exp["cached"]
    if exp["usage"]:
        assert (stream.recorded.input_tokens, stream.recorded.output_tokens) == (5, 5)
    if exp["ttft"]:
        # the fake server waits 40 ms before the first chunk; the span started before the request
        assert 40 <= stream.recorded.ttft_ms < stream.recorded.latency_ms
    else:
        assert stream.recorded.ttft_ms is None


def test_the_same_call_recorded_by_two_stacked_instrumentations_becomes_one_case(tmp_path):
    """Both instrumentations record every call, one span inside the other: the inner span is
    kept, the outer counted as dropped; --keep-nested-duplicates keeps both."""
    path = CAPTURES / "stacked-openllmetry-openinference.jsonl"
    cases, stats = import_traces([path])
    assert len(cases) == 4 and stats.skipped[SKIP_NESTED_DUPLICATE] == 4
    assert stats.cases == 4 and stats.skipped["error span"] == 2
    assert stats.llm_calls == 4 + 4 + 2  # kept + nested duplicates + errors (embeddings are no LLM call)
    # the innermost span of each pair is the one kept: its parent is the dropped one
    kept = {c.metadata["span_id"] for c in cases}
    every, _ = import_traces([path], keep_nested_duplicates=True)
    assert len(every) == 8
    dropped = [c for c in every if c.metadata["span_id"] not in kept]
    assert all(any(k.metadata["parent_span_id"] == d.metadata["span_id"] for k in cases) for d in dropped)
    # the pooled import (replaygate import, traces: entries) drops the same ones
    out = tmp_path / "cases.jsonl"
    pooled_stats, n = import_to_jsonl([path], out)
    assert n == 4 and {c.metadata["span_id"] for c in read_cases_jsonl(out)} == kept
    assert pooled_stats.skipped[SKIP_NESTED_DUPLICATE] == 4
    _, n_all = import_to_jsonl([path], out, keep_nested_duplicates=True)
    assert n_all == 8


def test_litellm_async_call_types_are_chat_calls():
    """LiteLLM's callback writes its call type (acompletion) as gen_ai.operation.name."""
    cases, _ = _import("litellm")
    ops = [c.metadata["attributes"]["gen_ai.operation.name"] for c in cases]
    assert ops == ["acompletion", "chat", "chat", "acompletion"]
    assert [c.metadata["operation"] for c in cases] == ["chat"] * 4


def test_vercel_provider_names_the_provider_not_its_api():
    for name in ("vercel-ai-4", "vercel-ai-5", "vercel-ai-6", "vercel-ai-7-legacy"):
        cases, _ = _import(name)
        assert {c.metadata["attributes"]["ai.model.provider"] for c in cases} == {"openai.chat"}
        assert {c.metadata["provider"] for c in cases} == {"openai"}


# ---------------------------------------------------------------------------------------------
# shapes of emitters without a capture, reconstructed from their code (tests/corpus/shaped/)

SHAPED = Path(__file__).parent / "corpus" / "shaped"


def _shaped(name: str):
    cases, stats = import_traces([SHAPED / f"{name}.jsonl"])
    return sorted(cases, key=lambda c: c.metadata["start_time_unix_nano"]), stats


def test_semantic_kernel_log_bodies_are_json_text_and_its_activity_names_are_chat_calls():
    (plain, streamed), stats = _shaped("semantic-kernel")
    assert stats.llm_calls == 2 and not stats.skipped
    assert [c.metadata["operation"] for c in (plain, streamed)] == ["chat", "chat"]
    assert [(m.role, m.content) for m in plain.messages] == [
        ("system", "Answer in one sentence."), ("user", "Why is the sky blue?")]
    assert plain.recorded.output == "Rayleigh scattering favours short wavelengths."
    assert plain.params == {"model": "gpt-4o-mini", "temperature": 0.3, "max_tokens": 200}
    # gen_ai.choice whose message is itself JSON text
    assert [(m.role, m.content) for m in streamed.messages] == [("user", "And at sunset?")]
    assert streamed.recorded.output == "The light crosses more air, so red remains."
    assert streamed.recorded.finish_reason == "stop"


def test_openlit_role_lines_become_messages_and_unset_max_tokens_is_not_sent():
    [case], _ = _shaped("openlit")
    assert [(m.role, m.content) for m in case.messages] == [
        ("system", "You are a poet."), ("user", "Write two lines about rain.\nKeep it short."),
        ("assistant", "Grey threads fall."), ("user", "Now about snow.")]
    assert case.recorded.output == "White hush settles;\nthe street forgets its name."
    assert "max_tokens" not in case.params  # recorded as -1: OpenLit's "not set"
    assert case.params == {"model": "gpt-4o-mini", "temperature": 0.7, "top_p": 1.0}


def test_openinference_input_value_message_list_and_completion_text_object():
    (chat, completion), stats = _shaped("openinference-input-value")
    assert "no content captured" not in stats.skipped
    assert [(m.role, m.content) for m in chat.messages] == [("system", "Be brief."), ("user", "Capital of Peru?")]
    assert chat.recorded.output == "Lima."
    assert completion.recorded.output == "Hi there!"  # not the raw {"text": ...} JSON
    assert completion.recorded.finish_reason == "stop"


def test_import_summary_counts_the_cases_written_after_where_and_sample(tmp_path):
    from click.testing import CliRunner

    from replaygate.cli import cli
    path = str(CAPTURES / "openinference.jsonl")
    r = CliRunner().invoke(cli, ["import", path, "-o", str(tmp_path / "c.jsonl"),
                                 "--where", '{"model": "echo"}'])
    assert r.exit_code == 0, r.output
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in r.output.splitlines()
                if re.match(r"^(cases|skipped|LLM)", line))
    assert rows["cases extracted"] == "4" and rows["cases written (after --where/--sample)"] == "1"
    r = CliRunner().invoke(cli, ["import", path, "-o", str(tmp_path / "d.jsonl"), "--sample", "2"])
    assert r.exit_code == 0, r.output
    assert re.search(r"cases written \(after --where/--sample\)\s+2", r.output)
    r = CliRunner().invoke(cli, ["import", path, "-o", str(tmp_path / "e.jsonl")])
    assert re.search(r"^cases written\s+4$", r.output, re.M) and "cases extracted" not in r.output


def test_stacked_capture_keep_flag_on_the_command_line(tmp_path):
    from click.testing import CliRunner

    from replaygate.cli import cli
    path = str(CAPTURES / "stacked-openllmetry-openinference.jsonl")
    r = CliRunner().invoke(cli, ["import", path, "-o", str(tmp_path / "a.jsonl")])
    assert r.exit_code == 0 and re.search(r"skipped: nested duplicate .*\s4$", r.output, re.M), r.output
    r = CliRunner().invoke(cli, ["import", path, "-o", str(tmp_path / "b.jsonl"), "--keep-nested-duplicates"])
    assert r.exit_code == 0 and "nested duplicate" not in r.output
    assert len(read_cases_jsonl(tmp_path / "b.jsonl")) == 8


def test_traces_entry_keep_nested_duplicates_key(tmp_path):
    import yaml

    from replaygate.config import load_config
    from replaygate.sources import load_dataset
    path = CAPTURES / "stacked-openllmetry-openinference.jsonl"
    assert len(load_dataset([{"traces": [str(path)]}])) == 4
    assert len(load_dataset([{"traces": [str(path)], "keep_nested_duplicates": True}])) == 8
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(yaml.safe_dump({
        "version": 1, "dataset": [{"traces": str(path), "keep_nested_duplicates": True}],
        "variants": {"baseline": {"recorded": True}, "candidate": {"model": "openai/echo"}},
        "scorers": [{"name": "same", "type": "equals"}]}))
    assert load_config(cfg).data["dataset"][0]["keep_nested_duplicates"] is True
