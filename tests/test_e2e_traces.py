"""Traces end to end through the CLI: record over OTLP/HTTP, import, and gate production's
recorded answers against a candidate model on the local server."""
import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from replaygate.cli import cli

FIXTURES = Path(__file__).parent / "fixtures" / "traces"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_import_then_gate_recorded_baseline_against_a_model(tmp_path, llm_server):
    r = invoke("import", FIXTURES, "-o", tmp_path / "cases.jsonl")
    assert r.exit_code == 0, r.output
    assert "LLM calls found" in r.output and "skipped: error span" in r.output
    cases = [json.loads(line) for line in (tmp_path / "cases.jsonl").read_text().splitlines()]
    replayable = [c for c in cases if c["recorded"] and c["recorded"]["output"]]
    assert replayable, "the fixtures hold recorded outputs"
    (tmp_path / "replaygate.yaml").write_text(f"""\
version: 1
dataset:
  - cases: cases.jsonl
    where: {{service: support-bot}}
variants:
  baseline: {{recorded: true}}
  candidate: {{model: openai/echo, api_base: "{llm_server.api_base}", price: {{input: 1, output: 1}}}}
scorers: [{{name: answered, type: length, min: 1}}]
gates: [{{metric: quality.pass_rate, max_decrease: 0.5, mode: point}}]
""")
    r = invoke("gate", "-c", tmp_path / "replaygate.yaml", "--save-runs", tmp_path / "runs", "--format", "json",
               "-o", tmp_path / "cmp.json")
    assert r.exit_code in (0, 1), r.output
    base = json.loads((tmp_path / "runs/baseline.json").read_text())
    kept = [c for c in cases if c["metadata"].get("service") == "support-bot"]
    assert len(base["cases"]) == len(kept) > 0
    # the recorded baseline is production's answer, with production's latency, and costs no call
    by_id = {c["id"]: c for c in kept}
    for c in base["cases"]:
        rec = by_id[c["id"]]["recorded"]
        if rec and rec["output"]:
            assert c["samples"][0]["output"] == rec["output"]
            assert c["samples"][0]["latency_ms"] == rec["latency_ms"]
    prompts = {q["prompt"] for q in llm_server.stats()["requests"]}
    assert len(prompts - {"replaygate warm-up"}) <= len(kept)
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert cmp["n_paired"] == len(kept)


def test_record_command_receives_otlp_and_import_reads_it(tmp_path):
    out = tmp_path / "recorded.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "replaygate.cli", "record", "--listen", "127.0.0.1:0",
                             "-o", str(out)], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        body = (FIXTURES / "otel137.jsonl").read_text().splitlines()[0].encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read() or b"{}") == {}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    r = invoke("import", out, "-o", tmp_path / "cases.jsonl")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cases.jsonl").read_text().count("\n") >= 1


def test_import_of_garbage_is_exit_2_naming_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceSpans": [ {"scopeSpans": ')
    p = subprocess.run([sys.executable, "-m", "replaygate.cli", "import", str(bad), "-o", str(tmp_path / "o.jsonl")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and str(bad) in p.stderr and "Traceback" not in p.stderr


def test_import_with_worker_processes_writes_what_one_process_writes(tmp_path):
    outs = {}
    for w in ("1", "2"):
        out = tmp_path / f"cases-{w}.jsonl"
        p = subprocess.run([sys.executable, "-m", "replaygate.cli", "import", str(FIXTURES), "-o", str(out),
                            "--workers", w, "--where", '{"service": "support-bot"}'],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        outs[w] = (out.read_bytes(), p.stdout)
    assert outs["1"] == outs["2"]
    assert outs["1"][0].count(b"\n") >= 2 and "kept after --where/--sample" in outs["1"][1]
    p = subprocess.run([sys.executable, "-m", "replaygate.cli", "import", str(FIXTURES), "-o",
                        str(tmp_path / "x.jsonl"), "--workers", "0"], capture_output=True, text=True)
    assert p.returncode == 2 and "--workers" in p.stderr and "Traceback" not in p.stderr


def test_import_sample_is_the_seeded_sample_of_the_full_import(tmp_path):
    from replaygate.sources.traces import read_cases_jsonl, sample_cases
    r = invoke("import", FIXTURES, "-o", tmp_path / "all.jsonl")
    assert r.exit_code == 0, r.output
    r = invoke("import", FIXTURES, "-o", tmp_path / "some.jsonl", "--sample", "3", "--seed", "4")
    assert r.exit_code == 0, r.output
    want = sample_cases(read_cases_jsonl(tmp_path / "all.jsonl"), 3, 4)
    got = read_cases_jsonl(tmp_path / "some.jsonl")
    assert [c.to_dict() for c in got] == [c.to_dict() for c in want] and len(got) == 3
    assert "kept after --where/--sample: 3 of" in r.output
