"""``replaygate import``: trace files -> cases.jsonl in one pass, spread over processes.

The input is cut into chunks of whole records (``otlp.iter_units``: decompression and size
limits stay in this process) and each chunk is decoded and extracted by a worker process, with
the join state the chunk itself holds (its GenAI log events and retrieved documents). This
process merges the results in input order: it drops duplicate spans, counts, writes the lines,
and gathers the join state of the whole input.

A call whose joins were all inside its own chunk (an exporter batch holds whole traces, or at
least each retrieval with its LLM call) is written as it is. For the others:

* documents its trace retrieved in earlier chunks are all known when the call is merged: its
  line gets the full ``context`` before it is written (the common case of a trace cut across
  two export requests);
* documents that come in a later chunk than a call of their trace (exported after the call)
  make that trace's lines rewritten at the end, from all the input;
* GenAI log events in another chunk than their span (events exported as logs, in a separate
  file) make a second pass that extracts again with the whole input's join state: the
  two-pass import of ``traces.iter_import``, spread over the workers too.

Either way the output and the stats are those of the sequential path, byte for byte. At most
``2 * workers`` chunks are in flight. Memory holds the join state and the spans seen (for the
duplicates), as the sequential path does, plus the last chunk with a call of each trace;
never the input or the cases.
"""
from __future__ import annotations

import gc
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections import defaultdict, deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from replaygate import fastjson
from replaygate.errors import InputError
from replaygate.fileio import io_error
from replaygate.model import Case
from replaygate.sources.genai import SPAN_KEY_PREFIXES
from replaygate.sources.otlp import (DEFAULT_LIMITS, GZIP_MAGIC, MiB, DecodeCounts, Limits, Unit,
                                     decode_unit, is_logs_name, iter_units)
from replaygate.sources import nested
from replaygate.sources.refs import RefReader
from replaygate.sources.traces import (SKIP_BAD_RETRIEVAL, SKIP_TRUNCATED_END, ImportStats, _files, _Importer,
                                       _parse_sample, compile_where, context_for,
                                       read_cases_jsonl, sample_cases, young_gc_only)

# Below this much input a pool's start-up (~50 ms with fork, ~0.3 s with spawn) is not worth it.
PARALLEL_MIN_BYTES = 16 * MiB
CHUNK_BYTES = 1 * MiB  # a chunk is a few OTLP export requests: large enough to amortise the IPC
MAX_AUTO_WORKERS = 8  # this process frames, merges and writes alone; beyond this it is the limit
_COMPRESSED_RATIO = 6  # rough expansion of gzip/zstd trace files, to size the work


def import_to_jsonl(paths: str | Path | Iterable[str | Path], output: str | Path, *,
                    where: dict | None = None, include_errors: bool = False,
                    workers: int | None = None, limits: Limits = DEFAULT_LIMITS,
                    chunk_bytes: int = CHUNK_BYTES, refs_dir: str | Path | None = None,
                    keep_nested_duplicates: bool = False) -> tuple[ImportStats, int]:
    """Import trace/log files and folders into a cases JSONL file; return the stats and the
    number of cases written (those matching ``where``). ``workers=None`` picks a pool size from
    the input size and the usable cores; 1 runs everything in this process. Content stored by
    reference is read from files under ``refs_dir`` (see refs.py). A call recorded twice by
    nested spans becomes one case unless ``keep_nested_duplicates`` (see nested.py).

    The file is written beside ``output`` and moved into place when complete: on an error
    (InputError for undecodable input, ConfigError for a bad ``where``) an existing output is
    left as it was."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = _files(paths)
    named = {Path(p) for p in paths if not Path(p).is_dir()}
    # a file found in a folder may be anything (an empty file, notes, another tool's JSON): it
    # is skipped and counted; a file named on the command line is the user's and must decode
    tolerant = {i for i, f in enumerate(files) if f not in named}
    compile_where(where)  # a bad filter fails here, not in a worker
    n = auto_workers(files) if workers is None else max(1, int(workers))
    with _Output(output) as out, young_gc_only() as young_gc:
        refs = RefReader(refs_dir)
        with _executor(n, (None, None, include_errors, where, refs)) as ex:
            stats, written, join = _single_pass(ex, files, limits, chunk_bytes, n, out, young_gc, tolerant)
        if join.log_events_elsewhere:  # second pass, with the whole input's join state
            pipes = [str(f) for f in files if not f.is_file()]
            if pipes:
                raise InputError("GenAI log events exported apart from their spans need a second read "
                                 "of the input, which a pipe cannot give: save it to a file first",
                                 file=", ".join(pipes))
            out.restart()
            with _executor(n, (join.log_events, join.retrieved, include_errors, where, refs)) as ex:
                stats, written = _second_pass(ex, files, limits, chunk_bytes, n, out, join, tolerant)
        elif join.late_traces:
            out.rewrite(join)
        if not keep_nested_duplicates:
            dropped = out.drop_nested_duplicates()
            if dropped:
                stats.cases -= dropped
                stats.skipped[nested.SKIP_NESTED_DUPLICATE] += dropped
                written -= dropped
    return stats, written


def load_traces(paths: str | Path | Iterable[str | Path], where: dict | None = None,
                sample: dict | None = None, *, include_errors: bool = False,
                refs_dir: str | Path | None = None, keep_nested_duplicates: bool = False
                ) -> list[Case]:
    """Cases for a ``traces:`` dataset entry: import, filter with ``where``, then ``sample``.

    The import is ``replaygate import``'s (worker processes for large inputs) into a temporary
    cases file read back: memory holds the cases that match, not every span until the end."""
    pick = _parse_sample(sample)
    with tempfile.TemporaryDirectory(prefix="replaygate-traces-") as d:
        out = Path(d) / "cases.jsonl"
        import_to_jsonl(paths, out, where=where, include_errors=include_errors, refs_dir=refs_dir,
                        keep_nested_duplicates=keep_nested_duplicates)
        cases = read_cases_jsonl(out)
    if pick is not None:
        cases = sample_cases(cases, *pick)
    return cases


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def auto_workers(files: list[Path]) -> int:
    size = 0
    for f in files:
        if not f.is_file():
            continue  # a pipe: sniffing it would eat its first bytes
        try:
            with open(f, "rb") as fh:
                compressed = fh.read(2) == GZIP_MAGIC or f.suffix in (".zst", ".zstd")
            size += f.stat().st_size * (_COMPRESSED_RATIO if compressed else 1)
        except OSError:
            return 1  # reading it reports the problem
    if size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(usable_cpus(), MAX_AUTO_WORKERS))


# ---------------------------------------------------------------------------------------------
# chunks, in order

@dataclass
class _Chunk:
    index: int
    file_index: int
    source: str
    prefer_logs: bool
    units: list[Unit]
    tolerant: bool = False  # a file found in a folder: a unit that cannot be decoded is skipped


@dataclass
class _FileEnd:
    file_index: int
    source: str
    truncated: str | None = None  # the file ended in a partial unit (skipped, counted)


@dataclass
class _Failed:
    error: InputError


@dataclass
class _Skipped:
    """A file found in a folder that cannot be read as OTLP at all: counted, not fatal."""
    file_index: int
    source: str
    reason: str


def _chunks(files: list[Path], limits: Limits, chunk_bytes: int, tolerant: set[int] = frozenset()
            ) -> Iterator[_Chunk | _FileEnd | _Failed | _Skipped]:
    """The input in chunks of whole units, each file ending with a ``_FileEnd``. A framing
    error becomes a ``_Failed`` in its place, so it is raised after the chunks before it have
    been merged, as reading in order would. A file that ends in a truncated unit (a partial
    write) keeps the units before it, the cut counted; a file of ``tolerant`` that cannot be
    framed at all becomes a ``_Skipped``."""
    index = 0
    for fi, path in enumerate(files):
        source, prefer_logs, lenient = str(path), is_logs_name(path), fi in tolerant
        units: list[Unit] = []
        size = 0
        framed = 0
        try:
            for unit in iter_units(path, limits):
                units.append(unit)
                framed += 1
                size += len(unit.data)
                if size >= chunk_bytes:
                    yield _Chunk(index, fi, source, prefer_logs, units, lenient)
                    index += 1
                    units, size = [], 0
        except InputError as e:
            if units:
                yield _Chunk(index, fi, source, prefer_logs, units, lenient)
                index += 1
            if framed and _truncated_end(e):
                yield _FileEnd(fi, source, truncated=e.message)
                continue
            if lenient:
                yield _Skipped(fi, source, e.message)
                continue
            yield _Failed(e)
            return
        if units:
            yield _Chunk(index, fi, source, prefer_logs, units, lenient)
            index += 1
        yield _FileEnd(fi, source)


def _truncated_end(e: InputError) -> bool:
    """A framing error that only cuts the file short (the units before it are whole)."""
    return e.message.startswith(("truncated protobuf frame", "truncated length prefix"))


def _in_order(ex, fn, items: Iterator, window: int) -> Iterator[tuple[Any, Any]]:
    """(item, fn(chunk task) or None) in input order, at most ``window`` tasks in flight."""
    pending: deque[tuple[Any, Future | None]] = deque()
    in_flight = 0
    for item in items:
        if isinstance(item, _Chunk):
            pending.append((item, ex.submit(fn, (item.source, item.prefer_logs, item.units, item.tolerant))))
            in_flight += 1
        else:
            pending.append((item, None))
        while in_flight >= window or (pending and pending[0][1] is None):
            it, fut = pending.popleft()
            if fut is not None:
                in_flight -= 1
            yield it, fut.result() if fut is not None else None
    while pending:
        it, fut = pending.popleft()
        yield it, fut.result() if fut is not None else None


# ---------------------------------------------------------------------------------------------
# merging

@dataclass
class _JoinState:
    """The join state of the whole input, and what the single pass missed of it. It is told
    each chunk's join state before that chunk's calls, so it sees both orders: a call after
    join data from another chunk, and join data after a call in another chunk."""
    log_events: dict = field(default_factory=lambda: defaultdict(list))
    retrieved: dict = field(default_factory=lambda: defaultdict(list))
    log_chunk: dict = field(default_factory=dict)  # key -> the chunk of its events (-1: several)
    retrieved_first: dict = field(default_factory=dict)  # trace -> first chunk with documents
    last_call_chunk: dict = field(default_factory=dict)  # trace -> last chunk with a call of it
    late_traces: set = field(default_factory=set)  # documents came after a call of the trace
    bad_retrieval: int = 0
    log_events_elsewhere: bool = False  # some call's log events were not in its chunk

    def add(self, chunk: int, log_events: dict, retrieved: dict, seen: set) -> None:
        for k, evs in log_events.items():
            self.log_events[k].extend(evs)
            self.log_chunk[k] = chunk if self.log_chunk.get(k, chunk) == chunk else -1
            if k in seen:  # its call came in an earlier chunk
                self.log_events_elsewhere = True
        for t, docs in retrieved.items():
            self.retrieved[t].extend(docs)
            self.retrieved_first.setdefault(t, chunk)
            if self.last_call_chunk.get(t, chunk) < chunk:
                self.late_traces.add(t)

    def call(self, chunk: int, key: tuple[str, str], start_ns: int) -> list[str] | None:
        """Note a call kept in ``chunk``; return its context when documents of its trace came
        in earlier chunks (they are all known now), else None (its own chunk's are right)."""
        if key in self.log_events and self.log_chunk[key] != chunk:
            self.log_events_elsewhere = True
        trace = key[0]
        self.last_call_chunk[trace] = chunk
        if self.retrieved_first.get(trace, chunk) < chunk:
            return context_for(start_ns, self.retrieved.get(trace))
        return None


@dataclass
class _Merge:
    """Counting in input order, as ``_Importer.emit`` does in the sequential path."""
    imp: _Importer = field(default_factory=lambda: _Importer(include_errors=False))
    counts: DecodeCounts = field(default_factory=DecodeCounts)
    records_in_file: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    file_errors: dict[int, list[str]] = field(default_factory=dict)  # of tolerant files' skipped units
    written: int = 0

    def chunk(self, item: _Chunk, part: ImportStats, part_counts: DecodeCounts) -> None:
        self.imp.stats.merge(part)  # what observe() counted: context spans, unsupported, ...
        self.counts.spans += part_counts.spans
        self.counts.log_records += part_counts.log_records
        self.counts.malformed.update(part_counts.malformed)
        self.records_in_file[item.file_index] += part_counts.spans + part_counts.log_records
        if part_counts.errors:
            self.file_errors.setdefault(item.file_index, []).extend(part_counts.errors)

    def call(self, key, convention, skip, model, start_ns, end_ns) -> bool:
        """Count one LLM call; False for a duplicate (dropped)."""
        if self.imp.duplicate(key):
            return False
        self.imp.tally(convention, skip, model, start_ns, end_ns)
        return True

    def calls(self, calls: list[tuple], blob: bytes, out: "_Output", note=None, young_gc=None) -> None:
        """Count a chunk's calls in order and write the lines of those kept: a duplicate's
        line is cut out of ``blob``. ``note(key, start)`` is told of every call kept; a
        context it returns replaces the line's."""
        parts: list[bytes] | None = None  # None while the blob can be written as it is
        pos = 0
        for key, convention, skip, model, start_ns, end_ns, length in calls:
            ok = self.call(key, convention, skip, model, start_ns, end_ns)
            context = note(key, start_ns) if ok and note is not None else None
            if young_gc is not None:
                young_gc()  # the seen set grows: full collections would walk it again and again
            if length < 0:
                continue
            end = pos + length + 1
            if parts is None and (not ok or context is not None):
                parts = [blob[:pos]]
            if ok:
                if parts is not None:
                    parts.append(blob[pos:end] if context is None
                                 else _with_context(blob[pos:end - 1], context) + b"\n")
                self.written += 1
            pos = end
        out.write(blob if parts is None else b"".join(parts))

    def file_end(self, item: _FileEnd, tolerant: set[int] = frozenset()) -> None:
        if item.truncated:
            self.counts.malformed[SKIP_TRUNCATED_END] += 1
        if self.records_in_file[item.file_index] and self.file_errors.get(item.file_index):
            self.counts.malformed["undecodable part of a file found in a folder"] += len(
                self.file_errors[item.file_index])
        if not self.records_in_file[item.file_index]:
            if item.file_index in tolerant:
                errors = self.file_errors.get(item.file_index)
                self.skip_file(item.source, errors[0] if errors else "no spans or log records found")
                return
            raise InputError("no spans or log records found", file=item.source)

    def skip_file(self, source: str, reason: str) -> None:
        self.imp.stats.bad_files[source] = reason

    def finish(self, files: list[Path], join: _JoinState) -> ImportStats:
        stats = self.imp.stats
        for reason, k in self.counts.malformed.items():
            stats.skipped[reason] += k
        if join.bad_retrieval:
            stats.skipped[SKIP_BAD_RETRIEVAL] += join.bad_retrieval
        stats.files = len(files)
        stats.spans_read = self.counts.spans
        stats.log_records_read = self.counts.log_records
        seen = self.imp.seen
        stats.unjoined_log_events = sum(len(v) for k, v in join.log_events.items() if k not in seen)
        return stats


def _single_pass(ex, files, limits, chunk_bytes, n, out: "_Output", young_gc, tolerant=frozenset()):
    join = _JoinState()
    merge = _Merge()
    for item, res in _in_order(ex, _extract_local, _chunks(files, limits, chunk_bytes, tolerant), 2 * n):
        if isinstance(item, _Failed):
            raise item.error
        if isinstance(item, _Skipped):
            merge.skip_file(item.source, item.reason)
            continue
        if isinstance(item, _FileEnd):
            merge.file_end(item, tolerant)
            continue
        calls, blob, part, part_counts, log_events, retrieved, bad = res
        merge.chunk(item, part, part_counts)
        join.add(item.index, log_events, retrieved, merge.imp.seen)
        join.bad_retrieval += bad
        merge.calls(calls, blob, out, lambda key, start_ns, c=item.index: join.call(c, key, start_ns),
                    young_gc)
    return merge.finish(files, join), merge.written, join


def _second_pass(ex, files, limits, chunk_bytes, n, out: "_Output", join: _JoinState, tolerant=frozenset()):
    merge = _Merge()
    for item, res in _in_order(ex, _extract_joined, _chunks(files, limits, chunk_bytes, tolerant), 2 * n):
        if isinstance(item, _Failed):
            raise item.error  # the input changed since the first pass
        if isinstance(item, _Skipped):
            merge.skip_file(item.source, item.reason)
            continue
        if isinstance(item, _FileEnd):
            merge.file_end(item, tolerant)
            continue
        calls, blob, part, part_counts = res
        merge.chunk(item, part, part_counts)
        merge.calls(calls, blob, out)
    return merge.finish(files, join), merge.written


# ---------------------------------------------------------------------------------------------
# the output file

class _Output:
    """cases.jsonl, written to a temporary file and moved into place when complete. The file
    sits beside the output (so the move is atomic); for a pipe or device (``-o /dev/stdout``)
    it sits in the temp folder and is copied out at the end."""

    def __init__(self, output: str | Path):
        self.path = Path(output)
        self.direct = self.path.exists() and not self.path.is_file()
        if self.direct:
            fd, name = tempfile.mkstemp(prefix="replaygate-import-", suffix=".jsonl")
            os.close(fd)
            self.tmp = Path(name)
        else:
            self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.f: BinaryIO | None = None
        self.pos = 0

    def __enter__(self) -> "_Output":
        try:
            self.f = open(self.tmp, "wb")
        except OSError as e:
            raise io_error(e, self.path, "cases file") from None
        return self

    def write(self, data: bytes) -> None:
        try:
            self.f.write(data)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise io_error(e, self.path, "cases file") from None
        self.pos += len(data)

    def restart(self) -> None:
        self.f.seek(0)
        self.f.truncate()
        self.pos = 0

    def rewrite(self, join: _JoinState) -> None:
        """Recompute the context of the calls of ``join.late_traces`` (documents exported after
        a call of the trace, in a later chunk) from all the input; copy the other lines."""
        self.f.close()
        fixed = self.tmp.with_name(self.tmp.name + ".fixed")
        late = join.late_traces
        head = len(b'{"id":"')
        with open(self.tmp, "rb") as src, open(fixed, "wb") as dst:
            for line in src:
                trace = line[head:line.find(b":", head)].decode("ascii", "replace")
                if trace in late:
                    case = json.loads(line)  # json, not orjson: exact for every value it holds
                    start_ns = case["metadata"].get("start_time_unix_nano", 0)
                    case["context"] = context_for(start_ns, join.retrieved.get(trace))
                    line = fastjson.dumpb(case) + b"\n"
                dst.write(line)
        os.replace(fixed, self.tmp)
        self.f = open(self.tmp, "ab")

    def drop_nested_duplicates(self) -> int:
        self.f.close()
        try:
            return nested.drop_from_jsonl(self.tmp)
        finally:
            self.f = open(self.tmp, "ab")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            try:
                if exc_type is None:
                    self.f.flush()
                    os.fsync(self.f.fileno())
            finally:
                self.f.close()
            if exc_type is None:
                if self.direct:
                    with open(self.tmp, "rb") as src, open(self.path, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                else:
                    os.replace(self.tmp, self.path)
        except BrokenPipeError:  # the reader went away (`| head`): the CLI stops quietly
            raise
        except OSError as e:  # a full disk, a read-only folder: name the file, keep the old one
            raise io_error(e, self.path, "cases file") from None
        finally:
            for p in (self.tmp, self.tmp.with_name(self.tmp.name + ".fixed"),
                      self.tmp.with_name(self.tmp.name + ".dedup")):
                if p.exists():
                    p.unlink()


def _with_context(line: bytes, context: list[str]) -> bytes:
    case = json.loads(line)  # json, not orjson: exact for every value the line holds
    case["context"] = context
    return fastjson.dumpb(case)


# ---------------------------------------------------------------------------------------------
# workers

class _Inline:
    """The executor interface, run in this process (one worker needs no pool)."""

    def __init__(self, state: tuple):
        _init_worker(state, in_process=True)

    def submit(self, fn, arg) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(arg))
        except BaseException as e:  # noqa: BLE001  # re-raised by result(), in order
            fut.set_exception(e)
        return fut

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc) -> None:
        _STATE.clear()


class _executor:
    """A process pool whose workers ignore Ctrl-C (this process handles it and stops them),
    or ``_Inline`` for one worker."""

    def __init__(self, n: int, state: tuple):
        self.ex = _Inline(state) if n == 1 else ProcessPoolExecutor(
            n, mp_context=_context(), initializer=_init_worker, initargs=(state,))

    def __enter__(self):
        return self.ex

    def __exit__(self, *exc) -> None:
        if isinstance(self.ex, ProcessPoolExecutor):
            self.ex.shutdown(wait=True, cancel_futures=True)
        else:
            self.ex.__exit__(*exc)


def _context():
    # fork shares the join state with the workers for free and starts in milliseconds; it is
    # only safe while this process has no other threads
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


_STATE: dict[str, Any] = {}


def _init_worker(state: tuple, in_process: bool = False) -> None:
    if not in_process:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        gc.enable()  # forked while the parent had paused it; each task pauses it for itself
    log_events, retrieved, include_errors, where, refs = state
    _STATE.update(log_events=log_events, retrieved=retrieved, include_errors=include_errors,
                  match=compile_where(where), refs=refs)


def _calls(imp: _Importer, spans: list, match) -> tuple[list[tuple], bytes]:
    """Per LLM call: its key, what counting it needs, and the length of its JSON line (-1 when
    skipped or not matching ``where``); and the lines, one blob (cheaper to send than many)."""
    calls = []
    lines = []
    for rec, op in spans:
        result = imp.extract(rec, op)
        case = result.case
        length = -1
        if case is not None and match(case):
            line = fastjson.dumpb(case)
            lines.append(line)
            length = len(line)
        calls.append(((rec.trace_id, rec.span_id), result.convention,
                      (result.skip or "unknown") if case is None else None,
                      case.params.get("model", "?") if case is not None else None,
                      rec.start_ns, rec.end_ns, length))
    if lines:
        lines.append(b"")
    return calls, b"\n".join(lines)


def _run_chunk(imp: _Importer, task, collect: bool
               ) -> tuple[list[tuple], bytes, DecodeCounts, tuple | None]:
    """Decode one chunk, observing every record (``collect``: keeping its join state too),
    then extract its LLM calls; with ``collect``, the chunk's own join state as it was before
    extraction took its log events."""
    source, prefer_logs, units, tolerant = task
    counts = DecodeCounts()
    spans = []
    with young_gc_only() as young_gc:  # a chunk is thousands of acyclic objects
        for unit in units:
            try:
                for rec in decode_unit(unit, source, counts, prefer_logs, SPAN_KEY_PREFIXES):
                    op = imp.observe(rec, collect)
                    young_gc()
                    if op is not None:
                        spans.append((rec, op))
            except InputError as e:
                if not tolerant:
                    raise
                counts.errors.append(e.message)  # a whole document or message: the file is skipped
        state = (dict(imp.log_events), dict(imp.retrieved)) if collect else None
        calls, blob = _calls(imp, spans, _STATE["match"])
    return calls, blob, counts, state


def _extract_local(task) -> tuple:
    """The single pass on one chunk: decode it, gather its own join state, then extract its
    LLM calls with that state; return the calls, the counts and the join state."""
    imp = _Importer(_STATE["include_errors"], _STATE["refs"])
    calls, blob, counts, (log_events, retrieved) = _run_chunk(imp, task, collect=True)
    bad = imp.stats.skipped.pop(SKIP_BAD_RETRIEVAL, 0)
    return calls, blob, imp.stats, counts, log_events, retrieved, bad


def _extract_joined(task) -> tuple:
    """The second pass on one chunk: extract its LLM calls with the whole input's join state."""
    imp = _Importer(_STATE["include_errors"], _STATE["refs"])
    # extraction pops the events it joins: a worker's copy, or (in process) the merged state,
    # where only keys that were extracted lose them, and those never count as unjoined
    imp.log_events = _STATE["log_events"]
    imp.retrieved = _STATE["retrieved"]
    calls, blob, counts, _ = _run_chunk(imp, task, collect=False)
    return calls, blob, imp.stats, counts
