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
from collections import defaultdict
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
