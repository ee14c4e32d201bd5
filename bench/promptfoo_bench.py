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
    # before/after: another checkout with its own .venv (e.g. `git worktree add --detach DIR COMMIT`)
    .venv/bin/python bench/promptfoo_bench.py /tmp/pf --checkout before=/work/before-14a1e50 \
        --modes promptfoo,rg-run@before,rg-run,rg-run-litellm --scenario 1000,16,100 --repeats 2

Modes (each a fresh CLI process under ``/usr/bin/time -v``, N distinct cases ``bench question i``,
model ``echo@latency=L`` on the fake server, cache off, no assertions/scorers):
  promptfoo          ``promptfoo eval --no-cache -j C`` (one prompt ``{{q}}``, the OpenAI chat
                     provider, N CSV test cases), results written to promptfoo's local database
                     as a user's eval does; telemetry, update checks and sharing off, promptfoo's
                     home in a temporary directory
  promptfoo-nowrite  the same with ``--no-write`` (no results database)
  rg-run             ``replaygate run --no-cache --concurrency C`` on a golden JSONL of the same
                     N inputs, writing run.json (one process: the config's default workers: 1)
  rg-run-wK          the same with ``--workers K`` (``rg-run-wauto``: ``--workers auto``)
  rg-run-litellm     the variant with ``transport: litellm`` (the litellm path instead of the
                     direct HTTP client); combines with -wK
  ...@NAME           any rg-run mode run by the checkout given as ``--checkout NAME=DIR`` (its
                     ``.venv/bin/python``, its ``src``)

Columns: ``win/s`` = N / (last arrival - first arrival + L) over the N bench calls at the server,
i.e. the calls' own window without CLI start-up (the window replay_bench.py times on the client
side), and its ratio to the ideal C*1000/L; ``whole/s`` = N / the process's wall time;
``outside`` = wall time - window (start-up, config, warm-up, scoring, writing results, exit);
``cpu ms`` = the process tree's user+system CPU / N (whole process), ``-1case`` the same minus a
one-case run's of the same mode (start-up, config loading, writing results); ``lag`` the replay's
event-loop lag p50/p99 from run.json (``environment.loop_lag_ms``); ``w`` the worker processes
the run recorded (``environment.conditions.workers``; pool workers under the fork server are not
children ``/usr/bin/time`` waits for, so their CPU is missing from a pooled run's CPU). Modes run
interleaved, round by round, so a change in the machine's load hits all of them alike. The end
prints a markdown table of medians with each mode's ratio to promptfoo's. ``--profile DIR`` then
runs each replaygate mode once more under ``py-spy record --gil`` (the ``dev`` extra installs it)
and prints where its CPU went by category (start-up imports, config, warm-up, litellm or the
direct HTTP client per call, engine bookkeeping, the event loop, scoring, the run file).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
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


def replaygate_command(work: Path, api_base: str, n: int, c: int, lat: int, workers: str | None,
                       checkout: Path = ROOT, transport: str | None = None) -> tuple[list[str], dict]:
    with open(work / "golden.jsonl", "w") as f:
        f.writelines(json.dumps({"id": f"b{i}", "input": PROMPT.format(i=i)}) + "\n" for i in range(n))
    cfg = work / "replaygate.yaml"
    cfg.write_text(
        "version: 1\ndataset:\n  - golden: golden.jsonl\nvariants:\n  bench:\n"
        f"    model: openai/echo@latency={lat}\n    api_base: {api_base}\n"
        "    api_key_env: RG_BENCH_KEY\n    price: {input: 0.15, output: 0.60}\n"
        + (f"    transport: {transport}\n" if transport else ""))
    python = checkout / ".venv" / "bin" / "python" if checkout != ROOT else Path(sys.executable)
    cmd = [str(python), "-c", "from replaygate.cli import main; main()", "-q", "run", "-c", str(cfg),
           "--variant", "bench", "-o", str(work / "run.json"), "--no-cache", "--concurrency", str(c)] \
        + ([] if workers is None else ["--workers", workers])
    env = dict(os.environ, RG_BENCH_KEY="sk-test", PYTHONPATH=str(checkout / "src"))
    return cmd, env


def parse_mode(mode: str, checkouts: dict[str, Path]) -> dict:
    """``rg-run[-litellm][-wK|-wauto][@NAME]`` -> replaygate_command's options."""
    base, _, name = mode.partition("@")
    if name and name not in checkouts:
        raise SystemExit(f"mode {mode}: give --checkout {name}=DIR")
    out = {"checkout": checkouts[name] if name else ROOT, "transport": None, "workers": None}
    rest = base[len("rg-run"):]
    if rest.startswith("-litellm"):
        out["transport"], rest = "litellm", rest[len("-litellm"):]
    if rest.startswith("-w"):
        out["workers"], rest = rest[2:], ""
    if rest:
        raise SystemExit(f"unknown mode {mode}")
    return out


def time_v_field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{re.escape(name)}: (.+)$", text, re.M)
    if not m:
        raise RuntimeError(f"/usr/bin/time -v output lacks {name!r}:\n{text[-2000:]}")
    return m.group(1).strip()


def run_mode(mode: str, pf_dir: Path, srv: FakeServer, n: int, c: int, lat: int,
             checkouts: dict[str, Path], profile: Path | None = None) -> dict:
    srv.reset()
    lag = workers = None
    with tempfile.TemporaryDirectory(prefix="pfbench-") as tmp:
        work = Path(tmp)
        if mode in ("promptfoo", "promptfoo-nowrite"):
            cmd, env = promptfoo_command(pf_dir, work, srv.api_base, n, c, lat, write=mode == "promptfoo")
        elif mode.startswith("rg-run"):
            cmd, env = replaygate_command(work, srv.api_base, n, c, lat, **parse_mode(mode, checkouts))
        else:
            raise SystemExit(f"unknown mode {mode}")
        if profile is not None:  # py-spy samples the Python thread holding the GIL: its CPU
            cmd = [py_spy(), "record", "--gil", "-r", str(PROFILE_HZ), "-f", "raw", "-o", str(profile), "--"] + cmd
        proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=work, env=env,
                              capture_output=True, text=True)
        if mode.startswith("rg-run") and (work / "run.json").exists():
            environment = json.loads((work / "run.json").read_text())["environment"]
            lag = environment.get("loop_lag_ms")
            workers = (environment.get("conditions") or {}).get("workers")
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
    return {"calls/s": n / window, "whole/s": n / wall, "ideal": c * 1000 / lat, "window_s": window,
            "wall_s": wall, "outside_s": wall - window, "cpu_s": cpu,
            "rss_mb": int(time_v_field(out, "Maximum resident set size (kbytes)")) / 1024,
            "exit": proc.returncode, "lag": lag, "workers": workers}


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


PROFILE_HZ = 200
# where a sampled stack's time goes: first a phase anywhere in the stack; else the frame nearest
# the leaf that belongs to a known owner (litellm's code, replaygate's direct client, an HTTP
# library, replaygate's engine); else the event loop itself
PROFILE_PHASES = [
    ("imports", ("_find_and_load",)),
    ("config, cases, scorers", ("load_config", "load_cases", "build_scorers")),
    ("warm-up (and workers: auto probe)", ("_warmup", "_auto_workers")),
    ("scoring + run summary (make_run)", ("make_run",)),
    ("run file: to_dict + JSON + write", ("write_json", "to_dict", "runfile.py")),
]
PROFILE_OWNERS = [
    ("litellm", ("litellm/",)),
    ("direct HTTP client (openai_http.py)", ("openai_http.py",)),
    ("HTTP library (httpx, httpcore, aiohttp, ssl)", ("httpx/", "httpcore/", "aiohttp/", "h11/", "ssl.py")),
    ("engine bookkeeping (replay/: engine, llm, cache, variants, looplag)", ("replaygate/replay/",)),
]
ROOT_FRAMES = ("replay_sync (", "replay (", "_Engine.run (")  # every call's ancestors, not its cost


def _category(frames: list[str]) -> str:
    if not frames or not any(f.strip() for f in frames):
        return "no Python frame (interpreter start, exit)"
    stack = ";".join(frames)
    for name, marks in PROFILE_PHASES:
        if any(m in stack for m in marks):
            return name
    for f in reversed(frames):
        if any(r in f for r in ROOT_FRAMES):
            continue
        for name, marks in PROFILE_OWNERS:
            if any(m in f for m in marks):
                return name
    return "asyncio event loop" if "asyncio/" in stack or "selectors.py" in stack else "other"


def py_spy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        raise SystemExit("--profile needs py-spy: pip install -c requirements.lock -e '.[dev]'")
    return str(exe)


def profile_summary(path: Path, n: int) -> list[tuple[str, float]]:
    """(category, seconds) of a py-spy raw profile, largest first; "no Python frame" are
    samples py-spy could not attribute (interpreter start and exit)."""
    got: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        cat = _category(stack.split(";"))
        got[cat] = got.get(cat, 0) + int(count)
    return sorted(((k, v / PROFILE_HZ) for k, v in got.items()), key=lambda kv: -kv[1])


def print_profiles(profiles: list[tuple[str, int, int, Path]], rows: list) -> None:
    print("\nprofiles (one extra run per replaygate mode and scenario under `py-spy record --gil`, "
          f"{PROFILE_HZ} Hz, not in the tables above: sampling slows the run, so only the shares "
          "count; ms/call = share x the median whole-process CPU per call of the unprofiled runs):")
    for m, n, c, path in profiles:
        cats = profile_summary(path, n)
        total = sum(v for _, v in cats) or 1.0
        cpu = [r["cpu_s"] for mm, nn, cc, _, r in rows if (mm, nn, cc) == (m, n, c)]
        per_call_ms = _median(cpu) * 1000 / n if cpu else float("nan")
        print(f"  {m} N={n} C={c}: {total:.2f} s sampled; {per_call_ms:.2f} ms CPU per call unprofiled")
        for name, secs in cats:
            print(f"    {100 * secs / total:5.1f}%  {secs / total * per_call_ms:6.3f} ms/call  {name}")


def summary(rows: list[tuple[str, int, int, int, dict]], base: dict) -> None:
    """Medians per mode and scenario, and their ratio to promptfoo's (default eval) medians."""
    print("\nsummary (medians over rounds; ratio = mode / promptfoo in the same sitting):")
    print("| mode | N | C | window req/s | of ideal | whole-process req/s | CPU ms/req whole | "
          "CPU ms/req minus 1-case run | outside window s | loop lag p50/p99 ms | workers | "
          "window ratio | whole ratio | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    groups: dict[tuple, list[dict]] = {}
    for m, n, c, lat, r in rows:
        groups.setdefault((n, c, lat, m), []).append(r)
    for (n, c, lat, m), rs in groups.items():
        med = {k: _median([r[k] for r in rs]) for k in ("calls/s", "whole/s", "cpu_s", "outside_s")}
        pf = groups.get((n, c, lat, "promptfoo"))
        ref = {k: _median([r[k] for r in pf]) for k in ("calls/s", "whole/s", "cpu_s")} if pf else None
        lags = [r["lag"] for r in rs if r["lag"]]
        lag = (f"{_median([x['p50'] for x in lags]):.1f}/{_median([x['p99'] for x in lags]):.1f}"
               if lags else "-")
        workers = ",".join(sorted({str(r["workers"]) for r in rs if r["workers"] is not None})) or "-"
        ratio = (lambda k: f"{med[k] / ref[k]:.2f}") if ref else (lambda k: "-")
        print(f"| {m} | {n} | {c} | {med['calls/s']:.1f} | {med['calls/s'] / rs[0]['ideal']:.2f} | "
              f"{med['whole/s']:.1f} | {med['cpu_s'] * 1000 / n:.2f} | "
              f"{(med['cpu_s'] - base[m]['cpu_s']) * 1000 / n:.2f} | {med['outside_s']:.2f} | {lag} | "
              f"{workers} | {ratio('calls/s')} | {ratio('whole/s')} | {ratio('cpu_s')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pf_dir", type=Path, help="directory where `npm install promptfoo` was run")
    ap.add_argument("--scenario", action="append", help="N,C,L (repeatable); default 1000,64,100")
    ap.add_argument("--modes", default="promptfoo", help="comma-separated, see the docstring")
    ap.add_argument("--repeats", type=int, default=1, help="rounds per scenario")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="after the rounds, one py-spy-sampled run per replaygate mode and scenario, "
                         "raw profiles kept in DIR, a summary by category printed")
    ap.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR",
                    help="another replaygate checkout with its own .venv, for modes rg-run...@NAME")
    args = ap.parse_args()
    modes = args.modes.split(",")
    checkouts = {k: Path(v).resolve() for k, _, v in (c.partition("=") for c in args.checkout)}
    exe = args.pf_dir / "node_modules" / ".bin" / "promptfoo"
    if any(m.startswith("promptfoo") for m in modes) and not exe.exists():
        raise SystemExit(f"{exe} not found: install promptfoo there first (see this script's docstring)")
    scenarios = [tuple(int(x) for x in s.split(",")) for s in args.scenario] if args.scenario \
        else [(1000, 64, 100)]
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             env=dict(os.environ, **OFFLINE_ENV)).stdout.strip().splitlines()[-1] \
        if exe.exists() else "-"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    commits = {name: subprocess.run(["git", "-C", str(d), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip() for name, d in {"": ROOT, **checkouts}.items()}
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: promptfoo {version}, node {node}, "
          f"python {sys.version.split()[0]}, cpus={os.cpu_count()}, load average at start="
          f"{os.getloadavg()[0]:.1f}; replaygate at {commits}")
    rows = []
    with FakeServer() as srv:
        # fixed cost per mode: one case at C=1 (start-up, config, results), subtracted from CPU
        base = {m: run_mode(m, args.pf_dir, srv, 1, 1, scenarios[0][2], checkouts) for m in modes}
        print("one-case runs: " + ", ".join(f"{m} {b['cpu_s']:.2f} s CPU / {b['wall_s']:.1f} s wall"
                                            for m, b in base.items()))
        print(f"{'mode':<22} {'N':>5} {'C':>4} {'L':>4} {'win/s':>7} {'ideal':>6} {'ratio':>6} {'whole/s':>7} "
              f"{'cpu ms':>7} {'-1case':>7} {'window':>7} {'wall s':>7} {'outside':>7} {'lag p50/p99':>12} "
              f"{'w':>2} {'RSS MB':>6} {'load':>5} exit")
        for n, c, lat in scenarios:
            for _ in range(args.repeats):
                for m in modes:
                    load = os.getloadavg()[0]
                    r = run_mode(m, args.pf_dir, srv, n, c, lat, checkouts)
                    rows.append((m, n, c, lat, r))
                    lag = f"{r['lag']['p50']:.1f}/{r['lag']['p99']:.1f}" if r["lag"] else "-"
                    print(f"{m:<22} {n:>5} {c:>4} {lat:>4} {r['calls/s']:>7.1f} {r['ideal']:>6.0f} "
                          f"{r['calls/s'] / r['ideal']:>6.2f} {r['whole/s']:>7.1f} {r['cpu_s'] * 1000 / n:>7.2f} "
                          f"{(r['cpu_s'] - base[m]['cpu_s']) * 1000 / n:>7.2f} {r['window_s']:>7.2f} "
                          f"{r['wall_s']:>7.1f} {r['outside_s']:>7.2f} {lag:>12} {r['workers'] or '-':>2} "
                          f"{r['rss_mb']:>6.0f} {load:>5.1f} {r['exit']}", flush=True)
        profiles = []
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            for n, c, lat in scenarios:
                for m in (m for m in modes if m.startswith("rg-run")):
                    path = args.profile / f"{m.replace('@', '_at_')}-{n}-{c}-{lat}.txt"
                    run_mode(m, args.pf_dir, srv, n, c, lat, checkouts, profile=path)
                    profiles.append((m, n, c, path))
    summary(rows, base)
    if profiles:
        print_profiles(profiles, rows)
    print(f"load average at end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
