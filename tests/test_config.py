"""Config loading: schema errors carry file, line and field; paths resolve against the config."""
from pathlib import Path

import pytest

from replaygate.config import ConfigProblems, load_config
from replaygate.errors import ConfigError

GOOD = """\
version: 1
dataset:
  - golden: data/golden.jsonl
variants:
  baseline: {model: openai/a, params: {temperature: 0}}
  candidate:
    model: openai/b
    prompt: {system: prompts/sys.md}
scorers:
  - {name: ok, type: contains}
gates:
  - {metric: quality.pass_rate, max_decrease: 0.02}
  - {metric: cost.mean, max_increase: "10%"}
"""


def write(tmp_path: Path, text: str, name="replaygate.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/golden.jsonl").write_text('{"input": "hi", "expected": "hi"}\n')
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts/sys.md").write_text("Be brief.")
    return tmp_path


def test_good_config_defaults_and_paths(project, monkeypatch):
    monkeypatch.chdir("/")  # a config works from any working directory
    cfg = load_config(write(project, GOOD))
    assert cfg["dataset"][0]["golden"] == str(project / "data/golden.jsonl")
    assert cfg["variants"]["candidate"]["prompt"]["system"] == str(project / "prompts/sys.md")
    assert cfg["decision"] == {"mode": "significant", "confidence": 0.95, "holm": True}
    assert cfg["repeats"] == 1 and cfg["concurrency"] == 16
    assert cfg.cache_path == project / ".replaygate/cache.sqlite"
    assert cfg.variant("candidate")["name"] == "candidate"


def test_every_problem_reported_with_line_and_field(project):
    bad = GOOD.replace("max_decrease: 0.02", "max_decrease: lots").replace(
        "type: contains}", "type: contains, extra: 1}\n  - {name: ok, type: regex}").replace(
        "model: openai/b", "model: openai/b\n    temprature: 0")
    with pytest.raises(ConfigProblems) as exc:
        load_config(write(project, bad))
    problems = {(p.line, p.field) for p in exc.value.problems}
    assert (8, "variants.candidate.temprature") in problems
    assert (12, "scorers[1].name") in problems  # duplicate scorer name
    assert (14, "gates[0].max_decrease") in problems
    text = str(exc.value)
    assert "replaygate.yaml:8:" in text and "temprature" in text


def test_api_key_never_echoed(project):
    bad = GOOD.replace("model: openai/b", "model: openai/b\n    api_key_env: sk-live-12345")
    with pytest.raises(ConfigError) as exc:
        load_config(write(project, bad))
    assert "sk-live-12345" not in str(exc.value)
    assert "api_key_env" in str(exc.value)


@pytest.mark.parametrize("text,line", [
    ("version: 1\ndataset: [\n", 3),            # unclosed flow sequence
    ("version: 1\n  bad: indent\n", 2),
    ("version: 1\nversion: 1\n", 2),             # duplicate key
])
def test_yaml_syntax_errors_have_lines(tmp_path, text, line):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert exc.value.line == line


def test_unsafe_yaml_tags_rejected(tmp_path):
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "version: !!python/object/apply:os.system ['true']\n"))


def test_missing_files_named(project):
    (project / "prompts/sys.md").unlink()
    with pytest.raises(ConfigError) as exc:
        load_config(write(project, GOOD))
    assert exc.value.field == "variants.candidate.prompt.system" and exc.value.line == 8


def test_unknown_variant_and_role(project):
    cfg = load_config(write(project, GOOD))
    with pytest.raises(ConfigError, match="no variant named 'nope'"):
        cfg.variant("nope")
    with pytest.raises(ConfigError, match="not defined"):
        load_config(write(project, GOOD + "candidate: other\n"))
