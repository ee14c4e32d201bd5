"""OTLP decoding: formats, id handling, bounds and malformed input."""
from __future__ import annotations

import base64
import gzip
import json
import struct
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from replaygate.errors import InputError
from replaygate.sources.otlp import (DecodeCounts, Limits, LogRecordEvent, SpanRecord, expand_paths,
                                     json_to_proto, normalize_id, proto_to_json, read_file)

FIX = Path(__file__).parent / "fixtures" / "traces"


def _spans(path, counts=None, limits=Limits()):
    return [r for r in read_file(path, counts, limits) if isinstance(r, SpanRecord)]


def _key(r: SpanRecord):
    return (r.trace_id, r.span_id, r.parent_span_id, r.name, r.kind, r.start_ns, r.end_ns,
            r.attributes, [(e.name, e.time_ns, e.attributes) for e in r.events], r.status_code,
            r.status_message, r.resource, r.scope)


def _span_json(trace_id="5B8EFFF798038103D269B633813FC60C", span_id="EEE19B7EC3C1B174", **extra):
    sp = {"traceId": trace_id, "spanId": span_id, "name": "s", "kind": 3,
          "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
          "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "m"}}]}
    sp.update(extra)
    return sp


def _doc(*spans):
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "lib"}, "spans": list(spans)}]}]}


# ---- ids -----------------------------------------------------------------------------------

def test_normalize_id_hex_base64_bytes_and_zero():
    hex_id = "5b8efff798038103d269b633813fc60c"
    assert normalize_id(hex_id.upper(), 16) == hex_id
    assert normalize_id(base64.b64encode(bytes.fromhex(hex_id)).decode(), 16) == hex_id
    assert normalize_id(bytes.fromhex(hex_id), 16) == hex_id
    assert normalize_id("0" * 32, 16) is None
    assert normalize_id("", 8) is None
    with pytest.raises(ValueError):
        normalize_id("xyz", 8)
    with pytest.raises(ValueError):
        normalize_id("abcd", 16)  # wrong length


def test_hex_ids_are_not_read_as_base64(tmp_path):
    """The pitfall: json_format reads hex ids as base64 and yields 24-byte trace ids."""
    doc = _doc(_span_json())
    naive = ExportTraceServiceRequest()
    json_format.ParseDict(doc, naive, ignore_unknown_fields=True)
    assert len(naive.resource_spans[0].scope_spans[0].spans[0].trace_id) == 24
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc))
    (span,) = _spans(f)
    assert span.trace_id == "5b8efff798038103d269b633813fc60c"
    assert span.span_id == "eee19b7ec3c1b174"
    # the receiver's json_format path rewrites ids first and agrees
    msg = json_to_proto(doc, ExportTraceServiceRequest)
    assert msg.resource_spans[0].scope_spans[0].spans[0].trace_id.hex() == span.trace_id


def test_tolerates_base64_ids_enum_names_snake_case_and_numeric_ints(tmp_path):
    tid = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    sid = bytes.fromhex("b7ad6b7169203331")
    doc = {"resource_spans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"string_value": "svc"}}]},
        "scope_spans": [{"scope": {"name": "x"}, "spans": [{
            "trace_id": base64.b64encode(tid).decode(), "span_id": base64.b64encode(sid).decode(),
            "name": "n", "kind": "SPAN_KIND_CLIENT", "status": {"code": "STATUS_CODE_ERROR"},
            "start_time_unix_nano": 5, "end_time_unix_nano": "7",
            "attributes": [{"key": "n", "value": {"intValue": 12}},
                           {"key": "d", "value": {"doubleValue": "0.5"}},
                           {"key": "l", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                           {"key": "m", "value": {"kvlistValue": {"values": [
                               {"key": "k", "value": {"boolValue": True}}]}}}]}]}]}]}
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc))
    (s,) = _spans(f)
    assert (s.trace_id, s.span_id) == (tid.hex(), sid.hex())
    assert (s.kind, s.status_code, s.start_ns, s.end_ns) == (3, 2, 5, 7)
    assert s.attributes == {"n": 12, "d": 0.5, "l": ["a"], "m": {"k": True}}
    assert s.resource == {"service.name": "svc"}


# ---- formats -------------------------------------------------------------------------------

def test_json_and_protobuf_fixtures_decode_to_identical_records():
    js = _spans(FIX / "otel137.jsonl")
    pb = _spans(FIX / "otel137.pb")
    assert len(js) == len(pb) == 9
    assert [_key(r) for r in js] == [_key(r) for r in pb]


def test_object_array_and_jsonl_forms_agree(tmp_path):
    a, b = _doc(_span_json(span_id="00000000000000a1")), _doc(_span_json(span_id="00000000000000a2"))
    (tmp_path / "lines.jsonl").write_text(json.dumps(a) + "\n\n" + json.dumps(b) + "\n")
    (tmp_path / "array.json").write_text(json.dumps([a, b], indent=2))
    (tmp_path / "pretty.json").write_text(json.dumps(_doc(a["resourceSpans"][0]["scopeSpans"][0]["spans"][0],
                                                          b["resourceSpans"][0]["scopeSpans"][0]["spans"][0]),
                                                     indent=2))
    ids = {name: [s.span_id for s in _spans(tmp_path / name)]
           for name in ("lines.jsonl", "array.json", "pretty.json")}
    assert ids["lines.jsonl"] == ids["array.json"] == ids["pretty.json"] == ["00000000000000a1", "00000000000000a2"]


def test_utf8_bom_is_skipped(tmp_path):
    f = tmp_path / "bom.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(_doc(_span_json())).encode())
    assert [s.span_id for s in _spans(f)] == ["eee19b7ec3c1b174"]


def _length_prefixed(messages) -> bytes:
    out = b""
    for m in messages:
        data = m.SerializeToString()
        out += struct.pack(">I", len(data)) + data
    return out


def test_length_prefixed_stream_and_gzip(tmp_path):
    msg = TracesData.FromString((FIX / "otel137.pb").read_bytes())
    stream = tmp_path / "collector.pb"
    stream.write_bytes(_length_prefixed([msg, msg]))
    assert len(_spans(stream)) == 18
    gz = tmp_path / "collector.pb.gz"
    gz.write_bytes(gzip.compress(stream.read_bytes()))
    assert [_key(r) for r in _spans(gz)] == [_key(r) for r in _spans(stream)]
    jgz = tmp_path / "t.jsonl.gz"
    jgz.write_bytes(gzip.compress((FIX / "otel137.jsonl").read_bytes()))
    assert len(_spans(jgz)) == 9


def test_logs_in_json_and_protobuf_are_recognised(tmp_path):
    recs = list(read_file(FIX / "events_logs.jsonl"))
    assert recs and all(isinstance(r, LogRecordEvent) for r in recs)
    assert recs[0].event.name == "gen_ai.system.message"
    assert recs[0].event.body == {"content": "You are a weather bot."}
    assert recs[0].span_id == "1000000000000202"
    # the same logs as binary protobuf, under a name that does not say "log"
    logs_msg = json_to_proto(json.loads((FIX / "events_logs.jsonl").read_text()), LogsData)
    f = tmp_path / "export.pb"
    f.write_bytes(logs_msg.SerializeToString())
    recs_pb = list(read_file(f))
    assert [(r.trace_id, r.span_id, r.event.name, r.event.body) for r in recs_pb] == \
           [(r.trace_id, r.span_id, r.event.name, r.event.body) for r in recs]


def test_proto_to_json_writes_spec_form():
    msg = TracesData.FromString((FIX / "otel137.pb").read_bytes())
    d = proto_to_json(msg)
    span = d["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and span["traceId"] == span["traceId"].lower()
    assert isinstance(span["kind"], int)


def test_expand_paths_walks_folders_and_rejects_missing(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.json").write_text("{}")
    assert expand_paths([tmp_path]) == [tmp_path / "sub" / "a.jsonl"]
    with pytest.raises(InputError, match="no such file"):
        expand_paths([tmp_path / "nope.json"])


# ---- malformed input -----------------------------------------------------------------------

def _err(path, limits=Limits()) -> InputError:
    with pytest.raises(InputError) as ei:
        list(read_file(path, DecodeCounts(), limits))
    assert ei.value.file == str(path)
    return ei.value


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"  \n\n ", "empty"),
    (b'{"resourceSpans": [', "invalid JSON"),
    (b'{"hello": "world"}', "not OTLP"),
    (b"[1, 2]", "not OTLP"),
    (b'{"resourceSpans": []}', "no spans"),
    (b"\x00\x00\x00\x05abc", "truncated protobuf frame"),
    (b"garbage that is not anything", "not OTLP protobuf or JSON"),
])
def test_malformed_files_raise_input_error_naming_the_file(tmp_path, content, message):
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    assert message in _err(f).message


def test_truncated_single_protobuf_message(tmp_path):
    data = (FIX / "otel137.pb").read_bytes()
    f = tmp_path / "cut.pb"
    f.write_bytes(data[: len(data) // 2])
    assert "protobuf" in _err(f).message


def test_a_bad_or_truncated_json_line_is_skipped_and_counted(tmp_path):
    """One bad line (a partial write, another tool's log line) used to reject the whole file."""
    good = json.dumps(_doc(_span_json()))
    f = tmp_path / "t.jsonl"
    f.write_text(good + "\n{not json\n" + '{"hello": 1}\n' + good + "\n" + good[: len(good) // 2])
    counts = DecodeCounts()
    assert len(list(read_file(f, counts))) == 2
    assert counts.malformed == {"invalid JSON line (e.g. truncated)": 2, "JSON line that is not OTLP": 1}
    f.write_text('{"hello": 1}\n{not json\n')
    assert _err(f).message == ("no spans or log records found (skipped: 1 invalid JSON line (e.g. truncated), "
                               "1 JSON line that is not OTLP)")


def test_bad_spans_are_counted_and_good_ones_kept(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(_doc(_span_json(span_id="00000000000000a1"),
                                 _span_json(span_id="not-an-id"),
                                 _span_json(trace_id=""),
                                 _span_json(span_id="00000000000000a2", kind="SPAN_KIND_BOGUS"),
                                 _span_json(span_id="00000000000000a3"))))
    counts = DecodeCounts()
    spans = _spans(f, counts)
    assert [s.span_id for s in spans] == ["00000000000000a1", "00000000000000a3"]
    assert counts.spans == 5 and sum(counts.malformed.values()) == 3


def test_gzip_bomb_is_refused(tmp_path):
    f = tmp_path / "bomb.jsonl.gz"
    f.write_bytes(gzip.compress(b" " * (16 * 1024 * 1024), compresslevel=9))
    assert f.stat().st_size < 50_000
    e = _err(f, Limits(ratio_grace_bytes=1024 * 1024))
    assert "compression bomb" in e.message


def test_line_and_document_limits(tmp_path):
    line = json.dumps(_doc(_span_json()))
    f = tmp_path / "t.jsonl"
    f.write_text(line + "\n")
    e = _err(f, Limits(max_record_bytes=100))
    assert "longer than" in e.message or "limit" in e.message
    # JSON Lines stream: a file far larger than the document limit still reads line by line
    many = tmp_path / "many.jsonl"
    many.write_text((line + "\n") * 200)
    assert many.stat().st_size > 50_000
    counts = DecodeCounts()
    assert len(_spans(many, counts, Limits(max_document_bytes=10_000))) == 200


def test_corrupt_gzip_and_zstd_without_library(tmp_path):
    f = tmp_path / "t.json.gz"
    f.write_bytes(gzip.compress(b'{"resourceSpans": []}')[:-12])
    assert "decompress" in _err(f).message
    z = tmp_path / "t.json.zst"
    z.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    try:
        import zstandard  # noqa: F401
    except ImportError:
        assert "zstandard" in _err(z).message
