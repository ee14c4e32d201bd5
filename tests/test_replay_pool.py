"""The engine spread over worker processes (ReplayOptions.workers)."""
from __future__ import annotations

import pytest

from replaygate.errors import RunIncomplete
from replaygate.replay.engine import replay_sync, result_summary
from replay_helpers import live_requests, model_variant, opts, recorded_cases


@pytest.mark.slow  # the fork server imports litellm once (seconds on a busy machine)
def test_pool_same_results_shared_cache_and_stop(llm_server, tmp_path):
    cases = recorded_cases(30)
    variants = {"base": {"recorded": True}, "cand": model_variant(llm_server, "echo@latency=20")}
    warnings: list[str] = []
    out = replay_sync(cases, variants, opts(tmp_path, workers=2, concurrency=8), warnings=warnings)
    assert [r.id for r in out["cand"]] == [c.id for c in cases]
    assert all(r.samples[0].output == r.input and not r.samples[0].cached for r in out["cand"])
    assert [r.samples[0].output for r in out["base"]] == [f"answer {i}" for i in range(30)]
    prompts = [r["prompt"] for r in live_requests(llm_server)]
    assert sorted(prompts) == sorted(c.input for c in out["cand"])  # each case sent once
    assert any("openai/echo@latency=20" in w for w in warnings)  # workers' warnings reach us
    again = replay_sync(cases, variants, opts(tmp_path))  # one process, the same cache
    assert result_summary(again)["cand"]["cached"] == 30

    with pytest.raises(RunIncomplete) as ei:
        replay_sync(recorded_cases(40), {"v": model_variant(llm_server, "echo@auth")},
                    opts(workers=2, concurrency=2))
    assert "authentication failed" in str(ei.value)
    errors = result_summary(ei.value.partial)["v"]["errors"]
    assert errors["AuthenticationError"] >= 1 and errors.get("NotRun", 0) >= 30


def test_worker_count_choice(tmp_path, monkeypatch):
    import os

    from replaygate.replay.engine import _Engine
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    (tmp_path / "userfn.py").write_text("def f(case):\n    return 'x'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = {"model": "openai/echo", "api_base": "http://127.0.0.1:9/v1"}

    def count(n, variants, probed=None, **kw):
        engine = _Engine(recorded_cases(n), variants, opts(**kw), [])
        return engine._worker_count(engine._static(), probed)

    assert count(50, {"v": model}, workers=3, concurrency=64) == 3
    assert count(2, {"v": model}, workers=3, concurrency=64) == 2  # never more than cases
    assert count(500, {"v": model}, workers=3, concurrency=2) == 2  # nor than calls in flight
    assert count(500, {"v": model, "u": {"callable": "userfn:f"}}, workers=4) == 1  # user code stays here
    assert count(500, {"v": model}, probed=3, workers="auto", concurrency=64) == 3
    assert count(500, {"v": model}, probed=None, workers="auto", concurrency=64) == 1
    assert count(500, {"v": model, "u": {"callable": "userfn:f"}}, probed=3, workers="auto") == 1


def test_auto_workers_rule():
    from replaygate.replay.pool import AUTO_MIN_CALLS, auto_workers

    # 640 calls/s planned (C=64 at 100 ms) x 8 ms of CPU a call = 5.1 cores: as many as there are
    assert auto_workers(1000, 640, 0.008, cores=2) == 2
    assert auto_workers(1000, 640, 0.008, cores=16) == 11  # ceil(5.12 / 0.5)
    # 160 calls/s x 2 ms = 0.32 of a core: one process stays under half busy
    assert auto_workers(1000, 160, 0.002, cores=8) == 1
    assert auto_workers(1000, 160, 0.004, cores=8) == 2  # 0.64 of a core
    assert auto_workers(AUTO_MIN_CALLS - 1, 640, 0.008, cores=8) == 1  # small runs: one process
    assert auto_workers(1000, 0.0, 0.008, cores=8) == 1


def _probe(engine):
    import asyncio

    async def go():
        work = engine._prepare(engine._static())
        return await engine._auto_workers(work)

    return asyncio.run(go())


def test_workers_auto_probes_the_endpoint_only_for_large_runs(llm_server, tmp_path, monkeypatch):
    from replaygate.replay import engine as eng

    monkeypatch.setattr(eng, "usable_cores", lambda: 8)
    small = eng._Engine(recorded_cases(50), {"v": model_variant(llm_server, "echo@latency=40")},
                        opts(workers="auto", concurrency=64), [])
    assert _probe(small) == 1 and small.auto_choice is None
    assert llm_server.stats(bodies=False)["count"] == 0  # no probe, not even a warm-up

    wide = eng._Engine(recorded_cases(500), {"v": model_variant(llm_server, "echo@latency=40")},
                       opts(workers="auto", concurrency=64), [])
    k = _probe(wide)
    choice = wide.auto_choice
    assert llm_server.stats(bodies=False)["count"] == 1 + eng.PROBE_CALLS  # warm-up + probes
    assert live_requests(llm_server) == []  # none of them is a case's call
    assert choice["latency_ms"] >= 40 and choice["cpu_ms_per_call"] > 0 and choice["cores"] == 8
    rate = 64 / (choice["latency_ms"] / 1000)
    assert choice["planned_rate_per_s"] == pytest.approx(rate, rel=0.01)
    # the rule applied to what was measured (rounded in the record, hence the tolerance)
    assert k == choice["chosen"] >= 2  # 1600 calls/s planned: one process would saturate
    llm_server.reset()
    slow = eng._Engine(recorded_cases(500), {"v": model_variant(llm_server, "echo@latency=40")},
                       opts(workers="auto", concurrency=64, rpm=60), [])
    assert _probe(slow) == 1 and slow.auto_choice["planned_rate_per_s"] == 1.0  # rpm caps the plan

    with_hits = eng._Engine(recorded_cases(500), {"v": model_variant(llm_server, "echo")},
                            opts(tmp_path, workers="auto", concurrency=64), [])
    replay_sync(recorded_cases(450), {"v": model_variant(llm_server, "echo")}, opts(tmp_path))
    llm_server.reset()
    assert _probe(with_hits) == 1 and with_hits.auto_choice is None  # 50 calls left: no probe


@pytest.mark.slow  # starts a worker pool when the probe asks for one
def test_workers_auto_records_its_choice_in_the_run(llm_server, tmp_path):
    from click.testing import CliRunner

    from replaygate.cli import cli
    from replaygate.config import schema_errors
    from replay_helpers import write_golden
    import json

    write_golden(tmp_path, [{"id": f"q{i:03d}", "input": f"question {i}"} for i in range(420)])
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"version: 1\ndataset: [{{golden: golden.jsonl}}]\nworkers: auto\nconcurrency: 64\n"
                   f"variants:\n  v: {{model: openai/echo@latency=20, api_base: \"{llm_server.api_base}\"}}\n")
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "v", "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "r.json").read_text())
    assert schema_errors(run, "run.schema.json") == []
    env = run["environment"]
    assert env["conditions"]["workers"] == env["workers_auto"]["chosen"] >= 1
    assert len(live_requests(llm_server)) == 420 and all(c["samples"][0]["error"] is None for c in run["cases"])
    # a small run with --workers auto stays in one process and probes nothing
    llm_server.reset()
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "v", "--workers", "auto", "--no-cache",
                                 "--concurrency", "4", "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output


def test_workers_option_takes_a_number_or_auto(tmp_path):
    from click.testing import CliRunner

    from replaygate.cli import cli
    from replaygate.config import schema_errors

    for bad in ("0", "banana", "65"):
        r = CliRunner().invoke(cli, ["run", "-c", str(tmp_path / "x.yaml"), "--variant", "v", "-o",
                                     str(tmp_path / "r.json"), "--workers", bad])
        assert r.exit_code == 2 and "--workers" in r.output and "Traceback" not in r.output
    base = {"version": 1, "dataset": [{"golden": "g.jsonl"}], "variants": {"v": {"model": "openai/x"}}}
    assert schema_errors({**base, "workers": "auto"}, "config.schema.json") == []
    assert schema_errors({**base, "workers": 3}, "config.schema.json") == []
    assert schema_errors({**base, "workers": "many"}, "config.schema.json") != []
    assert schema_errors({**base, "workers": 0}, "config.schema.json") != []
