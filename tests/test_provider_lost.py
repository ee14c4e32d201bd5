"""The provider goes away in the middle of a gate (issue 16, defect 1): the run stops early
instead of retrying every remaining call, writes partial runs (complete: false), exits 3, and a
rerun against the restarted provider resumes from the cache, calling only what was not answered."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from fakeserver import FakeServer
from replay_helpers import live_requests, write_golden
from replaygate.cli import cli

N = 40


def _project(tmp_path: Path, api_base: str) -> tuple[Path, dict]:
    rows = [{"id": f"q{i:02d}", "input": f"code word for item {i}?", "expected": f"word-{i}"} for i in range(N)]
    write_golden(tmp_path, rows)
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: "openai/answers@latency=60", api_base: "{api_base}"}}
  candidate: {{model: "openai/answers@latency=60", api_base: "{api_base}"}}
concurrency: 2
max_retries: 3
scorers:
  - {{name: correct, type: contains}}
gates:
  - {{metric: quality.pass_rate, max_decrease: 0.05}}
""")
    return cfg, {r["input"]: f"The code word is {r['expected']}." for r in rows}


class _Gate(threading.Thread):
    """``replaygate gate`` in a thread (litellm is imported once per test process, not per run),
    so the test can kill the provider while it runs."""

    def __init__(self, cfg: Path, runs: Path):
        super().__init__(daemon=True)
        self.args = ["gate", "-c", str(cfg), "--save-runs", str(runs)]
        self.result = None
        self.start()

    def run(self) -> None:
        self.result = CliRunner().invoke(cli, self.args)

    def finish(self):
        self.join(timeout=300)
        assert self.result is not None, "the gate did not finish"
        return self.result


def test_provider_killed_mid_run_stops_early_writes_partial_runs_and_resumes(tmp_path):
    srv = FakeServer().start()
    try:
        cfg, answers = _project(tmp_path, srv.api_base)
        srv.configure(answers=answers)
        run = _Gate(cfg, tmp_path / "runs")
        deadline = time.monotonic() + 120
        while len(live_requests(srv, bodies=False)) < 12 and run.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = srv.port
        srv.stop()  # the provider dies and stays down
        r = run.finish()
    finally:
        srv.stop()
    assert r.exit_code == 3, r.output
    assert "provider lost" in r.output and "rerun to resume" in r.output, r.output
    samples = {}
    for side in ("baseline", "candidate"):
        doc = json.loads((tmp_path / "runs" / f"{side}.json").read_text())
        assert doc["complete"] is False
        samples[side] = [s for c in doc["cases"] for s in c["samples"]]
    every = samples["baseline"] + samples["candidate"]
    answered = [s for s in every if s["error"] is None]
    not_run = [s for s in every if s["error"] and s["error"]["type"] == "NotRun"]
    failed = [s for s in every if s["error"] and s["error"]["type"] != "NotRun"]
    assert len(answered) >= 10
    # stopped early: a couple of calls found the endpoint dead, the rest were never sent
    assert 1 <= len(failed) <= 4, [s["error"] for s in failed]
    assert len(not_run) >= 2 * N - len(answered) - 4
    assert "provider lost" in not_run[0]["error"]["message"]

    # the provider is back (same address, so the same cache keys): the rerun pays only for
    # the calls that were never answered
    srv = FakeServer(port=port).start()
    try:
        srv.configure(answers=answers)
        r = _Gate(cfg, tmp_path / "runs2").finish()
        assert r.exit_code == 0, r.output
        assert len(live_requests(srv, bodies=False)) == 2 * N - len(answered)
    finally:
        srv.stop()
    for side in ("baseline", "candidate"):
        doc = json.loads((tmp_path / "runs2" / f"{side}.json").read_text())
        assert doc["complete"] is True
    cached = sum(s["cached"] for side in ("baseline", "candidate")
                 for c in json.loads((tmp_path / "runs2" / f"{side}.json").read_text())["cases"]
                 for s in c["samples"])
    assert cached == len(answered)
