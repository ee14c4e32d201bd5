"""JSON on the trace import's hot path: orjson, with the standard library as the fallback.

orjson parses 2-3x and writes dataclasses ~10x faster than ``json`` (bench/RESULTS.md); the
import spends most of its time in both. What orjson refuses and ``json`` takes (NaN and
Infinity literals, lone surrogates, integers beyond 64 bits) goes through ``json``, so nothing
that parsed before is rejected now, and errors are ``json``'s ValueErrors with its messages;
so does content that may hold an integer beyond 64 bits, which orjson would make a float.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_scan_json = json.scanner.make_scanner(json.JSONDecoder())
_json_ws_end = json.decoder.WHITESPACE.match


# orjson reads an integer beyond 64 bits as a float, silently; json keeps it exact. Content
# (message parts, tool-call arguments) with a run of 20 digits goes to json. The test maps
# every digit to "0" and looks for twenty of them: a regex scan costs 15x more.
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_TWENTY = b"0" * 20


def loads(data: str | bytes) -> Any:
    """``json.loads``, for whole OTLP/JSON documents and lines: the same values (OTLP/JSON
    writes 64-bit integers as strings; a bare number beyond 64 bits is out of spec and reads
    as a float) and the same ValueError on bad input."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def loads_value(text: str) -> Any:
    """``json.loads`` for text that starts with a JSON value (what ``maybe_json`` has
    checked): the same values, integers of any size included, and the same ValueError."""
    data = text.encode("utf-8", "surrogatepass")
    if _TWENTY not in data.translate(_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    try:  # the json scanner without the per-call wrapper layers of json.loads
        value, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("expecting value") from None
    if _json_ws_end(text, end).end() != len(text):
        raise ValueError("extra data")
    return value


def dumps_default(obj: Any) -> Any:
    """What the fallback encoder does with a dataclass (orjson does it natively)."""
    from dataclasses import fields, is_dataclass
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in fields(obj)}
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_FALLBACK = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=dumps_default,
                             allow_nan=True)


def dumps(obj: Any) -> str:
    """Compact JSON text (UTF-8, not ASCII-escaped); dataclasses as objects of their fields."""
    return dumpb(obj).decode()


def dumpb(obj: Any) -> bytes:
    """``dumps`` as UTF-8 bytes. A lone surrogate (which only the fallback lets through)
    becomes a ``\\udXXX`` escape, so the line stays valid UTF-8 and valid JSON."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return _FALLBACK.encode(obj).encode("utf-8", "backslashreplace")
