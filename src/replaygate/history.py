"""A SQLite store of past runs, for trends and drift (``history:`` in the config).

``gate`` and ``run`` record every complete run (its summary for the trend table, and the whole
run, compressed, so later runs can be compared with it case by case) and ``gate`` its verdict.
``replaygate history`` shows the trend; ``--drift`` compares each variant's latest run with the
one before it through the same paired statistics and gates as ``compare``: the nightly check
that a provider has not changed a model under the same name.

Drift compares measurements: every stored run keeps its provenance shares (live, cache, recorded,
batch). A run served from the response cache repeats old answers and old timings, so comparing it
with the night before says nothing; ``--drift`` refuses when the newest run of a variant was not
measured (any sample from the cache), and compares it with the latest earlier run that was.
"""
from __future__ import annotations

import json
import sqlite3
import zlib
from contextlib import closing
from pathlib import Path
from typing import Any

from .errors import InputError, ReplaygateError, RunIncomplete
from .fileio import escape_surrogates, io_error

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT, variant TEXT, model TEXT, git_commit TEXT, git_branch TEXT,
    n_cases INTEGER, summary TEXT NOT NULL, run BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS runs_variant ON runs (variant, id);
CREATE TABLE IF NOT EXISTS gates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT, baseline_run INTEGER, candidate_run INTEGER, verdict TEXT, exit_code INTEGER,
    failed TEXT NOT NULL);
"""
MAX_RUN_BYTES = 1 << 30  # a stored run decompresses to at most this (bounded, as all our inputs)
DEFAULT_METRICS = ("quality.pass_rate", "latency.p95", "cost.mean", "errors.rate")


def _connect(db: str | Path, create: bool = True) -> sqlite3.Connection:
    path = Path(db)
    if not create and not path.is_file():
        raise InputError("no history here yet (runs are recorded when the config sets history:)",
                         file=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30)
        conn.executescript(_SCHEMA)
        if "provenance" not in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}:
            conn.execute("ALTER TABLE runs ADD COLUMN provenance TEXT")  # a store from before it
    except OSError as e:
        raise io_error(e, path, "the history database") from None
    except sqlite3.Error as e:
        raise _db_error(e, path) from None
    return conn


def _db_error(e: sqlite3.Error, path: str | Path) -> ReplaygateError:
    """The error for a failed history read or write, naming the database and what to do."""
    text = str(e)
    if "full" in text or "disk I/O" in text:
        return RunIncomplete(f"cannot write the history database ({text}): free space, then record "
                             "the run again", file=str(path))
    if "readonly" in text or "unable to open" in text:
        return InputError(f"cannot write the history database ({text}): make it writable or set "
                          "history: to another path", file=str(path), field="history")
    return InputError(f"not a replaygate history database ({text}): set history: to another path or "
                      "move the file away", file=str(path), field="history")


def record(db: str | Path, runs: list[dict], comparison: dict | None = None) -> list[int]:
    """Store runs (and a gate's verdict over the first two) in one transaction: all or nothing.
    Failures are ReplaygateErrors naming the database."""
    ids = []
    try:
        with closing(_connect(db)) as conn, conn:
            ids = [_insert_run(conn, r) for r in runs]
            if comparison is not None:
                _insert_gate(conn, comparison, *ids[:2])
    except sqlite3.Error as e:
        raise _db_error(e, db) from None
    return ids


def record_run(db: str | Path, run: dict) -> int:
    """Store a run document; return its history id."""
    return record(db, [run])[0]


def _insert_run(conn: sqlite3.Connection, run: dict) -> int:
    v, env = run.get("variant") or {}, run.get("environment") or {}
    text = escape_surrogates(json.dumps(run, separators=(",", ":"), ensure_ascii=False))
    blob = zlib.compress(text.encode(), 6)
    cur = conn.execute(
        "INSERT INTO runs (time, variant, model, git_commit, git_branch, n_cases, summary, run, provenance) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (env.get("time"), v.get("name"), v.get("model"), env.get("git_commit"), env.get("git_branch"),
         len(run.get("cases") or []), json.dumps(run.get("summary") or {}), blob,
         json.dumps(run.get("provenance") or provenance_of(run))))
    return int(cur.lastrowid)


def _insert_gate(conn: sqlite3.Connection, comparison: dict, baseline_id: int, candidate_id: int) -> int:
    failed = [g.get("metric") for g in comparison.get("gates") or [] if g.get("verdict") == "fail"]
    row = conn.execute("SELECT time FROM runs WHERE id = ?", (candidate_id,)).fetchone()
    env_time = row[0] if row else None
    cur = conn.execute(
        "INSERT INTO gates (time, baseline_run, candidate_run, verdict, exit_code, failed) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (env_time, baseline_id, candidate_id, comparison.get("verdict"), comparison.get("exit_code"),
         json.dumps(failed)))
    return int(cur.lastrowid)


def runs(db: str | Path, variant: str | None = None, last: int | None = None) -> list[dict[str, Any]]:
    """The stored runs, oldest first (without the run documents), each with its gate verdict
    when it was a gate's candidate."""
    with closing(_connect(db, create=False)) as conn:
        q = ("SELECT r.id, r.time, r.variant, r.model, r.git_commit, r.git_branch, r.n_cases, r.summary, "
             "g.verdict, r.provenance FROM runs r LEFT JOIN gates g ON g.candidate_run = r.id")
        args: tuple = ()
        if variant:
            q += " WHERE r.variant = ?"
            args = (variant,)
        rows = conn.execute(q + " ORDER BY r.id", args).fetchall()
    out = [{"id": r[0], "time": r[1], "variant": r[2], "model": r[3], "git_commit": r[4], "git_branch": r[5],
            "n_cases": r[6], "summary": json.loads(r[7]), "gate": r[8],
            "provenance": json.loads(r[9]) if r[9] else None} for r in rows]
    return out[-last:] if last else out


def load_run(db: str | Path, run_id: int) -> dict:
    with closing(_connect(db, create=False)) as conn:
        row = conn.execute("SELECT run FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise InputError(f"no run {run_id} in the history", file=str(db))
    d = zlib.decompressobj()
    data = d.decompress(row[0], MAX_RUN_BYTES)
    if d.unconsumed_tail:
        raise InputError(f"run {run_id} is larger than {MAX_RUN_BYTES >> 20} MiB", file=str(db))
    return json.loads(data)


def provenance_of(run: dict) -> dict:
    """Provenance shares of a run document (for runs written before ``run.provenance``)."""
    counts = {"live": 0, "cache": 0, "recorded": 0, "batch": 0}
    recorded = bool((run.get("variant") or {}).get("recorded"))
    for case in run.get("cases") or []:
        for s in case.get("samples") or []:
            p = s.get("provenance") or ("cache" if s.get("cached") else "recorded" if recorded else "live")
            counts[p] = counts.get(p, 0) + 1
    n = sum(counts.values())
    return {**{k: (v / n if n else 0.0) for k, v in counts.items()}, "n": n}


def measured(entry: dict) -> bool:
    """True when no sample of the stored run came from the response cache (live or production
    measurements only). A run stored before provenance was kept counts as unknown: not measured."""
    prov = entry.get("provenance")
    return bool(prov) and prov.get("n", 0) > 0 and not prov.get("cache")


def latest_pairs(db: str | Path, variant: str | None = None) -> list[tuple[dict, dict]]:
    """Per variant (or the one named), its last run and the latest earlier run that was measured.
    Raises InputError (exit 2) when the last run was not measured (served from the cache): it
    repeats old answers, and drift would compare identical data."""
    by_variant: dict[str, list[dict]] = {}
    for r in runs(db, variant):
        by_variant.setdefault(r["variant"], []).append(r)
    out = []
    for name, rs in by_variant.items():
        if len(rs) < 2:
            continue
        last = rs[-1]
        if not measured(last):
            prov = last.get("provenance") or {}
            share = f"{100 * prov.get('cache', 0):.0f}% of its samples came from the cache" if prov \
                else "it was stored before replaygate kept provenance"
            raise InputError(f"--drift compares live measurements only, and run {last['id']} of variant {name!r} "
                             f"({last['time']}) was not measured: {share}. Run the nightly with --refresh "
                             "(or set cache: false in its config) so every call is made again",
                             file=str(db))
        earlier = [r for r in rs[:-1] if measured(r)]
        if not earlier:
            raise InputError(f"--drift: variant {name!r} has no earlier run that was measured live to compare "
                             f"run {last['id']} with (earlier runs came from the cache); run the nightly with "
                             "--refresh (or cache: false) on two nights", file=str(db))
        out.append((earlier[-1], last))
    return out


def shares_text(prov: dict | None) -> str:
    """'100% live' / '40% live, 60% cache' / 'unknown' for the trend table."""
    if not prov or not prov.get("n"):
        return "unknown"
    parts = [f"{100 * prov[k]:.0f}% {k}" for k in ("live", "cache", "recorded", "batch") if prov.get(k)]
    return ", ".join(parts)


def trend_rows(entries: list[dict], metrics: tuple[str, ...] = DEFAULT_METRICS) -> tuple[list[str], list[list[str]]]:
    from .report import fmt

    headers = ["id", "time", "variant", "model", "commit", "cases", "measured", *metrics, "gate"]
    rows = []
    for e in entries:
        s = e["summary"]
        rows.append([str(e["id"]), str(e["time"] or "")[:19], str(e["variant"]), str(e["model"] or ""),
                     str(e["git_commit"] or "")[:8], str(e["n_cases"]), shares_text(e.get("provenance")),
                     *[fmt.value(m, s.get(m)) for m in metrics], str(e["gate"] or "")])
    return headers, rows
