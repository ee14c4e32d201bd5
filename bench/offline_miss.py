"""How long an offline run over a large dataset with an empty cache takes to report its first miss.

    python bench/offline_miss.py [--cases 100000] [--src SRC_DIR] [--command] [--warm K]

Writes a golden file of N cases and a config whose cache is empty, loads the cases, and times
the replay until it raises (RunIncomplete), with the process's peak RSS. With --command, times
the whole `replaygate run --offline -o run.json` instead (start-up, loading, replay, scoring and
writing the partial run), with its exit code, peak RSS and the size of the run file. --warm K
caches the first K cases' answers first (a committed cache, and the dataset grew since)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import sys, time, resource
from replaygate.config import load_config
from replaygate.errors import RunIncomplete
from replaygate.pipeline import RunSettings, load_cases, replay_variants
t0 = time.perf_counter()
cfg = load_config(sys.argv[1])
cases = load_cases(cfg)
t1 = time.perf_counter()
try:
    replay_variants(cfg, ["candidate"], RunSettings(cache_mode="offline"), cases)
except RunIncomplete as e:
    msg = str(e)[:90]
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{len(cases)} cases: load {t1 - t0:.1f} s, replay until the error {t2 - t1:.1f} s, peak {rss:.0f} MB; {msg}")
"""


WARM = r"""
import sys
from replaygate.config import load_config
from replaygate.pipeline import load_cases
from replaygate.replay.cache import ResponseCache, request_key
from replaygate.replay.variants import build_variant
cfg = load_config(sys.argv[1])
v = build_variant({**cfg.variant("candidate")})
cache = ResponseCache(cfg.cache_path)
for case in load_cases(cfg)[:int(sys.argv[2])]:
    cache.put(request_key(v.request(case), 0), {"output": "x", "finish_reason": "stop", "latency_ms": 1.0})
cache.close()
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--src", help="replaygate source folder to run (default: the installed one)")
    ap.add_argument("--command", action="store_true", help="time the whole `replaygate run --offline`")
    ap.add_argument("--warm", type=int, default=0, help="cache the first K cases' answers first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        with open(root / "golden.jsonl", "w") as f:
            for i in range(args.cases):
                f.write(json.dumps({"id": f"q{i}", "input": f"What is item {i}?", "expected": "x"}) + "\n")
        (root / "c.yaml").write_text(
            "version: 1\ndataset: [{golden: golden.jsonl}]\nvariants:\n"
            "  baseline: {model: openai/echo, api_base: 'http://127.0.0.1:9/v1'}\n"
            "  candidate: {model: openai/echo, api_base: 'http://127.0.0.1:9/v1'}\n"
            "cache: cache.sqlite\n")
        env = None
        if args.src:
            env = dict(os.environ, PYTHONPATH=args.src)
        if args.warm:
            subprocess.run([sys.executable, "-c", WARM, str(root / "c.yaml"), str(args.warm)], check=True,
                           env=env)
        if not args.command:
            subprocess.run([sys.executable, "-c", CHILD, str(root / "c.yaml")], check=False, env=env)
            return
        out = root / "run.json"
        t0 = time.perf_counter()
        with open(root / "stderr.txt", "w+") as err:
            proc = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "run", "-c", str(root / "c.yaml"),
                                     "--variant", "candidate", "-o", str(out), "--offline"],
                                    env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
            elapsed = time.perf_counter() - t0
            err.seek(0)
            last = err.read().strip().splitlines()[-1][:300]
        rss = usage.ru_maxrss / 1024
        size = out.stat().st_size / 1e6 if out.exists() else 0.0
        print(f"{args.cases} cases ({args.warm} cached): `replaygate run --offline` exit "
              f"{os.waitstatus_to_exitcode(status)} in {elapsed:.1f} s, peak {rss:.0f} MB, run file {size:.1f} MB")
        print(last)


if __name__ == "__main__":
    main()
