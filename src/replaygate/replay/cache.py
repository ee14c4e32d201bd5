"""On-disk response cache (SQLite, WAL), keyed by the whole request and the repeat index.

Each response is committed as soon as its call completes, so a run killed at any point (Ctrl-C,
kill -9) resumes on rerun without repeating a paid call. Values are the normalised responses of
``llm.chat`` (never a key); requests are hashed without the API key or its env var name.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from typing import Any

# what identifies a request; anything else in the dict (api_key_env, a key) is left out
_KEY_FIELDS = ("model", "messages", "tools", "params", "api_base")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def request_key(request: dict, repeat: int) -> str:
    """sha256 of the canonical JSON of model, messages, tools, params, api_base and the repeat
    index (and ``stream`` when on, since a streamed response carries TTFT)."""
    ident = {k: request.get(k) for k in _KEY_FIELDS}
    ident["params"] = {k: v for k, v in (request.get("params") or {}).items()
                       if v is not None and k not in ("api_key", "model")}
    ident["tools"] = request.get("tools") or []
    ident["repeat"] = int(repeat)
    if request.get("stream"):
        ident["stream"] = True
    return hashlib.sha256(canonical_json(ident).encode("utf-8")).hexdigest()


class ResponseCache:
    """``get(key) -> dict | None``, ``put(key, value)``. One connection guarded by a lock: the
    calls are sub-millisecond, so the asyncio engine calls them directly from the loop."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                   isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crash of the process (not of the machine), cheaply
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses ("
                             "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: dict) -> None:
        text = canonical_json(value)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                             (key, text, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
