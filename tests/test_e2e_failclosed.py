"""Fail closed, end to end through the CLI against the local server: exit 0 means the candidate was
measured on the cases the baseline names, like with like, and no gate failed. Each scenario of
issue 10 asserts the exit code and the words a user needs to act."""
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.config import schema_errors

N = 20


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def dead_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def project(tmp_path, llm_server):
    rows = [{"id": f"q{i:03d}", "input": f"What is the code word for item {i}?", "expected": f"word-{i}"}
            for i in range(N)]
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    llm_server.configure(answers={r["input"]: f"The code word is {r['expected']}." for r in rows},
                         wrong_answer="I do not know.")

    def write(candidate: str = "", scorers: str = "  - {name: correct, type: contains}\n",
              extra: str = "") -> Path:
        candidate = candidate or f'{{model: openai/answers, api_base: "{llm_server.api_base}"}}'
        cfg = tmp_path / "replaygate.yaml"
        cfg.write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: openai/answers, api_base: "{llm_server.api_base}", price: {{input: 1, output: 2}}}}
  candidate: {candidate}
concurrency: 8
scorers:
{scorers}gates:
  - {{metric: quality.pass_rate, max_decrease: 0.02}}
{extra}""")
        return cfg

    return write


def _runs(project, tmp_path):
    cfg = project()
    r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    return cfg, tmp_path / "runs" / "baseline.json", json.loads((tmp_path / "runs" / "candidate.json").read_text())


def test_empty_candidate_is_exit_3_not_a_pass(project, tmp_path):
    cfg, base, cand = _runs(project, tmp_path)
    cand["cases"] = []
    (tmp_path / "empty.json").write_text(json.dumps(cand))
    r = invoke("compare", base, tmp_path / "empty.json", "-c", cfg)
    assert r.exit_code == 3, r.output
    assert "no case is in both runs" in r.output and "INCOMPLETE (exit 3)" in r.output


def test_partial_candidate_names_the_missing_cases(project, tmp_path):
    cfg, base, cand = _runs(project, tmp_path)
    cand["cases"] = cand["cases"][:5]
    (tmp_path / "partial.json").write_text(json.dumps(cand))
    r = invoke("compare", base, tmp_path / "partial.json", "-c", cfg, "--format", "json",
               "-o", tmp_path / "cmp.json")
    assert r.exit_code == 3
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert schema_errors(doc, "comparison.schema.json") == []
    assert doc["verdict"] == "incomplete" and doc["coverage"]["missing"] == N - 5
    assert "covers 5 of the baseline's 20 cases" in doc["coverage"]["problems"][0]
    assert "q005" in doc["coverage"]["problems"][0]  # the first missing id is named
    # a run that says it stopped early (complete: false) is exit 3 even with every case paired
    _, _, full = _runs(project, tmp_path)
    full["complete"], full["incomplete_reasons"] = False, ["interrupted (Ctrl-C)"]
    (tmp_path / "stopped.json").write_text(json.dumps(full))
    r = invoke("compare", base, tmp_path / "stopped.json", "-c", cfg)
    assert r.exit_code == 3 and "candidate run is incomplete" in r.output and "Ctrl-C" in r.output


def test_min_coverage_below_one_is_an_explicit_choice(project, tmp_path):
    cfg, base, cand = _runs(project, tmp_path)
    cand["cases"] = cand["cases"][:19]
    (tmp_path / "c.json").write_text(json.dumps(cand))
    assert invoke("compare", base, tmp_path / "c.json", "-c", cfg).exit_code == 3
    cfg.write_text(cfg.read_text() + "decision: {min_coverage: 0.9}\n")
    r = invoke("compare", base, tmp_path / "c.json", "-c", cfg)
    assert r.exit_code == 0, r.output
    assert "1 cases only in baseline" in r.output


def test_missing_credentials_is_exit_3_naming_the_variable(project, tmp_path, monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    # no api_base, no api_key_env, no key in the environment: the client refuses before any request
    cfg = project(candidate="{model: openai/gpt-4o-mini}")
    r = invoke("run", "-c", cfg, "--variant", "candidate", "-o", tmp_path / "cand.json")
    assert r.exit_code == 3, r.output
    assert "credentials missing" in r.output and "OPENAI_API_KEY" in r.output
    r = invoke("gate", "-c", cfg)
    assert r.exit_code == 3 and "OPENAI_API_KEY" in r.output
    # the variant's own variable is named when the config gives one
    cfg = project(candidate=f'{{model: openai/answers, api_base: "http://127.0.0.1:{dead_port()}/v1", '
                            'api_key_env: MY_TEAM_KEY}')
    monkeypatch.delenv("MY_TEAM_KEY", raising=False)
    r = invoke("run", "-c", cfg, "--variant", "candidate", "-o", tmp_path / "cand.json")
    assert r.exit_code == 3 and "MY_TEAM_KEY is not set" in r.output


def test_rejected_credentials_is_exit_3(project, llm_server, tmp_path):
    cfg = project(candidate=f'{{model: "openai/answers@status=401", api_base: "{llm_server.api_base}"}}')
    r = invoke("gate", "-c", cfg)
    assert r.exit_code == 3, r.output
    assert "credentials rejected" in r.output and "api_key_env" in r.output


def test_judge_at_a_dead_port_makes_the_run_incomplete(project, tmp_path):
    judge = (f'  - {{name: grounded, type: judge, rubric: correctness, model: openai/judge, '
             f'api_base: "http://127.0.0.1:{dead_port()}/v1", retries: 1}}\n')
    cfg = project(scorers="  - {name: correct, type: contains}\n" + judge)
    r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs")
    assert r.exit_code == 3, r.output
    assert "scorer 'grounded' could not score" in r.output and "APIConnectionError" in r.output
    cand = json.loads((tmp_path / "runs" / "candidate.json").read_text())
    assert cand["complete"] is False and "grounded" in cand["incomplete_reasons"][0]
    # scorer failures are their own metric, never call errors; unscored samples are missing, not 0
    assert cand["summary"]["errors.rate"] == 0.0 and cand["summary"]["scoring.errors.rate"] == 1.0
    assert cand["summary"]["score.grounded.mean"] is None
    r = invoke("run", "-c", cfg, "--variant", "candidate", "-o", tmp_path / "c.json")
    assert r.exit_code == 3 and "could not score" in r.output


def test_judge_with_rejected_credentials_names_the_variable(project, llm_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-wrong")
    judge = (f'  - {{name: grounded, type: judge, rubric: correctness, model: "openai/judge@status=401", '
             f'api_base: "{llm_server.api_base}", api_key_env: JUDGE_KEY}}\n')
    cfg = project(scorers="  - {name: correct, type: contains}\n" + judge)
    r = invoke("gate", "-c", cfg)
    assert r.exit_code == 3, r.output
    assert "refused the credentials" in r.output and "JUDGE_KEY" in r.output
    assert "sk-wrong" not in r.output
    # one refusal is enough: the judge is not called again for every sample
    judge_calls = [q for q in llm_server.stats()["requests"] if "judge" in (q.get("model") or "")]
    assert len(judge_calls) < 2 * N


def test_informational_scorer_that_cannot_score_is_reported_not_counted(project, llm_server, tmp_path):
    rows = [{"id": f"q{i:03d}", "input": f"What is the code word for item {i}?"} for i in range(N)]
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scorers = ('  - {name: says_code, type: contains, value: "code word"}\n'
               "  - {name: close, type: similarity, informational: true}\n")  # no reference: cannot score
    cfg = project(scorers=scorers)
    r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    assert "informational scorer 'close' could not score 20 of 20 samples" in r.output
    assert "not counted against the candidate" in r.output
    cand = json.loads((tmp_path / "runs" / "candidate.json").read_text())
    assert cand["complete"] is True and cand["summary"]["scoring.errors.rate"] == 0.0
    # the same scorer counting towards quality cannot score: the run is incomplete, not a pass
    cfg = project(scorers=scorers.replace(", informational: true", ""))
    r = invoke("gate", "-c", cfg)
    assert r.exit_code == 3, r.output
    assert "scorer 'close' could not score any of its 20 samples" in r.output and "expected" in r.output
