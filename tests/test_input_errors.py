"""Bad input found by fuzzing and by hand: each is exit 2 naming the file (and the field or line),
never "internal error" (exit 3) and never silently accepted."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from replaygate.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


CONFIG = """\
version: 1
dataset: [{{golden: {golden}}}]
variants:
  baseline: {{model: openai/echo, api_base: "http://127.0.0.1:9/v1"{prompt}}}
  candidate: {{model: openai/echo, api_base: "http://127.0.0.1:9/v1"}}
cache: false
scorers: {scorers}
"""


def project(tmp_path, golden_name="golden.jsonl", golden_text='{"input": "hi"}\n', scorers="[]", prompt=""):
    (tmp_path / golden_name).write_text(golden_text)
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(CONFIG.format(golden=golden_name, scorers=scorers, prompt=prompt))
    return cfg


def run_offline(cfg, tmp_path):
    return invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "run.json", "--offline")


def assert_exit_2(r, *needles):
    assert r.exit_code == 2, r.output
    assert "internal error" not in r.output and "Traceback" not in r.output, r.output
    for n in needles:
        assert str(n) in r.output, (n, r.output)


@pytest.mark.parametrize("row, field", [
    ({"input": "a", "tools": -177}, "'tools'"),
    ({"input": "a", "tools": "notalist"}, "'tools'"),
    ({"input": "a", "tools": [1, 2]}, "'tools'"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]}, "'tool_calls'"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": [{"function": {"name": 7}}]}]}, "tool call"),
    ({"messages": [{"role": "user", "content": 5}]}, "'content'"),
    ({"messages": [{"role": "tool", "content": "x", "tool_call_id": ["a"]}]}, "'tool_call_id'"),
])
def test_golden_row_of_the_wrong_shape(tmp_path, row, field):
    cfg = project(tmp_path, golden_text=json.dumps(row) + "\n")
    assert_exit_2(run_offline(cfg, tmp_path), tmp_path / "golden.jsonl", ":1:", field)


def test_golden_duplicate_keys_are_refused_in_jsonl_json_and_yaml(tmp_path):
    cases = [("golden.jsonl", '{"input": "a"}\n{"input": "a", "input": "b"}\n', ":2:"),
             ("golden.json", '[{"input": "a", "expected": "x", "expected": "y"}]', "duplicate key"),
             ("golden.yaml", "- input: a\n- {input: b, expected: x, expected: y}\n", ":2:")]
    for name, text, where in cases:
        cfg = project(tmp_path, name, text)
        assert_exit_2(run_offline(cfg, tmp_path), tmp_path / name, where, "duplicate key")


def test_csv_with_an_unterminated_quote(tmp_path):
    cfg = project(tmp_path, "golden.csv", 'id,input\n1,"an open quote\n2,two\n3,three\n')
    assert_exit_2(run_offline(cfg, tmp_path), tmp_path / "golden.csv", ":2:", "CSV")


def test_deeply_nested_golden_json(tmp_path):
    cfg = project(tmp_path, golden_text='{"input": "a", "vars": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}\n")
    assert_exit_2(run_offline(cfg, tmp_path), tmp_path / "golden.jsonl", "nested too deeply")


@pytest.mark.parametrize("scorers", ["1.5", "true", "7", '"x"', "{a: 1}"])
def test_config_scorers_of_the_wrong_type(tmp_path, scorers):
    cfg = project(tmp_path, scorers=scorers)
    assert_exit_2(invoke("validate", "-c", cfg), cfg, "scorers")


def test_run_file_with_100k_nested_arrays(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for args in (("report", deep), ("compare", deep, deep)):
        assert_exit_2(invoke(*args), deep, "nested too deeply")
    # just under the parser's limit: the schema validation must not crash either
    deep.write_text('{"schema_version": 1, "variant": {"name": "v"}, "cases": ' + "[" * 950 + "]" * 950 + "}")
    assert_exit_2(invoke("compare", deep, deep), deep)


def test_git_ref_beyond_the_reflog(tmp_path):
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "p.md").write_text("system prompt")
    subprocess.run([*git, "-C", str(tmp_path), "add", "p.md"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    cfg = project(tmp_path, prompt=', prompt: {system: "git:HEAD@{100}:p.md"}')
    assert_exit_2(run_offline(cfg, tmp_path), "HEAD@{100}", "variants.baseline.prompt.system")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_golden_file_does_not_block(tmp_path):
    (tmp_path / "golden.jsonl").unlink(missing_ok=True)
    cfg = project(tmp_path)
    (tmp_path / "golden.jsonl").unlink()
    os.mkfifo(tmp_path / "golden.jsonl")
    # a subprocess with a timeout: before, the run blocked forever on open()
    p = subprocess.run([sys.executable, "-m", "replaygate.cli", "run", "-c", str(cfg), "--variant", "baseline",
                        "-o", str(tmp_path / "run.json"), "--offline"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert str(tmp_path / "golden.jsonl") in p.stderr and "regular file" in p.stderr
    from replaygate.errors import InputError
    from replaygate.sources.golden import load_golden
    with pytest.raises(InputError, match="regular file"):
        load_golden(tmp_path / "golden.jsonl")
