"""Issue 12 (security): untrusted text reaching the terminal, the CI log or the step summary.

A hostile provider (tests/fakeserver.py with ``error_message``), hostile case ids and model output,
and hostile model names in traces must not forge a GitHub Actions workflow command (a line that
starts with ``::`` or ``##[``), a terminal escape (ESC, BEL) or an @mention."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from replaygate import safetext
from replaygate.cli import cli
from replay_helpers import write_golden

HOSTILE = "bad\n::error title=Injected::forged annotation\x1b]0;PWNED\x07\r##[error]legacy\u202eevil @octocat"


def assert_inert(text: str) -> None:
    """No workflow command at any line start, no terminal control character."""
    for ln in text.splitlines():
        assert not ln.lstrip(" \t").startswith(("::", "##[")), ln
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text.replace("\r\n", "\n")), repr(text)


def test_helpers():
    one = safetext.line(HOSTILE)
    assert "\n" not in one and "\\n::error" in one and "\\x1b]0;PWNED\\x07" in one and "\\u202e" in one
    assert_inert(one)
    assert safetext.line("::warning::x") == "\\::warning::x"
    assert safetext.line("  ##[group]x") == "  \\##[group]x"
    assert safetext.line("a" * 50, 10) == "a" * 9 + "…"
    assert safetext.line("lone \ud800 surrogate") == "lone \\ud800 surrogate"  # printable, encodable
    blk = safetext.block("ours\n" + HOSTILE)
    assert blk.splitlines()[0] == "ours" and "\n\\::error title" in blk
    assert_inert(blk)
    md = safetext.md("ping @octocat and @org/team, mail a@b.c")
    assert "@octocat" not in md and "@&#8203;octocat" in md and "@&#8203;org/team" in md
    assert safetext.line("plain text: fine") == "plain text: fine"
    # a JSON report printed through block() stays the same JSON (DEL, C1, separators, bidi)
    doc = {"output": "a\x7fb\x85c\u2028d\u202ee\ufeff"}
    assert json.loads(safetext.block(json.dumps(doc, ensure_ascii=False))) == doc


def _config(tmp_path, llm_server, model: str) -> str:
    rows = [{"id": f"case\n::error::id{i}\x1b[2J cc @octocat", "input": f"{HOSTILE} {i}", "expected": "never"}
            for i in range(3)]
    write_golden(tmp_path, rows)
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: openai/const:never, api_base: "{llm_server.api_base}"}}
  candidate: {{model: "openai/{model}", api_base: "{llm_server.api_base}"}}
max_retries: 0
cache: false
scorers: [{{name: ok, type: contains}}]
gates: [{{metric: quality.pass_rate, max_decrease: 0.0, mode: point}}]
""")
    return str(cfg)


def test_provider_error_body_cannot_forge_output(tmp_path, llm_server):
    llm_server.configure(error_message=HOSTILE)
    cfg = _config(tmp_path, llm_server, "echo@status=401")  # auth failure: the message is printed
    r = CliRunner().invoke(cli, ["gate", "-c", cfg])
    assert r.exit_code == 3, r.output
    assert "forged annotation" in r.output  # the message is shown, defused
    assert_inert(r.output)


def test_hostile_case_ids_and_model_output_in_reports(tmp_path, llm_server, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    cfg = _config(tmp_path, llm_server, "echo")  # echoes the hostile input back: a regression
    for fmt in ("table", "md"):
        r = CliRunner().invoke(cli, ["gate", "-c", cfg, "--format", fmt])
        assert r.exit_code == 1, r.output
        assert "forged annotation" in r.output and "case" in r.output
        assert_inert(r.output)
    text = summary.read_text()
    assert "forged annotation" in text
    assert_inert(text)
    outside_fences = re.sub(r"(`{3,})diff\n.*?\n\1", "", text, flags=re.S)
    assert "@&#8203;octocat" in outside_fences and "@octocat" not in outside_fences  # no mention


def test_model_names_from_traces_in_import_stats(tmp_path):
    span = {"traceId": "4bf92f3577b34da60000000000000101", "spanId": "1000000000000104",
            "name": "chat", "kind": 3, "startTimeUnixNano": "1767225600010000000",
            "endTimeUnixNano": "1767225600410000000", "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt\n::error::model\x1b]0;T\x07"}},
                {"key": "gen_ai.input.messages", "value": {"stringValue": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])}},
                {"key": "gen_ai.output.messages", "value": {"stringValue": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}])}}]}
    other = dict(span, spanId="1000000000000105", attributes=[
        {"key": "gen_ai.operation.name", "value": {"stringValue": "::error::op\x1b[31m"}}])
    doc = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": [span, other]}]}]}
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps(doc) + "\n")
    r = CliRunner().invoke(cli, ["import", str(src), "-o", str(tmp_path / "cases.jsonl")])
    assert r.exit_code == 0, r.output
    assert "gpt\\n::error::model" in r.output
    assert_inert(r.output)


@pytest.mark.parametrize("bad", ["::error::x", "\x1b[31mred"])
def test_error_messages_from_inputs_are_one_inert_line(tmp_path, bad):
    # a YAML config error quotes the offending value
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"version: 1\ndataset: [{{golden: {json.dumps(bad + chr(10) + '::warning::x')}}}]\nvariants: {{}}\n")
    r = CliRunner().invoke(cli, ["validate", "-c", str(cfg)])
    assert r.exit_code == 2
    assert_inert(r.output)


def test_judge_errors_from_a_hostile_provider(tmp_path, llm_server):
    llm_server.configure(error_message=HOSTILE)
    cfg = _config(tmp_path, llm_server, "echo")
    text = open(cfg).read().replace(
        "scorers: [{name: ok, type: contains}]",
        f"scorers: [{{name: ok, type: contains}}, {{name: j, type: judge, rubric: is it right, "
        f"model: openai/judge@status=400, api_base: \"{llm_server.api_base}\"}}]")
    open(cfg, "w").write(text)
    r = CliRunner().invoke(cli, ["gate", "-c", cfg])
    assert "forged annotation" in r.output
    assert_inert(r.output)
