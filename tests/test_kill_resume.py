"""kill -9 at several random points of a `replaygate run` against the local server: each rerun
goes on from the cache, and the server's request log proves that no answer that was kept is paid
for again (only calls in flight at a kill, whose answers never arrived, are sent twice)."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from replay_helpers import live_requests

N = 30
CONCURRENCY = 3


def cached_prompts(cache) -> set[str]:
    """The echo model answers the prompt: a cached output names the request it answers."""
    if not os.path.exists(cache):
        return set()
    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
        return {json.loads(v)["output"] for (v,) in db.execute("SELECT value FROM responses")}


def start(cfg, out):
    return subprocess.Popen([sys.executable, "-m", "replaygate.cli", "run", "-c", str(cfg), "--variant", "v",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_at_random_points_then_resume_pays_no_kept_call_twice(tmp_path, llm_server):
    (tmp_path / "golden.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i:02d}", "input": f"question {i}"}) + "\n" for i in range(N)))
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  v: {{model: "openai/echo@latency=80,jitter=40", api_base: "{llm_server.api_base}"}}
concurrency: {CONCURRENCY}
cache: cache.sqlite
scorers: []
""")
    cache, out = tmp_path / "cache.sqlite", tmp_path / "run.json"
    rng = random.Random(20261206)
    # cumulative request counts at which to kill, plus one kill during start-up (before any call)
    kill_at = [0] + sorted(rng.sample(range(3, N - 3), 2))
    kills = 0
    for target in kill_at:
        kept_before = cached_prompts(cache)
        seen_before = len(live_requests(llm_server))
        proc = start(cfg, out)
        deadline = time.monotonic() + 120
        if target == 0:
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            while len(live_requests(llm_server)) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        sent = [r["prompt"] for r in live_requests(llm_server)[seen_before:]]
        assert len(sent) == len(set(sent))  # one attempt never sends a request twice
        assert not set(sent) & kept_before  # nothing that was kept is paid for again
    # the last run completes, from the cache plus the calls never answered
    kept_before = cached_prompts(cache)
    seen_before = len(live_requests(llm_server))
    proc = start(cfg, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    sent = [r["prompt"] for r in live_requests(llm_server)[seen_before:]]
    assert sorted(sent) == sorted({f"question {i}" for i in range(N)} - kept_before)
    run = json.loads(out.read_text())
    assert run["complete"] and len(run["cases"]) == N
    assert all(c["samples"][0]["output"] == f"question {int(c['id'][1:])}" for c in run["cases"])
    assert sum(c["samples"][0]["cached"] for c in run["cases"]) == len(kept_before)
    # over all attempts, only calls in flight at a kill were sent twice
    prompts = [r["prompt"] for r in live_requests(llm_server)]
    resent = [p for p in set(prompts) if prompts.count(p) > 1]
    assert len(resent) <= 2 * CONCURRENCY * kills
    assert set(prompts) == {f"question {i}" for i in range(N)}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
