"""The OTLP/HTTP receiver, fed by the real OpenTelemetry SDK exporters and by raw requests."""
from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from replaygate.sources.receiver import rpc_status_bytes, running_receiver, serve
from replaygate.sources.parallel import load_traces
from replaygate.sources.traces import import_traces

FIX = Path(__file__).parent / "fixtures" / "traces"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _record_with_sdk(endpoint: str, compression: Compression) -> None:
    """A little app instrumented by hand with the SDK: one v1.37 chat span and one legacy
    chat span whose content goes out as log events."""
    res = Resource.create({"service.name": "recorded-app"})
    tp = TracerProvider(resource=res)
    tp.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=compression, timeout=5)))
    lp = LoggerProvider(resource=res)
    lp.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", compression=compression, timeout=5)))
    tracer, logger = tp.get_tracer("app"), lp.get_logger("app")
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 11,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "ping"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                                   "parts": [{"type": "text", "content": "pong"}]}])}):
        pass
    with tracer.start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}):
        logger.emit(event_name="gen_ai.user.message", body={"content": "hello"},
                    severity_number=SeverityNumber.INFO)
        logger.emit(event_name="gen_ai.choice", body={"index": 0, "finish_reason": "stop",
                                                      "message": {"content": "hi there"}})
    tp.shutdown()
    lp.shutdown()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_exporters_to_receiver_to_cases(tmp_path, compression):
    out = tmp_path / "rec" / "traces.jsonl"
    with running_receiver(out) as rcv:
        _record_with_sdk(rcv.endpoint, compression)
        counts = rcv.counts
    assert counts.spans == 2 and counts.log_records == 2 and not counts.rejected
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum("resourceSpans" in x for x in lines) == 2 and sum("resourceLogs" in x for x in lines) == 2
    span = lines[0]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16)  # hex, not base64
    cases, stats = import_traces([out])
    by_model = {c.params["model"]: c for c in cases}
    assert by_model["gpt-4o-mini"].recorded.output == "pong"
    assert by_model["gpt-4o-mini"].metadata["service"] == "recorded-app"
    assert [m.content for m in by_model["gpt-4o"].messages] == ["hello"]
    assert by_model["gpt-4o"].recorded.output == "hi there"
    assert stats.conventions["otel-genai-events"] == 1


def test_json_and_protobuf_bodies_and_responses(tmp_path):
    out = tmp_path / "t.jsonl"
    pb = (FIX / "otel137.pb").read_bytes()
    js = (FIX / "otel137.jsonl").read_bytes()
    with running_receiver(out) as rcv, httpx.Client(base_url=rcv.endpoint, trust_env=False) as http:
        r = http.post("/v1/traces", content=pb, headers={"Content-Type": "application/x-protobuf"})
        assert (r.status_code, r.headers["content-type"], r.content) == (200, "application/x-protobuf", b"")
        r = http.post("/v1/traces", content=gzip.compress(js),
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert (r.status_code, r.headers["content-type"], r.json()) == (200, "application/json", {})
        # empty request: fine, nothing written
        r = http.post("/v1/traces", content=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code == 200
        # base64 ids and enum names in a JSON body are accepted and normalised
        openllmetry = (FIX / "openllmetry.json").read_bytes()
        r = http.post("/v1/traces", content=openllmetry, headers={"Content-Type": "application/json"})
        assert r.status_code == 200
    lines = out.read_text().splitlines()
    assert len(lines) == 3
    a, b = import_traces([out])[0][:2], import_traces([FIX / "otel137.pb"])[0]
    assert [c.id for c in a] == [c.id for c in b]
    ids = [c.id for c in load_traces([out], where={"service": "travel-agent"})]
    assert ids == ["8615098c2c72e72330e800ef0b71d8b8:aa00000000000002"]


def test_bad_requests_get_the_right_status(tmp_path):
    out = tmp_path / "t.jsonl"
    with running_receiver(out, max_body_bytes=1024 * 1024) as rcv, \
            httpx.Client(base_url=rcv.endpoint, trust_env=False) as http:
        r = http.post("/v1/traces", content=b"\x0a\xff\xff", headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
        assert "protobuf" in status_pb2.Status.FromString(r.content).message
        r = http.post("/v1/traces", content=b"{nope", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "invalid JSON" in r.json()["message"]
        r = http.post("/v1/traces", content=b'{"resourceSpans": 5}', headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        bomb = gzip.compress(b"\x00" * (8 * 1024 * 1024))
        r = http.post("/v1/traces", content=bomb, headers={"Content-Type": "application/x-protobuf",
                                                          "Content-Encoding": "gzip"})
        assert r.status_code == 413
        r = http.post("/v1/logs", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = http.post("/v1/metrics", content=b"{}", headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()) == (200, {})  # acknowledged, not recorded
        assert rcv.counts.metrics_ignored == 1
        r = http.post("/v2/whatever", content=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code == 404
        r = http.post("/v1/traces", content=b"{}", headers={"Content-Type": "application/json",
                                                           "Content-Encoding": "br"})
        assert r.status_code == 415
        rejected = dict(rcv.counts.rejected)
    assert rejected == {400: 3, 413: 1, 415: 2, 404: 1}
    assert out.read_text() == ""


def test_serve_blocks_until_stopped(tmp_path):
    out = tmp_path / "t.jsonl"
    stop, started = threading.Event(), threading.Event()
    where: dict = {}
    result: dict = {}

    def ready(host, port):
        where["url"] = f"http://{host}:{port}"
        started.set()

    t = threading.Thread(target=lambda: result.update(
        counts=serve("127.0.0.1", 0, out, ready=ready, stop=stop)))
    t.start()
    assert started.wait(5)
    msg = ExportTraceServiceRequest.FromString((FIX / "otel137.pb").read_bytes())
    r = httpx.post(where["url"] + "/v1/traces", content=msg.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"}, trust_env=False)
    assert r.status_code == 200
    stop.set()
    t.join(5)
    assert not t.is_alive()
    assert result["counts"].spans == 9 and result["counts"].requests == 1


@pytest.mark.parametrize("code, message", [(3, "bad"), (3, ""), (300, "é" * 200)])
def test_hand_written_rpc_status_matches_googleapis(code, message):
    st = status_pb2.Status.FromString(rpc_status_bytes(code, message))
    assert (st.code, st.message) == (code, message)
    assert rpc_status_bytes(code, message) == status_pb2.Status(code=code, message=message).SerializeToString()


def test_corrupted_bodies_get_400_or_200_never_a_dropped_connection(tmp_path):
    import random
    rng = random.Random(5)
    bodies = [((FIX / "otel137.pb").read_bytes(), "application/x-protobuf"),
              ((FIX / "openllmetry.json").read_bytes(), "application/json"),
              ((FIX / "events_logs.jsonl").read_bytes(), "application/json")]
    seen = set()
    with running_receiver(tmp_path / "t.jsonl") as rcv, \
            httpx.Client(base_url=rcv.endpoint, trust_env=False) as http:
        for i in range(90):
            data, ctype = bodies[i % 3]
            b = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            path = "/v1/logs" if i % 3 == 2 else "/v1/traces"
            r = http.post(path, content=bytes(b[: rng.randrange(1, len(b) + 1)]),
                          headers={"Content-Type": ctype})
            assert r.status_code in (200, 400), r.text
            seen.add(r.status_code)
    assert 400 in seen
