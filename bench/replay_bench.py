"""Replay throughput against the local fake server (issue 4).

    PYTHONPATH=src python bench/replay_bench.py                      # the three issue scenarios
    PYTHONPATH=src python bench/replay_bench.py --scenario 1000,64,100 --modes engine,raw-own

For each scenario (N calls, concurrency C, server latency L ms) and mode it prints achieved
calls/s, the ideal C*1000/L, their ratio, and CPU ms per call of the client (its own process and,
for pooled modes, its worker processes; the server runs in a separate process, not counted).

Modes:
  raw-shared   one httpx.AsyncClient shared by C tasks (the known slow-down as C rises)
  raw-own      C tasks split over httpx clients of at most 16 connections each
  litellm      bare litellm.acompletion in C tasks (litellm's own cost, no replaygate)
  direct       bare llm.chat on the direct HTTP path in C tasks (openai_http.py's own cost)
  engine       replaygate's engine in this process, calls through litellm (transport: litellm)
  engine-direct  the engine on the direct HTTP path (transport: direct; what `auto` picks here)
  engine-wK    the engine with K worker processes (ReplayOptions.workers=K), through litellm
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver import FakeServer  # noqa: E402

SCENARIOS = [(1000, 16, 100), (1000, 64, 100), (2000, 256, 50)]


def cpu_seconds() -> float:
    """User+system CPU of this process and its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def body(i: int, model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": f"bench question {i}"}]}


async def raw(url: str, n: int, c: int, model: str, clients: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=max(1, c // clients), max_keepalive_connections=max(1, c // clients))
    pool = [httpx.AsyncClient(timeout=60, limits=limits) for _ in range(clients)]
    counter = iter(range(n))

    async def worker(k: int) -> None:
        client = pool[k % clients]
        for i in counter:
            r = await client.post(url + "/v1/chat/completions", json=body(i, model),
                                  headers={"Authorization": "Bearer sk-test"})
            r.raise_for_status()
            r.json()

    # warm-up: one request per client so connection set-up is not timed
    for cl in pool:
        (await cl.post(url + "/v1/chat/completions", json=body(-1, model))).raise_for_status()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(c)))
    return time.perf_counter() - t0


async def bare_litellm(api_base: str, n: int, c: int, model: str) -> float:
    """litellm.acompletion in C tasks, nothing else: litellm's own cost per call."""
    from replaygate.replay.llm import litellm_module

    litellm = litellm_module()
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await litellm.acompletion(model=f"openai/{model}", api_base=api_base, api_key="sk-test",
                                      max_retries=0, timeout=60, messages=body(i, model)["messages"])

    await litellm.acompletion(model=f"openai/{model}", api_base=api_base, api_key="sk-test",
                              messages=[{"role": "user", "content": "warm"}], max_retries=0)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return time.perf_counter() - t0


async def bare_direct(api_base: str, n: int, c: int, model: str) -> float:
    """llm.chat on the direct path in C tasks, nothing else: the direct client's own cost."""
    from replaygate.replay import llm, openai_http

    counter = iter(range(n))
    base = {"model": f"openai/{model}", "api_base": api_base, "transport": "direct"}

    async def worker() -> None:
        for i in counter:
            await llm.chat({**base, "messages": body(i, model)["messages"]}, timeout=60)

    await llm.chat({**base, "messages": [{"role": "user", "content": "warm"}]}, timeout=60)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    elapsed = time.perf_counter() - t0
    await openai_http.aclose()
    return elapsed


def engine(api_base: str, n: int, c: int, model: str, workers: int, transport: str = "litellm") -> float:
    from replaygate.model import Case, Message
    from replaygate.replay.engine import ReplayOptions, replay_sync

    cases = [Case(id=f"b{i}", messages=[Message(role="user", content=f"bench question {i}")])
             for i in range(n)]
    opts = ReplayOptions(concurrency=c, timeout_s=60, max_retries=0, cache_mode="off", workers=workers)
    variants = {"v": {"model": f"openai/{model}", "api_base": api_base, "transport": transport}}
    # import litellm before timing (the engine's own warm-up call covers the first connection)
    from replaygate.replay.llm import litellm_module
    litellm_module()
    t0 = time.perf_counter()
    out = replay_sync(cases, variants, opts)
    elapsed = time.perf_counter() - t0
    errors = sum(s.error is not None for r in out["v"] for s in r.samples)
    if errors:
        print(f"   ({errors} errors)", file=sys.stderr)
    return elapsed


def run_one(srv: FakeServer, n: int, c: int, lat: int, mode: str, model: str) -> dict:
    srv.reset()
    srv.configure(options={"latency": lat})  # every model answers as `echo` after L ms
    cpu0 = cpu_seconds()
    if mode == "raw-shared":
        elapsed = asyncio.run(raw(srv.url, n, c, model, clients=1))
    elif mode == "raw-own":
        elapsed = asyncio.run(raw(srv.url, n, c, model, clients=max(1, c // 16)))
    elif mode == "litellm":
        elapsed = asyncio.run(bare_litellm(srv.api_base, n, c, model))
    elif mode == "direct":
        elapsed = asyncio.run(bare_direct(srv.api_base, n, c, model))
    elif mode == "engine":
        elapsed = engine(srv.api_base, n, c, model, workers=1)
    elif mode == "engine-direct":
        elapsed = engine(srv.api_base, n, c, model, workers=1, transport="direct")
    elif mode.startswith("engine-w"):
        elapsed = engine(srv.api_base, n, c, model, workers=int(mode[len("engine-w"):]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    cpu = cpu_seconds() - cpu0
    if mode.startswith("engine-w"):
        from replaygate.replay import pool

        cpu += pool.LAST_RUN_WORKER_CPU_S  # forked by the pool's fork server, not our children
    got = srv.stats(summary=True)["count"]
    rate = n / elapsed
    ideal = c * 1000 / lat
    return {"mode": mode, "N": n, "C": c, "L": lat, "calls/s": rate, "ideal": ideal,
            "ratio": rate / ideal, "cpu_ms/call": cpu * 1000 / n, "server_requests": got}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", action="append", help="N,C,L (repeatable); default: the issue's three")
    ap.add_argument("--modes", default="raw-shared,raw-own,litellm,direct,engine,engine-direct,engine-w2")
    ap.add_argument("--model", default="gpt-4o-mini",
                    help="model name sent (a name litellm knows keeps its cost lookup on the fast path)")
    args = ap.parse_args()
    scenarios = [tuple(int(x) for x in s.split(",")) for s in args.scenario] if args.scenario else SCENARIOS
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} "
          f"load average at start={os.getloadavg()[0]:.1f} (other jobs on the machine skew wall-clock)")
    from replaygate.replay.llm import litellm_module

    litellm_module()  # import once, outside every measurement
    pool_modes = [m for m in args.modes.split(",") if m.startswith("engine-w")]
    if pool_modes:
        # start the worker pool's fork server (it imports litellm once per parent process)
        t0 = time.perf_counter()
        with FakeServer() as warm:
            engine(warm.api_base, 8, 8, "echo", workers=int(pool_modes[0][len("engine-w"):]))
        print(f"pool start-up (fork server importing litellm, once per process): "
              f"{time.perf_counter() - t0:.1f} s")
    print(f"{'mode':<13} {'N':>5} {'C':>4} {'L':>4} {'calls/s':>8} {'ideal':>7} {'ratio':>6} {'cpu ms/call':>11}")
    with FakeServer() as srv:
        for n, c, lat in scenarios:
            for mode in args.modes.split(","):
                r = run_one(srv, n, c, lat, mode, args.model)
                print(f"{r['mode']:<13} {n:>5} {c:>4} {lat:>4} {r['calls/s']:>8.1f} {r['ideal']:>7.0f} "
                      f"{r['ratio']:>6.2f} {r['cpu_ms/call']:>11.2f}", flush=True)
    print(f"load average at end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
