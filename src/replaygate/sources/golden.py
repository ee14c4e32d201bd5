"""Golden datasets: JSONL, YAML (a list) or CSV, one case per row.

Row keys (design.md): ``id`` (optional; else the row number), ``input`` (the user message) or
``messages`` (chat messages), ``vars``, ``expected``, ``context`` (list of documents), ``metadata``.
CSV columns ``vars.NAME`` / ``metadata.NAME`` fill those maps; a ``context`` cell may hold a JSON list.
"""
from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import InputError
from ..model import CASE_PARAMS, Case, Message, ToolCall

_KEYS = {"id", "input", "messages", "vars", "expected", "context", "metadata", "tools", "params"}
_ROLES = {"system", "user", "assistant", "tool", "developer"}


def load_golden(path: str | Path) -> list[Case]:
    cases = list(iter_golden(path))
    if not cases:
        raise InputError("the golden file has no rows", file=str(path))
    return cases


def iter_golden(path: str | Path) -> Iterator[Case]:
    """The cases of a golden file one by one (duplicate ids refused as they come), so a caller
    that needs only the first ones (an offline run's first cache lookups) does not build all."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    elif suffix in (".yaml", ".yml"):
        rows = _yaml_rows(path)
    elif suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix == ".json":
        rows = _json_rows(path)
    else:
        raise InputError("unknown golden file type (use .jsonl, .yaml, .yml, .csv or .json)",
                         file=str(path))
    seen: dict[str, int] = {}
    for n, (line, row) in enumerate(rows, start=1):
        case = row_to_case(row, n, path, line)
        if case.id in seen:
            raise InputError(f"duplicate case id {case.id!r} (first on line {seen[case.id]})",
                             file=str(path), line=line)
        seen[case.id] = line
        yield case


def check_golden(path: str | Path, limit: int = 20) -> tuple[int, list[InputError]]:
    """Every row of a golden file that does not parse (up to ``limit``), not just the first, and
    the number of good rows: what `validate` reports in one pass. JSONL files are checked line
    by line; a syntax error in a YAML, JSON or CSV file stops its check there."""
    path = Path(path)
    problems: list[InputError] = []
    good = 0
    seen: dict[str, int | None] = {}
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        try:
            text = _read(path)
        except InputError as e:
            return 0, [e]
        rows: list[tuple[int, int | None, Any]] = []  # (row number, line, row), as load_golden counts
        lines = [(i, line) for i, line in _lines(text) if line.strip()]
        for n, (i, line) in enumerate(lines, start=1):
            try:
                rows.append((n, i, _parse_json(line, path, i)))
            except InputError as e:  # bad JSON, a duplicate key, nesting too deep
                problems.append(e)
    else:
        if path.suffix.lower() not in _ROW_READERS:
            return 0, [InputError("unknown golden file type (use .jsonl, .yaml, .yml, .csv or .json)", file=str(path))]
        try:
            rows = [(n, line, row) for n, (line, row) in enumerate(_ROW_READERS[path.suffix.lower()](path), start=1)]
        except InputError as e:
            return 0, [e]
    for n, line, row in rows:
        try:
            case = row_to_case(row, n, path, line)
        except InputError as e:
            problems.append(e)
            continue
        if case.id in seen:
            problems.append(InputError(f"duplicate case id {case.id!r} (first on line {seen[case.id]})",
                                       file=str(path), line=line))
            continue
        seen[case.id] = line
        good += 1
    if not rows and not problems:
        problems.append(InputError("the golden file has no rows", file=str(path)))
    return good, problems[:limit]


def _read(path: Path) -> str:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block until a writer comes
            raise InputError("not a regular file (a golden dataset is read from a file)", file=str(path))
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {e}", file=str(path)) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are unique: a repeated key would silently keep the last value
    (the config loader refuses them too)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _parse_json(text: str, path: Path, line: int | None) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        col = f" (column {e.colno})" if line is not None else ""
        raise InputError(f"invalid JSON: {e.msg}{col}", file=str(path),
                         line=line if line is not None else e.lineno) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", file=str(path), line=line) from None
    except ValueError as e:  # a duplicate key
        raise InputError(f"invalid JSON: {e}", file=str(path), line=line) from None


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) split at "\n" only, one at a time. Not str.splitlines: it also splits
    at U+2028, U+0085, \x1c-\x1e, \v and \f, which JSON allows raw inside a string, so a valid
    row holding one was refused as two broken lines (and a million-line file became a million
    strings at once)."""
    start, n = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield n, text[start:end]
        start, n = end + 1, n + 1


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    for i, line in _lines(_read(path)):
        if not line.strip():
            continue
        yield i, _parse_json(line, path, i)


def _json_rows(path: Path) -> Iterator[tuple[int, Any]]:
    data = _parse_json(_read(path), path, None)
    if not isinstance(data, list):
        raise InputError("a .json golden file must hold a list of rows", file=str(path))
    yield from ((None, r) for r in data)


def _yaml_rows(path: Path) -> Iterator[tuple[int, Any]]:
    from ..config import parse_yaml

    # the config's YAML reader: safe, bounded, duplicate keys refused with their line
    data, lines = parse_yaml(_read(path), str(path))
    if data is None:
        return
    if not isinstance(data, list):
        raise InputError("a YAML golden file must be a list of rows", file=str(path), line=1)
    for i, row in enumerate(data):
        yield lines.get((i,)), row


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    # strict: an unterminated quote is an error, not a cell that swallows the rest of the file
    reader = csv.DictReader(_read(path).splitlines(keepends=True), strict=True)
    done = 0  # lines read before the row being parsed: an error is on the next one
    try:
        reader.fieldnames  # reads the header
        done = reader.line_num
        for line, row in _csv_dicts(reader, path):
            yield line, row
            done = reader.line_num
    except csv.Error as e:
        raise InputError(f"invalid CSV (from line {done + 1}): {e}", file=str(path), line=done + 1) from None


def _csv_dicts(reader: csv.DictReader, path: Path) -> Iterator[tuple[int, Any]]:
    if not reader.fieldnames:
        return
    for row in reader:
        out: dict[str, Any] = {}
        for k, v in row.items():
            if k is None:
                raise InputError("row has more cells than the header", file=str(path),
                                 line=reader.line_num)
            if v is None or v == "":
                continue
            if k.startswith("vars.") or k.startswith("metadata."):
                group, _, name = k.partition(".")
                out.setdefault(group, {})[name] = v
            elif k in ("context", "messages", "metadata", "vars") and v.lstrip()[:1] in "[{":
                try:
                    out[k] = json.loads(v)
                except json.JSONDecodeError as e:
                    raise InputError(f"column {k!r}: invalid JSON: {e.msg}", file=str(path),
                                     line=reader.line_num) from None
            else:
                out[k] = v
        yield reader.line_num, out


def _message(m: Any, where: str, path: Path, line: int | None) -> Message:
    if not isinstance(m, dict) or not isinstance(m.get("role"), str) or m["role"] not in _ROLES:
        raise InputError(f"{where}: each message needs a role ({', '.join(sorted(_ROLES))}) "
                         "and content", file=str(path), line=line)
    if not isinstance(m.get("content"), (str, list, type(None))):
        raise InputError(f"{where}: message 'content' must be text or a list of parts", file=str(path), line=line)
    for key in ("tool_call_id", "name"):
        if not isinstance(m.get(key), (str, type(None))):
            raise InputError(f"{where}: message '{key}' must be a string", file=str(path), line=line)
    if not isinstance(m.get("tool_calls") if m.get("tool_calls") is not None else [], list):
        raise InputError(f"{where}: message 'tool_calls' must be a list of calls", file=str(path), line=line)
    calls = []
    for t in m.get("tool_calls") or []:
        fn = t.get("function", t) if isinstance(t, dict) else {}
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InputError(f"{where}: tool call without a name", file=str(path), line=line)
        args = fn.get("arguments", "{}")
        calls.append(ToolCall(name=fn["name"], id=t.get("id"),
                              arguments=args if isinstance(args, str) else json.dumps(args)))
    return Message(role=m["role"], content=m.get("content"), tool_calls=calls,
                   tool_call_id=m.get("tool_call_id"), name=m.get("name"))


def row_to_case(row: Any, n: int, path: Path, line: int | None) -> Case:
    where = f"row {n}"
    if not isinstance(row, dict):
        raise InputError(f"{where}: a row must be a mapping", file=str(path), line=line)
    unknown = set(row) - _KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(allowed: {', '.join(sorted(_KEYS))})", file=str(path), line=line)
    if ("input" in row) == ("messages" in row):
        raise InputError(f"{where}: give either 'input' or 'messages'", file=str(path), line=line)
    if "messages" in row:
        if not isinstance(row["messages"], list) or not row["messages"]:
            raise InputError(f"{where}: 'messages' must be a non-empty list", file=str(path), line=line)
        messages = [_message(m, where, path, line) for m in row["messages"]]
    else:
        if not isinstance(row["input"], (str, int, float)):
            raise InputError(f"{where}: 'input' must be a string", file=str(path), line=line)
        messages = [Message(role="user", content=str(row["input"]))]
    context = row.get("context") or []
    if isinstance(context, str):
        context = [context]
    if not isinstance(context, list):
        raise InputError(f"{where}: 'context' must be a list of documents", file=str(path), line=line)
    tools = row.get("tools") if row.get("tools") is not None else []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise InputError(f"{where}: 'tools' must be a list of tool definitions (mappings)", file=str(path),
                         line=line)
    for key in ("vars", "metadata", "params"):
        if not isinstance(row.get(key, {}), dict):
            raise InputError(f"{where}: '{key}' must be a mapping", file=str(path), line=line)
    unknown = set(row.get("params") or {}) - CASE_PARAMS
    if unknown:
        # a dataset is data: it may tune sampling, never redirect the call or fake its answer
        raise InputError(f"{where}: 'params' may only hold sampling parameters; not allowed: "
                         f"{', '.join(sorted(map(str, unknown)))} (allowed: {', '.join(sorted(CASE_PARAMS))})",
                         file=str(path), line=line)
    case_id = str(row["id"]) if row.get("id") not in (None, "") else f"row{n:05d}"
    source = {"file": str(path), "row": n}
    if line is not None:
        source["line"] = line
    return Case(id=case_id, messages=messages, tools=list(row.get("tools") or []),
                params=dict(row.get("params") or {}), vars=dict(row.get("vars") or {}),
                reference=row.get("expected"), context=[str(c) for c in context],
                metadata={**dict(row.get("metadata") or {}), "source": source})


_ROW_READERS = {".yaml": _yaml_rows, ".yml": _yaml_rows, ".csv": _csv_rows, ".json": _json_rows}
