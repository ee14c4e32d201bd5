"""Issue 12 (security): a dataset is data. Golden `params` (and cases.jsonl params) may only hold
sampling parameters; `base_url`, `api_key`, `mock_response` ... are refused with the file and line,
before any call is made."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.errors import InputError
from replaygate.model import CASE_PARAMS, Case, Message
from replaygate.replay.variants import build_variant
from replaygate.sources import genai
from replaygate.sources.golden import load_golden
from replaygate.sources.traces import read_cases_jsonl
from replay_helpers import write_golden


def _project(tmp_path, llm_server, row_params: dict, dead_port: int = 9) -> tuple:
    rows = [{"id": "ok", "input": "hello"},
            {"id": "evil", "input": "hello again", "params": row_params}]
    write_golden(tmp_path, rows)
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: openai/echo, api_base: "http://127.0.0.1:{dead_port}/v1", api_key_env: RG_TEST_KEY}}
  candidate: {{model: openai/echo, api_base: "http://127.0.0.1:{dead_port}/v1", api_key_env: RG_TEST_KEY}}
scorers: [{{name: any, type: contains, value: "h"}}]
""")
    return cfg


@pytest.mark.parametrize("bad", [
    {"base_url": "ELSEWHERE"}, {"api_base": "ELSEWHERE"}, {"mock_response": "faked"},
    {"api_key": "sk-stolen"}, {"extra_headers": {"X": "1"}}, {"temperature": 0, "custom_llm_provider": "openai"},
])
def test_golden_params_that_redirect_or_fake_the_call_are_refused(tmp_path, llm_server, monkeypatch, bad):
    monkeypatch.setenv("RG_TEST_KEY", "sk-secret-key-0123456789abcdef")
    bad = {k: (llm_server.api_base if v == "ELSEWHERE" else v) for k, v in bad.items()}
    cfg = _project(tmp_path, llm_server, bad)
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "baseline", "-o", str(tmp_path / "r.json"),
                                 "--no-cache"])
    assert r.exit_code == 2, r.output
    assert f"golden.jsonl:2: row 2: 'params' may only hold sampling parameters" in r.output
    assert sorted(set(bad) - CASE_PARAMS)[0] in r.output
    assert "Traceback" not in r.output
    assert llm_server.stats(summary=True)["count"] == 0  # nothing was sent anywhere


@pytest.mark.parametrize("suffix, text, line", [
    (".yaml", "- input: a\n- input: b\n  params: {mock_response: x}\n", 2),
    (".csv", "input,params\na,\n", None),  # CSV has no params column form: nothing to refuse
])
def test_yaml_rows_name_the_line(tmp_path, suffix, text, line):
    p = tmp_path / f"g{suffix}"
    p.write_text(text)
    if line is None:
        assert len(load_golden(p)) == 1
        return
    with pytest.raises(InputError) as e:
        load_golden(p)
    assert e.value.line == line and "mock_response" in str(e.value)


def test_sampling_params_still_pass_through(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text(json.dumps({"input": "a", "params": {"temperature": 0.2, "max_tokens": 5, "seed": 3,
                                                      "stop": ["x"], "response_format": {"type": "json_object"}}}))
    case = load_golden(p)[0]
    req = build_variant({"name": "v", "model": "openai/echo"}).request(case)
    assert req["params"] == {"temperature": 0.2, "max_tokens": 5, "seed": 3, "stop": ["x"],
                             "response_format": {"type": "json_object"}}


def test_cases_jsonl_params_are_refused_and_the_variant_filters_again(tmp_path):
    c = Case(id="x", messages=[Message(role="user", content="hi")], params={"temperature": 0, "base_url": "http://e"})
    p = tmp_path / "cases.jsonl"
    p.write_text(json.dumps({"id": "ok", "messages": [{"role": "user", "content": "a"}]}) + "\n"
                 + json.dumps(c.to_dict()) + "\n")
    with pytest.raises(InputError) as e:
        read_cases_jsonl(p)
    assert e.value.line == 2 and "base_url" in str(e.value)
    # a Case built in code (a callable, a plugin) still cannot smuggle keywords into the call
    req = build_variant({"name": "v", "model": "openai/echo"}).request(c)
    assert req["params"] == {"temperature": 0}


def test_trace_import_only_produces_allowed_params():
    assert set(genai._PARAM_KEYS) <= CASE_PARAMS
