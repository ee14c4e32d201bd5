"""Benchmark: load two run files of 100,000 cases the way `replaygate compare` does.

    PYTHONPATH=src .venv/bin/python bench/runfile_bench.py [--cases 100000] [--stages]
    PYTHONPATH=src .venv/bin/python bench/runfile_bench.py --cases 1000000 --only-load
    PYTHONPATH=src .venv/bin/python bench/runfile_bench.py --cases 20000 --stages   # the old validator

Writes a synthetic run file (one sample per case with two scores, output text, tokens, cost;
about 1 KB per case as `replaygate run` writes them), then times in fresh processes: the JSON
parse alone (the floor), `runfile.load_run` (parse + schema validation + Run objects), and with
--stages the old generic validator (jsonschema) for comparison. Peak RSS from getrusage. Speed is
measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, resource, sys, time
stage, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter(); c0 = time.process_time()
if stage == "json":
    data = json.loads(open(path, "rb").read())
elif stage == "orjson":
    import orjson
    data = orjson.loads(open(path, "rb").read())
elif stage == "jsonschema":
    from replaygate.config import schema_errors
    data = json.loads(open(path, "rb").read())
    t0 = time.perf_counter(); c0 = time.process_time()
    assert not schema_errors(data, "run.schema.json")
elif stage == "load_run":
    from replaygate.runfile import load_run
    run = load_run(path)
    assert len(run.cases) > 0
elif stage == "compare":
    from replaygate.runfile import load_run
    from replaygate.compare import compare_runs
    compare_runs(load_run(path), load_run(path), [{"metric": "quality.pass_rate", "max_decrease": 0.02}], {})
dt, dc = time.perf_counter() - t0, time.process_time() - c0
print(f"{dt:.3f} {dc:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""


def write_run(path: str, n: int) -> int:
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"schema_version": 1, "variant": {"name": "candidate", "model": "openai/gpt-4o-mini"}, '
                '"environment": {"replaygate_version": "0.1.0", "repeats": 1}, "complete": true, '
                '"scorers": [{"name": "ok", "type": "contains"}, {"name": "sim", "type": "similarity", '
                '"informational": true, "threshold": 0.5}], "summary": {"quality.pass_rate": 0.9}, "cases": [\n')
        for i in range(n):
            case = {"id": f"c{i:07d}", "source": {"file": "golden.jsonl", "row": i},
                    "input": f"What is the refund policy for order {i}? " * 3, "expected": "30 days",
                    "samples": [{"repeat": 0, "output": f"Refunds are accepted within 30 days of purchase {i}. " * 6,
                                 "tool_calls": [], "finish_reason": "stop", "latency_ms": 812.4 + i % 97,
                                 "ttft_ms": None, "input_tokens": 120, "output_tokens": 48, "cached_tokens": None,
                                 "cost_usd": 0.00011, "cached": False, "provenance": "live", "cached_at": None,
                                 "error": None,
                                 "scores": {"ok": {"score": 1.0, "passed": True, "reason": "found '30 days'"},
                                            "sim": {"score": 0.82, "passed": True, "reason": "similarity 0.82"}}}]}
            f.write(("," if i else "") + json.dumps(case) + "\n")
        f.write("]}\n")
    return os.path.getsize(path)


def child(stage: str, path: str) -> tuple[float, float, float]:
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    out = subprocess.run([sys.executable, "-c", CHILD, stage, path], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr)
    wall, cpu, rss = out.stdout.split()
    return float(wall), float(cpu), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--stages", action="store_true", help="also time the old jsonschema validation")
    ap.add_argument("--only-load", action="store_true")
    ap.add_argument("--only", nargs="+", help="time only these stages (json, orjson, jsonschema, load_run, compare)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.json")
        size = write_run(path, args.cases)
        print(f"{args.cases} cases, {size / 1e6:.0f} MB")
        stages = ["json", "orjson", "load_run"] if args.only_load else ["json", "orjson", "load_run", "compare"]
        if args.stages:
            stages.insert(2, "jsonschema")
        stages = args.only or stages
        for stage in stages:
            best = min((child(stage, path) for _ in range(args.repeat)), key=lambda r: r[0])
            label = {"compare": "2x load_run + compare_runs", "jsonschema": "jsonschema validation only"}.get(stage, stage)
            print(f"  {label:<30} wall {best[0]:8.2f} s   cpu {best[1]:8.2f} s   peak RSS {best[2]:7.0f} MB")


if __name__ == "__main__":
    main()
