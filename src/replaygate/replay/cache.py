"""On-disk response cache (SQLite, WAL), keyed by the whole request and the repeat index.

Each response is committed as soon as its call completes, so a run killed at any point (Ctrl-C,
kill -9) resumes on rerun without repeating a paid call. Values are the normalised responses of
``llm.chat`` (never a key); requests are hashed without the API key or its env var name.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import sqlite3
import threading
import time
import urllib.parse
import weakref
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


def iso_utc(stamp: float | None) -> str | None:
    """A POSIX time as ISO-8601 UTC to the second (None stays None: a row without a time)."""
    if stamp is None:
        return None
    import datetime as _dt
    try:
        return _dt.datetime.fromtimestamp(float(stamp), _dt.timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


class ResponseCache:
    """``get(key) -> dict | None``, ``get_many(keys) -> {key: dict}``, ``put(key, value)``,
    ``flush()``, ``close()``.

    Writes go to a background thread with its own connection, committed in small batches within
    milliseconds: an SQLite call releases the GIL, and on a loop shared with busy threads
    (litellm's logging workers) getting it back can stall the event loop for a switch interval.
    A value put is visible to ``get`` at once (kept in memory until committed). Reads and writes
    are safe from several threads, tasks and processes (WAL)."""

    def __init__(self, path: str | os.PathLike, *, read_only: bool = False):
        self.path = os.fspath(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        if read_only:
            # --offline: never touch the file (a cache committed to git stays unmodified; a
            # missing file is an empty cache, so every lookup is a miss)
            self._db = None
            if os.path.exists(self.path):
                uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30,
                                           isolation_level=None)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                       isolation_level=None)
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a crash of the process (not of the machine), cheaply
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS responses ("
                                 "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
        self._pending: dict[str, str] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        _OPEN.add(self)

    def _select(self, sql: str, args) -> list:
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            if self.read_only:  # a read-only file without the table: nothing cached
                return []
            raise

    def get(self, key: str) -> dict | None:
        with self._lock:
            text = self._pending.get(key)
            if text is None:
                rows = self._select("SELECT value FROM responses WHERE key = ?", (key,))
                text = rows[0][0] if rows else None
        return None if text is None else json.loads(text)

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """The cached values among ``keys`` (one query per 500 keys)."""
        return {k: v for k, (v, _) in self.get_many_timed(keys).items()}

    def get_many_timed(self, keys: list[str]) -> dict[str, tuple[dict, str | None]]:
        """The cached values among ``keys`` with when each was recorded (ISO-8601 UTC; None for
        a row without a time), one query per 500 keys."""
        found: dict[str, tuple[str, float | None]] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(unique), 500):
                chunk = unique[i:i + 500]
                marks = ",".join("?" * len(chunk))
                for k, v, t in self._select(f"SELECT key, value, created FROM responses WHERE key IN ({marks})",
                                            chunk):
                    found[k] = (v, t)
            for k in unique:
                if k in self._pending:
                    found[k] = (self._pending[k], time.time())
        return {k: (json.loads(v), iso_utc(t)) for k, (v, t) in found.items()}

    def put(self, key: str, value: dict) -> None:
        if self.read_only:
            raise ValueError("the cache was opened read-only (--offline)")
        if self._error is not None:
            raise self._error
        text = canonical_json(value)
        with self._lock:
            if self._closed:
                raise ValueError("cache is closed")
            self._pending[key] = text
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="replaygate-cache",
                                                daemon=True)
                self._writer.start()
        self._queue.put(key)

    def flush(self) -> None:
        """Wait until every value put so far is committed."""
        if self._writer is not None and self._writer.is_alive():
            done = threading.Event()
            self._queue.put(done)
            done.wait()
        if self._error is not None:
            raise self._error

    def _write_loop(self) -> None:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [b for b in batch if isinstance(b, threading.Event)]
            stop = any(b is _STOP for b in batch)
            with self._lock:
                rows = [(k, self._pending[k], time.time()) for k in dict.fromkeys(batch)
                        if isinstance(k, str) and k in self._pending]
            if rows:
                try:
                    db.execute("BEGIN")
                    db.executemany("INSERT OR REPLACE INTO responses (key, value, created) "
                                   "VALUES (?, ?, ?)", rows)
                    db.execute("COMMIT")
                except sqlite3.Error as e:  # reported to the next put / flush
                    self._error = e
                with self._lock:
                    for k, text, _ in rows:
                        if self._pending.get(k) is text:
                            del self._pending[k]
            for ev in events:
                ev.set()
        db.close()

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            rows = self._select("SELECT COUNT(*) FROM responses", ())
        return rows[0][0] if rows else 0

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
        _OPEN.discard(self)

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_STOP = object()
_OPEN: "weakref.WeakSet[ResponseCache]" = weakref.WeakSet()


@atexit.register
def _flush_open_caches() -> None:
    """Commit what a caller put but never closed (the writer thread is a daemon)."""
    for cache in list(_OPEN):
        try:
            cache.close()
        except Exception:  # best effort at interpreter exit
            pass
