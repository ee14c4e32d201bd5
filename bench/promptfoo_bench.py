"""promptfoo's replay throughput on the same local server as bench/replay_bench.py (issue 4).

Issue 4 asks replaygate, at C=64 and L=100 ms, for at least 1.5x what promptfoo reaches on the
same server. This script measures promptfoo here, and the `replaygate run` command on the same
cases for a like-for-like CLI comparison; it installs nothing. Install promptfoo outside the
repository first (0.121.x is the newest line that still runs on Node 20; 0.122+ needs
Node >= 22.22):

    mkdir -p /tmp/pf && cd /tmp/pf && npm init -y && npm install promptfoo@0.121.20

then, from the repository root:

    .venv/bin/python bench/promptfoo_bench.py /tmp/pf --scenario 1000,64,100 --scenario 1000,16,100 --repeats 2
    .venv/bin/python bench/promptfoo_bench.py /tmp/pf --modes promptfoo,promptfoo-nowrite,rg-run,rg-run-w1 --repeats 3

Modes (each a fresh CLI process under ``/usr/bin/time -v``, N distinct cases ``bench question i``,
model ``echo@latency=L`` on the fake server, cache off, no assertions/scorers):
  promptfoo          ``promptfoo eval --no-cache -j C`` (one prompt ``{{q}}``, the OpenAI chat
                     provider, N CSV test cases), results written to promptfoo's local database
                     as a user's eval does; telemetry, update checks and sharing off, promptfoo's
                     home in a temporary directory
  promptfoo-nowrite  the same with ``--no-write`` (no results database)
  rg-run             ``replaygate run --no-cache --concurrency C`` on a golden JSONL of the same
                     N inputs, writing run.json (one process: the config's default workers: 1)
  rg-run-wK          the same with ``--workers K``

Throughput comes from the server: N / (last arrival - first arrival + L) over the N bench calls,
i.e. the calls' own window without CLI start-up (the window replay_bench.py times on the client
side). CPU per call is the process tree's user+system CPU minus a one-case run's of the same mode
(start-up, config loading, writing results), divided by N. Modes run interleaved, round by round,
so a change in the machine's load hits all of them alike.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver import FakeServer  # noqa: E402

OFFLINE_ENV = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "PROMPTFOO_DISABLE_UPDATE": "1",
    "PROMPTFOO_DISABLE_SHARING": "1",
    "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true",
    "NO_COLOR": "1",
}
PROMPT = "bench question {i}"


def promptfoo_command(pf_dir: Path, work: Path, api_base: str, n: int, c: int, lat: int,
                      write: bool) -> tuple[list[str], dict]:
    with open(work / "tests.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["q"])
        w.writerows([PROMPT.format(i=i)] for i in range(n))
    cfg = work / "promptfooconfig.yaml"
    cfg.write_text(
        "description: replaygate promptfoo bench\n"
        "prompts:\n  - '{{q}}'\n"
        "providers:\n"
        f"  - id: openai:chat:echo@latency={lat}\n"
        "    config:\n"
        f"      apiBaseUrl: {api_base}\n"
        "      apiKey: sk-test\n"
        "tests: file://tests.csv\n")
    cmd = [str(pf_dir / "node_modules" / ".bin" / "promptfoo"), "eval", "-c", str(cfg), "--no-cache",
           "-j", str(c), "--no-table", "--no-share", "--no-progress-bar"] + ([] if write else ["--no-write"])
    return cmd, dict(os.environ, PROMPTFOO_CONFIG_DIR=str(work / "home"), **OFFLINE_ENV)


def replaygate_command(work: Path, api_base: str, n: int, c: int, lat: int,
                       workers: int | None) -> tuple[list[str], dict]:
    with open(work / "golden.jsonl", "w") as f:
        f.writelines(json.dumps({"id": f"b{i}", "input": PROMPT.format(i=i)}) + "\n" for i in range(n))
    cfg = work / "replaygate.yaml"
    cfg.write_text(
        "version: 1\ndataset:\n  - golden: golden.jsonl\nvariants:\n  bench:\n"
        f"    model: openai/echo@latency={lat}\n    api_base: {api_base}\n"
        "    api_key_env: RG_BENCH_KEY\n    price: {input: 0.15, output: 0.60}\n")
    cmd = [sys.executable, "-c", "from replaygate.cli import main; main()", "-q", "run", "-c", str(cfg),
           "--variant", "bench", "-o", str(work / "run.json"), "--no-cache", "--concurrency", str(c)] + ([] if workers is None else ["--workers", str(workers)])
    env = dict(os.environ, RG_BENCH_KEY="sk-test", PYTHONPATH=str(ROOT / "src"))
    return cmd, env


def time_v_field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{re.escape(name)}: (.+)$", text, re.M)
    if not m:
        raise RuntimeError(f"/usr/bin/time -v output lacks {name!r}:\n{text[-2000:]}")
    return m.group(1).strip()


def run_mode(mode: str, pf_dir: Path, srv: FakeServer, n: int, c: int, lat: int) -> dict:
    srv.reset()
    with tempfile.TemporaryDirectory(prefix="pfbench-") as tmp:
        work = Path(tmp)
        if mode in ("promptfoo", "promptfoo-nowrite"):
            cmd, env = promptfoo_command(pf_dir, work, srv.api_base, n, c, lat, write=mode == "promptfoo")
        elif mode == "rg-run" or mode.startswith("rg-run-w"):
            workers = int(mode[len("rg-run-w"):]) if mode.startswith("rg-run-w") else None
            cmd, env = replaygate_command(work, srv.api_base, n, c, lat, workers)
        else:
            raise SystemExit(f"unknown mode {mode}")
        proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=work, env=env,
                              capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    # promptfoo 0.121 on Node 20 sometimes crashes while closing its log file *after* a complete
    # eval ("write after end" from winston): such a run is measured and flagged (exit column);
    # any other failure stops the bench
    if proc.returncode != 0 and "Eval complete" not in out:
        raise RuntimeError(f"{mode} exited {proc.returncode}:\n{out[-3000:]}")
    reqs = srv.stats(bodies=False)["requests"]
    wanted = {PROMPT.format(i=i) for i in range(n)}
    ok = [r for r in reqs if r["path"] == "/v1/chat/completions" and r["status"] == 200
          and r["prompt"] in wanted]  # replaygate's connection warm-up call is not a bench call
    if len(ok) != n or len({r["prompt"] for r in ok}) != n:
        raise RuntimeError(f"{mode}: expected {n} distinct successful calls, server saw {len(ok)} "
                           f"of {len(reqs)} requests")
    ts = sorted(r["t"] for r in ok)
    window = ts[-1] - ts[0] + lat / 1000
    cpu = float(time_v_field(out, "User time (seconds)")) + float(time_v_field(out, "System time (seconds)"))
    mins, secs = time_v_field(out, "Elapsed (wall clock) time (h:mm:ss or m:ss)").rsplit(":", 1)
    wall = float(secs) + 60 * sum(int(x) * 60 ** k for k, x in enumerate(reversed(mins.split(":"))))
    return {"calls/s": n / window, "ideal": c * 1000 / lat, "window_s": window, "wall_s": wall,
            "cpu_s": cpu, "rss_mb": int(time_v_field(out, "Maximum resident set size (kbytes)")) / 1024,
            "exit": proc.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pf_dir", type=Path, help="directory where `npm install promptfoo` was run")
    ap.add_argument("--scenario", action="append", help="N,C,L (repeatable); default 1000,64,100")
    ap.add_argument("--modes", default="promptfoo", help="comma-separated, see the docstring")
    ap.add_argument("--repeats", type=int, default=1, help="rounds per scenario")
    args = ap.parse_args()
    modes = args.modes.split(",")
    exe = args.pf_dir / "node_modules" / ".bin" / "promptfoo"
    if any(m.startswith("promptfoo") for m in modes) and not exe.exists():
        raise SystemExit(f"{exe} not found: install promptfoo there first (see this script's docstring)")
    scenarios = [tuple(int(x) for x in s.split(",")) for s in args.scenario] if args.scenario \
        else [(1000, 64, 100)]
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             env=dict(os.environ, **OFFLINE_ENV)).stdout.strip().splitlines()[-1]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"promptfoo {version}, node {node}, python {sys.version.split()[0]}, cpus={os.cpu_count()}, "
          f"load average at start={os.getloadavg()[0]:.1f}")
    with FakeServer() as srv:
        # fixed cost per mode: one case at C=1 (start-up, config, results), subtracted from CPU
        base = {m: run_mode(m, args.pf_dir, srv, 1, 1, scenarios[0][2]) for m in modes}
        print("one-case runs (CPU s subtracted below): "
              + ", ".join(f"{m} {b['cpu_s']:.2f} s CPU / {b['wall_s']:.1f} s wall" for m, b in base.items()))
        print(f"{'mode':<17} {'N':>5} {'C':>4} {'L':>4} {'calls/s':>8} {'ideal':>6} {'ratio':>6} "
              f"{'cpu ms/call':>11} {'window s':>8} {'wall s':>7} {'RSS MB':>7} {'load':>5} exit")
        for n, c, lat in scenarios:
            for _ in range(args.repeats):
                for m in modes:
                    load = os.getloadavg()[0]
                    r = run_mode(m, args.pf_dir, srv, n, c, lat)
                    cpu_call = (r["cpu_s"] - base[m]["cpu_s"]) * 1000 / n
                    print(f"{m:<17} {n:>5} {c:>4} {lat:>4} {r['calls/s']:>8.1f} {r['ideal']:>6.0f} "
                          f"{r['calls/s'] / r['ideal']:>6.2f} {cpu_call:>11.2f} {r['window_s']:>8.2f} "
                          f"{r['wall_s']:>7.1f} {r['rss_mb']:>7.0f} {load:>5.1f} {r['exit']}", flush=True)
    print(f"load average at end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
