"""Spread model calls over worker processes.

litellm spends milliseconds of CPU on every call, so one Python process tops out at a few hundred
calls a second whatever the concurrency. With ``ReplayOptions.workers = K`` the engine gives each
of K spawned processes every K-th case (all variants and repeats of a case stay in one process,
so they are still sent next to each other) and a K-th of the concurrency and of the rpm / tpm
budgets. Each worker runs the ordinary single-process engine with its own litellm and HTTP
client (a client shared by many connections slows down as concurrency rises), and writes the
shared SQLite cache (WAL allows several writers). A stop in one worker (auth failure, error
budget) stops the others through a shared event; the parent shows the combined progress.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
from dataclasses import replace
from typing import Any

from ..errors import RunIncomplete
from .variants import ModelVariant

# CPU seconds the worker processes of the last pooled run used (they are not children of the
# caller under a fork server, so getrusage(RUSAGE_CHILDREN) misses them): for bench/.
LAST_RUN_WORKER_CPU_S = 0.0


def _child_main(conn, stop, counters, cases, specs: dict, opts) -> None:
    from .engine import _Engine

    warnings: list[str] = []
    engine = _Engine(cases, specs, opts, warnings)
    engine.external_stop, engine.counters = stop, counters
    try:
        results = asyncio.run(engine.run())
    except RunIncomplete as e:
        results = e.partial  # type: ignore[attr-defined]
    except KeyboardInterrupt:  # interrupted before the engine's own loop could answer
        results, engine.stop_reason = engine._results(), engine.stop_reason or "interrupted"
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
    except ImportError:  # Windows
        cpu = 0.0
    conn.send({"results": results, "stop": engine.stop_reason, "incomplete": engine.incomplete_reason,
               "warnings": warnings, "calls": engine.calls, "failed": engine.failed,
               "cpu_s": cpu, "loop_lag_ms": engine.loop_lag_ms})
    conn.close()


def _context():
    """A forkserver that has imported litellm once: each worker then starts in milliseconds
    instead of paying litellm's multi-second import. (Plain fork is unsafe here: the parent has a
    running event loop, threads and HTTP clients.)"""
    from .llm import set_offline_env

    set_offline_env()  # inherited by the fork server before it imports litellm
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["litellm", "replaygate.replay.engine"])
        return ctx
    except ValueError:  # no forkserver on this platform (Windows)
        return multiprocessing.get_context("spawn")


def _receive(conns: list, got: dict[int, Any], timeout: float) -> None:
    for k, conn in enumerate(conns):
        if k not in got and conn.poll(timeout):
            try:
                got[k] = conn.recv()
            except EOFError:  # the worker died without an answer
                got[k] = None


async def run_pool(engine, work: list[tuple[str, int, int]], k: int, progress) -> None:
    """Run ``work`` (variant name, case index, repeat) of ``engine`` in ``k`` processes; fill
    ``engine.samples`` and its stop reasons, counts and warnings as the local run would."""
    ctx = _context()
    stop = ctx.Event()
    counters = ctx.Array("q", 3)
    case_idx = sorted({ci for _, ci, _ in work})
    shares = [case_idx[j::k] for j in range(k)]
    live = [n for n, v in engine.variants.items() if isinstance(v, ModelVariant)]
    specs = {n: engine.specs[n] for n in live}
    o = engine.opts
    child_opts = replace(o, workers=1, concurrency=max(1, math.ceil(o.concurrency / k)),
                         rpm=o.rpm / k if o.rpm else None, tpm=o.tpm / k if o.tpm else None,
                         progress=False, min_calls_for_budget=max(1, o.min_calls_for_budget // k))
    procs, conns = [], []
    for j, share in enumerate(shares):
        recv, send = ctx.Pipe(duplex=False)
        opts_j = replace(child_opts, seed=None if o.seed is None else o.seed * 1000 + j)
        p = ctx.Process(target=_child_main, daemon=True,
                        args=(send, stop, counters, [engine.cases[i] for i in share], specs, opts_j))
        p.start()
        send.close()
        procs.append(p)
        conns.append(recv)
    got: dict[int, Any] = {}
    try:
        while len(got) < k:
            _receive(conns, got, 0)
            if all(not p.is_alive() for p in procs):
                _receive(conns, got, 0.5)
                break
            progress.done, progress.errors, progress.hits = counters[:]
            progress.show()
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        stop.set()  # workers finish what is in flight and answer with partial results
        engine._stop("interrupted (Ctrl-C) before every call finished")
        await asyncio.to_thread(_receive, conns, got, o.timeout_s + 5)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    progress.done, progress.errors, progress.hits = counters[:]
    _merge(engine, shares, live, got, k)


def _merge(engine, shares: list[list[int]], live: list[str], got: dict[int, Any], k: int) -> None:
    from .engine import OTHER_WORKER_STOPPED

    global LAST_RUN_WORKER_CPU_S
    LAST_RUN_WORKER_CPU_S = sum(m["cpu_s"] for m in got.values() if m)
    for j in range(k):
        msg = got.get(j)
        if msg is None:
            engine._stop(f"worker process {j} died before returning its results")
            continue
        for name in live:
            for row, ci in zip(msg["results"][name], shares[j]):
                engine.samples[name][ci] = row.samples
        if msg["stop"] and msg["stop"] != OTHER_WORKER_STOPPED:
            engine.stop_reason = engine.stop_reason or msg["stop"]
        engine.incomplete_reason = engine.incomplete_reason or msg["incomplete"]
        engine.calls += msg["calls"]
        engine.failed += msg["failed"]
        engine.loop_lag_ms.extend(msg.get("loop_lag_ms") or [])  # the workers' loops time the calls
        for w in msg["warnings"]:
            engine.warn(w)
    if engine.stop_reason is None and any(m and m["stop"] for m in got.values()):
        engine.stop_reason = OTHER_WORKER_STOPPED
