"""Decode OTLP trace and log files into flat span / log-event records.

Accepted inputs (see docs in ``traces.py`` and /work/shared/otel-genai.md §5):

* OTLP/JSON: one object, an array of objects, or JSON Lines (one ``TracesData`` /
  ``ExportTraceServiceRequest`` or ``LogsData`` per line; a file may mix both signals);
* binary protobuf: one ``TracesData``/``LogsData`` message, or the collector file exporter's
  stream of 4-byte big-endian length-prefixed messages;
* any of these gzip-compressed (zstd only when the ``zstandard`` package is installed).

Reading is streamed per line / per frame, so memory stays bounded by the largest record, and
decompression is bounded (``Limits``) so a gzip bomb is refused instead of filling memory.

The JSON path does not go through ``google.protobuf.json_format``: that mapping reads the hex
``traceId`` of OTLP/JSON as base64 and silently yields wrong 24-byte ids. We walk the decoded
JSON directly, which is also faster and tolerant of what real emitters send (base64 ids, enum
names, snake_case keys, numbers as strings). ``json_to_proto`` (used by the receiver) applies the
documented hex->base64 rewrite before ``json_format`` for the same reason.
"""
from __future__ import annotations

import base64
import binascii
import functools
import gzip
import io
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from replaygate import fastjson
from replaygate.errors import InputError

MiB = 1024 * 1024

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
TRACE_FILE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".pb", ".bin", ".otlp", ".gz", ".zst", ".zstd")
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one input may cost. A real OTLP batch is far below these."""
    max_record_bytes: int = 64 * MiB  # one JSON line or one protobuf frame (the OTLP/HTTP limit)
    max_document_bytes: int = 512 * MiB  # a single (non-line) JSON document or protobuf message
    max_ratio: float = 200.0  # decompressed / compressed bytes; deflate bombs reach ~1000
    ratio_grace_bytes: int = 8 * MiB  # small inputs may compress well without being bombs


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class Event:
    """A span event or a log record (both carry GenAI events)."""
    name: str
    time_ns: int
    attributes: dict[str, Any]
    body: Any = None


@dataclass(slots=True)
class SpanRecord:
    trace_id: str  # lowercase hex, 32 chars
    span_id: str  # lowercase hex, 16 chars
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[Event]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict[str, Any]
    scope: str
    source: str


@dataclass(slots=True)
class LogRecordEvent:
    """A log record tied to a span by (trace_id, span_id)."""
    trace_id: str | None
    span_id: str | None
    event: Event
    resource: dict[str, Any]
    source: str


@dataclass
class DecodeCounts:
    files: int = 0
    spans: int = 0
    log_records: int = 0
    malformed: Counter = field(default_factory=Counter)  # reason -> count
    errors: list = field(default_factory=list)  # messages of units skipped whole (tolerant import)


# a JSON Lines file is read line by line: one bad line (a partial write, a truncated last line,
# something else's log line) is skipped and counted, the rest of the file still imports
SKIP_BAD_JSON_LINE = "invalid JSON line (e.g. truncated)"
SKIP_NOT_OTLP_LINE = "JSON line that is not OTLP"
_LINE_SKIPS = (SKIP_BAD_JSON_LINE, SKIP_NOT_OTLP_LINE)


# ---------------------------------------------------------------------------------------------
# ids and values

def normalize_id(value: Any, nbytes: int) -> str | None:
    """Lowercase hex for a hex or base64 id (str) or raw bytes; None when empty or all-zero.

    Raises ValueError for anything else. Hex ids are 2*nbytes chars; base64 ids of 16/8 bytes
    are 24/12 chars with padding, so the two never collide.
    """
    if value is None or value == "" or value == b"":
        return None
    if type(value) is bytes:
        if len(value) == nbytes:  # the protobuf fast path
            return value.hex() if any(value) else None
        raw = value
    elif isinstance(value, bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        if len(value) == 2 * nbytes:
            raw = bytes.fromhex(value)  # ValueError when not hex
            if len(raw) == nbytes:  # the OTLP/JSON fast path
                return value.lower() if any(raw) else None
        else:
            try:
                raw = base64.b64decode(value, validate=True)
            except binascii.Error as e:
                raise ValueError(f"id {value!r} is neither hex nor base64") from e
    else:
        raise ValueError(f"id of type {type(value).__name__}")
    if len(raw) != nbytes:
        raise ValueError(f"id has {len(raw)} bytes, expected {nbytes}")
    if not any(raw):
        return None
    return raw.hex()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def proto_value(v) -> Any:
    """opentelemetry AnyValue -> plain Python (bytes become base64 text, JSON-safe)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [proto_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: proto_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return _b64(v.bytes_value)
    return None


def proto_attrs(kvs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        # the common case first (hot path): a non-empty string_value means the oneof is a
        # string, with no WhichOneof call; "" and the other kinds take the general path
        s = v.string_value
        out[kv.key] = s if s else proto_value(v)
    return out


def _float(x: Any) -> float:
    return float(x)  # proto3 JSON allows "NaN", "Infinity" and numbers as strings


def json_value(v: Any) -> Any:
    """OTLP/JSON AnyValue -> plain Python. Tolerates snake_case and ints as numbers."""
    if not isinstance(v, dict):
        return v  # a few emitters put bare values here
    x = v.get("stringValue")
    if x is not None:  # the common case first (hot path)
        return x
    for k, x in v.items():
        conv = _JSON_VALUE.get(k)
        if conv is not None:
            return conv(x)
    return None


def _json_array(x: Any) -> list:
    return [json_value(e) for e in (x or {}).get("values") or []]


def _json_kvlist(x: Any) -> dict:
    return json_attrs((x or {}).get("values"))


_JSON_VALUE = {
    "stringValue": str, "string_value": str,
    "intValue": int, "int_value": int,
    "doubleValue": _float, "double_value": _float,
    "boolValue": bool, "bool_value": bool,
    "arrayValue": _json_array, "array_value": _json_array,
    "kvlistValue": _json_kvlist, "kvlist_value": _json_kvlist,
    "bytesValue": str, "bytes_value": str,  # already base64 text in JSON
}


def json_attrs(kvs: Any) -> dict[str, Any]:
    if not kvs:
        return {}
    out: dict[str, Any] = {}
    for kv in kvs:
        key = kv["key"]
        v = kv.get("value")
        # the common case inlined (hot path): what json_value returns for a stringValue
        x = v.get("stringValue") if type(v) is dict else None
        out[key] = x if x is not None else json_value(v)
    return out


def _g(d: dict, camel: str, snake: str, default: Any = None) -> Any:
    v = d.get(camel)
    if v is None:
        v = d.get(snake, default)
    return v


_SPAN_KIND = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
              "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
_STATUS_CODE = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(v: Any, names: dict[str, int]) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and not v.isdigit():
        return names[v]  # KeyError -> malformed span
    return int(v)


# ---------------------------------------------------------------------------------------------
# JSON walker

def _json_spans(obj: dict, source: str, counts: DecodeCounts,
                want: Callable[[dict], bool] | None = None) -> Iterator[SpanRecord]:
    for rs in _g(obj, "resourceSpans", "resource_spans") or []:
        resource = json_attrs((rs.get("resource") or {}).get("attributes"))
        scope_groups = (_g(rs, "scopeSpans", "scope_spans")
                        or _g(rs, "instrumentationLibrarySpans", "instrumentation_library_spans")
                        or [])
        for ss in scope_groups:
            scope = (ss.get("scope") or _g(ss, "instrumentationLibrary", "instrumentation_library")
                     or {}).get("name", "")
            for sp in ss.get("spans") or []:
                counts.spans += 1
                if want is not None and not want(sp):
                    continue  # counted as read, not decoded
                try:
                    yield _json_span(sp, resource, scope, source)
                except (KeyError, ValueError, TypeError, AttributeError):
                    counts.malformed["malformed span"] += 1


_SNAKE_SPAN_KEYS = {"trace_id": "traceId", "span_id": "spanId", "parent_span_id": "parentSpanId",
                    "start_time_unix_nano": "startTimeUnixNano",
                    "end_time_unix_nano": "endTimeUnixNano"}


def _json_span(sp: dict, resource: dict, scope: str, source: str) -> SpanRecord:
    if "traceId" not in sp:  # snake_case emitters: rename once, then one code path
        sp = {_SNAKE_SPAN_KEYS.get(k, k): v for k, v in sp.items()}
    trace_id = normalize_id(sp.get("traceId"), 16)
    span_id = normalize_id(sp.get("spanId"), 8)
    if trace_id is None or span_id is None:
        raise ValueError("missing trace or span id")
    status = sp.get("status") or {}
    code = status.get("code")
    kind = sp.get("kind")
    raw_events = sp.get("events")
    events = [Event(ev.get("name", ""), int(_g(ev, "timeUnixNano", "time_unix_nano", 0)),
                    json_attrs(ev.get("attributes")))
              for ev in raw_events] if raw_events else []
    return SpanRecord(
        trace_id, span_id, normalize_id(sp.get("parentSpanId"), 8), sp.get("name", ""),
        kind if type(kind) is int else _enum(kind, _SPAN_KIND),
        int(sp.get("startTimeUnixNano", 0)), int(sp.get("endTimeUnixNano", 0)),
        json_attrs(sp.get("attributes")), events,
        code if type(code) is int else _enum(code, _STATUS_CODE), status.get("message", ""),
        resource, scope, source)


def _json_logs(obj: dict, source: str, counts: DecodeCounts) -> Iterator[LogRecordEvent]:
    for rl in _g(obj, "resourceLogs", "resource_logs") or []:
        resource = json_attrs((rl.get("resource") or {}).get("attributes"))
        for sl in _g(rl, "scopeLogs", "scope_logs") or []:
            for lr in _g(sl, "logRecords", "log_records") or []:
                counts.log_records += 1
                try:
                    attrs = json_attrs(lr.get("attributes"))
                    name = _g(lr, "eventName", "event_name") or attrs.get("event.name") or ""
                    time_ns = int(_g(lr, "timeUnixNano", "time_unix_nano", 0)
                                  or _g(lr, "observedTimeUnixNano", "observed_time_unix_nano", 0))
                    yield LogRecordEvent(
                        normalize_id(_g(lr, "traceId", "trace_id"), 16),
                        normalize_id(_g(lr, "spanId", "span_id"), 8),
                        Event(name, time_ns, attrs, json_value(lr.get("body"))), resource, source)
                except (KeyError, ValueError, TypeError, AttributeError):
                    counts.malformed["malformed log record"] += 1


def _json_records(value: Any, source: str, line: int | None, counts: DecodeCounts,
                  want: Callable[[dict], bool] | None = None):
    items = value if isinstance(value, list) else [value]
    for obj in items:
        if not isinstance(obj, dict) or not any(k in obj for k in _OTLP_TOP_KEYS):
            raise InputError("not OTLP/JSON: expected an object with resourceSpans or resourceLogs",
                             file=source, line=line)
        try:
            yield from _json_spans(obj, source, counts, want)
            yield from _json_logs(obj, source, counts)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            # bad spans are counted inside; this is a broken resource/scope level
            raise InputError(f"malformed OTLP/JSON structure ({type(e).__name__}: {e})",
                             file=source, line=line) from None


_OTLP_TOP_KEYS = ("resourceSpans", "resource_spans", "resourceLogs", "resource_logs")


# ---------------------------------------------------------------------------------------------
# protobuf walker

_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def _proto_spans(msg: TracesData, source: str, counts: DecodeCounts,
                 want: Callable[[Any], bool] | None = None) -> Iterator[SpanRecord]:
    for rs in msg.resource_spans:
        resource = proto_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for sp in ss.spans:
                counts.spans += 1
                if want is not None and not want(sp):
                    continue  # counted as read, not decoded
                try:
                    # ids of the right length and not all zero (the hot path) skip normalize_id
                    tid, sid, pid = sp.trace_id, sp.span_id, sp.parent_span_id
                    trace_id = tid.hex() if len(tid) == 16 and tid != _ZERO16 else normalize_id(tid, 16)
                    span_id = sid.hex() if len(sid) == 8 and sid != _ZERO8 else normalize_id(sid, 8)
                    if trace_id is None or span_id is None:
                        raise ValueError("missing trace or span id")
                    parent = pid.hex() if len(pid) == 8 and pid != _ZERO8 else normalize_id(pid, 8)
                    raw_events = sp.events
                    status = sp.status
                    yield SpanRecord(
                        trace_id, span_id, parent, sp.name, sp.kind,
                        sp.start_time_unix_nano, sp.end_time_unix_nano, proto_attrs(sp.attributes),
                        [Event(e.name, e.time_unix_nano, proto_attrs(e.attributes)) for e in raw_events]
                        if raw_events else [],
                        status.code, status.message, resource, scope, source)
                except ValueError:
                    counts.malformed["malformed span"] += 1


def _proto_logs(msg: LogsData, source: str, counts: DecodeCounts) -> Iterator[LogRecordEvent]:
    for rl in msg.resource_logs:
        resource = proto_attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                counts.log_records += 1
                try:
                    attrs = proto_attrs(lr.attributes)
                    name = lr.event_name or attrs.get("event.name") or ""
                    body = proto_value(lr.body) if lr.HasField("body") else None
                    yield LogRecordEvent(
                        normalize_id(lr.trace_id, 16), normalize_id(lr.span_id, 8),
                        Event(name, lr.time_unix_nano or lr.observed_time_unix_nano, attrs, body),
                        resource, source)
                except ValueError:
                    counts.malformed["malformed log record"] += 1


def parse_proto_message(data: bytes, prefer_logs: bool) -> TracesData | LogsData:
    """Parse bytes as TracesData or LogsData (the same top-level wire shape; we try both)."""
    order = (LogsData, TracesData) if prefer_logs else (TracesData, LogsData)
    last: Exception | None = None
    for cls in order:
        try:
            msg = cls.FromString(data)
        except DecodeError as e:
            last = e
            continue
        if _plausible(msg):
            return msg
    raise DecodeError(str(last) if last else "neither TracesData nor LogsData")


def _plausible(msg) -> bool:
    """Does the parse look like this signal? Both share the top-level wire shape, and a record
    of the other signal parses with its fields left unknown: a LogRecord read as a Span has no
    ids, a Span read as a LogRecord has no timestamps."""
    if isinstance(msg, TracesData):
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    return len(sp.trace_id) == 16 and len(sp.span_id) == 8
        return True
    for rl in msg.resource_logs:
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                return bool(lr.time_unix_nano or lr.observed_time_unix_nano)
    return True


def _proto_records(msg, source: str, counts: DecodeCounts, want=None):
    if isinstance(msg, TracesData):
        return _proto_spans(msg, source, counts, want)
    return _proto_logs(msg, source, counts)


# ---------------------------------------------------------------------------------------------
# byte streams: compression with bounds

class _CountingReader(io.RawIOBase):
    """Counts the compressed bytes consumed from the underlying file."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.raw.readinto(b)
        self.count += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _BoundedDecompressed(io.RawIOBase):
    """Refuses a decompression ratio beyond Limits.max_ratio (a compression bomb)."""

    def __init__(self, inner: BinaryIO, counter: _CountingReader, limits: Limits, source: str):
        self.inner = inner
        self.counter = counter
        self.limits = limits
        self.source = source
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.inner.read(len(b))
        n = len(data)
        b[:n] = data
        self.produced += n
        if (self.produced > self.limits.ratio_grace_bytes
                and self.produced > self.limits.max_ratio * max(self.counter.count, 1)):
            raise InputError(
                f"refusing to decompress: more than {self.limits.max_ratio:.0f}x expansion "
                f"({self.produced} bytes from {self.counter.count}); a compression bomb?",
                file=self.source)
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_decompressed(path: Path, limits: Limits = DEFAULT_LIMITS) -> BinaryIO:
    """A buffered binary stream of the file's content, gzip/zstd removed (bounded)."""
    source = str(path)
    raw = io.BufferedReader(open(path, "rb", buffering=0), 1 * MiB)
    head = raw.peek(4)[:4]  # peek, not read and seek back: a pipe (/dev/stdin) cannot seek
    if head[:2] == GZIP_MAGIC:
        counter = _CountingReader(raw)
        inner = gzip.GzipFile(fileobj=io.BufferedReader(counter), mode="rb")
        return io.BufferedReader(_BoundedDecompressed(inner, counter, limits, source), 1 * MiB)
    if head == ZSTD_MAGIC:
        try:
            import zstandard  # optional: only when already installed
        except ImportError:
            raw.close()
            raise InputError("zstd-compressed input needs the 'zstandard' package "
                             "(pip install zstandard), or decompress it first: zstd -d FILE",
                             file=source) from None
        counter = _CountingReader(raw)
        inner = zstandard.ZstdDecompressor().stream_reader(io.BufferedReader(counter))
        return io.BufferedReader(_BoundedDecompressed(inner, counter, limits, source), 1 * MiB)
    return raw


def _read_bounded(stream: BinaryIO, n: int, what: str, source: str) -> bytes:
    data = stream.read(n + 1)
    if len(data) > n:
        raise InputError(f"{what} is larger than the {n // MiB} MiB limit", file=source)
    return data


# ---------------------------------------------------------------------------------------------
# files

@dataclass(slots=True)
class Unit:
    """One independently decodable piece of a file: a JSON line or document, or a protobuf
    frame or message. Units of one file can be decoded in any order (or in other processes);
    ``decode_unit`` names the line / frame in its errors."""
    is_json: bool
    data: bytes
    line: int | None = None  # JSON Lines: the line number (None for a whole document)
    frame: int = 0  # protobuf stream: the frame number (0 for a single message)
    offset: int = 0  # protobuf stream: the byte offset of the frame


def read_file(path: str | Path, counts: DecodeCounts | None = None,
              limits: Limits = DEFAULT_LIMITS, key_prefixes: tuple[str, ...] | None = None
              ) -> Iterator[SpanRecord | LogRecordEvent]:
    """Stream the spans and log records of one file. Raises InputError naming the file (and
    line) for undecodable input; a bad span inside good input is counted in ``counts.malformed``.
    With ``key_prefixes``, see ``decode_unit``."""
    path = Path(path)
    source = str(path)
    counts = counts if counts is not None else DecodeCounts()
    counts.files += 1
    before = counts.spans + counts.log_records
    skipped_before = Counter({k: counts.malformed[k] for k in _LINE_SKIPS})
    prefer_logs = is_logs_name(path)
    for unit in iter_units(path, limits):
        yield from decode_unit(unit, source, counts, prefer_logs, key_prefixes)
    if counts.spans + counts.log_records == before:
        raise InputError(no_records_message({k: counts.malformed[k] - skipped_before[k] for k in _LINE_SKIPS}),
                         file=source)


def no_records_message(skipped: dict[str, int]) -> str:
    """Why a file gave nothing: its skipped lines, when that is the reason."""
    why = ", ".join(f"{n} {reason}" for reason, n in skipped.items() if n)
    return "no spans or log records found" + (f" (skipped: {why})" if why else "")


def iter_units(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Iterator[Unit]:
    """Split one file into ``Unit``s without decoding them (decompression, framing and the size
    limits happen here). Raises InputError naming the file for what cannot be framed."""
    path = Path(path)
    source = str(path)
    try:
        stream = open_decompressed(path, limits)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", file=source) from None
    try:
        try:
            head = stream.peek(64)[:64]
        except _DECOMPRESS_ERRORS as e:
            raise InputError(f"cannot decompress: {e}", file=source) from None
        if not head:
            raise InputError("empty file", file=source)
        if head.startswith(UTF8_BOM):
            stream.read(len(UTF8_BOM))
            head = head[len(UTF8_BOM):]
        if head.lstrip()[:1] in (b"{", b"[") or not head.strip():
            yield from _json_units(stream, source, limits)
        else:
            yield from _proto_units(stream, source, limits)
    except _DECOMPRESS_ERRORS as e:
        raise InputError(f"cannot decompress: {e}", file=source) from None
    finally:
        stream.close()


def decode_unit(unit: Unit, source: str, counts: DecodeCounts, prefer_logs: bool = False,
                key_prefixes: tuple[str, ...] | None = None) -> Iterator[SpanRecord | LogRecordEvent]:
    """The spans and log records of one unit; InputError names the file and line or frame.

    With ``key_prefixes``, a span none of whose attribute keys or event names starts with one
    of them is counted but not decoded: production traces are mostly HTTP, database and queue
    spans, and listing a span's keys costs a fraction of decoding its values."""
    if unit.is_json:
        want = (lambda sp: _json_keys_start(sp, key_prefixes)) if key_prefixes else None
        if unit.line is not None:
            return _json_line_records(unit, source, counts, want)
        return _json_records(_parse_json_unit(unit, source), source, unit.line, counts, want)
    want = (lambda sp: _proto_keys_start(sp, key_prefixes)) if key_prefixes else None
    return _proto_records(_parse_proto_unit(unit, source, prefer_logs), source, counts, want)


def _json_line_records(unit: Unit, source: str, counts: DecodeCounts, want) -> Iterator:
    """The records of one JSON line; a line that is not JSON or not OTLP is counted in
    ``counts.malformed`` and skipped."""
    try:
        value = fastjson.loads(unit.data)
    except (ValueError, RecursionError):
        counts.malformed[SKIP_BAD_JSON_LINE] += 1
        return
    try:
        yield from _json_records(value, source, unit.line, counts, want)
    except InputError:
        counts.malformed[SKIP_NOT_OTLP_LINE] += 1


def _proto_keys_start(sp, prefixes: tuple[str, ...]) -> bool:
    for kv in sp.attributes:
        if kv.key.startswith(prefixes):
            return True
    return any(e.name.startswith(prefixes) for e in sp.events)


def _json_keys_start(sp: dict, prefixes: tuple[str, ...]) -> bool:
    return any(name.startswith(prefixes) for name in _json_names(sp))


def _json_names(sp: dict) -> Iterator[str]:
    """A raw OTLP/JSON span's attribute keys, then its event names."""
    for kv in sp.get("attributes") or ():
        key = kv.get("key") if isinstance(kv, dict) else None
        if isinstance(key, str):
            yield key
    for ev in sp.get("events") or ():
        name = ev.get("name") if isinstance(ev, dict) else None
        if isinstance(name, str):
            yield name


def _parse_json_unit(unit: Unit, source: str) -> Any:
    try:
        return fastjson.loads(unit.data)
    except ValueError as e:
        line = unit.line if unit.line is not None else getattr(e, "lineno", None)
        raise InputError(f"invalid JSON: {_json_msg(e)}", file=source, line=line) from None


def _parse_proto_unit(unit: Unit, source: str, prefer_logs: bool) -> TracesData | LogsData:
    try:
        return parse_proto_message(unit.data, prefer_logs)
    except DecodeError as e:
        where = (f"invalid protobuf in frame {unit.frame} at byte {unit.offset}" if unit.frame
                 else "invalid or truncated protobuf")
        raise InputError(f"{where}: {e}", file=source) from None


def decode_unit_for_join(unit: Unit, source: str, counts: DecodeCounts, prefer_logs: bool,
                         span_markers: tuple[str, ...], log_markers: tuple[str, ...]
                         ) -> Iterator[SpanRecord | LogRecordEvent]:
    """The first pass of an import needs only what other records join to: log records (the
    ones ``log_markers`` can find) and the spans that may carry retrieved documents (those in
    whose attribute keys, event names or values one of ``span_markers`` appears). This yields
    every log record and just those spans (``counts`` is incomplete: a unit without markers is
    not even parsed).

    A unit in which no marker appears is not decoded at all, so its errors surface in the
    second pass. A protobuf span is tested on its encoded bytes, ~4x cheaper than decoding its
    attributes; a JSON line with \\u00XX escapes is always decoded (a marker may hide there)."""
    data = unit.data
    if _marker_search((*span_markers, *log_markers))(data) is None and (
            not unit.is_json or b"\\u00" not in data):
        return iter(())
    if unit.is_json:
        want = lambda sp: _json_mentions(sp, span_markers)  # noqa: E731
        if unit.line is not None:
            return _json_line_records(unit, source, counts, want)
        return _json_records(_parse_json_unit(unit, source), source, unit.line, counts, want)
    msg = _parse_proto_unit(unit, source, prefer_logs)
    if isinstance(msg, TracesData):
        search = _marker_search(span_markers)
        return _proto_spans(msg, source, counts, lambda sp: search(sp.SerializeToString()) is not None)
    return _proto_logs(msg, source, counts)


@functools.lru_cache(maxsize=8)
def _marker_search(markers: tuple[str, ...]) -> Callable[[bytes], Any]:
    return re.compile(b"|".join(re.escape(m.encode()) for m in markers)).search


def _json_mentions(sp: dict, markers: tuple[str, ...]) -> bool:
    return any(m in name for name in _json_names(sp) for m in markers)


def is_logs_name(path: Path) -> bool:
    """A file named like a logs file: its protobuf is tried as LogsData first."""
    return "log" in path.name.lower()


_DECOMPRESS_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error)


def _json_units(stream: BinaryIO, source: str, limits: Limits) -> Iterator[Unit]:
    lineno = 0
    while True:  # the first non-blank line decides JSON Lines vs one document
        line = stream.readline(limits.max_record_bytes + 1)
        lineno += 1
        if not line:
            raise InputError("empty file (only whitespace)", file=source)
        if line.strip():
            break
    try:
        fastjson.loads(line)
    except ValueError:
        if len(line) > limits.max_record_bytes:
            raise InputError(f"JSON line longer than {limits.max_record_bytes // MiB} MiB",
                             file=source, line=lineno) from None
        # a pretty-printed document: read it whole, bounded; its errors name the line in the
        # file, so the blank lines before it are kept
        rest = _read_bounded(stream, limits.max_document_bytes, "JSON document", source)
        yield Unit(True, b"\n" * (lineno - 1) + line + rest)
        return
    yield Unit(True, line, lineno)
    for line in iter(lambda: stream.readline(limits.max_record_bytes + 1), b""):
        lineno += 1
        if len(line) > limits.max_record_bytes:
            raise InputError(f"JSON line longer than {limits.max_record_bytes // MiB} MiB",
                             file=source, line=lineno)
        if line.strip():
            yield Unit(True, line, lineno)


def _json_msg(e: ValueError) -> str:
    return getattr(e, "msg", None) or str(e)


def _proto_units(stream: BinaryIO, source: str, limits: Limits) -> Iterator[Unit]:
    head = stream.peek(4)[:4]
    if head[:1] == b"\x0a":
        # field 1, length-delimited: a single TracesData/LogsData message (a 4-byte
        # big-endian length starting with 0x0a would be a >160 MiB frame)
        yield Unit(False, _read_bounded(stream, limits.max_document_bytes, "protobuf message", source))
        return
    # the collector file exporter's stream: 4-byte big-endian length + message, repeated
    frame = 0
    offset = 0
    while True:
        hdr = stream.read(4)
        if not hdr:
            return
        frame += 1
        if len(hdr) < 4:
            raise InputError(f"truncated length prefix of frame {frame} at byte {offset}",
                             file=source)
        (n,) = struct.unpack(">I", hdr)
        if n > limits.max_record_bytes:
            what = "not OTLP protobuf or JSON (unrecognised content)" if frame == 1 else (
                f"frame {frame} at byte {offset} declares {n} bytes, over the "
                f"{limits.max_record_bytes // MiB} MiB limit")
            raise InputError(what, file=source)
        data = stream.read(n)
        if len(data) < n:
            raise InputError(f"truncated protobuf frame {frame} at byte {offset} "
                             f"({len(data)} of {n} bytes)", file=source)
        yield Unit(False, data, None, frame, offset)
        offset += 4 + n


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for trace files (sorted, hidden skipped)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
                and f.name.lower().endswith(TRACE_FILE_SUFFIXES))
            if not found:
                raise InputError("folder contains no trace files "
                                 f"({', '.join(TRACE_FILE_SUFFIXES)})", file=str(p))
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise InputError("no such file or folder", file=str(p))
    return out


# ---------------------------------------------------------------------------------------------
# conversions used by the receiver

_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _hex_ids_to_b64(o: Any) -> Any:
    if isinstance(o, dict):
        out = {}
        for k, v in o.items():
            if k in _ID_KEYS and isinstance(v, str) and v:
                try:
                    out[k] = _b64(bytes.fromhex(v))  # spec-conformant hex
                except ValueError:
                    out[k] = v  # already base64 (non-conformant emitters)
            elif k in ("bytesValue", "bytes_value"):
                out[k] = v  # AnyValue bytes stay base64
            else:
                out[k] = _hex_ids_to_b64(v)
        return out
    if isinstance(o, list):
        return [_hex_ids_to_b64(x) for x in o]
    return o


def json_to_proto(obj: Any, message_cls):
    """Tolerant OTLP/JSON -> protobuf message (hex or base64 ids, enum names, snake_case)."""
    msg = message_cls()
    json_format.ParseDict(_hex_ids_to_b64(obj), msg, ignore_unknown_fields=True)
    return msg


def _b64_ids_to_hex(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str)
                    else _b64_ids_to_hex(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [_b64_ids_to_hex(x) for x in o]
    return o


def proto_to_json(msg) -> dict:
    """Protobuf message -> spec OTLP/JSON (hex ids, integer enums, camelCase)."""
    return _b64_ids_to_hex(json_format.MessageToDict(msg, use_integers_for_enums=True))
