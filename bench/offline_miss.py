"""How long an offline run over a large dataset with an empty cache takes to report its first miss.

    python bench/offline_miss.py [--cases 100000] [--src SRC_DIR]

Writes a golden file of N cases and a config whose cache is empty, loads the cases, and times
the replay until it raises (RunIncomplete), with the process's peak RSS."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--src", help="replaygate source folder to run (default: the installed one)")
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
            import os
            env = dict(os.environ, PYTHONPATH=args.src)
        subprocess.run([sys.executable, "-c", CHILD, str(root / "c.yaml")], check=False, env=env)


if __name__ == "__main__":
    main()
