"""The same LLM call recorded twice: a framework span (LangChain, LlamaIndex, an SDK wrapper)
and a client span (the OpenAI instrumentation) around one provider request, or two client
instrumentations stacked on one client. Both become inference spans; replaying both doubles
the cost and weights that call twice in the comparison.

Two cases are nested duplicates when they are in the same trace, one's span lies within the
other's in time, and they hold the same conversation and the same output (compared as text:
role and content per message, the output text and tool calls; emitters differ in how they
encode the same values). The innermost one is kept (closest to the provider request: it
usually records the most parameters and usage); the others are dropped and counted.
``replaygate import --keep-nested-duplicates`` / ``keep_nested_duplicates: true`` keeps all.
"""
from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, NamedTuple


SKIP_NESTED_DUPLICATE = "nested duplicate (the same call recorded by an enclosing span)"


class Call(NamedTuple):
    key: Any  # what the caller uses to drop it (a line offset, an index)
    start_ns: int
    end_ns: int
    fingerprint: bytes


def _text(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x.strip()
    return json.dumps(x, sort_keys=True, ensure_ascii=False)


def _args(a: Any) -> str:
    try:
        return json.dumps(json.loads(a), sort_keys=True) if isinstance(a, str) else _text(a)
    except ValueError:
        return _text(a)


def fingerprint(case: dict) -> bytes:
    """What must match: messages (role, text, tool calls) and the recorded output."""
    rec = case.get("recorded") or {}
    parts = [[m.get("role"), _text(m.get("content")),
              [[c.get("name"), _args(c.get("arguments"))] for c in m.get("tool_calls") or []]]
             for m in case.get("messages") or []]
    parts.append(["output", _text(rec.get("output")),
                  [[c.get("name"), _args(c.get("arguments"))] for c in rec.get("tool_calls") or []]])
    return hashlib.blake2b(json.dumps(parts, ensure_ascii=False).encode(), digest_size=16).digest()


def call_of(key: Any, case: dict) -> Call:
    meta = case.get("metadata") or {}
    start = int(meta.get("start_time_unix_nano") or 0)
    latency = (case.get("recorded") or {}).get("latency_ms")
    end = start + int(latency * 1e6) if latency is not None else start
    return Call(key, start, end, fingerprint(case))


def enclosing(calls: list[Call]) -> list[Any]:
    """Keys of the calls that enclose another call of the same trace with the same fingerprint
    (the outer copies); the innermost of each nest stays."""
    drop = []
    groups: dict[bytes, list[Call]] = defaultdict(list)
    for c in calls:
        groups[c.fingerprint].append(c)
    for group in groups.values():
        if len(group) < 2:
            continue
        for i, outer in enumerate(group):
            for j, inner in enumerate(group):
                if i == j or not outer.start_ns:
                    continue
                within = outer.start_ns <= inner.start_ns and inner.end_ns <= outer.end_ns
                # identical times are two calls made alike (or made-up data), not a nest
                if within and (outer.start_ns, outer.end_ns) != (inner.start_ns, inner.end_ns):
                    drop.append(outer.key)
                    break
    return drop


def drop_from_list(cases: list) -> tuple[list, int]:
    """``cases`` (model.Case) without the nested duplicates, and how many were dropped."""
    by_trace: dict[str, list[Call]] = defaultdict(list)
    for i, c in enumerate(cases):
        by_trace[str(c.metadata.get("trace_id"))].append(call_of(i, c.to_dict()))
    drop = {k for calls in by_trace.values() if len(calls) > 1 for k in enclosing(calls)}
    return [c for i, c in enumerate(cases) if i not in drop], len(drop)


_HEAD = len(b'{"id":"')


def drop_from_jsonl(path: Path) -> int:
    """Remove the nested duplicates from a cases.jsonl file in place; return how many. Only the
    lines of traces with several cases are parsed (one scan finds them by their id prefix)."""
    first: dict[bytes, int] = {}
    multi: dict[bytes, list[int]] = {}
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            trace = line[_HEAD:line.find(b":", _HEAD)]
            seen = first.get(trace)
            if seen is None:
                first[trace] = offset
            else:
                multi.setdefault(trace, [seen]).append(offset)
            offset += len(line)
    first.clear()
    if not multi:
        return 0
    drop: set[int] = set()
    with open(path, "rb") as f:
        for offsets in multi.values():
            calls = []
            for off in offsets:
                f.seek(off)
                calls.append(call_of(off, json.loads(f.readline())))
            drop.update(enclosing(calls))
    if drop:
        kept = path.with_name(path.name + ".dedup")
        offset = 0
        with open(path, "rb") as src, open(kept, "wb") as dst:
            for line in src:
                if offset not in drop:
                    dst.write(line)
                offset += len(line)
        kept.replace(path)
    return len(drop)



# ---------------------------------------------------------------------------------------------
# the streamed import (traces.iter_import): a case cannot be taken back once yielded

_SLACK_NS = 1_000  # call_of's end comes from a float latency: widen the pass-1 test, never narrow it
_HELD, _KEEP, _DROP = 0, 1, 2


class StreamFilter:
    """Nested duplicates dropped from a stream of cases, with the result of ``drop_from_list``.

    The first pass of the import ``index``es every inference span's times; ``plan`` then finds,
    per trace, the spans that enclose another one in time (the only ones that can be an outer
    copy). In the second pass ``push`` takes every inference span's case (None when it was
    skipped) in input order and gives back the cases that can be yielded: a case that may be an
    outer copy is held until every span it encloses has been seen, then dropped or kept as
    ``enclosing`` decides; the cases after it wait behind it, so the order stays the input's.
    Exporters send a span when it ends, so the inner copy usually comes first and nothing is
    held. ``finish`` gives what is still held at the end of the input (an enclosed span never
    seen is one without a case)."""

    def __init__(self) -> None:
        self._times: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        self._enclosed: dict[tuple[str, str], tuple[str, ...]] = {}  # outer -> the spans it encloses
        self._pending: dict[tuple[str, str], set[str]] = {}  # outer -> those not seen yet
        self._watchers: dict[tuple[str, str], list[str]] = {}  # inner -> the outers enclosing it
        self._calls: dict[tuple[str, str], Call | None] = {}  # spans of a nest, once seen
        self._queue: deque[list] = deque()  # [case, key, _HELD | _KEEP | _DROP]
        self.dropped = 0

    def index(self, trace_id: str, span_id: str, start_ns: int, end_ns: int) -> None:
        self._times[trace_id].setdefault(span_id, (start_ns, max(start_ns, end_ns)))

    def plan(self) -> None:
        for trace_id, spans in self._times.items():
            if len(spans) < 2:
                continue
            items = sorted(spans.items(), key=lambda kv: kv[1])
            starts = [s for _, (s, _) in items]
            for outer, (o_start, o_end) in items:
                if not o_start:
                    continue  # enclosing() never drops a call without a start time
                inner = []
                for sid, (s, e) in items[bisect_left(starts, o_start - _SLACK_NS):]:
                    if s > o_end + _SLACK_NS:
                        break
                    if sid != outer and e <= o_end + _SLACK_NS:
                        inner.append(sid)
                if inner:
                    key = (trace_id, outer)
                    self._enclosed[key] = tuple(inner)
                    self._pending[key] = set(inner)
                    for sid in inner:
                        self._watchers.setdefault((trace_id, sid), []).append(outer)
        self._times.clear()

    def push(self, trace_id: str, span_id: str, case: Any) -> list:
        """The cases that can be yielded now, with ``case`` (a model.Case or None) taken in."""
        key = (trace_id, span_id)
        if key in self._calls:
            return []  # a span seen again: its first copy counted
        if key in self._enclosed or key in self._watchers:
            self._calls[key] = call_of(span_id, case.to_dict()) if case is not None else None
        if case is not None:
            self._queue.append([case, key, _HELD if key in self._enclosed else _KEEP])
        for outer in self._watchers.pop(key, ()):
            okey = (trace_id, outer)
            rest = self._pending.get(okey)
            if rest is not None:
                rest.discard(span_id)
                if not rest and okey in self._calls:
                    self._decide(okey)
        if not self._pending.get(key, True):
            self._decide(key)
        return self._ready()

    def finish(self) -> list:
        for key in [k for k in self._pending if k in self._calls]:
            self._decide(key)
        return self._ready()

    def _decide(self, key: tuple[str, str]) -> None:
        self._pending.pop(key, None)
        outer = self._calls.get(key)
        if outer is None:
            return
        calls = [outer] + [c for sid in self._enclosed[key] if (c := self._calls.get((key[0], sid)))]
        drop = outer.key in enclosing(calls)
        for entry in self._queue:
            if entry[1] == key and entry[2] == _HELD:
                entry[2] = _DROP if drop else _KEEP
                self.dropped += drop
                return

    def _ready(self) -> list:
        q = self._queue
        out = []
        while q and q[0][2] != _HELD:
            case, _, state = q.popleft()
            if state == _KEEP:
                out.append(case)
        return out
