"""import_to_jsonl (the `replaygate import` path): one pass over chunks in worker processes,
checked against the sequential two-pass import (``iter_import``) byte for byte."""
from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

from replaygate import fastjson
from replaygate.errors import InputError
from replaygate.sources import genai, parallel
from replaygate.sources.otlp import DecodeCounts, decode_unit, iter_units
from replaygate.sources.parallel import auto_workers, import_to_jsonl
from replaygate.sources.traces import ImportStats, _Importer, iter_import, write_cases_jsonl

FIX = Path(__file__).parent / "fixtures" / "traces"


def _reference(paths, tmp_path, **kw) -> tuple[bytes, dict]:
    stats = ImportStats()
    out = tmp_path / "reference.jsonl"
    write_cases_jsonl(iter_import(paths, stats, **kw), out)
    return out.read_bytes(), stats.to_dict()


def _parallel(paths, tmp_path, workers, chunk_bytes, **kw) -> tuple[bytes, dict, int]:
    out = tmp_path / f"cases-{workers}-{chunk_bytes}.jsonl"
    stats, n = import_to_jsonl(paths, out, workers=workers, chunk_bytes=chunk_bytes, **kw)
    return out.read_bytes(), stats.to_dict(), n


def _spy(monkeypatch, owner, name) -> list:
    """Record the calls of ``owner.name`` (still calling it): which path an import took."""
    calls: list = []
    real = getattr(owner, name)

    def spy(*a, **kw):
        calls.append(a)
        return real(*a, **kw)
    monkeypatch.setattr(owner, name, spy)
    return calls


# --- a workload whose traces straddle export requests ------------------------------------------

def _span(trace: int, k: int, attrs: list[tuple[str, object]]) -> Span:
    def value(v):
        if isinstance(v, str):
            return AnyValue(string_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        return AnyValue(int_value=v)
    start = 1_767_225_600_000_000_000 + trace * 10**9 + k * 10**7
    return Span(trace_id=(trace + 1).to_bytes(16, "big"), span_id=((trace + 1) * 16 + k).to_bytes(8, "big"),
                name=f"span {k}", kind=3, start_time_unix_nano=start, end_time_unix_nano=start + 4 * 10**8,
                attributes=[KeyValue(key=key, value=value(v)) for key, v in attrs])


def _retrieval(trace: int) -> Span:
    docs = [{"id": f"d{trace}", "content": f"policy {trace}"}, {"id": "x", "content": "shipping is free"}]
    return _span(trace, 1, [("gen_ai.operation.name", "retrieval"),
                            ("gen_ai.retrieval.documents", json.dumps(docs))])


def _chat(trace: int) -> Span:
    msgs = [{"role": "user", "parts": [{"type": "text", "content": f"question {trace}"}]}]
    out = [{"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": f"answer {trace}"}]}]
    return _span(trace, 2, [("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
                            ("gen_ai.request.model", ("m-a", "m-b")[trace % 2]),
                            ("gen_ai.request.temperature", 0.5), ("gen_ai.usage.input_tokens", 10 + trace),
                            ("gen_ai.input.messages", json.dumps(msgs)),
                            ("gen_ai.output.messages", json.dumps(out))])


def _frame(spans: list[Span]) -> bytes:
    msg = TracesData(resource_spans=[ResourceSpans(
        resource={"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="bot"))]},
        scope_spans=[ScopeSpans(scope={"name": "t"}, spans=spans)])])
    data = msg.SerializeToString()
    return struct.pack(">I", len(data)) + data


def straddling_file(path: Path, traces: int = 12, late: bool = True, retry: bool = True) -> Path:
    """Frame i holds the LLM call of trace i-1 and the retrieval of trace i (as a batch span
    processor exports them: a retrieval ends before its LLM call does). With ``late``, trace
    5's retrieval is exported a frame after its call (it still started before it, so it is
    context); with ``retry``, frame 3 is exported twice (an exporter retry)."""
    frames = []
    for i in range(traces + 1):
        spans = [_chat(i - 1)] if i else []
        if i < traces and not (late and i == 5):
            spans.append(_retrieval(i))
        if late and i == 7:
            spans.append(_retrieval(5))
        frames.append(_frame(spans))
    if retry:
        frames.append(frames[3])
    path.write_bytes(b"".join(frames))
    return path


# --- equivalence ------------------------------------------------------------------------------

@pytest.mark.parametrize("workers,chunk_bytes", [(1, 1), (2, 1), (2, 300), (1, 10**9)])
def test_straddling_traces_get_the_context_of_the_sequential_import(tmp_path, monkeypatch, workers,
                                                                    chunk_bytes):
    rewrites = _spy(monkeypatch, parallel._Output, "rewrite")
    f = straddling_file(tmp_path / "traces.pb")
    ref, ref_stats = _reference([f], tmp_path)
    out, stats, n = _parallel([f], tmp_path, workers, chunk_bytes)
    assert out == ref and stats == ref_stats
    # calls after their trace's retrieval get it as they are merged; only a retrieval exported
    # in a later chunk than its call (trace 5; the retried frame 3) needs a rewrite at the end
    assert len(rewrites) == (chunk_bytes < 10**9)
    cases = [json.loads(x) for x in out.splitlines()]
    assert n == len(cases) == 12
    assert stats["skipped"] == {"duplicate span": 1}
    by_id = {c["id"]: c for c in cases}
    # the call of trace 2 is in frame 3, its retrieval in frame 2: joined across chunks
    assert by_id[f"{(3).to_bytes(16, 'big').hex()}:{(3 * 16 + 2).to_bytes(8, 'big').hex()}"]["context"] == \
        ["policy 2", "shipping is free"]
    assert by_id[f"{(6).to_bytes(16, 'big').hex()}:{(6 * 16 + 2).to_bytes(8, 'big').hex()}"]["context"] == \
        ["policy 5", "shipping is free"]  # retrieval exported after the call, still before it in time


@pytest.mark.parametrize("workers", [1, 2])
def test_retrievals_from_earlier_chunks_need_no_rewrite(tmp_path, monkeypatch, workers):
    rewrites = _spy(monkeypatch, parallel._Output, "rewrite")
    f = straddling_file(tmp_path / "traces.pb", late=False, retry=False)
    ref, ref_stats = _reference([f], tmp_path)
    out, stats, n = _parallel([f], tmp_path, workers, 1)
    assert out == ref and stats == ref_stats and not rewrites
    assert sum(1 for x in out.splitlines() if json.loads(x)["context"]) == 12


@pytest.mark.parametrize("workers,chunk_bytes", [(1, 1), (2, 1), (2, 4096), (1, 10**9)])
def test_fixture_folder_including_events_in_a_separate_logs_file(tmp_path, monkeypatch, workers,
                                                                  chunk_bytes):
    # events_logs.jsonl carries the content of events_traces.jsonl's spans: the second pass
    second = _spy(monkeypatch, parallel, "_second_pass")
    ref, ref_stats = _reference([FIX], tmp_path)
    out, stats, n = _parallel([FIX], tmp_path, workers, chunk_bytes)
    assert out == ref and stats == ref_stats
    assert len(second) == 1
    assert n == ref_stats["cases"] and n > 0
    legacy = [json.loads(x) for x in out.splitlines() if b"events_traces" in x]
    assert legacy and all(c["messages"] for c in legacy)


@pytest.mark.parametrize("order", ["logs first", "spans first"])
def test_log_events_before_or_after_their_spans_take_the_second_pass(tmp_path, monkeypatch, order):
    files = [FIX / "events_logs.jsonl", FIX / "events_traces.jsonl"]
    if order == "spans first":
        files.reverse()
    second = _spy(monkeypatch, parallel, "_second_pass")
    ref, ref_stats = _reference(files, tmp_path)
    out, stats, n = _parallel(files, tmp_path, 2, 1)
    assert out == ref and stats == ref_stats and len(second) == 1
    assert n > 0 and all(json.loads(x)["messages"] for x in out.splitlines())


def test_where_and_include_errors_match_the_sequential_import(tmp_path):
    f = straddling_file(tmp_path / "traces.pb")
    where = {"model": "m-a"}
    out, stats, n = _parallel([FIX / "otel137.jsonl", f], tmp_path, 2, 1, where=where, include_errors=True)
    ref_stats = ImportStats()
    from replaygate.sources.traces import compile_where
    match = compile_where(where)
    ref = tmp_path / "ref.jsonl"
    n_ref = write_cases_jsonl((c for c in iter_import([FIX / "otel137.jsonl", f], ref_stats, include_errors=True)
                               if match(c)), ref)
    assert out == ref.read_bytes() and stats == ref_stats.to_dict() and n == n_ref == 6


def test_the_first_pass_reads_every_record_that_holds_join_state():
    # decode_unit_for_join skips records by markers: it must still find every retrieved
    # document and GenAI log event that a full decode finds, in every fixture convention
    for path in sorted(FIX.iterdir()):
        if path.suffix not in (".json", ".jsonl", ".pb"):
            continue
        full, lite = _Importer(False), _Importer(False)
        for unit in iter_units(path):
            for rec in decode_unit(unit, str(path), DecodeCounts()):
                full.observe(rec)
            lite.collect(unit, str(path), False)
        assert dict(lite.retrieved) == dict(full.retrieved), path.name
        assert dict(lite.log_events) == dict(full.log_events), path.name
    assert all(name.startswith(genai.JOIN_LOG_MARKERS) for name in genai.GENAI_EVENT_NAMES)


# --- errors lose nothing ------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_frame_names_the_file_and_leaves_the_old_output(tmp_path, workers):
    good = straddling_file(tmp_path / "traces.pb").read_bytes()
    bad = tmp_path / "bad.pb"
    bad.write_bytes(good + struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff")
    out = tmp_path / "cases.jsonl"
    out.write_text("previous run\n")
    with pytest.raises(InputError) as e:
        import_to_jsonl([bad], out, workers=workers, chunk_bytes=1)
    assert str(e.value).startswith(f"{bad}: invalid protobuf in frame 15 at byte")
    assert out.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pb", "cases.jsonl", "traces.pb"]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_empty_file_among_good_ones_is_an_error(tmp_path, workers):
    empty = tmp_path / "b.jsonl"
    empty.write_text('{"resourceSpans": []}\n')
    with pytest.raises(InputError, match="b.jsonl: no spans or log records found"):
        import_to_jsonl([FIX / "otel137.jsonl", empty], tmp_path / "out.jsonl", workers=workers)


def test_input_errors_survive_the_process_boundary():
    e = pickle.loads(pickle.dumps(InputError("bad frame", file="t.pb", line=3)))
    assert type(e) is InputError and str(e) == "t.pb:3: bad frame" and e.line == 3


def test_auto_workers_only_for_large_inputs(tmp_path):
    small = tmp_path / "s.jsonl"
    small.write_text("{}\n")
    assert auto_workers([small]) == 1
    big = tmp_path / "big.pb"
    with open(big, "wb") as f:
        f.truncate(17 * 1024 * 1024)  # sparse: only the size counts
    assert auto_workers([big]) >= 1 and auto_workers([big]) == min(8, _cpus())


def _cpus() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# --- fastjson -----------------------------------------------------------------------------------

def test_fastjson_takes_what_json_takes_and_writes_what_json_writes():
    for text in ('{"a": NaN}', '"\\ud800"', '[1.5, "x", {"k": null}]'):
        assert repr(fastjson.loads(text)) == repr(json.loads(text))
    for text in ('{"order": 123456789012345678901234567890}', '[1e400]', '{"a": NaN}', '["\\ud800"]',
                 '{"id": 12345678901234567890, "f": 0.1}'):
        assert repr(fastjson.loads_value(text)) == repr(json.loads(text))  # content: exact, always
    for bad in ("{bad", '{"a": 1} x'):
        with pytest.raises(ValueError):
            fastjson.loads(bad)
        with pytest.raises(ValueError):
            fastjson.loads_value(bad)
    for value in ({"a": [1, 2.5, "é", None, True]}, {"n": 2**70}, ["\u2028", 1e-7]):
        assert json.loads(fastjson.dumps(value)) == value
    assert fastjson.dumps({"a": 1, "b": "é"}) == json.dumps({"a": 1, "b": "é"}, ensure_ascii=False,
                                                           separators=(",", ":"))
    line = fastjson.dumpb({"s": "\ud800", "n": 2**70})  # the fallback: still valid UTF-8 JSON
    assert json.loads(line.decode("utf-8")) == {"s": "\ud800", "n": 2**70}


def test_spawned_workers_give_the_same_output(tmp_path, monkeypatch):
    # where fork is unsafe (threads) or missing (macOS, Windows) the pool spawns fresh
    # interpreters: the join state then travels pickled, which must give the same cases
    import multiprocessing
    monkeypatch.setattr(parallel, "_context", lambda: multiprocessing.get_context("spawn"))
    ref, ref_stats = _reference([FIX], tmp_path)
    out, stats, _ = _parallel([FIX], tmp_path, 2, 1)
    assert out == ref and stats == ref_stats


def test_workers_collect_garbage_and_the_caller_gets_its_collector_back(tmp_path):
    import gc

    from concurrent.futures import ProcessPoolExecutor
    assert gc.isenabled()
    import_to_jsonl([FIX], tmp_path / "out.jsonl", workers=2, chunk_bytes=1)
    assert gc.isenabled()
    gc.disable()  # the merge pauses it while the pool forks: a worker must turn it back on
    try:
        with ProcessPoolExecutor(1, mp_context=parallel._context(), initializer=parallel._init_worker,
                                 initargs=((None, None, False, None, None),)) as ex:
            assert ex.submit(gc.isenabled).result() is True
    finally:
        gc.enable()


def test_import_to_a_pipe_that_closes_early_stops_quietly(tmp_path):
    import subprocess
    import sys
    f = straddling_file(tmp_path / "traces.pb", traces=3000)  # ~2 MB of cases: more than a pipe holds
    p = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "-q", "import", str(f), "-o", "/dev/stdout"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.read(10) == b'{"id":"000'
    p.stdout.close()  # as `| head` does
    _, err = p.communicate(timeout=60)
    assert p.returncode == 141 and b"Traceback" not in err and b"internal error" not in err


def test_ctrl_c_during_an_import_keeps_the_old_output_and_leaves_nothing_behind(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time
    fifo = tmp_path / "traces.jsonl"
    os.mkfifo(fifo)
    release = threading.Event()

    def feed():  # over a chunk of traces (so the workers start on it), then the stream stalls
        line = (FIX / "otel137.jsonl").read_bytes().splitlines(keepends=True)[0]
        with open(fifo, "wb") as f:
            f.write(line * (2 * 1024 * 1024 // len(line) + 1))
            f.flush()
            release.wait(60)
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = tmp_path / "cases.jsonl"
    out.write_text("previous run\n")
    p = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "import", str(fifo), "-o", str(out),
                          "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_group(p.pid)) < 3:  # the import and its 2 workers
            time.sleep(0.05)
        assert len(_group(p.pid)) >= 3
        os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole process group
        _, err = p.communicate(timeout=30)
    finally:
        release.set()
    assert p.returncode == 130 and b"interrupted" in err and b"Traceback" not in err
    assert out.read_text() == "previous run\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cases.jsonl", "traces.jsonl"]
    deadline = time.monotonic() + 5
    while _group(p.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group(p.pid)  # no worker outlives the import


def _group(pgid: int) -> list[int]:
    """The live processes of a process group (from /proc)."""
    import os
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(d))
    return pids


# --- spans that are not GenAI are counted, not decoded ------------------------------------------

def test_spans_without_genai_keys_are_other_whatever_they_hold():
    from replaygate.sources.otlp import Event, SpanRecord, read_file
    # every span of every fixture that classify() places is found by the key prefixes
    for path in sorted(FIX.iterdir()):
        if path.suffix not in (".json", ".jsonl", ".pb"):
            continue
        for rec in read_file(path):
            if isinstance(rec, SpanRecord) and genai.classify(rec)[0] != genai.OTHER:
                assert any(k.startswith(genai.SPAN_KEY_PREFIXES) for k in rec.attributes) or any(
                    e.name.startswith(genai.SPAN_KEY_PREFIXES) for e in rec.events), (path.name, rec.name)

    def span(attrs, events=()):
        return SpanRecord("a" * 32, "b" * 16, None, "GET /orders", 2, 1, 2, attrs, list(events), 0, "", {}, "", "x")
    http = {"http.request.method": "GET", "url.full": "https://api.example.com/v1/chat/completions",
            "server.address": "api.openai.com", "db.system": "postgresql", "model": "gpt-4o",
            "ai_model": "x", "llm_provider": "openai", "messaging.system": "kafka", "rpc.service": "Chat"}
    assert genai.classify(span(http)) == (genai.OTHER, None)
    # and the keys classify() does read are all under a prefix
    for key in ("gen_ai.operation.name", "gen_ai.tool.name", "gen_ai.request.model", "llm.model_name",
                "llm.request.type", "openinference.span.kind", "traceloop.span.kind",
                "langfuse.observation.type", "mlflow.spanType", "ai.operationId", genai.ADK_REQUEST,
                genai.ADK_TOOL_ARGS):
        assert genai.classify(span({key: "chat"}))[0] != genai.OTHER, key
        assert key.startswith(genai.SPAN_KEY_PREFIXES), key
    assert genai.classify(span({}, [Event(genai.PROMPT_EVENT_126, 0, {})]))[0] == genai.INFERENCE


@pytest.mark.parametrize("workers", [1, 2])
def test_http_and_database_spans_between_llm_calls_change_nothing_but_the_span_count(tmp_path, workers):
    plain = straddling_file(tmp_path / "plain.pb", late=False, retry=False)
    frames = []
    for i in range(13):
        other = [_span(i, 7, [("http.request.method", "POST"), ("url.path", "/v1/chat"),
                              ("db.statement", "SELECT 1"), ("server.port", 443)])]
        spans = ([_chat(i - 1)] if i else []) + other + ([_retrieval(i)] if i < 12 else [])
        frames.append(_frame(spans))
    mixed = tmp_path / "mixed.pb"
    mixed.write_bytes(b"".join(frames))
    a, a_stats, _ = _parallel([plain], tmp_path, workers, 1)
    b, b_stats, _ = _parallel([mixed], tmp_path, workers, 1)
    assert a.replace(b"plain.pb", b"mixed.pb") == b
    assert b_stats["spans_read"] == a_stats["spans_read"] + 13
    assert {k: v for k, v in b_stats.items() if k != "spans_read"} == \
        {k: v for k, v in a_stats.items() if k != "spans_read"}


def _feed_fifo(path: Path, data: bytes):
    import os
    import threading
    os.mkfifo(path)

    def feed():
        with open(path, "wb") as f:
            f.write(data)
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("workers", [None, 1, 2])
def test_a_pipe_is_read_once_like_a_file(tmp_path, workers):
    # `zcat traces.pb.gz | replaygate import /dev/stdin`: no seek, no second read, no sniffing
    import gzip
    f = straddling_file(tmp_path / "traces.pb")
    ref, ref_stats, _ = _parallel([f], tmp_path, 1, 1)
    fifo = tmp_path / "pipe"
    writer = _feed_fifo(fifo, gzip.compress(f.read_bytes()))
    stats, n = import_to_jsonl([fifo], tmp_path / "piped.jsonl", workers=workers, chunk_bytes=1)
    writer.join(5)
    assert (tmp_path / "piped.jsonl").read_bytes() == ref.replace(str(f).encode(), str(fifo).encode())
    assert n == 12 and stats.spans_read == ref_stats["spans_read"]


def test_log_events_apart_from_their_spans_cannot_come_through_a_pipe(tmp_path):
    fifo = tmp_path / "pipe"
    data = (FIX / "events_traces.jsonl").read_bytes() + (FIX / "events_logs.jsonl").read_bytes()
    writer = _feed_fifo(fifo, data)
    with pytest.raises(InputError, match="save it to a file first"):
        import_to_jsonl([fifo], tmp_path / "out.jsonl", workers=1, chunk_bytes=1)
    writer.join(5)
    assert not (tmp_path / "out.jsonl").exists()


def test_traces_module_does_not_import_the_pool():
    """sources.traces is the sequential importer the pool builds on: importing it must not pull
    in sources.parallel (the two used to import each other)."""
    import subprocess
    import sys
    code = ("import sys, replaygate.sources.traces; "
            "print('replaygate.sources.parallel' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
