"""A small OTLP/HTTP receiver that records what applications export (``replaygate record``).

Point an app at it with ``OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT`` (protocol
``http/protobuf`` or ``http/json``; gzip allowed). It accepts ``POST /v1/traces`` and
``POST /v1/logs`` and appends every non-empty request as ONE line of OTLP/JSON (spec form: hex
ids, integer enums) to the output file: traces lines hold ``resourceSpans``, logs lines hold
``resourceLogs``. Both signals go to the same file so ``load_traces(out)`` joins the legacy
message events (log records) to their spans without further setup.

Responses follow the OTLP/HTTP spec: 200 with an empty ``Export*ServiceResponse`` in the
request's content type; 400 with a ``google.rpc.Status`` for undecodable bodies; 413 when the
body (after gzip decompression) exceeds ``max_body_bytes``; 415 for other content types or
encodings; 404 for other paths. ``POST /v1/metrics`` is acknowledged and dropped, so an app whose
whole OTLP endpoint points here does not log export errors.
"""
from __future__ import annotations

import json
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (ExportLogsServiceRequest,
                                                                    ExportLogsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

from replaygate.sources.otlp import MiB, json_to_proto, proto_to_json

DEFAULT_MAX_BODY_BYTES = 64 * MiB  # the spec's recommended limit after decompression
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_INVALID_ARGUMENT = 3  # google.rpc.Code

_SIGNALS = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "resource_spans"),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "resource_logs"),
}


@dataclass
class ReceiverCounts:
    requests: int = 0
    spans: int = 0
    log_records: int = 0
    metrics_ignored: int = 0  # /v1/metrics requests acknowledged and dropped
    rejected: dict[int, int] = field(default_factory=dict)  # HTTP status -> count


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def rpc_status_bytes(code: int, message: str) -> bytes:
    """A serialized ``google.rpc.Status{code=1, message=2}``, written by hand so the receiver
    does not need googleapis-common-protos (not a dependency of opentelemetry-proto)."""
    msg = message.encode("utf-8")
    out = b"\x08" + _varint(code) if code else b""  # proto3 leaves default values out
    return out + (b"\x12" + _varint(len(msg)) + msg if msg else b"")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Recorder:
    """Appends one JSON line per request; a lock keeps concurrent requests' lines whole."""

    def __init__(self, out_path: Path, max_body_bytes: int):
        self.out_path = Path(out_path)
        self.max_body_bytes = max_body_bytes
        self.counts = ReceiverCounts()
        self._lock = threading.Lock()
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.out_path, "a", encoding="utf-8")

    def write(self, obj: dict, spans: int, logs: int) -> None:
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            self.counts.spans += spans
            self.counts.log_records += logs

    def count_ignored(self) -> None:
        with self._lock:
            self.counts.metrics_ignored += 1

    def count(self, status: int) -> None:
        with self._lock:
            if status == 200:
                self.counts.requests += 1
            else:
                self.counts.rejected[status] = self.counts.rejected.get(status, 0) + 1

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _count_items(msg) -> tuple[int, int]:
    if isinstance(msg, ExportTraceServiceRequest):
        return sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans), 0
    return 0, sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)


def _gunzip_bounded(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise _BadRequest(400, f"invalid gzip body: {e}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise _BadRequest(413, f"body exceeds {limit} bytes after decompression")
    return out


class _Handler(BaseHTTPRequestHandler):
    recorder: _Recorder  # set on the subclass made per server
    protocol_version = "HTTP/1.1"  # keep-alive, as exporters expect
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args) -> None:  # quiet: the CLI prints a summary
        pass

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        # counted before the response leaves, so a client that has its answer sees the count
        self.recorder.count(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, content_type: str) -> None:
        if content_type == PROTOBUF:
            body = rpc_status_bytes(_INVALID_ARGUMENT, message)
        else:
            content_type = JSON
            body = json.dumps({"code": _INVALID_ARGUMENT, "message": message}).encode()
        self._reply(status, body, content_type)

    def do_POST(self) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            path = self.path.split("?")[0]
            if path == "/v1/metrics":
                # an app pointed at us exports metrics too: acknowledge, do not record
                self._body()
                self.recorder.count_ignored()
                self._reply(200, b"" if ctype == PROTOBUF else b"{}", PROTOBUF if ctype == PROTOBUF else JSON)
                return
            signal = _SIGNALS.get(path)
            if signal is None:
                self._drain()
                raise _BadRequest(404, f"unknown path {self.path}; use /v1/traces or /v1/logs")
            body = self._body()
            req_cls, resp_cls, _ = signal
            if ctype not in (PROTOBUF, JSON):
                raise _BadRequest(415, f"unsupported Content-Type {ctype!r}; use {PROTOBUF} or {JSON}")
            msg = self._decode(body, ctype, req_cls)
            spans, logs = _count_items(msg)
            if spans or logs:
                self.recorder.write(proto_to_json(msg), spans, logs)
        except _BadRequest as e:
            self._error(e.status, e.message, ctype)
            return
        if ctype == PROTOBUF:
            self._reply(200, resp_cls().SerializeToString(), PROTOBUF)
        else:
            self._reply(200, b"{}", JSON)

    def do_GET(self) -> None:
        self._error(405, "use POST", JSON)

    def _drain(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if 0 < n <= self.recorder.max_body_bytes:
            self.rfile.read(n)
        else:
            self.close_connection = True

    def _body(self) -> bytes:
        limit = self.recorder.max_body_bytes
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise _BadRequest(411, "Content-Length required")
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise _BadRequest(400, "bad Content-Length") from None
        if n > limit:
            self.close_connection = True  # do not read what we refuse
            raise _BadRequest(413, f"body of {n} bytes exceeds {limit}")
        body = self.rfile.read(n)
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            return _gunzip_bounded(body, limit)
        if encoding != "identity":
            raise _BadRequest(415, f"unsupported Content-Encoding {encoding!r}; use gzip")
        return body

    @staticmethod
    def _decode(body: bytes, ctype: str, req_cls):
        if ctype == PROTOBUF:
            try:
                return req_cls.FromString(body)
            except DecodeError as e:
                raise _BadRequest(400, f"invalid protobuf body: {e}") from None
        try:
            obj = json.loads(body) if body.strip() else {}
        except ValueError as e:
            raise _BadRequest(400, f"invalid JSON body: {e}") from None
        if not isinstance(obj, dict):
            raise _BadRequest(400, "JSON body must be an object")
        try:
            return json_to_proto(obj, req_cls)
        except (json_format.ParseError, ValueError, TypeError) as e:
            raise _BadRequest(400, f"not OTLP/JSON: {e}") from None


class Receiver:
    """The server object; ``serve()`` and ``running_receiver()`` are the usual entry points."""

    def __init__(self, host: str, port: int, out_path: str | Path, *,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.recorder = _Recorder(Path(out_path), max_body_bytes)
        handler = type("OtlpHandler", (_Handler,), {"recorder": self.recorder})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def endpoint(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def counts(self) -> ReceiverCounts:
        return self.recorder.counts

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.httpd.shutdown()

    def close(self) -> None:
        self.httpd.server_close()
        self.recorder.close()


def serve(host: str, port: int, out_path: str | Path, *,
          ready: Callable[[str, int], None] | None = None,
          stop: threading.Event | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> ReceiverCounts:
    """Run the receiver until ``stop`` is set (or KeyboardInterrupt). ``ready(host, port)`` is
    called once listening (port 0 picks a free port). Returns what was received."""
    rcv = Receiver(host, port, out_path, max_body_bytes=max_body_bytes)
    if stop is not None:
        threading.Thread(target=lambda: (stop.wait(), rcv.shutdown()), daemon=True).start()
    try:
        if ready is not None:
            ready(*rcv.address)
        rcv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        rcv.close()
    return rcv.counts


@contextmanager
def running_receiver(out_path: str | Path, host: str = "127.0.0.1", port: int = 0, *,
                     max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Iterator[Receiver]:
    """The receiver serving in a background thread (tests, embedding)."""
    rcv = Receiver(host, port, out_path, max_body_bytes=max_body_bytes)
    t = threading.Thread(target=rcv.serve_forever, name="otlp-receiver", daemon=True)
    t.start()
    try:
        yield rcv
    finally:
        rcv.shutdown()
        t.join(timeout=5)
        rcv.close()
