"""Event-loop lag during a replay: how late the loop wakes a timer.

Latency is timed inside our own event loop. When the loop is saturated (high concurrency,
litellm's CPU cost per call), a response that arrived waits for the loop before its timer stops,
so the timings include queueing in our own process. A monitor task asks to be woken every
``INTERVAL_S`` and records how late it was; the run reports the lag's p50 / p99 / max
(``run.environment.loop_lag_ms``) and says when it is a meaningful share of the latencies.
"""
from __future__ import annotations

import asyncio
import time

INTERVAL_S = 0.01
# a lag worth a word: its p99 above this share of the median latency (and above MIN_MS)
MEANINGFUL_SHARE = 0.1
MIN_MS = 2.0


class LoopLag:
    def __init__(self, interval_s: float = INTERVAL_S):
        self.interval_s = interval_s
        self.lags_ms: list[float] = []
        self._task: asyncio.Task | None = None
        self._since: float | None = None  # when the pending sleep began

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            self._since = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.lags_ms.append(max(0.0, (time.perf_counter() - self._since - self.interval_s) * 1000.0))
            self._since = None

    async def stop(self) -> None:
        if self._task is not None:
            # a loop blocked until the end never woke the monitor: that wait is a lag too
            if self._since is not None:
                late = (time.perf_counter() - self._since - self.interval_s) * 1000.0
                if late > 0:
                    self.lags_ms.append(late)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def summarize(lags_ms: list[float]) -> dict | None:
    """``{p50, p99, max, n}`` in ms, or None when nothing was measured."""
    if not lags_ms:
        return None
    import numpy as np

    a = np.asarray(lags_ms, dtype=float)
    return {"p50": round(float(np.quantile(a, 0.5)), 3), "p99": round(float(np.quantile(a, 0.99)), 3),
            "max": round(float(a.max()), 3), "n": int(a.size)}


def note(loop_lag: dict | None, latency_p50: float | None, side: str = "") -> str | None:
    """A sentence for the report when the lag is a meaningful share of the latencies, else None."""
    if not loop_lag or not latency_p50 or latency_p50 <= 0:
        return None
    p99 = float(loop_lag.get("p99") or 0.0)
    if p99 < MIN_MS or p99 < MEANINGFUL_SHARE * latency_p50:
        return None
    who = f"the {side} replay" if side else "the replay"
    return (f"event-loop lag during {who}: p99 {p99:.0f} ms (max {float(loop_lag.get('max') or 0):.0f} ms), "
            f"{100 * p99 / latency_p50:.0f}% of the median latency {latency_p50:.0f} ms: the latency tails "
            "include queueing inside replaygate's own process; lower `concurrency` or add `workers` "
            "for timings you can trust")
