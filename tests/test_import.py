"""import_traces / load_traces end to end on the fixture files, filters, sampling, cases.jsonl."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from replaygate.errors import ConfigError, InputError
from replaygate.model import Case
from replaygate.sources.parallel import load_traces
from replaygate.sources.traces import (ImportStats, compile_where, import_traces, iter_import,
                                       read_cases_jsonl, sample_cases, write_cases_jsonl)

FIX = Path(__file__).parent / "fixtures" / "traces"


def _by_id(cases):
    return {c.id: c for c in cases}


def test_current_semconv_fixture_from_the_sdk():
    cases, stats = import_traces([FIX / "otel137.jsonl"])
    assert (stats.files, stats.spans_read, stats.llm_calls, stats.cases) == (1, 9, 4, 2)
    assert stats.skipped == Counter({"error span": 1, "no content captured": 1, "unsupported operation": 1})
    assert stats.unsupported_operations == Counter({"embeddings": 1})
    assert stats.context_spans == Counter({"retrieval": 1, "tool": 1, "agent": 1})
    assert stats.models == Counter({"gpt-4o-mini": 1, "gpt-4o": 1})
    c = _by_id(cases)["4bf92f3577b34da60000000000000101:1000000000000104"]
    assert [m.role for m in c.messages] == ["system", "user", "assistant", "tool"]
    assert c.messages[2].tool_calls[0].name == "lookup_order"
    assert c.messages[3].tool_call_id == "call_1"
    assert c.tools[0]["function"]["parameters"]["properties"] == {"order": {"type": "string"}}
    assert c.params == {"model": "gpt-4o-mini", "temperature": 0.2, "top_p": 0.9, "max_tokens": 256,
                        "seed": 42, "stop": ["END"], "frequency_penalty": 0.1, "presence_penalty": 0.0}
    assert c.vars == {"customer": "Alice"}
    # the retrieval span before the call in the same trace gives the context
    assert c.context == ["Refunds are accepted within 30 days.", "Shipping is free over 50 EUR."]
    r = c.recorded
    assert (r.output, r.finish_reason, r.latency_ms, r.input_tokens, r.output_tokens, r.cached_tokens) == \
           ("Yes: your order is within the 30-day window.", "stop", 400.0, 120, 18, 64)
    md = c.metadata
    assert (md["service"], md["provider"], md["convention"], md["span_name"]) == \
           ("support-bot", "openai", "otel-genai-1.37", "chat gpt-4o-mini")
    assert md["attributes"]["gen_ai.response.id"] == "chatcmpl-1"
    assert "gen_ai.input.messages" not in md["attributes"]
    tool_case = _by_id(cases)["4bf92f3577b34da60000000000000106:1000000000000107"]
    assert tool_case.recorded.finish_reason == "tool_call"
    assert tool_case.recorded.tool_calls[0].arguments == '{"location": "Paris"}'
    assert tool_case.metadata["warnings"] == ["tool definition without parameters: get_weather"]


def test_json_and_protobuf_fixtures_give_the_same_cases():
    js, _ = import_traces([FIX / "otel137.jsonl"])
    pb, _ = import_traces([FIX / "otel137.pb"])
    strip = lambda cs: [{**c.to_dict(), "metadata": {**c.metadata, "source": None}} for c in cs]  # noqa: E731
    assert strip(js) == strip(pb)


def test_legacy_events_in_a_separate_logs_file_are_joined(tmp_path):
    alone, stats_alone = import_traces([FIX / "events_traces.jsonl"])
    assert alone == [] and stats_alone.skipped["no content captured"] == 2
    cases, stats = import_traces([FIX / "events_logs.jsonl", FIX / "events_traces.jsonl"])  # logs first
    assert stats.log_records_read == 8 and stats.cases == 1
    (c,) = cases
    assert [(m.role, m.content) for m in c.messages] == [
        ("system", "You are a weather bot."), ("user", "Weather in Paris?"), ("assistant", None),
        ("tool", "rainy, 57F"), ("user", "And in Rome?")]
    assert c.messages[2].tool_calls[0].arguments == '{"location":"Paris"}'
    assert c.recorded.tool_calls[0].arguments == '{"location":"Rome"}'
    assert c.recorded.finish_reason == "tool_call"
    assert stats.conventions == Counter({"otel-genai-events": 1, "otel-genai-events (no content)": 1})


def test_openllmetry_fixture_with_base64_ids_and_enum_names():
    (c,), stats = import_traces([FIX / "openllmetry.json"])
    assert c.id == "8615098c2c72e72330e800ef0b71d8b8:aa00000000000002"
    assert c.metadata["convention"] == "openllmetry" and c.metadata["provider"] == "openai"
    assert [m.role for m in c.messages] == ["system", "user", "assistant", "tool"]
    assert c.messages[3].content == '[{"flight": "TP123", "price": 89}]'
    assert c.tools[0]["function"]["name"] == "search_flights"
    assert c.params["stop"] == ["\n\n"] and c.params["max_tokens"] == 100
    assert (c.recorded.input_tokens, c.recorded.cached_tokens) == (41, 32)
    assert c.metadata["usage"]["total_tokens"] == 53
    assert stats.unsupported_operations == Counter({"embedding": 1})


def test_openinference_fixture_with_context_template_vars_and_raw_request():
    cases, stats = import_traces([FIX / "openinference.json"])
    c, raw = cases
    assert c.metadata["convention"] == "openinference"
    assert c.context == ["All devices carry a two-year warranty.", "Batteries are covered for one year."]
    assert c.vars == {"question": "How long is the warranty?"}
    assert c.metadata["prompt_template"] == "Answer {question} using {context}"
    assert c.params == {"model": "gpt-4o", "temperature": 0.1, "max_tokens": 300, "seed": 7}
    assert c.metadata["response_model"] == "gpt-4o-2024-08-06"
    assert c.recorded.cost_usd == 0.0012 and c.recorded.cached_tokens == 128
    assert raw.metadata["convention"] == "openinference-raw"
    assert raw.recorded.output == "Hi!" and raw.params["model"] == "gpt-4o-mini"
    assert stats.context_spans == Counter({"agent": 1, "retrieval": 1})


def test_v126_span_events_and_legacy_span_events():
    cases, _ = import_traces([FIX / "otel126_and_span_events.jsonl"])
    a, b, c = cases
    assert a.metadata["convention"] == "otel-genai-1.26"
    assert [m.content for m in a.messages] == ["Be brief.", "Tell me a joke"]
    assert a.recorded.finish_reason == "stop"  # from the string '["STOP"]'
    assert (b.messages[0].content, b.recorded.output) == ("Once upon a time", "there was a trace.")
    assert c.metadata["convention"] == "otel-genai-events" and c.recorded.output == "4"


def test_folder_import_and_summary_table():
    cases, stats = import_traces([FIX])
    assert stats.files == 7
    table = stats.render()
    for label in ("spans read", "LLM calls found", "skipped: error span",
                  "skipped: unsupported operation (embedding 1, embeddings 2)", "time range", "gpt-4o-mini"):
        assert label in table
    # otel137.jsonl and otel137.pb hold the same spans: the second copy is counted, not imported
    assert stats.skipped["duplicate span"] == 4
    assert stats.to_dict()["cases"] == len(cases) == 9
    assert len({c.id for c in cases}) == 9


def test_streaming_import_gives_the_same_cases_and_stats():
    cases, stats = import_traces([FIX])
    streamed_stats = ImportStats()
    streamed = list(iter_import([FIX], streamed_stats))
    assert [c.to_dict() for c in streamed] == [c.to_dict() for c in cases]
    assert streamed_stats.to_dict() == stats.to_dict()
    # the legacy events file is joined even though it is read before and after its spans
    assert any(c.metadata["convention"] == "otel-genai-events" and c.metadata["service"] == "legacy-bot"
               for c in streamed)


def test_include_errors_keeps_error_spans_with_recorded_error():
    cases, stats = import_traces([FIX / "otel137.jsonl"], include_errors=True)
    (err,) = [c for c in cases if c.recorded.error]
    assert err.recorded.error.type == "openai.RateLimitError"
    assert err.recorded.error.message == "rate limited"
    assert "error span" not in stats.skipped


# ---- where / sample -----------------------------------------------------------------------

def test_where_filters():
    everything = load_traces([FIX])
    assert {c.metadata["service"] for c in load_traces([FIX], where={"service": "rag-app"})} == {"rag-app"}
    got = load_traces([FIX], where={"model": "gpt-4o-mini", "operation": "chat"})
    assert got and all(c.params["model"] == "gpt-4o-mini" for c in got)
    # response model also matches
    assert len(load_traces([FIX], where={"model": "gpt-3.5-turbo-0125"})) == 1
    assert len(load_traces([FIX], where={"model": {"regex": "^gpt-4o"}})) == \
           sum(1 for c in everything if c.params["model"].startswith("gpt-4o"))
    prod = load_traces([FIX], where={"attributes": {"deployment.environment": "prod"}})  # resource attr
    assert prod and all(c.metadata["resource"]["deployment.environment"] == "prod" for c in prod)
    temp = load_traces([FIX], where={"attributes": {"gen_ai.request.temperature": 0}})  # 0 == 0.0
    assert [c.metadata["service"] for c in temp] == ["legacy-bot"]
    assert load_traces([FIX], where={"provider": ["anthropic", "nobody"]}) == []


def test_config_schema_accepts_the_where_shape():
    import jsonschema

    from replaygate import __file__ as pkg
    schema = json.loads((Path(pkg).parent / "schemas" / "config.schema.json").read_text())
    where_schema = {"$defs": schema["$defs"], **schema["$defs"]["datasetEntry"]["properties"]["where"]}
    good = {"operation": "chat", "model": {"regex": "^gpt"}, "service": ["a", "b"], "provider": "openai",
            "attributes": {"deployment.environment": "prod", "gen_ai.request.temperature": 0}}
    jsonschema.validate(good, where_schema)
    compile_where(good)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": {"glob": "x"}}, where_schema)


@pytest.mark.parametrize("where, field", [
    ({"colour": "red"}, "where.colour"),
    ({"model": {"regex": "("}}, "where.model"),
    ({"model": {"glob": "x"}}, "where.model"),
    ({"attributes": ["x"]}, "where.attributes"),
])
def test_where_errors_name_the_field(where, field):
    with pytest.raises(ConfigError) as ei:
        compile_where(where)
    assert ei.value.field == field


def _fake_cases(counts: dict[str, int]) -> list[Case]:
    return [Case(id=f"{m}-{i}", params={"model": m}) for m, n in counts.items() for i in range(n)]


def test_sample_is_seeded_stratified_and_ordered():
    cases = _fake_cases({"a": 80, "b": 15, "c": 5})
    s1 = sample_cases(cases, 20, seed=7)
    assert [c.id for c in s1] == [c.id for c in sample_cases(cases, 20, seed=7)]
    assert [c.id for c in s1] != [c.id for c in sample_cases(cases, 20, seed=8)]
    assert Counter(c.params["model"] for c in s1) == Counter({"a": 16, "b": 3, "c": 1})
    order = [cases.index(c) for c in s1]
    assert order == sorted(order)
    # a rare model keeps a seat
    rare = sample_cases(_fake_cases({"a": 999, "z": 1}), 2, seed=0)
    assert Counter(c.params["model"] for c in rare) == Counter({"a": 1, "z": 1})
    assert len(sample_cases(cases, 500, seed=1)) == 100


def test_sample_simulation_is_unbiased_within_a_stratum():
    cases = _fake_cases({"a": 10})
    hits = Counter(c.id for seed in range(2000) for c in sample_cases(cases, 3, seed=seed))
    # each case expected 600 times; a 5-sigma band (sd = sqrt(2000*.3*.7) ~ 20.5)
    assert all(abs(n - 600) < 103 for n in hits.values()) and len(hits) == 10


def test_sample_config_validation():
    with pytest.raises(ConfigError, match="positive") as ei:
        load_traces([FIX], sample={"n": 0})
    assert ei.value.field == "sample.n"
    with pytest.raises(ConfigError):
        load_traces([FIX], sample={"n": 3, "sed": 1})
    got = load_traces([FIX], sample={"n": 4, "seed": 3})
    assert len(got) == 4 and [c.id for c in got] == [c.id for c in load_traces([FIX], sample={"n": 4, "seed": 3})]


# ---- cases.jsonl --------------------------------------------------------------------------

def test_cases_jsonl_round_trip_and_bad_line(tmp_path):
    cases, _ = import_traces([FIX])
    out = tmp_path / "cases.jsonl"
    assert write_cases_jsonl(cases, out) == len(cases)
    back = read_cases_jsonl(out)
    assert [c.to_dict() for c in back] == [c.to_dict() for c in cases]
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:2] + ["{oops"] + lines[2:]) + "\n")
    with pytest.raises(InputError) as ei:
        read_cases_jsonl(out)
    assert (ei.value.file, ei.value.line) == (str(out), 3)
    out.write_text(json.dumps({"no": "id"}) + "\n")
    with pytest.raises(InputError, match="id"):
        read_cases_jsonl(out)


def test_cases_jsonl_lines_are_exactly_the_case_dicts(tmp_path):
    # write_cases_jsonl encodes dataclasses itself (no asdict copy): same text as to_dict()
    cases, _ = import_traces([FIX], include_errors=True)
    out = tmp_path / "cases.jsonl"
    write_cases_jsonl(cases, out)
    expected = [json.dumps(c.to_dict(), ensure_ascii=False, separators=(",", ":")) for c in cases]
    assert out.read_text(encoding="utf-8").splitlines() == expected


def test_import_restores_the_garbage_collector_state(tmp_path):
    import gc
    assert gc.isenabled()
    import_traces([FIX])
    assert gc.isenabled()
    gc.disable()
    try:
        import_traces([FIX])
        assert not gc.isenabled()
    finally:
        gc.enable()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")  # nothing decodable (a bad line among good ones is skipped)
    with pytest.raises(InputError):
        import_traces([bad])
    assert gc.isenabled()


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        import_traces([tmp_path / "missing.jsonl"])
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="empty"):
        import_traces([tmp_path])
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    with pytest.raises(InputError, match="no trace files"):
        import_traces([tmp_path])


def test_bad_spans_are_counted_while_good_ones_import(tmp_path):
    def sp(span_id, messages, **extra):
        attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                 {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                 {"key": "gen_ai.input.messages", "value": messages}]
        return {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat m",
                "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": attrs, **extra}
    good = {"stringValue": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])}
    doc = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [
        sp("00000000000000a1", good),
        sp("00000000000000a2", {"doubleValue": 5.0}),  # messages of the wrong type
        sp("00000000000000a3", good, kind="SPAN_KIND_NONSENSE"),  # bad enum
        sp("zz", good),  # bad id
        sp("00000000000000a4", good)]}]}]}
    f = tmp_path / "mixed.json"
    f.write_text(json.dumps(doc))
    cases, stats = import_traces([f])
    assert [c.id.split(":")[1] for c in cases] == ["00000000000000a1", "00000000000000a4"]
    assert stats.skipped == Counter({"malformed span": 2, "malformed content": 1})
    assert stats.spans_read == 5 and stats.llm_calls == 3


def test_iter_import_memory_does_not_grow_with_the_cases(tmp_path):
    import tracemalloc

    def line(i):
        attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                 {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                 {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps(
                     [{"role": "user", "parts": [{"type": "text", "content": f"{i} " + "x" * 40000}]}])}}]
        spans = [{"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "chat m",
                  "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": attrs}]
        return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]})

    f = tmp_path / "many.jsonl"
    f.write_text("\n".join(line(i) for i in range(200)) + "\n")

    def peak(fn):
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    stats = ImportStats()
    streamed = peak(lambda: sum(1 for _ in iter_import([f], stats)))
    listed = peak(lambda: import_traces([f]))
    assert stats.cases == 200
    assert listed > 8_000_000  # ~40 KB of content per case, all held
    assert streamed < listed / 3  # a read buffer and one case
