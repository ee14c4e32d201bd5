"""OTLP trace files -> replayable cases, with a summary of what was found and skipped.

Input: files or folders (see ``otlp.py`` for formats), decoded as a stream. Log records carrying
GenAI events are joined to their span by (trace id, span id), so the legacy event form works
whether events arrive as span events or in a separate logs file, before or after the spans.
Only inference spans become cases; retrieval spans of the same trace that started before an
LLM call give it ``context`` (their document texts). A span seen twice (exporter retries, the
same data in two files) becomes one case; the copy is counted.

``import_traces`` reads once and returns a list (memory grows with the LLM calls);
``iter_import`` reads twice and yields cases as it goes (memory: the join state and a few small
numbers per LLM call, not the cases).

``where`` (a config dataset entry's filter; every given key must match):

    where:
      operation: chat                 # gen_ai operation (chat, text_completion, generate_content...)
      model: [gpt-4o-mini, gpt-4o]    # request model or response model
      service: support-bot            # resource service.name
      provider: openai
      convention: otel-genai-1.37
      attributes:                     # span attribute, else resource attribute
        deployment.environment: prod
        gen_ai.request.temperature: {regex: "^0(\\.0)?$"}

A value is a scalar (equal as text), a list (any of), or ``{regex: PATTERN}`` (re.search on
the text). ``sample: {n: 300, seed: 7}`` keeps n cases chosen reproducibly from ``seed``,
stratified by model (proportional, each model at least one) when several models are present.
"""
from __future__ import annotations

import gc
import json
import random
import re
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from replaygate import fastjson, safetext
from replaygate.errors import ConfigError, InputError
from replaygate.model import CASE_PARAMS, Case
from replaygate.sources import genai, nested
from replaygate.sources.otlp import (DEFAULT_LIMITS, DecodeCounts, Event, Limits, LogRecordEvent,
                                     SpanRecord, Unit, decode_unit, decode_unit_for_join, expand_paths,
                                     is_logs_name, iter_units, read_file)
from replaygate.sources.refs import RefReader

SKIP_UNSUPPORTED = "unsupported operation"
SKIP_DUPLICATE = "duplicate span"
SKIP_BAD_RETRIEVAL = "malformed retrieval span (no context taken)"
SKIP_TRUNCATED_END = "truncated last protobuf frame"


@dataclass
class ImportStats:
    files: int = 0
    spans_read: int = 0
    log_records_read: int = 0
    llm_calls: int = 0  # inference spans found
    cases: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    unsupported_operations: Counter = field(default_factory=Counter)
    context_spans: Counter = field(default_factory=Counter)  # retrieval / tool / agent
    unjoined_log_events: int = 0  # GenAI log events whose span is not an LLM call we read
    conventions: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    start_ns: int | None = None
    end_ns: int | None = None
    written: int | None = None  # cases kept by --where / --sample, when they were given
    bad_files: dict = field(default_factory=dict)  # file found in a folder -> why it was skipped

    @property
    def time_range(self) -> tuple[str, str] | None:
        if self.start_ns is None or self.end_ns is None:
            return None
        return _iso(self.start_ns), _iso(self.end_ns)

    def to_dict(self) -> dict:
        return {
            "files": self.files, "spans_read": self.spans_read,
            "log_records_read": self.log_records_read, "llm_calls": self.llm_calls,
            "cases": self.cases, "skipped": dict(self.skipped),
            "unsupported_operations": dict(self.unsupported_operations),
            "context_spans": dict(self.context_spans),
            "unjoined_log_events": self.unjoined_log_events,
            "conventions": dict(self.conventions), "models": dict(self.models),
            "time_range": list(self.time_range) if self.time_range else None,
            "bad_files": dict(self.bad_files),
        }

    def merge(self, other: "ImportStats") -> None:
        """Add the counts of ``other`` (a part of the same import read elsewhere)."""
        for f in ("files", "spans_read", "log_records_read", "llm_calls", "cases",
                  "unjoined_log_events"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for f in ("skipped", "unsupported_operations", "context_spans", "conventions", "models", "bad_files"):
            getattr(self, f).update(getattr(other, f))
        if other.start_ns is not None:
            self.start_ns = other.start_ns if self.start_ns is None else min(self.start_ns, other.start_ns)
        if other.end_ns is not None:
            self.end_ns = other.end_ns if self.end_ns is None else max(self.end_ns, other.end_ns)

    def to_rows(self) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = [
            ("files", str(self.files)),
            ("spans read", str(self.spans_read)),
            ("log records read", str(self.log_records_read)),
            ("LLM calls found", str(self.llm_calls)),
        ]
        if self.written is not None and self.written != self.cases:
            rows.append(("cases extracted", str(self.cases)))
            rows.append(("cases written (after --where/--sample)", str(self.written)))
        else:
            rows.append(("cases written", str(self.cases)))
        for reason, n in sorted(self.skipped.items()):
            detail = ""
            if reason == SKIP_UNSUPPORTED:
                detail = " (" + ", ".join(f"{safetext.line(k)} {v}" for k, v in
                                          sorted(self.unsupported_operations.items())) + ")"
            rows.append((f"skipped: {reason}{detail}", str(n)))
        if self.bad_files:
            rows.append(("skipped: files that are not OTLP", str(len(self.bad_files))))
            rows.extend((f"skipped file {safetext.line(f)}", safetext.line(why, 120))
                        for f, why in sorted(self.bad_files.items()))
        if self.context_spans:
            rows.append(("context spans", _counts(self.context_spans)))
        if self.unjoined_log_events:
            rows.append(("GenAI log events without an LLM span", str(self.unjoined_log_events)))
        rows.append(("conventions", _counts(self.conventions) or "-"))
        rows.append(("models", _counts(self.models) or "-"))
        tr = self.time_range
        rows.append(("time range", f"{tr[0]} .. {tr[1]}" if tr else "-"))
        return rows

    def render(self) -> str:
        from tabulate import tabulate
        return tabulate(self.to_rows(), tablefmt="simple", disable_numparse=True)


def _counts(c: Counter) -> str:
    """"name count" pairs, most common first; one per line when many (keeps the table narrow)."""
    sep = ", " if len(c) <= 3 else "\n"
    return sep.join(f"{safetext.line(k)} {v}" for k, v in c.most_common())  # names from the traces


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds")


class _Retrieved(NamedTuple):  # a tuple: cheap to send between processes
    start_ns: int
    docs: list[str]


class _Importer:
    """State shared by the one-pass and the streaming drivers.

    ``observe`` takes what the join needs from any record (GenAI log events, retrieval
    documents, span counts); ``emit`` turns one inference span into a case."""

    def __init__(self, include_errors: bool, refs: RefReader | None = None):
        self.include_errors = include_errors
        self.refs = refs
        self.stats = ImportStats()
        self.retrieved: dict[str, list[_Retrieved]] = defaultdict(list)
        self.log_events: dict[tuple[str, str], list[Event]] = defaultdict(list)
        self.seen: set[tuple[str, str]] = set()  # exporters retry: the same span may come twice

    def observe(self, rec: SpanRecord | LogRecordEvent, collect: bool = True) -> str | None:
        """Count the record and (if ``collect``) keep what the join needs; return the
        operation of an inference span, else None."""
        stats = self.stats
        if isinstance(rec, LogRecordEvent):
            if collect and rec.event.name in genai.GENAI_EVENT_NAMES and rec.trace_id and rec.span_id:
                self.log_events[(rec.trace_id, rec.span_id)].append(rec.event)
            return None
        category, op = genai.classify(rec)
        if category == genai.INFERENCE:
            return op or "chat"
        if category == genai.RETRIEVAL:
            stats.context_spans[category] += 1
            try:
                docs = genai.retrieval_documents(rec) if collect else None
            except ValueError:
                stats.skipped[SKIP_BAD_RETRIEVAL] += 1
                docs = None
            if docs:
                self.retrieved[rec.trace_id].append(_Retrieved(rec.start_ns, docs))
        elif category in (genai.TOOL, genai.AGENT):
            stats.context_spans[category] += 1
        elif category in (genai.EMBEDDINGS, genai.UNSUPPORTED):
            stats.skipped[SKIP_UNSUPPORTED] += 1
            stats.unsupported_operations[op or "?"] += 1
        return None

    def collect(self, unit: Unit, source: str, prefer_logs: bool) -> None:
        """The first pass of a streamed import: the join state of one unit of input, from only
        the records that can hold any (see ``otlp.decode_unit_for_join``)."""
        for rec in decode_unit_for_join(unit, source, DecodeCounts(), prefer_logs,
                                        genai.JOIN_SPAN_MARKERS, genai.JOIN_LOG_MARKERS):
            self.observe(rec)

    def collect_with_times(self, unit: Unit, source: str, prefer_logs: bool,
                           nest: nested.StreamFilter) -> None:
        """``collect``, and the times of every inference span for the nested duplicates: all
        GenAI spans of the unit are decoded."""
        for rec in decode_unit(unit, source, DecodeCounts(), prefer_logs, genai.SPAN_KEY_PREFIXES):
            if self.observe(rec) is not None:
                nest.index(rec.trace_id, rec.span_id, rec.start_ns, rec.end_ns)  # type: ignore[union-attr]

    def emit(self, span: SpanRecord, op: str) -> Case | None:
        if self.duplicate((span.trace_id, span.span_id)):
            return None
        result = self.extract(span, op)
        case = result.case
        self.tally(result.convention, (result.skip or "unknown") if case is None else None,
                   case.params.get("model", "?") if case is not None else None,
                   span.start_ns, span.end_ns)
        return case

    def duplicate(self, key: tuple[str, str]) -> bool:
        """Has this span been seen before (and counted as a duplicate now)?"""
        if key in self.seen:
            self.stats.skipped[SKIP_DUPLICATE] += 1
            return True
        self.seen.add(key)
        return False

    def extract(self, span: SpanRecord, op: str) -> genai.Extraction:
        """The case of an inference span, its GenAI log events and retrieved context joined."""
        joined = self.log_events.pop((span.trace_id, span.span_id), None)
        events = span.events + sorted(joined, key=_event_time) if joined else span.events  # stable
        result = genai.extract(span, events, op, include_errors=self.include_errors, refs=self.refs)
        if result.case is not None:
            result.case.context = context_for(span.start_ns, self.retrieved.get(span.trace_id))
        return result

    def tally(self, convention: str, skip: str | None, model: str | None, start_ns: int,
              end_ns: int) -> None:
        """Count one LLM call: skipped for ``skip``, else a case of ``model``."""
        stats = self.stats
        stats.llm_calls += 1
        stats.conventions[convention] += 1
        if skip is not None:
            stats.skipped[skip] += 1
            return
        stats.cases += 1
        stats.models[model] += 1
        if start_ns:
            stats.start_ns = start_ns if stats.start_ns is None else min(stats.start_ns, start_ns)
        if end_ns:
            stats.end_ns = end_ns if stats.end_ns is None else max(stats.end_ns, end_ns)

    def finish(self, counts: DecodeCounts) -> ImportStats:
        stats = self.stats
        for reason, n in counts.malformed.items():
            stats.skipped[reason] += n
        stats.unjoined_log_events = sum(len(v) for v in self.log_events.values())
        stats.files = counts.files
        stats.spans_read = counts.spans
        stats.log_records_read = counts.log_records
        return stats


def _files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    return expand_paths([paths] if isinstance(paths, (str, Path)) else list(paths))


def import_traces(paths: str | Path | Iterable[str | Path], *, include_errors: bool = False,
                  limits: Limits = DEFAULT_LIMITS, refs_dir: str | Path | None = None,
                  keep_nested_duplicates: bool = False) -> tuple[list[Case], ImportStats]:
    """Read trace/log files and folders in one pass; return the cases (in file order) and the
    stats. Memory holds the inference spans until the end (log events may come later); for
    inputs too large for that use ``iter_import``.

    Error spans are skipped and counted unless ``include_errors`` (then ``recorded.error`` is
    set). Content stored by reference is read from files under ``refs_dir`` (see refs.py).
    A call recorded twice by nested spans becomes one case unless ``keep_nested_duplicates``
    (see nested.py). Raises InputError for undecodable files."""
    files = _files(paths)
    imp = _Importer(include_errors, RefReader(refs_dir))
    counts = DecodeCounts()
    pending: list[tuple[SpanRecord, str]] = []
    cases: list[Case] = []
    with young_gc_only() as young_gc:
        for path in files:
            for rec in read_file(path, counts, limits, genai.SPAN_KEY_PREFIXES):
                op = imp.observe(rec)
                if op is not None:
                    pending.append((rec, op))  # type: ignore[arg-type]  # observe() saw a span
                    young_gc()
        for i, (span, op) in enumerate(pending):
            pending[i] = None  # type: ignore[call-overload]  # free the span once it is a case
            case = imp.emit(span, op)
            if case is not None:
                cases.append(case)
            young_gc()
    stats = imp.finish(counts)
    if not keep_nested_duplicates:
        cases, dropped = nested.drop_from_list(cases)
        if dropped:
            stats.cases -= dropped
            stats.skipped[nested.SKIP_NESTED_DUPLICATE] += dropped
    return cases, stats


_YOUNG_GC_EVERY = 20_000


@contextmanager
def young_gc_only() -> Iterator[Callable[[], None]]:
    """Pause the automatic full collections while an import builds its (large, acyclic) lists
    of spans, cases or records: each one walks every object kept so far, and they cost ~20% of
    an import of 80k spans, growing with the input. The yielded callable is called once per kept
    item and collects the young generations every ``_YOUNG_GC_EVERY`` calls, so cyclic garbage
    (e.g. from exceptions of malformed spans) is still freed as it goes. The collector's state
    is restored on exit."""
    if not gc.isenabled():
        yield lambda: None
        return
    n = 0

    def young_gc() -> None:
        nonlocal n
        n += 1
        if n >= _YOUNG_GC_EVERY:
            n = 0
            gc.collect(1)

    gc.disable()
    try:
        yield young_gc
    finally:
        gc.enable()


def iter_import(paths: str | Path | Iterable[str | Path], stats: ImportStats, *,
                include_errors: bool = False, limits: Limits = DEFAULT_LIMITS,
                refs_dir: str | Path | None = None, keep_nested_duplicates: bool = False
                ) -> Iterator[Case]:
    """Stream the cases with memory bounded by the join state (GenAI log events, retrieved
    documents, the ids and times of the LLM calls), not by the cases: a first pass collects the
    join state (decoding only the records that can hold some), a second pass extracts each case
    as its span is read. ``stats`` is filled in place (complete when the iterator is exhausted).
    Same cases, same order, same stats as ``import_traces``. Nested duplicates (nested.py) need the times of
    every inference span: then the first pass decodes all GenAI spans, and a case that may
    enclose a later one is held until that one is read (``nested.StreamFilter``). Input the
    first pass did not need to decode is checked in the second, so an InputError may come after
    some cases have been yielded."""
    files = _files(paths)
    imp = _Importer(include_errors, RefReader(refs_dir))
    nest = None if keep_nested_duplicates else nested.StreamFilter()
    for path in files:  # pass 1: the join state (and the times of the inference spans)
        for unit in iter_units(path, limits):
            if nest is None:
                imp.collect(unit, str(path), is_logs_name(path))
            else:
                imp.collect_with_times(unit, str(path), is_logs_name(path), nest)
    if nest is not None:
        nest.plan()
    if imp.stats.skipped[SKIP_BAD_RETRIEVAL]:  # only pass 1 reads the documents
        stats.skipped[SKIP_BAD_RETRIEVAL] += imp.stats.skipped[SKIP_BAD_RETRIEVAL]
    imp.stats = stats  # pass 2 counts and extracts
    counts = DecodeCounts()
    for path in files:
        for rec in read_file(path, counts, limits, genai.SPAN_KEY_PREFIXES):
            op = imp.observe(rec, collect=False)
            if op is not None:
                case = imp.emit(rec, op)  # type: ignore[arg-type]  # observe() saw a span
                if nest is not None:
                    yield from nest.push(rec.trace_id, rec.span_id, case)  # type: ignore[union-attr]
                elif case is not None:
                    yield case
    if nest is not None:
        yield from nest.finish()
        if nest.dropped:
            stats.cases -= nest.dropped
            stats.skipped[nested.SKIP_NESTED_DUPLICATE] += nest.dropped
    imp.finish(counts)


def _event_time(e: Event) -> int:
    return e.time_ns


def context_for(start_ns: int, retrieved: list[_Retrieved] | None) -> list[str]:
    """Documents retrieved earlier in the same trace (the RAG context of a call that started
    at ``start_ns``), in retrieval order, each once."""
    if not retrieved:
        return []
    if len(retrieved) == 1:  # the common case: one retrieval before the call
        r = retrieved[0]
        return list(dict.fromkeys(r.docs)) if r.start_ns <= start_ns else []
    out: list[str] = []
    seen: set[str] = set()
    for r in sorted(retrieved, key=_start):
        if r.start_ns > start_ns:
            continue
        for d in r.docs:
            if d not in seen:
                seen.add(d)
                out.append(d)
    return out


def _start(r: _Retrieved) -> int:
    return r.start_ns


# ---------------------------------------------------------------------------------------------
# where

_WHERE_KEYS = ("operation", "model", "service", "provider", "convention", "attributes")


def _matcher(spec: Any, fld: str) -> Callable[[Any], bool]:
    if isinstance(spec, dict):
        if set(spec) != {"regex"}:
            raise ConfigError("expected a value, a list of values or {regex: PATTERN}", field=fld)
        try:
            rx = re.compile(str(spec["regex"]))
        except re.error as e:
            raise ConfigError(f"invalid regex: {e}", field=fld) from None
        return lambda v: v is not None and rx.search(_as_text(v)) is not None
    if isinstance(spec, list):
        wanted = {_as_text(x) for x in spec}
        return lambda v: v is not None and _as_text(v) in wanted
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return lambda v: _as_number(v) == float(spec)  # 0 matches a recorded 0.0
    text = _as_text(spec)
    return lambda v: v is not None and _as_text(v) == text


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _as_number(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def compile_where(where: dict | None) -> Callable[[Case], bool]:
    """A predicate over cases; raises ConfigError(field="where.KEY") for a bad shape."""
    if not where:
        return lambda case: True
    if not isinstance(where, dict):
        raise ConfigError("must be a mapping", field="where")
    checks: list[Callable[[Case], bool]] = []
    for key, spec in where.items():
        if key not in _WHERE_KEYS:
            raise ConfigError(f"unknown key (expected one of {', '.join(_WHERE_KEYS)})",
                              field=f"where.{key}")
        if key == "attributes":
            if not isinstance(spec, dict):
                raise ConfigError("must map attribute names to values", field="where.attributes")
            for attr, aspec in spec.items():
                m = _matcher(aspec, f"where.attributes.{attr}")
                checks.append(lambda c, attr=attr, m=m: m(_attribute(c, attr)))
        elif key == "model":
            m = _matcher(spec, "where.model")
            checks.append(lambda c, m=m: m(c.params.get("model")) or m(c.metadata.get("response_model")))
        else:
            m = _matcher(spec, f"where.{key}")
            checks.append(lambda c, key=key, m=m: m(c.metadata.get(key)))
    return lambda case: all(check(case) for check in checks)


def _attribute(case: Case, name: str) -> Any:
    attrs = case.metadata.get("attributes") or {}
    if name in attrs:
        return attrs[name]
    return (case.metadata.get("resource") or {}).get(name)


# ---------------------------------------------------------------------------------------------
# sample

def _parse_sample(sample: dict | None) -> tuple[int, int] | None:
    if sample is None:
        return None
    if not isinstance(sample, dict) or set(sample) - {"n", "seed"} or "n" not in sample:
        raise ConfigError("expected {n: COUNT, seed: INT}", field="sample")
    n, seed = sample["n"], sample.get("seed", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError("must be a positive integer", field="sample.n")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("must be an integer", field="sample.seed")
    return n, seed


def sample_cases(cases: list[Case], n: int, seed: int = 0) -> list[Case]:
    """n cases chosen with ``random.Random(seed)``, stratified by model, in input order."""
    if n >= len(cases):
        return list(cases)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(cases):
        groups[str(c.params.get("model", ""))].append(i)
    rng = random.Random(seed)
    names = sorted(groups)
    quota = _allocate(n, [len(groups[k]) for k in names])
    chosen: list[int] = []
    for name, q in zip(names, quota):
        chosen.extend(rng.sample(groups[name], q))
    return [cases[i] for i in sorted(chosen)]


def _allocate(n: int, sizes: list[int]) -> list[int]:
    """Largest-remainder proportional allocation of n over strata; every stratum gets at least
    one when n allows, so a rare model is never sampled away."""
    total = sum(sizes)
    exact = [n * s / total for s in sizes]
    quota = [int(x) for x in exact]
    if n >= len(sizes):
        quota = [max(1, q) for q in quota]
    # fix the sum: add by largest remainder, remove from the largest quotas
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    k = 0
    while sum(quota) < n:
        i = order[k % len(order)]
        if quota[i] < sizes[i]:
            quota[i] += 1
        k += 1
    while sum(quota) > n:
        i = max(range(len(sizes)), key=lambda j: (quota[j] - exact[j], quota[j]))
        quota[i] -= 1
    return quota


# ---------------------------------------------------------------------------------------------
# cases.jsonl

def write_cases_jsonl(cases: Iterable[Case], path: str | Path) -> int:
    """One ``Case.to_dict()`` per line (UTF-8), written atomically. Returns the number written."""
    from replaygate.fileio import atomic_open

    n = 0
    encode = fastjson.dumps
    with atomic_open(path, "w", what="cases file") as f:
        for c in cases:
            f.write(encode(c))
            f.write("\n")
            n += 1
    return n


def read_cases_jsonl(path: str | Path) -> list[Case]:
    out: list[Case] = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", file=str(path)) from None
    with f, young_gc_only() as young_gc:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            young_gc()
            try:
                d = fastjson.loads_value(line)  # exact: a case may hold any integer
                if not isinstance(d, dict) or "id" not in d:
                    raise ValueError("expected a case object with an id")
                unknown = set(d.get("params") or {}) - CASE_PARAMS
                if unknown:  # cases are data: sampling parameters only (model.CASE_PARAMS)
                    raise ValueError(f"params not allowed in a case: {', '.join(sorted(map(str, unknown)))}")
                out.append(Case.from_dict(d))
            except (ValueError, TypeError, KeyError) as e:
                raise InputError(f"bad case: {e}", file=str(path), line=lineno) from None
    return out
