"""CLI skin: exit codes, messages without tracebacks, fast --help."""
import subprocess
import sys

from click.testing import CliRunner

from replaygate.cli import cli


def run(*args, **kw):
    return CliRunner().invoke(cli, list(args), **kw)


def test_help_does_not_import_litellm():
    code = ("import sys; from click.testing import CliRunner; from replaygate.cli import cli;"
            "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output;"
            "assert 'litellm' not in sys.modules; assert 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_does_not_import_scipy(llm_server, tmp_path):
    """scipy is for comparisons (about a second to import): `run` reaches compare/ only for
    provenance.shares, and the package loads compare_runs lazily. A valid config is accepted by
    the compiled validator, without jsonschema."""
    (tmp_path / "golden.jsonl").write_text('{"id": "a", "input": "hello"}\n')
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(f"version: 1\ndataset: [{{golden: golden.jsonl}}]\n"
                   f"variants:\n  v: {{model: openai/echo, api_base: \"{llm_server.api_base}\"}}\n"
                   "scorers:\n  - {name: nonempty, type: length, min: 1}\n  - {name: hi, type: contains, value: hello}\n")
    code = ("import sys; from click.testing import CliRunner; from replaygate.cli import cli;"
            f"r = CliRunner().invoke(cli, ['run', '-c', {str(cfg)!r}, '--variant', 'v', '--no-cache',"
            f" '-o', {str(tmp_path / 'r.json')!r}]); assert r.exit_code == 0, r.output;"
            "assert 'scipy' not in sys.modules, 'scipy imported';"
            "assert 'jsonschema' not in sys.modules, 'jsonschema imported for a valid config';"
            "from replaygate.compare import compare_runs; assert 'scipy' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_schema_errors_the_same_with_or_without_the_fast_path():
    import datetime

    from replaygate.config import schema_errors

    base = {"version": 1, "dataset": [{"golden": "g.jsonl"}], "variants": {"v": {"model": "openai/x"}}}
    assert schema_errors(base, "config.schema.json") == []
    # a YAML date the compiled validator cannot read: jsonschema still reports it
    errs = schema_errors({**base, "seed": datetime.date(2024, 1, 1)}, "config.schema.json")
    assert [list(e.absolute_path) for e in errs] == [["seed"]]
    errs = schema_errors({**base, "workers": "many", "concurrency": 0}, "config.schema.json")
    assert sorted(e.absolute_path[0] for e in errs) == ["concurrency", "workers"]


def test_init_then_validate(tmp_path):
    cfg = tmp_path / "sub" / "replaygate.yaml"
    r = run("init", "-o", str(cfg))
    assert r.exit_code == 0 and cfg.exists() and (tmp_path / "sub/golden.jsonl").exists()
    assert run("init", "-o", str(cfg)).exit_code == 2  # refuses to overwrite
    r = run("validate", "-c", str(cfg))
    assert r.exit_code == 0, r.output
    assert "valid" in r.output


def test_malformed_config_exit_2_with_file_and_line(tmp_path):
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text("version: 1\ndataset:\n  - golden: g.jsonl\nvariants:\n  a: {model: 5}\n")
    (tmp_path / "g.jsonl").write_text('{"input": "x"}\n')
    p = subprocess.run([sys.executable, "-m", "replaygate.cli", "validate", "-c", str(cfg)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert f"{cfg}:5: variants.a.model" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_missing_config_and_bad_flags(tmp_path):
    r = run("validate", "-c", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2 and "config file not found" in r.output
    r = run("gate", "-c", str(tmp_path / "nope.yaml"), "--offline", "--no-cache")
    assert r.exit_code == 2


def test_report_rejects_non_run(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    r = run("report", str(p))
    assert r.exit_code == 2 and "neither a run nor a comparison" in r.output
    p.write_text("{not json")
    assert run("report", str(p)).exit_code == 2
