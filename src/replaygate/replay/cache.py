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
import shutil
import sqlite3
import tempfile
import threading
import time
import urllib.parse
import weakref
from typing import Any

from ..errors import InputError, RunIncomplete
from ..fileio import escape_surrogates, io_error

# what identifies a request; anything else in the dict (api_key_env, a key) is left out
_KEY_FIELDS = ("model", "messages", "tools", "params", "api_base")


def canonical_json(obj: Any) -> str:
    """Sorted, compact JSON, always valid UTF-8: a lone surrogate (model text can hold one) is
    kept as its ``\\udXXX`` escape, so SQLite can store it and it reads back the same."""
    return escape_surrogates(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                        default=str))


_NUMBER_FIELDS = ("latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cached_tokens", "cost_usd")
_TEXT_FIELDS = ("output", "finish_reason")


def _value_problem(value: Any) -> str | None:
    """Why `value` cannot be a cached response (of ``llm.chat`` or an embedding), or None."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__ if value is not None else 'null or unreadable text'}, not an object"
    for k in _TEXT_FIELDS:
        if value.get(k) is not None and not isinstance(value[k], str):
            return f"{k} is {type(value[k]).__name__}, not text"
    for k in _NUMBER_FIELDS:
        v = value.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"{k} is {type(v).__name__}, not a number"
    calls = value.get("tool_calls")
    if calls is not None and not (isinstance(calls, list) and all(
            isinstance(c, dict) and all(c.get(f) is None or isinstance(c[f], str) for f in ("name", "arguments", "id"))
            for c in calls)):
        return "tool_calls is not a list of calls"
    emb = value.get("embedding")
    if emb is not None and not (isinstance(emb, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in emb)):
        return "embedding is not a list of numbers"
    return None


class UnsendableText(ValueError):
    """The request holds a lone surrogate: it cannot be encoded as UTF-8 for any provider."""


def request_key(request: dict, repeat: int, *, sendable: bool = False) -> str:
    """sha256 of the canonical JSON of model, messages, tools, params, api_base and the repeat
    index (and ``stream`` when on, since a streamed response carries TTFT). With ``sendable``,
    a request holding a lone surrogate raises UnsendableText (found on the same text)."""
    ident = {k: request.get(k) for k in _KEY_FIELDS}
    ident["params"] = {k: v for k, v in (request.get("params") or {}).items()
                       if v is not None and k not in ("api_key", "model")}
    ident["tools"] = request.get("tools") or []
    ident["repeat"] = int(repeat)
    if request.get("stream"):
        ident["stream"] = True
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        if sendable:
            raise UnsendableText(f"the request holds a lone surrogate (\\u{ord(text[e.start]):04x}), which "
                                 "cannot be sent as UTF-8: fix the text in the dataset or trace") from None
        data = text.encode("utf-8", "backslashreplace")  # what canonical_json gives
    return hashlib.sha256(data).hexdigest()


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
        self._snapshot: str | None = None  # a temporary copy read instead of the file (below)
        if os.path.isdir(self.path):
            raise InputError("a folder is where the response cache file should be: remove it, or set "
                             "cache: to a file path", file=self.path, field="cache")
        if read_only:
            # --offline: never touch the file (a cache committed to git stays unmodified; a
            # missing file is an empty cache, so every lookup is a miss)
            self._db = self._open_read_only() if os.path.exists(self.path) else None
        else:
            try:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            except OSError as e:
                raise io_error(e, self.path, "the response cache", "create") from None
            try:
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                           isolation_level=None)
                with self._lock:
                    self._db.execute("PRAGMA journal_mode=WAL")
                    # NORMAL in WAL mode survives a crash of the process (not of the machine), cheaply
                    self._db.execute("PRAGMA synchronous=NORMAL")
                    self._db.execute("CREATE TABLE IF NOT EXISTS responses ("
                                     "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
                    # a read-only file or folder shows only when writing: find out before any paid call
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("ROLLBACK")
            except sqlite3.Error as e:
                raise self._open_error(e) from None
            self._check_schema()
        self._pending: dict[str, str] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        _OPEN.add(self)

    def _open_error(self, e: sqlite3.Error) -> InputError:
        text = str(e)
        if self.read_only is False and ("readonly" in text or "unable to open" in text):
            return InputError(f"cannot write the response cache ({text}): the file or its folder is "
                              "read-only; run with --offline to only read it, set cache: to a writable "
                              "path, or run with --no-cache", file=self.path, field="cache")
        return InputError(f"not a usable response cache ({text}): delete the file (the next run "
                          "rebuilds it and pays for its calls again), set cache: to another path, or "
                          "run with --no-cache", file=self.path, field="cache")

    def _check_schema(self) -> None:
        """A SQLite file of another program (or an old layout) is refused, not written into."""
        try:
            with self._lock:
                cols = {r[1] for r in self._db.execute("PRAGMA table_info(responses)").fetchall()}
        except sqlite3.Error as e:
            raise self._open_error(e) from None
        if cols and not {"key", "value"} <= cols:
            raise InputError("not a replaygate response cache (its responses table has the columns "
                             f"{', '.join(sorted(cols))}): set cache: to another path or delete the file",
                             file=self.path, field="cache")

    def _open_read_only(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30, isolation_level=None)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        except sqlite3.OperationalError as e:
            if "unable to open" not in str(e):
                raise self._open_error(e) from None
            # a WAL file in a read-only folder (a checked-out cache, a read-only mount): SQLite
            # cannot create the shared-memory file it reads through, so read a private copy
            # (its -wal too: committed entries may still be there) instead of seeing no entries
            db = self._open_snapshot()
        except sqlite3.Error as e:
            raise self._open_error(e) from None
        self._db = db
        self._check_schema()
        return db

    def _open_snapshot(self) -> sqlite3.Connection:
        folder = tempfile.mkdtemp(prefix="replaygate-cache-")
        self._snapshot = folder
        copy = os.path.join(folder, "cache.sqlite")
        try:
            shutil.copyfile(self.path, copy)
            if os.path.exists(self.path + "-wal"):
                shutil.copyfile(self.path + "-wal", copy + "-wal")
            db = sqlite3.connect(copy, check_same_thread=False, timeout=30, isolation_level=None)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
            return db
        except OSError as e:
            raise io_error(e, self.path, "the response cache", "read") from None
        except sqlite3.Error as e:
            raise self._open_error(e) from None

    def _select(self, sql: str, args) -> list:
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if self.read_only and "no such table" in str(e):  # an empty SQLite file: nothing cached
                return []
            raise self._open_error(e) from None
        except sqlite3.Error as e:  # a damaged file: say so, never "not cached"
            raise self._open_error(e) from None

    def _decode(self, key: str, text: Any) -> dict:
        """The cached value, checked: a value changed outside replaygate must not crash a run
        (or be scored) as if it were a response."""
        try:
            value = json.loads(text) if isinstance(text, (str, bytes)) else None
        except ValueError:
            value = None
        problem = _value_problem(value)
        if problem:
            raise InputError(f"cache entry {key[:16]}… is not a cached response ({problem}): the file was "
                             "changed outside replaygate; delete it, or rerun with --refresh to replace "
                             "its entries", file=self.path, field="cache")
        return value

    def get(self, key: str) -> dict | None:
        with self._lock:
            text = self._pending.get(key)
            if text is None:
                rows = self._select("SELECT value FROM responses WHERE key = ?", (key,))
                text = rows[0][0] if rows else None
        return None if text is None else self._decode(key, text)

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
        return {k: (self._decode(k, v), iso_utc(t)) for k, (v, t) in found.items()}

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
        """Commit what is put, in batches. Nothing may end this thread but _STOP: a failure
        (full disk, read-only file, a value SQLite refuses) is kept for the next put / flush /
        close to raise with the path, and the loop goes on answering flushes, so a caller never
        waits forever and never loses writes silently."""
        db = None
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
            if rows and self._error is None:
                try:
                    if db is None:
                        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                        db.execute("PRAGMA synchronous=NORMAL")
                    db.execute("BEGIN")
                    db.executemany("INSERT OR REPLACE INTO responses (key, value, created) "
                                   "VALUES (?, ?, ?)", rows)
                    db.execute("COMMIT")
                    with self._lock:
                        for k, text, _ in rows:
                            if self._pending.get(k) is text:
                                del self._pending[k]
                except Exception as e:  # noqa: BLE001  every failure, not only sqlite3.Error
                    try:
                        if db is not None and db.in_transaction:
                            db.execute("ROLLBACK")
                    except Exception:  # noqa: BLE001
                        pass
                    self._error = RunIncomplete(
                        f"cannot write the response cache ({type(e).__name__}: {e}); the calls answered "
                        "since are in the run file but not cached, so a rerun would pay for them again: "
                        "free space or fix the file, then rerun", file=self.path)
            for ev in events:
                ev.set()
        if db is not None:
            db.close()

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            rows = self._select("SELECT COUNT(*) FROM responses", ())
        return rows[0][0] if rows else 0

    def close(self, *, raise_error: bool = True) -> None:
        """Commit what is pending and stop the writer; then raise its failure, if any (unless
        the caller has already reported it)."""
        if self._closed:
            return
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join()
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
        _OPEN.discard(self)
        if self._snapshot is not None:
            shutil.rmtree(self._snapshot, ignore_errors=True)
        if self._error is not None and raise_error:
            raise self._error

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_STOP = object()
_OPEN: "weakref.WeakSet[ResponseCache]" = weakref.WeakSet()


@atexit.register
def _flush_open_caches() -> None:
    """Commit what a caller put but never closed (the writer thread is a daemon)."""
    import sys

    for cache in list(_OPEN):
        try:
            cache.close()
        except Exception as e:  # at interpreter exit nobody can catch it: say it, at least
            sys.stderr.write(f"replaygate: {e}\n")
