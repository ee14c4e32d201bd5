"""A run exported as OTLP: replay spans and gen_ai.evaluation.result events that our own importer
(and the strict protobuf JSON parser) read back, to a file or an OTLP/HTTP endpoint."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from replaygate.report import otlp_export, render
from replaygate.sources.otlp import json_to_proto
from replaygate.sources.receiver import running_receiver
from replaygate.sources.traces import import_traces

HOSTILE = 'say "hi" </script> \u2028'


def _run() -> dict:
    def sample(i, rep=0, error=None):
        return {"repeat": rep, "output": None if error else f"answer {i} {HOSTILE}", "tool_calls": [],
                "finish_reason": None if error else "stop", "latency_ms": 120.0 + i, "ttft_ms": None,
                "input_tokens": 30 + i, "output_tokens": 7, "cached_tokens": None, "cost_usd": 1e-5,
                "cached": False, "error": error,
                "scores": {} if error else {"exact": {"score": float(i % 2), "passed": bool(i % 2),
                                                      "reason": f"reason {i}", "error": None, "details": None}}}
    cases = [{"id": f"c{i}", "source": {"trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}"} if i < 2 else
              {"file": "golden.jsonl", "row": i}, "input": f"question {i}", "expected": None,
              "samples": [sample(i)] + ([sample(i, rep=1)] if i == 0 else [])} for i in range(4)]
    cases[3]["samples"] = [sample(3, error={"type": "Timeout", "message": "took too long"})]
    return {"schema_version": 1, "variant": {"name": "cand", "model": "openai/gpt-4o-mini",
                                             "params": {"temperature": 0.2}, "api_key_env": "SECRET_ENV"},
            "environment": {"time": "2026-11-27T10:00:00+00:00", "git_commit": "abc", "replaygate_version": "0.1.0"},
            "complete": True, "cases": cases, "scorers": [], "summary": {}, "warnings": []}


def test_export_reads_back_as_the_same_calls_and_scores(tmp_path):
    run = _run()
    path = tmp_path / "run.otlp.jsonl"
    path.write_text(render(run, "otlp"), encoding="utf-8")
    traces_line, logs_line = path.read_text(encoding="utf-8").splitlines()
    # the strict protobuf JSON mapping takes both lines
    td = json_to_proto(json.loads(traces_line), TracesData)
    ld = json_to_proto(json.loads(logs_line), LogsData)
    spans = [s for rs in td.resource_spans for ss in rs.scope_spans for s in ss.spans]
    records = [r for rl in ld.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert len(spans) == 5 and len(records) == 4  # one span per sample; one record per score
    assert {r.event_name for r in records} == {"gen_ai.evaluation.result"}
    # linked to the recorded call it replays, when there is one
    assert [len(s.links) for s in spans] == [1, 1, 1, 0, 0] and spans[0].links[0].span_id.hex() == f"{1:016x}"
    assert spans[4].status.code == 2 and spans[4].status.message == "took too long"
    # our own importer reads it back: outputs, models, usage, and the scores as evaluations
    cases, stats = import_traces([path])
    assert stats.llm_calls == 5 and stats.unjoined_log_events == 0
    assert stats.skipped == {"error span": 1}
    by_output = {c.recorded.output: c for c in cases}
    c1 = by_output[f"answer 1 {HOSTILE}"]
    assert c1.params["model"] == "gpt-4o-mini" and c1.params["temperature"] == 0.2
    assert (c1.recorded.input_tokens, c1.recorded.finish_reason, c1.recorded.latency_ms) == (31, "stop", 121.0)
    assert c1.metadata["evaluations"] == [{"name": "exact", "score": 1.0, "label": "pass", "explanation": "reason 1"}]
    assert c1.messages[0].content == "question 1"
    assert "SECRET_ENV" not in path.read_text()
    # the same run exports the same ids (dashboards can dedupe re-exports)
    assert render(run, "otlp") == path.read_text(encoding="utf-8")


def test_export_posts_to_an_otlp_http_endpoint(tmp_path):
    run = _run()
    received = tmp_path / "received.jsonl"
    with running_receiver(received) as rcv:
        otlp_export.post(run, rcv.endpoint)
    cases, stats = import_traces([received])
    assert stats.llm_calls == 5 and len(cases) == 4
    assert sum(len(c.metadata.get("evaluations", [])) for c in cases) == 4


def test_cli_refuses_a_comparison_and_reports_an_unreachable_endpoint(tmp_path):
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(_run()))
    cmp_file = tmp_path / "cmp.json"
    subprocess.run([sys.executable, "-m", "replaygate.cli", "compare", str(run_file), str(run_file),
                    "--format", "json", "-o", str(cmp_file)], capture_output=True, check=False)
    cli = [sys.executable, "-m", "replaygate.cli", "report"]
    p = subprocess.run(cli + [str(cmp_file), "--format", "otlp"], capture_output=True, text=True)
    assert p.returncode == 2 and "a comparison has no samples" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(cli + [str(run_file), "--format", "otlp", "--otlp-endpoint", "http://127.0.0.1:9"],
                       capture_output=True, text=True)
    assert p.returncode == 3 and "OTLP export to http://127.0.0.1:9 failed" in p.stderr
    assert "Traceback" not in p.stderr
    out = tmp_path / "x.jsonl"
    p = subprocess.run(cli + [str(run_file), "--format", "otlp", "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0 and out.read_text().count("\n") == 2
