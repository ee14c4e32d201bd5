"""A small OTLP/HTTP receiver that records what applications export (``replaygate record``).

Point an app at it with ``OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT`` (protocol
``http/protobuf`` or ``http/json``; gzip allowed). It accepts ``POST /v1/traces`` and
``POST /v1/logs`` and appends every non-empty request as ONE line of OTLP/JSON (spec form: hex
ids, integer enums) to the output file: traces lines hold ``resourceSpans``, logs lines hold
``resourceLogs``. Both signals go to the same file so ``load_traces(out)`` joins the legacy
message events (log records) to their spans without further setup.

Bodies come with a ``Content-Length`` or ``Transfer-Encoding: chunked`` (the OpenTelemetry JS
exporter always streams chunked), both bounded the same way.

Responses follow the OTLP/HTTP spec: 200 with an empty ``Export*ServiceResponse`` in the
request's content type; 400 with a ``google.rpc.Status`` for undecodable bodies, a bad length or
bad chunking; 411 without either framing; 413 when the body (after gzip decompression) exceeds
``max_body_bytes``; 415 for other content types or encodings; 501 for other transfer codings; 404
for other paths; 408 when a body does not arrive within ``request_timeout_s``; 503 with
``Retry-After`` when the receiver is full (bodies in flight over ``max_inflight_bytes``, or
``max_connections`` open) or cannot write its output (disk full: the partial line is cut off, so
a retried request appends a whole line). Every request gets an answer; a client idle for
``idle_timeout_s`` is disconnected. ``POST /v1/metrics`` is acknowledged and dropped, so an app
whose whole OTLP endpoint points here does not log export errors.
"""
from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
DEFAULT_MAX_INFLIGHT_BYTES = 64 * MiB  # request bodies held (and being converted) at once, all connections
_READ_STEP = 1 * MiB  # socket reads and decompression go in steps of this
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_INVALID_ARGUMENT = 3  # google.rpc.Code

_SIGNALS = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "resource_spans"),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "resource_logs"),
}


@dataclass
class ReceiverLimits:
    """What one client, or many, can make the receiver hold. Every limit answers with a status the
    OTLP exporters understand (413 is final; 503 with Retry-After and 408 are retried)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # one request, after gzip decompression
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES  # bodies held at once, all connections
    idle_timeout_s: float = 15.0  # a connection silent this long is closed
    request_timeout_s: float = 120.0  # a whole request body must arrive within this
    max_connections: int = 256  # open connections (one thread each); more get 503 at once
    budget_wait_s: float = 5.0  # how long a body waits for room in max_inflight_bytes

    def __post_init__(self) -> None:
        # a body larger than the whole budget could never be read
        self.max_inflight_bytes = max(self.max_inflight_bytes, self.max_body_bytes)


@dataclass
class ReceiverCounts:
    requests: int = 0
    spans: int = 0
    log_records: int = 0
    metrics_ignored: int = 0  # /v1/metrics requests acknowledged and dropped
    rejected: dict[int, int] = field(default_factory=dict)  # HTTP status -> count
    write_errors: int = 0  # requests refused (503) because the output could not be written
    last_write_error: str | None = None

    def summary(self) -> str:
        """One readable line: what was recorded and what was refused, and why."""
        text = (f"{self.requests} request{'s' if self.requests != 1 else ''} answered 200: "
                f"{self.spans} span{'s' if self.spans != 1 else ''}, "
                f"{self.log_records} log record{'s' if self.log_records != 1 else ''} recorded")
        if self.metrics_ignored:
            text += f", {self.metrics_ignored} metrics request(s) ignored"
        if self.rejected:
            n = sum(self.rejected.values())
            text += f"; {n} refused (" + ", ".join(
                f"HTTP {code} {_REASONS.get(code, '')}".rstrip() + f" × {k}"
                for code, k in sorted(self.rejected.items())) + ")"
        if self.last_write_error:
            text += f"; last write error: {self.last_write_error}"
        return text


_REASONS = {400: "bad request", 404: "unknown path", 405: "not POST", 408: "timeout",
            411: "no length", 413: "too large", 415: "unsupported type", 500: "internal error",
            501: "unsupported transfer encoding", 503: "busy or cannot write"}


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
    def __init__(self, status: int, message: str, *, close: bool = False, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close  # the body was not (fully) read: the connection cannot be reused
        self.retry_after = retry_after


class _ClientGone(Exception):
    """The client closed the connection mid-request: nobody to answer."""


class _WriteFailed(Exception):
    pass


class _Budget:
    """Bytes of request bodies held in memory at once, across all connections."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def take(self, n: int, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while self.used + n > self.limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self.used += n
            return True

    def give(self, n: int) -> None:
        if n:
            with self._cond:
                self.used -= n
                self._cond.notify_all()


class _Recorder:
    """Appends one JSON line per request. A lock keeps concurrent requests' lines whole, and a
    write that fails (disk full) is cut back off, so no partial line is left for the next request
    to append to."""

    def __init__(self, out_path: Path, limits: ReceiverLimits,
                 on_change: Callable[[ReceiverCounts], None] | None = None):
        self.out_path = Path(out_path)
        self.limits = limits
        self.max_body_bytes = limits.max_body_bytes
        self.budget = _Budget(limits.max_inflight_bytes)
        self.counts = ReceiverCounts()
        self.on_change = on_change
        self._lock = threading.Lock()
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.lseek(self._fd, 0, os.SEEK_END)
        if size:  # a file cut short earlier (a crash): new records start on a line of their own
            with open(self.out_path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def write(self, obj: dict, spans: int, logs: int) -> None:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        try:
            data = (text + "\n").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escaped, so the line stays valid UTF-8
            data = (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")
        with self._lock:
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as e:
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass
                self.counts.write_errors += 1
                self.counts.last_write_error = f"{self.out_path}: {e.strerror or e}"
                raise _WriteFailed(f"cannot write {self.out_path}: {e.strerror or e}") from None
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
        if self.on_change is not None:
            self.on_change(self.counts)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _count_items(msg) -> tuple[int, int]:
    if isinstance(msg, ExportTraceServiceRequest):
        return sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans), 0
    return 0, sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)


_LENGTH = re.compile(rb"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_LINE_MAX = 8192  # a chunk-size line or a trailer
_MAX_TRAILERS = 64


class _Handler(BaseHTTPRequestHandler):
    recorder: _Recorder  # set on the subclass made per server
    protocol_version = "HTTP/1.1"  # keep-alive, as exporters expect
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    timeout = 15.0  # idle: set per server from ReceiverLimits.idle_timeout_s

    def log_message(self, format: str, *args) -> None:  # quiet: the CLI prints a summary
        pass

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        # counted before the response leaves, so a client that has its answer sees the count
        self.recorder.count(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, content_type: str, headers: dict | None = None) -> None:
        if content_type == PROTOBUF:
            body = rpc_status_bytes(_INVALID_ARGUMENT, message)
        else:
            content_type = JSON
            body = json.dumps({"code": _INVALID_ARGUMENT, "message": message}).encode()
        try:
            self._reply(status, body, content_type, headers)
        except OSError:  # the client is gone: nothing more to do
            self.close_connection = True

    def do_POST(self) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self._held = 0
        self._deadline = time.monotonic() + self.recorder.limits.request_timeout_s
        try:
            self._handle_post(ctype)
        except _BadRequest as e:
            if e.close:
                self.close_connection = True
            headers = {"Retry-After": str(e.retry_after)} if e.retry_after is not None else None
            self._error(e.status, e.message, ctype, headers)
        except _ClientGone:
            self.close_connection = True
        except TimeoutError:
            self.close_connection = True
            self._error(408, "the request body did not arrive in time", ctype)
        except Exception as e:  # a bug of ours: the client still gets an answer, the server lives
            self.close_connection = True
            self._error(500, f"internal error: {type(e).__name__}", ctype)
        finally:
            self.recorder.budget.give(self._held)
            self._held = 0

    def _handle_post(self, ctype: str) -> None:
        path = self.path.split("?")[0]
        if path == "/v1/metrics":
            # an app pointed at us exports metrics too: acknowledge, do not record
            self._body()
            self.recorder.count_ignored()
            self._reply(200, b"" if ctype == PROTOBUF else b"{}", PROTOBUF if ctype == PROTOBUF else JSON)
            return
        signal = _SIGNALS.get(path)
        if signal is None:
            raise _BadRequest(404, f"unknown path {self.path}; use /v1/traces or /v1/logs", close=True)
        body = self._body()
        req_cls, resp_cls, _ = signal
        if ctype not in (PROTOBUF, JSON):
            raise _BadRequest(415, f"unsupported Content-Type {ctype!r}; use {PROTOBUF} or {JSON}")
        msg = self._decode(body, ctype, req_cls)
        del body
        spans, logs = _count_items(msg)
        if spans or logs:
            try:
                self.recorder.write(proto_to_json(msg), spans, logs)
            except _WriteFailed as e:  # retryable for the exporter: nothing of it was kept
                raise _BadRequest(503, str(e), retry_after=30) from None
        if ctype == PROTOBUF:
            self._reply(200, resp_cls().SerializeToString(), PROTOBUF)
        else:
            self._reply(200, b"{}", JSON)

    def do_GET(self) -> None:
        self.close_connection = True
        self._error(405, "use POST", JSON)

    # ------------------------------------------------------------------ reading the body
    def _reserve(self, n: int) -> None:
        if not self.recorder.budget.take(n, self.recorder.limits.budget_wait_s):
            raise _BadRequest(503, "receiver busy: too many request bodies in flight; retry",
                              close=True, retry_after=1)
        self._held += n

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise TimeoutError("request deadline")

    def _read_exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            self._check_deadline()
            k = self.rfile.readinto1(view[got:got + _READ_STEP])
            if not k:
                raise _ClientGone()
            got += k
        return buf

    def _readline(self) -> bytes:
        self._check_deadline()
        line = self.rfile.readline(_LINE_MAX + 1)
        if not line.endswith(b"\n"):
            if len(line) > _LINE_MAX:
                raise _BadRequest(400, "chunked body: line too long", close=True)
            raise _ClientGone()
        return line

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._readline().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _BadRequest(400, "chunked body: bad chunk size", close=True)
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise _BadRequest(413, f"body exceeds {limit} bytes", close=True)
            self._reserve(size)
            parts.append(bytes(self._read_exact(size)))
            if self._readline() not in (b"\r\n", b"\n"):
                raise _BadRequest(400, "chunked body: chunk not followed by CRLF", close=True)
        for _ in range(_MAX_TRAILERS + 1):  # trailer fields (ignored) up to the empty line
            if self._readline() in (b"\r\n", b"\n"):
                return b"".join(parts)
        raise _BadRequest(400, "chunked body: too many trailer fields", close=True)

    def _raw_body(self) -> bytes | bytearray:
        limit = self.recorder.max_body_bytes
        te = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if te:
            codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise _BadRequest(501, f"unsupported Transfer-Encoding {', '.join(codings)!r}; use chunked",
                                  close=True)
            if lengths:  # both framings: the request could be read two ways (smuggling)
                raise _BadRequest(400, "Content-Length and Transfer-Encoding together", close=True)
            return self._read_chunked(limit)
        if not lengths:
            raise _BadRequest(411, "Content-Length or Transfer-Encoding: chunked required", close=True)
        values = {v.strip() for v in lengths}
        text = values.pop().encode("latin-1", "replace") if len(values) == 1 else b""
        if not _LENGTH.fullmatch(text):
            raise _BadRequest(400, "bad Content-Length", close=True)
        n = int(text)
        if n > limit:
            raise _BadRequest(413, f"body of {n} bytes exceeds {limit}", close=True)  # not read
        self._reserve(n)
        return self._read_exact(n)

    def _body(self) -> bytes | bytearray:
        body = self._raw_body()
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            return self._gunzip(body, self.recorder.max_body_bytes)
        if encoding != "identity":
            raise _BadRequest(415, f"unsupported Content-Encoding {encoding!r}; use gzip")
        return body

    def _gunzip(self, data: bytes | bytearray, limit: int) -> bytes:
        """Decompressed a step at a time, each step paid for in the in-flight budget."""
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        parts: list[bytes] = []
        total = 0
        pending: bytes | bytearray = data
        try:
            while pending and not d.eof:
                out = d.decompress(pending, min(_READ_STEP, limit + 1 - total))
                pending = d.unconsumed_tail
                self._reserve(len(out))
                total += len(out)
                if total > limit:
                    raise _BadRequest(413, f"body exceeds {limit} bytes after decompression")
                parts.append(out)
                if not out and pending:  # no progress: corrupt input
                    break
        except zlib.error as e:
            raise _BadRequest(400, f"invalid gzip body: {e}") from None
        if not d.eof:
            raise _BadRequest(400, "invalid gzip body: truncated")
        return b"".join(parts)

    @staticmethod
    def _decode(body: bytes | bytearray, ctype: str, req_cls):
        if ctype == PROTOBUF:
            try:
                return req_cls.FromString(body)
            except DecodeError as e:
                raise _BadRequest(400, f"invalid protobuf body: {e}") from None
        try:
            obj = json.loads(body) if body.strip() else {}
        except RecursionError:
            raise _BadRequest(400, "invalid JSON body: nested too deeply") from None
        except ValueError as e:
            raise _BadRequest(400, f"invalid JSON body: {e}") from None
        if not isinstance(obj, dict):
            raise _BadRequest(400, "JSON body must be an object")
        try:
            return json_to_proto(obj, req_cls)
        except RecursionError:
            raise _BadRequest(400, "not OTLP/JSON: nested too deeply") from None
        except (json_format.ParseError, ValueError, TypeError) as e:
            raise _BadRequest(400, f"not OTLP/JSON: {e}") from None


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` of them: the next is answered 503
    and closed at once instead of holding a thread."""
    daemon_threads = True
    request_queue_size = 128  # exporters of many processes may connect at once

    def __init__(self, address, handler, limits: ReceiverLimits, recorder: _Recorder):
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._recorder = recorder
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self._recorder.count(503)
            super().shutdown_request(request)  # no lingering here: this is the accept loop's thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def shutdown_request(self, request) -> None:
        """Close like a careful HTTP server (a lingering close): send our FIN, then read and drop
        what the client is still sending for a moment. Closing a socket with unread bytes makes the
        kernel answer with a reset, and a client still uploading the body we refused (413 on a
        chunked body past the limit) would lose our answer with it."""
        try:
            request.shutdown(socket.SHUT_WR)
            request.settimeout(0.2)
            deadline = time.monotonic() + 1.0
            drained = 0
            while time.monotonic() < deadline and drained < (1 << 22):
                data = request.recv(65536)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass
        self.close_request(request)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Receiver:
    """The server object; ``serve()`` and ``running_receiver()`` are the usual entry points."""

    def __init__(self, host: str, port: int, out_path: str | Path, *,
                 max_body_bytes: int | None = None, limits: ReceiverLimits | None = None,
                 on_change: Callable[[ReceiverCounts], None] | None = None):
        limits = limits or ReceiverLimits()
        if max_body_bytes is not None:
            limits = replace(limits, max_body_bytes=max_body_bytes)
        self.limits = limits
        self.recorder = _Recorder(Path(out_path), limits, on_change)
        handler = type("OtlpHandler", (_Handler,), {"recorder": self.recorder,
                                                    "timeout": limits.idle_timeout_s})
        self.httpd = _Server((host, port), handler, limits, self.recorder)

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
          max_body_bytes: int | None = None, limits: ReceiverLimits | None = None,
          on_change: Callable[[ReceiverCounts], None] | None = None) -> ReceiverCounts:
    """Run the receiver until ``stop`` is set (or KeyboardInterrupt). ``ready(host, port)`` is
    called once listening (port 0 picks a free port); ``on_change(counts)`` after every answered
    request (from the request's thread). Returns what was received."""
    rcv = Receiver(host, port, out_path, max_body_bytes=max_body_bytes, limits=limits, on_change=on_change)
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
                     max_body_bytes: int | None = None,
                     limits: ReceiverLimits | None = None) -> Iterator[Receiver]:
    """The receiver serving in a background thread (tests, embedding)."""
    rcv = Receiver(host, port, out_path, max_body_bytes=max_body_bytes, limits=limits)
    t = threading.Thread(target=rcv.serve_forever, name="otlp-receiver", daemon=True)
    t.start()
    try:
        yield rcv
    finally:
        rcv.shutdown()
        t.join(timeout=5)
        rcv.close()
