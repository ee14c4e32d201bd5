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
from replaygate.sources.traces import (ImportStats, import_traces, iter_import, read_cases_jsonl,
                                       write_cases_jsonl)

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
         usage=True, embeddings="embeddings", call_sent=True, stream_usage=True):
    """What the import must give for one capture; the keyword arguments are its gaps."""
    return dict(convention=convention, provider=provider, params=params, tools=tools,
                tool_call_out=tool_call_out, cached=cached, ttft=ttft, first_model=first_model,
                stream_param=stream_param, finish=finish, usage=usage,
                skipped=skipped if skipped is not None else {"error span": 1, "unsupported operation": 1},
                embeddings=embeddings, call_sent=call_sent, stream_usage=stream_usage and usage)


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
    # SK's model diagnostics: messages as JSON text in log records; its settings map knows neither
    # stop (it looks for stop_sequences) nor presence_penalty; no tool definitions, no cached
    # tokens, no embeddings span; finish reasons as str() of its enum ("FinishReason.STOP")
    "semantic-kernel": spec("otel-genai-events", params=without("stop", "presence_penalty"), tools=None,
                            cached=None, skipped={"error span": 1}),
    # OpenLit 1.45 writes v1.37 attributes (not the role lines of 1.34); it drops the assistant
    # message that has only tool calls and records no tool definitions; its
    # gen_ai.server.time_to_first_token is not taken (see test_openlit_fill_ins_...)
    "openlit": spec("otel-genai-1.37", tools=None, stream_param=True, call_sent=False),
    # OpenLit 1.34 (v1.26 span events, "role: content" lines): records no failed call (its span
    # has no attributes), counts a stream's tokens itself (17 and 14 for 5 and 5), and puts the
    # requested tool call in gen_ai.tool.* beside an empty completion (read from there)
    "openlit-1.34": spec("otel-genai-1.26", tools=None, cached=None, stream_param=True,
                         stream_usage=False, skipped={"unsupported operation": 1}),
}


def _import(name: str):
    cases, stats = import_traces([CAPTURES / f"{name}.jsonl"])
    return sorted(cases, key=lambda c: c.metadata["start_time_unix_nano"]), stats


def _args(text: str):
    return json.loads(text)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_imports_exactly(name):
    assert_cases_of_the_scenario(*_import(name), EXPECTED[name])


def assert_cases_of_the_scenario(cases, stats, exp):
    """The four chat calls every driver makes (tests/corpus/README.md), as ``exp`` says the
    emitter records them; ``cases`` in start-time order."""
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
    if exp["call_sent"]:
        user, assistant, tool = tool_result.messages
        assert assistant.role == "assistant" and assistant.content in (None, "")
        [sent] = assistant.tool_calls
        assert (sent.name, _args(sent.arguments), sent.id) == ("get_weather", CALL_ARGS, "call_c80a6b5cbcb6")
        assert "warnings" not in tool_result.metadata
    else:  # the emitter dropped the assistant message: the case says a replay will be refused
        user, tool = tool_result.messages
        assert tool_result.metadata["warnings"] == [
            "tool result without the assistant tool call before it (a chat API refuses it on replay): "
            "call_c80a6b5cbcb6"]
    assert (user.role, user.content) == ("user", WEATHER_Q)
    assert (tool.role, tool.tool_call_id, json.loads(tool.content)) == ("tool", "call_c80a6b5cbcb6", {"temp_c": 21})
    assert tool_result.recorded.output == "It is sunny in Paris."
    # parameters the app did not set are not recorded as set (OpenLit fills in defaults)
    assert [sorted(set(c.params) - {"model", "stream"}) for c in (tool_call, tool_result, stream)] == [[]] * 3

    # 4. the stream: usage with cached tokens, time to the first chunk
    assert [(m.role, m.content) for m in stream.messages] == [("user", "Stream these five words back")]
    assert stream.recorded.output == "Stream these five words back"
    assert stream.params.get("stream") == exp["stream_param"]
    assert stream.recorded.cached_tokens == exp["cached"]
    if exp["stream_usage"]:
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


CORPUS_FILES = sorted(CAPTURES.glob("*.jsonl")) + sorted((Path(__file__).parent / "corpus" / "shaped").glob("*.jsonl"))


@pytest.mark.parametrize("keep", [False, True], ids=["drop-nested", "keep-nested"])
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_streamed_pooled_and_in_memory_imports_give_the_same_cases(path, keep, tmp_path):
    """iter_import (two passes, cases yielded as read), import_traces (in memory) and
    import_to_jsonl (replaygate import) drop the same nested duplicates, in the same order."""
    listed, listed_stats = import_traces([path], keep_nested_duplicates=keep)
    stats = ImportStats()
    streamed = list(iter_import([path], stats, keep_nested_duplicates=keep))
    assert [c.to_dict() for c in streamed] == [c.to_dict() for c in listed]
    assert stats.to_dict() == listed_stats.to_dict()
    ref, out = tmp_path / "streamed.jsonl", tmp_path / "pooled.jsonl"
    write_cases_jsonl(streamed, ref)
    pooled_stats, n = import_to_jsonl([path], out, workers=1, keep_nested_duplicates=keep)
    assert out.read_bytes() == ref.read_bytes() and n == len(listed)
    assert pooled_stats.to_dict() == listed_stats.to_dict()


def test_streamed_import_drops_an_outer_copy_read_before_its_inner_one(tmp_path):
    """Exporters send a span when it ends, so the inner copy usually comes first; in the other
    order the streamed import holds the outer case until the inner one is read (and the cases
    after it wait behind it: the order stays the input's)."""
    lines = (CAPTURES / "stacked-openllmetry-openinference.jsonl").read_text().splitlines()
    reversed_file = tmp_path / "reversed.jsonl"
    reversed_file.write_text("\n".join(reversed(lines)) + "\n")
    listed, listed_stats = import_traces([reversed_file])
    stats = ImportStats()
    streamed = list(iter_import([reversed_file], stats))
    assert len(streamed) == 4 and stats.skipped[SKIP_NESTED_DUPLICATE] == 4
    assert [c.id for c in streamed] == [c.id for c in listed]
    assert stats.to_dict() == listed_stats.to_dict()
    kept = {c.metadata["span_id"] for c in import_traces([CAPTURES / "stacked-openllmetry-openinference.jsonl"])[0]}
    assert {c.metadata["span_id"] for c in streamed} == kept  # the inner copies, as in file order


def test_litellm_async_call_types_are_chat_calls():
    """LiteLLM's callback writes its call type (acompletion) as gen_ai.operation.name."""
    cases, _ = _import("litellm")
    ops = [c.metadata["attributes"]["gen_ai.operation.name"] for c in cases]
    assert ops == ["acompletion", "chat", "chat", "acompletion"]
    assert [c.metadata["operation"] for c in cases] == ["chat"] * 4


def test_semantic_kernel_finish_reasons_are_its_enum_names_normalised():
    cases, _ = _import("semantic-kernel")
    assert [c.metadata["attributes"]["gen_ai.response.finish_reason"] for c in cases] == [
        "FinishReason.STOP", "FinishReason.TOOL_CALLS", "FinishReason.STOP", "FinishReason.STOP"]
    assert [c.recorded.finish_reason for c in cases] == ["stop", "tool_call", "stop", "stop"]
    assert {c.metadata["attributes"]["gen_ai.operation.name"] for c in cases} == {"chat"}


def test_openlit_fill_ins_are_not_taken_as_recorded():
    """OpenLit records seed 0, temperature 1.0, top_p 1.0 and penalties 0.0 for what the app did
    not set, a cost of 0 for a model missing from its price list, and a time to first token
    measured from when the response headers came (12-20 ms here, for a first chunk that the fake
    server sends 40 ms after the request)."""
    cases, _ = _import("openlit")
    chat, tool_call, _, stream = cases
    assert tool_call.metadata["attributes"]["gen_ai.request.seed"] == 0
    assert tool_call.metadata["attributes"]["gen_ai.request.temperature"] == 1.0
    assert {c.metadata["attributes"]["gen_ai.usage.cost"] for c in cases} == {0}
    assert {c.recorded.cost_usd for c in cases} == {None}
    assert chat.params["seed"] == 7 and chat.params["temperature"] == 0.2  # what was set is kept
    assert stream.metadata["attributes"]["gen_ai.server.time_to_first_token"] < 0.040
    assert stream.recorded.ttft_ms is None


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


def test_openlit_134_unreadable_message_is_the_repr_of_the_whole_conversation():
    """OpenLit 1.34 writes an assistant message without text as "user: " + the Python repr of
    every message sent; the conversation is read from that repr (tool call and id included)."""
    raw = (CAPTURES / "openlit-1.34.jsonl").read_text()
    assert "\\nuser: [{'role': 'user', 'content': 'Weather in Paris?'}, {'role': 'assistant'" in raw
    cases, _ = _import("openlit-1.34")
    assert [m.role for m in cases[2].messages] == ["user", "assistant", "tool"]  # not user, user, tool
    assert cases[1].metadata["attributes"]["gen_ai.request.max_tokens"] == -1  # its "not set"
    assert cases[1].metadata["attributes"]["gen_ai.request.temperature"] == 1.0
    assert (cases[3].recorded.input_tokens, cases[3].recorded.output_tokens) == (17, 14)


def test_openlit_role_lines_become_messages_and_unset_max_tokens_is_not_sent():
    """Multi-line messages and an assistant turn (the capture has neither)."""
    [case], _ = _shaped("openlit")
    assert [(m.role, m.content) for m in case.messages] == [
        ("system", "You are a poet."), ("user", "Write two lines about rain.\nKeep it short."),
        ("assistant", "Grey threads fall."), ("user", "Now about snow.")]
    assert case.recorded.output == "White hush settles;\nthe street forgets its name."
    assert "max_tokens" not in case.params  # recorded as -1: OpenLit's "not set"
    assert case.params == {"model": "gpt-4o-mini", "temperature": 0.7, "stream": False}  # top_p 1.0: not set


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


# ---------------------------------------------------------------------------------------------
# a real Node exporter into `replaygate record` (the packages of tests/corpus/node, installed by
# .ci/run with npm ci; the committed captures keep the tests above independent of node)

@pytest.mark.parametrize("emitter", ["vercel-ai-5", "vercel-ai-7"])
def test_node_exporter_into_replaygate_record_then_import(emitter, llm_server, tmp_path):
    """The Vercel AI SDK's calls go to the fake server; its OTel JS exporter (protobuf, chunked
    bodies) sends the spans to a running `replaygate record`; `replaygate import` of the recorded
    file gives the cases the committed capture gives."""
    import signal
    import subprocess
    import sys

    from corpus.capture import node_command, node_missing

    why = node_missing()
    if why:
        pytest.skip(why)
    recorded = tmp_path / "recorded.jsonl"
    rec = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "record", "--listen", "127.0.0.1:0",
                            "-o", str(recorded)], stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", rec.stderr.readline()).group(1))
        node = subprocess.run(node_command(emitter, llm_server.api_base, f"http://127.0.0.1:{port}"),
                              capture_output=True, text=True, timeout=180)
        assert node.returncode == 0, node.stderr[-2000:]
    finally:
        rec.send_signal(signal.SIGTERM)
        _, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    # every export request taken (the JS exporter sends chunked bodies), and the summary on SIGTERM
    stopped = re.search(r"^stopped: (\d+) requests answered 200: (\d+) spans, 0 log records recorded -> ",
                        err, re.M)
    assert stopped and int(stopped.group(2)) >= 5, err
    from click.testing import CliRunner

    from replaygate.cli import cli
    r = CliRunner().invoke(cli, ["import", str(recorded), "-o", str(tmp_path / "cases.jsonl")])
    assert r.exit_code == 0, r.output
    cases = sorted(read_cases_jsonl(tmp_path / "cases.jsonl"), key=lambda c: c.metadata["start_time_unix_nano"])
    assert_cases_of_the_scenario(cases, import_traces([recorded])[1], EXPECTED[emitter])
    # what was recorded live is what the committed capture holds, call for call
    committed, _ = _import(emitter)
    assert [(c.messages, c.tools, c.params, c.recorded.output, c.recorded.tool_calls) for c in cases] == [
        (c.messages, c.tools, c.params, c.recorded.output, c.recorded.tool_calls) for c in committed]
