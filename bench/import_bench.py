"""Trace import speed: spans/s for protobuf and JSON input vs the raw protobuf decode rate.

    PYTHONPATH=src python bench/import_bench.py            # ~80k spans, about a minute
    PYTHONPATH=src python bench/import_bench.py --big      # 1M spans (~1 GB of JSON)
    PYTHONPATH=src python bench/import_bench.py --repeat 3 # best of 3 runs per measurement

Generates a realistic agent workload (per trace: an agent span, a retrieval span with two
documents, a chat span with v1.37 content as JSON strings, a tool span; about 1 KB of
attributes per chat span) as a collector-style length-prefixed protobuf stream and as OTLP/JSON
Lines with the same content, in export requests of 511 spans, so request boundaries cut traces
apart as a batch span processor's do (``--aligned``: 512, whole traces). Then times, each run
in a fresh process (so its peak RSS is reported too), the modes in MODES; the goal is checked
on ``cli``, what ``replaygate import`` runs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

SPANS_PER_TRACE = 4
SPANS_PER_REQUEST = 512  # a BatchSpanProcessor's default export size
T0 = 1_767_225_600_000_000_000


def _attrs(trace_no: int, kind: str) -> list[tuple[str, object]]:
    if kind == "agent":
        return [("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", "support")]
    if kind == "retrieval":
        docs = [{"id": f"d{trace_no}", "score": 0.9, "content": f"Policy text number {trace_no} " * 4},
                {"id": "d2", "score": 0.5, "content": "Shipping is free over 50 EUR."}]
        return [("gen_ai.operation.name", "retrieval"), ("gen_ai.data_source.id", "kb"),
                ("gen_ai.retrieval.documents", json.dumps(docs))]
    if kind == "tool":
        return [("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", "lookup_order")]
    model = ("gpt-4o-mini", "gpt-4o", "claude-sonnet")[trace_no % 3]
    msgs = [{"role": "user", "parts": [{"type": "text", "content": f"Question {trace_no}: can I get a refund "
                                                                    "for an order I placed last week?"}]}]
    out = [{"role": "assistant", "finish_reason": "stop",
            "parts": [{"type": "text", "content": f"Answer {trace_no}: yes, within 30 days. " * 3}]}]
    return [("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", model), ("gen_ai.request.temperature", 0.2),
            ("gen_ai.request.max_tokens", 256), ("gen_ai.response.id", f"chatcmpl-{trace_no}"),
            ("gen_ai.response.finish_reasons", ["stop"]), ("gen_ai.usage.input_tokens", 120),
            ("gen_ai.usage.output_tokens", 40),
            ("gen_ai.system_instructions", json.dumps([{"type": "text", "content": "You are a support agent."}])),
            ("gen_ai.input.messages", json.dumps(msgs)), ("gen_ai.output.messages", json.dumps(out))]


def _pb_value(v) -> AnyValue:
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    av = AnyValue()
    av.array_value.values.extend(_pb_value(x) for x in v)
    return av


def _json_value(v) -> dict:
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    return {"arrayValue": {"values": [_json_value(x) for x in v]}}


def _other_attrs(t: int, k: int) -> list[tuple[str, object]]:
    """An HTTP client or database span, as production traces hold many of."""
    if k % 2:
        return [("db.system", "postgresql"), ("db.namespace", "orders"), ("db.operation.name", "SELECT"),
                ("db.query.text", f"SELECT * FROM orders WHERE customer_id = $1 AND id = {t}"),
                ("server.address", "db.internal"), ("server.port", 5432), ("network.peer.address", "10.0.3.7"),
                ("db.response.returned_rows", 3)]
    return [("http.request.method", "POST"), ("url.full", f"https://api.internal/v2/orders/{t}/status"),
            ("server.address", "api.internal"), ("server.port", 443), ("http.response.status_code", 200),
            ("network.protocol.version", "1.1"), ("user_agent.original", "python-httpx/0.28.1"),
            ("http.request.body.size", 512), ("http.response.body.size", 2048),
            ("url.scheme", "https")]


OTHER_SPANS = 0  # non-GenAI spans per trace (--other-spans)


def _trace_spans(t: int) -> tuple[list[Span], list[dict]]:
    """The spans of trace t (4 GenAI ones, then OTHER_SPANS others), as protobuf and OTLP/JSON."""
    pb_spans, js_spans = [], []
    trace_id = (t + 1).to_bytes(16, "big")
    root = ((t + 1) << 4).to_bytes(8, "big")
    start = T0 + t * 1_000_000_000
    kinds = ("agent", "retrieval", "chat", "tool") + ("other",) * OTHER_SPANS
    for k, kind in enumerate(kinds):
        span_id = (((t + 1) << 4) + k).to_bytes(8, "big")
        s, e = start + k * 10_000_000, start + k * 10_000_000 + 400_000_000
        attrs = _other_attrs(t, k) if kind == "other" else _attrs(t, kind)
        pb_spans.append(Span(trace_id=trace_id, span_id=span_id,
                             parent_span_id=b"" if k == 0 else root, name=f"{kind} span", kind=3,
                             start_time_unix_nano=s, end_time_unix_nano=e,
                             attributes=[KeyValue(key=key, value=_pb_value(v)) for key, v in attrs]))
        sp = {"traceId": trace_id.hex(), "spanId": span_id.hex(), "name": f"{kind} span", "kind": 3,
              "startTimeUnixNano": str(s), "endTimeUnixNano": str(e),
              "attributes": [{"key": key, "value": _json_value(v)} for key, v in attrs]}
        if k:
            sp["parentSpanId"] = root.hex()
        js_spans.append(sp)
    return pb_spans, js_spans


def make_request(pb_spans: list[Span], js_spans: list[dict]) -> tuple[bytes, str]:
    """One export request as protobuf bytes and as an OTLP/JSON line with the same content."""
    res = [KeyValue(key="service.name", value=AnyValue(string_value="bench"))]
    msg = TracesData(resource_spans=[ResourceSpans(
        resource={"attributes": res}, scope_spans=[ScopeSpans(scope={"name": "bench"}, spans=pb_spans)])])
    js = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]},
                             "scopeSpans": [{"scope": {"name": "bench"}, "spans": js_spans}]}]}
    return msg.SerializeToString(), json.dumps(js, separators=(",", ":"))


def generate(n_spans: int, pb_path: Path, js_path: Path, aligned: bool = False) -> int:
    """Export requests of SPANS_PER_REQUEST spans; unless ``aligned``, one span fewer, so the
    request boundaries cut traces apart, as a batch span processor's do."""
    per_request = SPANS_PER_REQUEST if aligned else SPANS_PER_REQUEST - 1
    traces = max(1, n_spans // (SPANS_PER_TRACE + OTHER_SPANS))
    written = 0
    with open(pb_path, "wb") as pb, open(js_path, "w") as js:
        pb_buf: list[Span] = []
        js_buf: list[dict] = []
        for t in range(traces):
            p, j = _trace_spans(t)
            pb_buf += p
            js_buf += j
            while len(pb_buf) >= per_request or (t == traces - 1 and pb_buf):
                data, line = make_request(pb_buf[:per_request], js_buf[:per_request])
                pb.write(struct.pack(">I", len(data)) + data)
                js.write(line + "\n")
                written += len(pb_buf[:per_request])
                pb_buf, js_buf = pb_buf[per_request:], js_buf[per_request:]
    return written


def python_speed() -> float:
    """Millions of iterations per second of a plain Python loop: the shared machine's speed
    drifts by up to 1.6x over an hour, and this puts a run's numbers in context."""
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        x = 0
        for i in range(2_000_000):
            x += i
        best = min(best, time.process_time() - t)
    return 2.0 / best


def raw_decode(pb_path: Path) -> tuple[int, float]:
    n = 0
    t = time.perf_counter()
    with open(pb_path, "rb") as f:
        while hdr := f.read(4):
            (size,) = struct.unpack(">I", hdr)
            msg = TracesData.FromString(f.read(size))
            for rs in msg.resource_spans:
                for ss in rs.scope_spans:
                    n += len(ss.spans)
    return n, time.perf_counter() - t


MODES = {
    "decode": "decode only: the file into flat span records",
    "import": "import_traces(): one pass in one process, spans and cases kept in memory",
    "stream": "iter_import() + write_cases_jsonl(): two passes, one process",
    "cli-1": "replaygate import --workers 1: import_to_jsonl(), one pass over chunks, in process",
    "cli": "replaygate import (default workers): import_to_jsonl() over a process pool",
}


def _child(mode: str, path: str) -> None:
    from replaygate.sources.otlp import DecodeCounts, read_file
    from replaygate.sources.parallel import import_to_jsonl, usable_cpus
    from replaygate.sources.traces import ImportStats, import_traces, iter_import, write_cases_jsonl
    wall, cpu = time.perf_counter(), time.process_time()
    workers = 1
    if mode == "decode":
        counts = DecodeCounts()
        for _ in read_file(path, counts):
            pass
        spans, cases = counts.spans, 0
    elif mode == "import":
        found, stats = import_traces([path])
        spans, cases = stats.spans_read, len(found)
    else:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "cases.jsonl"
            if mode == "stream":
                stats = ImportStats()
                cases = write_cases_jsonl(iter_import([path], stats), out)
            else:
                workers = 1 if mode == "cli-1" else min(usable_cpus(), 8)
                stats, cases = import_to_jsonl([path], out, workers=workers)
        spans = stats.spans_read
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"spans": spans, "cases": cases, "wall": wall, "cpu": cpu, "workers": workers,
                      "cpu_total": cpu + kids.ru_utime + kids.ru_stime,
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "max_rss_workers_mb": kids.ru_maxrss / 1024}))


def timed(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], check=True,
                         capture_output=True, text=True, env={**os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=80_000)
    ap.add_argument("--big", action="store_true", help="1M spans (about 1 GB of OTLP/JSON)")
    ap.add_argument("--aligned", action="store_true",
                    help="export requests hold whole traces (default: request boundaries cut traces)")
    ap.add_argument("--other-spans", type=int, default=0,
                    help="add N HTTP/database spans (8-10 attributes) to each trace, as production has")
    ap.add_argument("--dir", help="where to write the generated files (default: a temp dir)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per measurement; the best is reported with the range "
                         "(the machine is shared: single runs vary by up to 1.5x)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    n = 1_000_000 if args.big else args.spans
    global OTHER_SPANS
    OTHER_SPANS = args.other_spans
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        pb, js = Path(d) / "traces.pb", Path(d) / "traces.jsonl"
        t = time.perf_counter()
        n = generate(n, pb, js, aligned=args.aligned)
        print(f"generated {n} spans in {time.perf_counter() - t:.1f}s: "
              f"protobuf {pb.stat().st_size / 1e6:.0f} MB, JSON {js.stat().st_size / 1e6:.0f} MB, "
              f"{'whole traces per request' if args.aligned else 'requests cut traces apart'}, "
              f"{args.other_spans} non-GenAI spans per trace")
        raw_n, raw_s = raw_decode(pb)
        raw_rate = raw_n / raw_s
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; Python loop speed "
              f"{python_speed():.1f} M/s (compare runs by it). Rates: spans per "
              "second of wall-clock time, and per CPU-second of all processes (workers included)")
        print(f"raw protobuf decode (FromString per frame): {raw_rate:>9,.0f} spans/s")
        for label, path, goal in (("protobuf", pb, 50_000), ("JSON", js, 20_000)):
            for mode in args.modes.split(","):
                runs = [timed(mode, path) for _ in range(max(1, args.repeat))]
                walls = sorted(x["spans"] / x["wall"] for x in runs)
                r = max(runs, key=lambda x: x["spans"] / x["wall"])
                rate, cpu_rate = r["spans"] / r["wall"], r["spans"] / r["cpu_total"]
                spread = f"; range {walls[0]:,.0f}-{walls[-1]:,.0f} over {len(runs)} runs" if len(runs) > 1 else ""
                verdict = f"goal {goal:,}: {'met' if rate >= goal else 'NOT met'}; " if mode == "cli" else ""
                rss = f"peak RSS {r['max_rss_mb']:.0f} MB" + (
                    f" (+ {r['max_rss_workers_mb']:.0f} MB per worker)" if r["workers"] > 1 else "")
                print(f"{mode:<6} {label:<9}: {rate:>9,.0f} spans/s [{cpu_rate:,.0f} per CPU-s, "
                      f"{r['workers']} worker(s)]  ({rate / raw_rate:.3f}x raw decode; {verdict}"
                      f"{r['cases']} cases, {rss}{spread})")


if __name__ == "__main__":
    main()
