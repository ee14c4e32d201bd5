"""Message content stored by reference (``gen_ai.input.messages_ref`` and friends).

OpenTelemetry's upload completion hook (``OTEL_INSTRUMENTATION_GENAI_COMPLETION_HOOK=upload``)
writes the content of each call to files under a base path and records only their URIs on the
span (otel-genai.md §1.7). The importer reads them back when they are local files under a
folder the user names (``--refs-dir``, or ``refs_dir`` on a ``traces:`` entry): trace data
must not make it read any file on the machine. Remote storage (``gs://``, ``s3://`` ...) is
not fetched; such calls are skipped with the reason.

Both upload formats: ``json`` (the list on one line) and ``jsonl`` (a message per line with an
``index`` key, which is dropped after ordering by it).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from replaygate import fastjson

# attribute with the reference -> the attribute its content stands for
REF_KEYS = {
    "gen_ai.input.messages_ref": "gen_ai.input.messages",
    "gen_ai.output.messages_ref": "gen_ai.output.messages",
    "gen_ai.system_instructions_ref": "gen_ai.system_instructions",
    "gen_ai.tool.definitions_ref": "gen_ai.tool.definitions",
}

NOT_ENABLED = "content stored by reference: not read (give --refs-dir)"
REMOTE = "content stored by reference: remote storage not fetched"
OUTSIDE = "content stored by reference: file outside --refs-dir"
UNREADABLE = "content stored by reference: file missing or unreadable"
MALFORMED = "content stored by reference: not JSON / JSON Lines"

MAX_BYTES = 64 * 1024 * 1024
_CACHE_ENTRIES = 256  # system instructions and tool definitions are shared by many calls


class RefError(Exception):
    """A reference that was not read; the message is the skip reason."""


class RefReader:
    def __init__(self, root: str | Path | None):
        self.root = Path(root).expanduser().resolve() if root else None
        self._cache: OrderedDict[Path, Any] = OrderedDict()

    def __getstate__(self) -> dict:  # sent to worker processes without the cache
        return {"root": self.root}

    def __setstate__(self, state: dict) -> None:
        self.root = state["root"]
        self._cache = OrderedDict()

    def read(self, ref: Any) -> Any:
        """The content a reference points to, as the inline attribute would hold it."""
        path = self._path(ref)
        hit = self._cache.get(path)
        if hit is not None:
            self._cache.move_to_end(path)
            return hit
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError:
            raise RefError(UNREADABLE) from None
        if len(data) > MAX_BYTES:
            raise RefError(UNREADABLE)
        value = _parse(data)
        self._cache[path] = value
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return value

    def _path(self, ref: Any) -> Path:
        if not isinstance(ref, str) or not ref:
            raise RefError(MALFORMED)
        url = urlparse(ref)
        if url.scheme and url.scheme not in ("file", "local") and len(url.scheme) > 1:
            raise RefError(REMOTE)  # (a one-letter scheme is a Windows drive)
        if self.root is None:
            raise RefError(NOT_ENABLED)
        raw = unquote(url.path) if url.scheme in ("file", "local") else ref
        path = Path(raw)
        path = (path if path.is_absolute() else self.root / path).resolve()
        if not path.is_relative_to(self.root):
            raise RefError(OUTSIDE)
        return path


def _parse(data: bytes) -> Any:
    text = data.decode("utf-8", "replace").strip()
    try:
        value = fastjson.loads(text)
    except ValueError:
        pass
    else:  # json: the list itself; a one-message jsonl file parses as that message
        if isinstance(value, dict) and "index" in value:
            return [{k: v for k, v in value.items() if k != "index"}]
        return value
    try:  # jsonl: a message per line, each with its index
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        raise RefError(MALFORMED) from None
    if not all(isinstance(r, dict) for r in rows):
        raise RefError(MALFORMED)
    rows.sort(key=lambda r: r.get("index", 0) if isinstance(r.get("index"), int) else 0)
    return [{k: v for k, v in r.items() if k != "index"} for r in rows]


def resolve(attributes: dict[str, Any], ref_keys: tuple[str, ...],
            reader: RefReader | None) -> tuple[dict[str, Any], str | None]:
    """The attributes with each referenced content read in (where the inline attribute is
    absent), and the reason of the first reference that could not be read (or None)."""
    out = dict(attributes)
    problem = None
    for ref_key in ref_keys:
        target = REF_KEYS[ref_key]
        if out.get(target) is not None:
            continue  # content inline too: it wins
        try:
            if reader is None:
                raise RefError(NOT_ENABLED)
            out[target] = reader.read(attributes[ref_key])
        except RefError as e:
            problem = problem or str(e)
    return out, problem
