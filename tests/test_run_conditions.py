"""Run conditions (issue 16, defect 5): how the calls were made is recorded in the run, and a
comparison of runs made under different conditions warns on its latency metrics."""
from __future__ import annotations

import json

from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.config import schema_errors
from replay_helpers import write_golden


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_conditions_are_recorded_and_a_crossing_comparison_warns_on_latency(llm_server, tmp_path):
    rows = [{"id": f"q{i:02d}", "input": f"question {i}"} for i in range(12)]
    write_golden(tmp_path, rows)
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  plain: {{model: openai/echo, api_base: "{llm_server.api_base}"}}
  streamed: {{model: openai/echo, api_base: "{llm_server.api_base}", stream: true}}
timeout: 20
max_retries: 1
scorers:
  - {{name: nonempty, type: length, min: 1}}
""")
    for variant, conc, out in (("plain", 1, "a.json"), ("plain", 4, "b.json"), ("plain", 1, "c.json"),
                               ("streamed", 1, "d.json")):
        r = _invoke("run", "-c", cfg, "--variant", variant, "--concurrency", conc, "-o", tmp_path / out)
        assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "a.json").read_text())
    assert schema_errors(a, "run.schema.json") == []
    assert a["environment"]["conditions"] == {"concurrency": 1, "workers": 1, "stream": False, "repeats": 1,
                                              "timeout_s": 20.0, "max_retries": 1, "rpm": None, "tpm": None,
                                              "transport": "direct"}
    assert json.loads((tmp_path / "d.json").read_text())["environment"]["conditions"]["stream"] is True

    def compare(x, y):
        _invoke("compare", tmp_path / x, tmp_path / y, "--format", "json", "-o", tmp_path / "cmp.json")
        return json.loads((tmp_path / "cmp.json").read_text())

    cmp = compare("a.json", "b.json")
    assert any(w.startswith("latency.* and ttft.*") and "concurrency 1 vs 4" in w for w in cmp["warnings"])
    assert any("different run conditions" in w for w in cmp["metrics"]["latency.p50"]["warnings"])
    assert not any("run conditions" in w for w in cmp["metrics"]["quality.pass_rate"]["warnings"])
    assert any("stream False vs True" in w for w in compare("a.json", "d.json")["warnings"])
    same = compare("a.json", "c.json")
    assert not any("run conditions" in w for w in same["warnings"])
    # the terminal report shows it
    r = _invoke("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert "different run conditions" in r.output
