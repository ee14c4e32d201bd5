"""Token-usage provenance (issue 16, defect 2): a provider that streams without a usage chunk
(llama.cpp's server) leaves litellm to estimate the counts. Each sample says whether its counts
were reported or estimated, and a comparison never sets one against the other."""
from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.config import schema_errors
from replaygate.replay import llm
from replay_helpers import write_golden

PROMPT = "please count the words in this short sentence"


def _chat(srv, model: str, stream: bool, transport: str = "auto") -> dict:
    req = {"model": f"openai/{model}", "messages": [{"role": "user", "content": PROMPT}],
           "api_base": srv.api_base, "transport": transport}
    return asyncio.run(llm.chat(req, timeout=30, stream=stream))


@pytest.mark.parametrize("stream", [False, True])
def test_counts_the_provider_sent_are_reported(llm_server, stream):
    r = _chat(llm_server, "echo", stream)
    # the fake server counts words: 8 in, 8 out
    assert (r["input_tokens"], r["output_tokens"], r["usage_source"]) == (8, 8, "reported")


def test_a_stream_without_usage_is_estimated_by_litellm(llm_server):
    r = _chat(llm_server, "echo@no_usage", True, transport="litellm")
    assert r["usage_source"] == "estimated"
    # litellm's tokenizer, not the server's word count: a different measurement of the same text
    assert r["input_tokens"] and r["input_tokens"] != 8


def test_a_response_without_usage_has_no_counts_rather_than_zeros(llm_server):
    r = _chat(llm_server, "echo@no_usage", False)
    assert (r["input_tokens"], r["output_tokens"], r["usage_source"]) == (None, None, None)


def _project(tmp_path, srv, cand_extra: str) -> str:
    rows = [{"id": f"q{i:02d}", "input": f"tell me the code word for item number {i}"} for i in range(30)]
    write_golden(tmp_path, rows)
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: openai/echo, api_base: "{srv.api_base}", price: {{input: 1, output: 2}}}}
  candidate: {{api_base: "{srv.api_base}", price: {{input: 1, output: 2}}, {cand_extra}}}
scorers:
  - {{name: nonempty, type: length, min: 1}}
gates:
  - {{metric: tokens.input.mean, max_increase: "5%"}}
  - {{metric: cost.mean, max_increase: "5%"}}
""")
    return str(cfg)


def test_a_gate_never_compares_estimated_with_reported_tokens(llm_server, tmp_path):
    cfg = _project(tmp_path, llm_server, 'model: "openai/echo@no_usage", stream: true, transport: litellm')
    r = CliRunner().invoke(cli, ["gate", "-c", cfg, "--format", "json", "-o", str(tmp_path / "cmp.json"),
                                 "--save-runs", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert schema_errors(cmp, "comparison.schema.json") == []
    for name in ("tokens.input.mean", "tokens.output.mean", "cost.mean", "cost.total"):
        m = cmp["metrics"][name]
        assert m["delta"] is None and m["ci"] is None and m["p_value"] is None, name
        assert "not the same measurement" in m["unknown"]
        assert m["baseline"] is not None and m["candidate"] is not None  # each side still shown
    for g in cmp["gates"]:
        assert g["verdict"] == "inconclusive" and "not the same measurement" in g["reason"]
    assert any("estimated 30" in w and "reported 30" in w for w in cmp["warnings"])
    assert cmp["metrics"]["quality.pass_rate"]["delta"] == 0  # the rest is compared as usual
    cand = json.loads((tmp_path / "runs/candidate.json").read_text())
    base = json.loads((tmp_path / "runs/baseline.json").read_text())
    assert schema_errors(cand, "run.schema.json") == []
    assert {s["usage_source"] for c in cand["cases"] for s in c["samples"]} == {"estimated"}
    assert {s["usage_source"] for c in base["cases"] for s in c["samples"]} == {"reported"}
    assert any("usage_source: estimated" in w for w in cand["warnings"])
    # the markdown report says so too
    md = CliRunner().invoke(cli, ["report", str(tmp_path / "cmp.json"), "--format", "md"])
    assert "not the same measurement" in md.output


def test_same_provenance_on_both_sides_is_compared(llm_server, tmp_path):
    # streamed with the usage chunk: reported on both sides, and the planted growth is caught
    cfg = _project(tmp_path, llm_server, 'model: "openai/const:a much longer answer than the question ever was '
                                         'with many words", stream: true')
    r = CliRunner().invoke(cli, ["gate", "-c", cfg, "--format", "json", "-o", str(tmp_path / "cmp.json")])
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    assert "unknown" not in cmp["metrics"]["tokens.output.mean"]
    assert cmp["metrics"]["tokens.output.mean"]["delta"] > 0
    assert cmp["metrics"]["cost.mean"]["p_value"] is not None
    assert r.exit_code == 1  # cost grew beyond 5%


def test_a_stream_without_usage_on_the_direct_path_has_no_counts_and_says_why(llm_server, tmp_path):
    assert _chat(llm_server, "echo@no_usage", True)["usage_source"] is None  # not estimated, not reported
    cfg = _project(tmp_path, llm_server, 'model: "openai/echo@no_usage", stream: true')
    r = CliRunner().invoke(cli, ["gate", "-c", cfg, "--format", "json", "-o", str(tmp_path / "cmp.json"),
                                 "--save-runs", str(tmp_path / "runs")])
    cand = json.loads((tmp_path / "runs/candidate.json").read_text())
    assert {s["usage_source"] for c in cand["cases"] for s in c["samples"]} == {None}
    assert any("does not estimate tokens" in w for w in cand["warnings"])
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    # no counts on one side: the token and cost gates cannot be decided (never a pass on made-up counts)
    assert [g["verdict"] for g in cmp["gates"]] == ["inconclusive", "inconclusive"]
    assert r.exit_code in (0, 1), r.output
