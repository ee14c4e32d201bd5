"""Truncated answers (issue 16, defect 4): an answer cut off at the token limit
(``finish_reason: length``) can still pass a lenient scorer. finish.length.rate counts them per
variant; it is gateable, shown in reports, and the run warns."""
from __future__ import annotations

import json

from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.config import schema_errors
from replaygate.metrics import case_metrics
from replaygate.model import CaseResult, ErrorInfo, Run, Sample
from replay_helpers import write_golden


def test_rate_counts_truncations_among_answers_with_a_known_finish_reason():
    def s(reason, error=False):
        return Sample(output="x", finish_reason=reason,
                      error=ErrorInfo("Timeout", "slow") if error else None)
    run = Run(variant={"name": "v"}, cases=[
        CaseResult(id="a", samples=[s("length"), s("stop")]),        # 0.5
        CaseResult(id="b", samples=[s("max_tokens")]),               # provider's own word: 1
        CaseResult(id="c", samples=[s("stop"), s("length", error=True)]),  # the error is left out: 0
        CaseResult(id="d", samples=[s(None)]),                       # unknown: no value
    ])
    m = case_metrics(run)["finish.length.rate"]
    assert m.kind == "rate" and m.higher_is_better is False
    assert m.case_means()[:3].tolist() == [0.5, 1.0, 0.0]
    assert m.value() == 0.5  # mean over the three cases with a value


def test_truncated_candidate_is_counted_gated_reported_and_warned(llm_server, tmp_path):
    rows = [{"id": f"q{i:02d}", "input": f"q{i}", "expected": "refund"} for i in range(20)]
    write_golden(tmp_path, rows)
    long = "a refund is possible within thirty days of delivery for every order"
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: "openai/const:{long}", api_base: "{llm_server.api_base}"}}
  candidate: {{model: "openai/const:{long}", api_base: "{llm_server.api_base}", params: {{max_tokens: 4}}}}
scorers:
  - {{name: mentions_refund, type: contains}}
gates:
  - {{metric: quality.pass_rate, max_decrease: 0.02}}
  - {{metric: finish.length.rate, max: 0.05}}
""")
    r = CliRunner().invoke(cli, ["gate", "-c", str(cfg), "--save-runs", str(tmp_path / "runs")])
    # the cut answers still mention "refund": quality passes, the truncation gate does not
    assert r.exit_code == 1, r.output
    assert "1 of 2 gates failed: finish.length.rate" in r.output
    assert any(line.startswith("finish.length.rate") and "100.0%" in line for line in r.output.splitlines())
    assert "20 of 20 answers of variant 'candidate' were cut off at the token limit" in r.output
    cand = json.loads((tmp_path / "runs/candidate.json").read_text())
    base = json.loads((tmp_path / "runs/baseline.json").read_text())
    assert cand["summary"]["finish.length.rate"] == 1.0 and base["summary"]["finish.length.rate"] == 0.0
    assert cand["cases"][0]["samples"][0]["output"] == "a refund is possible"
    assert schema_errors(cand, "run.schema.json") == []
    md = CliRunner().invoke(cli, ["report", str(tmp_path / "runs/candidate.json"), "--format", "md"])
    text = md.output.replace("\\", "")  # markdown escapes the dots
    assert "| finish.length.rate | 100.0% |" in text and "cut off at the token limit" in text
