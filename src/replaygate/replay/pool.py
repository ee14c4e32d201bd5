"""Spread model calls over worker processes.

litellm spends milliseconds of CPU on every call, so one Python process tops out at a few hundred
calls a second whatever the concurrency. With ``ReplayOptions.workers = K`` the engine gives each
of K spawned processes every K-th case (all variants and repeats of a case stay in one process,
so they are still sent next to each other) and a K-th of the concurrency and of the rpm / tpm
budgets (``workers: auto`` decides K from a short probe of the endpoint, see ``auto_workers``).
Each worker runs the ordinary single-process engine with its own litellm and HTTP
client (a client shared by many connections slows down as concurrency rises), and writes the
shared SQLite cache (WAL allows several writers). A stop in one worker (auth failure, error
budget) stops the others through a shared event; the parent shows the combined progress. The engine imports this module and hands its own
class to the workers, so nothing here imports the engine (no import cycle).
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
from dataclasses import replace
from typing import Any

from ..errors import RunIncomplete
from .variants import ModelVariant

OTHER_WORKER_STOPPED = "stopped because another worker process stopped the run"
# `workers: auto`: pool only runs of at least this many live calls (a worker costs about a second
# to start), and plan each process to stay at most this busy: above about half a core the event
# loop's own queueing starts to show in the measured latencies (environment.loop_lag_ms)
AUTO_MIN_CALLS = 400
AUTO_BUSY_MAX = 0.5

# CPU seconds the worker processes of the last pooled run used (they are not children of the
# caller under a fork server, so getrusage(RUSAGE_CHILDREN) misses them): for bench/.
LAST_RUN_WORKER_CPU_S = 0.0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_workers(calls: int, rate_per_s: float, cpu_s_per_call: float, cores: int) -> int:
    """Processes for ``workers: auto``: one, unless the run is large and its planned request rate
    times the CPU one call costs would keep one process more than ``AUTO_BUSY_MAX`` busy; then
    enough to bring each under it, at most one per usable core."""
    if calls < AUTO_MIN_CALLS or rate_per_s <= 0 or cpu_s_per_call <= 0:
        return 1
    return max(1, min(cores, math.ceil(rate_per_s * cpu_s_per_call / AUTO_BUSY_MAX)))


def _child_main(conn, stop, counters, cases, specs: dict, opts, engine_cls) -> None:
    warnings: list[str] = []
    engine = engine_cls(cases, specs, opts, warnings)
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


def _context(needs_litellm: bool = True):
    """A forkserver that has imported litellm once: each worker then starts in milliseconds
    instead of paying litellm's multi-second import. (Plain fork is unsafe here: the parent has a
    running event loop, threads and HTTP clients.) When every variant takes the direct HTTP path
    the server preloads that instead (the preload is fixed when the process first starts one)."""
    from .llm import set_offline_env

    set_offline_env()  # inherited by the fork server before it imports litellm
    try:
        ctx = multiprocessing.get_context("forkserver")
        first = "litellm" if needs_litellm else "replaygate.replay.openai_http"
        ctx.set_forkserver_preload([first, "replaygate.replay.engine"])
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
    ctx = _context(any(isinstance(v, ModelVariant) and v.uses_litellm() for v in engine.variants.values()))
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
                        args=(send, stop, counters, [engine.cases[i] for i in share], specs, opts_j,
                                    type(engine)))
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
