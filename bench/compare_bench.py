"""Benchmark: compare two runs of 100,000 cases with 10,000 bootstrap resamples per metric.

    PYTHONPATH=src .venv/bin/python bench/compare_bench.py [--cases 100000] [--resamples 10000]

Prints the time of each stage and of the whole compare_runs call (target: under 2 s), plus the
same on 300 cases for scale. Speed is measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from replaygate.compare import compare_runs, stats
from replaygate.compare.paired import compare_means, compare_quantiles
from replaygate.compare.synthetic import make_run
from replaygate.metrics import case_metrics

GATES = [{"metric": "quality.pass_rate", "max_decrease": 0.02},
         {"metric": "score.sim.mean", "max_decrease": 0.02},
         {"metric": "cost.mean", "max_increase": "10%"},
         {"metric": "latency.p95", "max_increase": "25%"},
         {"metric": "errors.rate", "max": 0.01}]


def build(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.random(n) < 0.9
    lat = rng.lognormal(6.5, 0.4, n)
    base = make_run(p, latency=lat, score=rng.random(n), cost=rng.uniform(1e-4, 3e-4, n),
                    ttft=lat * 0.2, name="baseline")
    cand = make_run(p & (rng.random(n) > 0.02), latency=lat * rng.lognormal(0.02, 0.1, n),
                    score=rng.random(n), cost=rng.uniform(1e-4, 3e-4, n), ttft=lat * 0.25, name="candidate")
    return base, cand


def timed(label, fn, *a, **kw):
    """Wall time, and CPU time of this process (robust to other load on the machine; the FFTs
    use two threads, so CPU time can exceed wall time)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    print(f"  {label:<40} wall {dt:7.3f} s   cpu {dc:7.3f} s")
    return out, dt


def bench(n: int, resamples: int) -> float:
    print(f"{n} cases, {resamples} resamples")
    (base, cand), _ = timed("build Run objects (not part of compare)", build, n)
    mb, _ = timed("metrics: case_metrics(base)", case_metrics, base)
    mc, _ = timed("metrics: case_metrics(cand)", case_metrics, cand)
    w, _ = timed("bootstrap weights (drawn once)", stats.CaseWeights, n, resamples, 0)
    idx = np.arange(n)
    names = [m for m in mb if mb[m].kind != "quantile"]
    timed(f"means/rates/totals ({len(names)} metrics)", compare_means, names, mb, mc, idx, idx, n, w, 0.025)
    for group in ("latency", "ttft"):
        q = [m for m in mb if m.startswith(group + ".p")]
        timed(f"{group} quantiles ({len(q)} metrics, ratio)", compare_quantiles, q, mb, mc, idx, idx, n, w, 0.025)
    out, total = timed("compare_runs total (5 gates)", compare_runs, base, cand, GATES,
                       {"resamples": resamples})
    print(f"  verdict {out['verdict']}, {len(out['metrics'])} metrics, target 2 s: "
          f"{'met' if total < 2 else 'missed'} ({total / 2:.2f}x of target)")
    return total


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--resamples", type=int, default=10_000)
    a = ap.parse_args()
    bench(300, a.resamples)
    bench(a.cases, a.resamples)


if __name__ == "__main__":
    main()
