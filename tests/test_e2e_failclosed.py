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
from replay_helpers import write_golden

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
    write_golden(tmp_path, rows)
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
    # a CI test view shows it as an error, not a green suite
    r = invoke("compare", base, tmp_path / "empty.json", "-c", cfg, "--format", "junit")
    assert r.exit_code == 3 and 'errors="1"' in r.output and "not (fully) measured" in r.output


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
    write_golden(tmp_path, rows)
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


# ---------------------------------------------------------------- like with like (provenance)

def _timed_project(project, llm_server, extra=""):
    """The project with a latency gate; the candidate differs only in a parameter that cannot
    change the server's speed."""
    return project(candidate=f'{{model: openai/answers, api_base: "{llm_server.api_base}", '
                             'params: {temperature: 0}}',
                   extra='  - {metric: latency.p50, max_increase: "25%"}\n' + extra)


def test_cached_baseline_latency_is_not_compared_with_a_live_candidate(project, tmp_path, llm_server):
    # the baseline's answers were cached on a quiet day (10 ms); today the server answers both
    # variants in 120 ms: the same true latency, which a cached-vs-live comparison calls +1000%
    cfg = _timed_project(project, llm_server, extra="live_timing: never\n")
    llm_server.configure(options={"latency": "10"})
    assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "b.json").exit_code == 0
    llm_server.configure(options={"latency": "120"})
    r = invoke("gate", "-c", cfg, "--save-runs", tmp_path / "runs", "--format", "json", "-o", tmp_path / "cmp.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert schema_errors(doc, "comparison.schema.json") == []
    lat = next(g for g in doc["gates"] if g["metric"] == "latency.p50")
    assert lat["verdict"] == "inconclusive" and "timed live on both sides" in lat["reason"]
    assert "--refresh-baseline" in lat["reason"] and "live_timing: always" in lat["reason"]
    assert doc["baseline"]["provenance"]["cache"] == 1.0 and doc["candidate"]["provenance"]["live"] == 1.0
    # quality from the cache is still compared: the same answers
    assert doc["metrics"]["quality.pass_rate"]["n"] == N
    base = json.loads((tmp_path / "runs" / "baseline.json").read_text())
    s = base["cases"][0]["samples"][0]
    assert s["provenance"] == "cache" and s["cached"] is True and s["cached_at"].endswith("+00:00")
    assert base["provenance"]["cache"] == 1.0
    # the table says it next to the verdict too
    r = invoke("gate", "-c", cfg)
    assert "latency not compared" in r.output and "not decided" in r.output
    # the remedy: the baseline re-measured live next to a live candidate (a new change of the
    # PR, not in the cache yet) -> latency compared, and equal
    cfg.write_text(cfg.read_text().replace("temperature: 0}", "temperature: 0.5}"))
    r = invoke("gate", "-c", cfg, "--refresh-baseline", "--format", "json", "-o", tmp_path / "cmp2.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "cmp2.json").read_text())
    m = doc["metrics"]["latency.p50"]
    assert m["n"] == N and m.get("unknown") is None and 0.8 < m["ratio"] < 1.25
    assert doc["baseline"]["provenance"]["live"] == 1.0


def test_live_timing_auto_measures_both_sides_when_a_latency_gate_exists(project, tmp_path, llm_server):
    cfg = _timed_project(project, llm_server)  # live_timing: auto (the default)
    llm_server.configure(options={"latency": "10"})
    assert invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "b.json").exit_code == 0
    llm_server.configure(options={"latency": "120"})
    r = invoke("gate", "-c", cfg, "--format", "json", "-o", tmp_path / "cmp.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert doc["baseline"]["provenance"]["live"] == 1.0
    assert next(g for g in doc["gates"] if g["metric"] == "latency.p50")["verdict"] != "fail"
    # offline nothing can be re-measured: not decided, with the reason
    r = invoke("gate", "-c", cfg, "--offline")
    assert r.exit_code == 0 and "latency not compared" in r.output
    assert "--offline: latency.p50 cannot be decided" in r.output  # said up front, before the replay


def test_recorded_baseline_latency_and_cost_only_on_request(tmp_path, llm_server):
    from replaygate.model import Case, Message, Recorded
    from replaygate.sources.traces import write_cases_jsonl

    cases = [Case(id=f"t{i}", messages=[Message("user", f"What is the code word for item {i}?")],
                  params={"model": "gpt-4o-mini"},
                  recorded=Recorded(output=f"The code word is word-{i}.", latency_ms=900.0 + i,
                                    input_tokens=9, output_tokens=5, cost_usd=0.5))
             for i in range(N)]
    write_cases_jsonl(cases, tmp_path / "cases.jsonl")
    llm_server.configure(answers={c.messages[0].content: c.recorded.output for c in cases})

    def config(decision=""):
        cfg = tmp_path / "replaygate.yaml"
        cfg.write_text(f"""\
version: 1
dataset: [{{cases: cases.jsonl}}]
variants:
  baseline: {{recorded: true}}
  candidate: {{model: openai/answers, api_base: "{llm_server.api_base}", price: {{input: 1, output: 2}}}}
scorers:
  - {{name: same, type: similarity, against: recorded, threshold: 0.9}}
gates:
  - {{metric: latency.p50, max_increase: "25%"}}
  - {{metric: cost.mean, max_increase: "10%"}}
  - {{metric: quality.pass_rate, max_decrease: 0.05}}
{decision}""")
        return cfg

    r = invoke("gate", "-c", config(), "--format", "json", "-o", tmp_path / "cmp.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert doc["baseline"]["provenance"]["recorded"] == 1.0
    gates = {g["metric"]: g for g in doc["gates"]}
    assert "decision.compare_recorded" in gates["latency.p50"]["reason"]
    assert "production" in gates["cost.mean"]["reason"]
    # production's answer is the reference: a trace-based gate needs no hand-written expected
    assert gates["quality.pass_rate"]["verdict"] in ("pass", "inconclusive")
    assert doc["metrics"]["score.same.mean"]["candidate"] == 1.0
    # asked for explicitly: compared, and labelled
    r = invoke("gate", "-c", config("decision: {compare_recorded: true}\n"), "--format", "json",
               "-o", tmp_path / "cmp2.json")
    doc = json.loads((tmp_path / "cmp2.json").read_text())
    assert r.exit_code == 0, r.output  # the candidate is faster and cheaper than production
    assert doc["metrics"]["latency.p50"]["n"] == N
    assert any("production" in w for w in doc["metrics"]["latency.p50"]["warnings"])
    assert any("production" in w for w in doc["metrics"]["cost.mean"]["warnings"])


def test_fully_cached_nightly_is_not_a_drift_measurement(project, tmp_path):
    cfg = project()
    cfg.write_text(cfg.read_text() + "history: history.sqlite\n")
    run = ("run", "-c", cfg, "--variant", "candidate", "-o", tmp_path / "night.json")
    assert invoke(*run).exit_code == 0  # night 1: live
    assert invoke(*run).exit_code == 0  # night 2: the same requests, all from the cache
    r = invoke("history", "-c", cfg)
    assert r.exit_code == 0 and "100% live" in r.output and "100% cache" in r.output
    r = invoke("history", "-c", cfg, "--drift")
    assert r.exit_code == 2
    assert "was not measured" in r.output and "--refresh" in r.output and "cache: false" in r.output
    # the nightly as documented: --refresh makes every call again
    assert invoke(*run, "--refresh").exit_code == 0
    r = invoke("history", "-c", cfg, "--drift")
    assert r.exit_code == 0, r.output
    assert "run 3" in r.output and "against run 1" in r.output  # the cached night 2 is skipped


# ---------------------------------------------------------------- measurement you can rely on

def test_loop_lag_is_measured_and_reported_when_it_distorts_latency(project, tmp_path, monkeypatch):
    # an async pipeline that blocks the event loop for 30 ms a call: every other call's timer waits
    (tmp_path / "blocking_pipe.py").write_text(
        "import asyncio, time\n\nasync def answer(case):\n    time.sleep(0.03)\n    await asyncio.sleep(0)\n"
        "    return 'The code word is ' + case.reference\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = project(candidate="{callable: 'blocking_pipe:answer'}")
    r = invoke("run", "-c", cfg, "--variant", "candidate", "-o", tmp_path / "cand.json")
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "cand.json").read_text())
    assert schema_errors(run, "run.schema.json") == []
    lag = run["environment"]["loop_lag_ms"]
    assert lag["n"] > 0 and lag["max"] >= 15 and lag["p99"] >= lag["p50"]
    assert any("event-loop lag" in w and "concurrency" in w for w in run["warnings"])
    assert "event-loop lag" in r.output
    # a model variant against the local server: measured, small, and no warning
    r = invoke("run", "-c", cfg, "--variant", "baseline", "-o", tmp_path / "base.json")
    base = json.loads((tmp_path / "base.json").read_text())
    assert base["environment"]["loop_lag_ms"]["n"] > 0
    r = invoke("compare", tmp_path / "base.json", tmp_path / "cand.json", "-c", cfg, "--format", "json",
               "-o", tmp_path / "cmp.json")
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert any("event-loop lag during the candidate replay" in w for w in doc["metrics"]["latency.p50"]["warnings"])


def test_regressed_repeats_show_a_failing_output_and_the_verdict_names_the_gates(project, llm_server, tmp_path):
    cfg = project(candidate=f'{{model: "openai/noisy-50", api_base: "{llm_server.api_base}"}}')
    cfg.write_text(cfg.read_text() + "repeats: 3\n")
    r = invoke("gate", "-c", cfg, "--format", "json", "-o", tmp_path / "cmp.json")
    assert r.exit_code == 1, r.output
    doc = json.loads((tmp_path / "cmp.json").read_text())
    assert doc["regressions"]
    for reg in doc["regressions"]:
        assert reg["candidate_output"] == "I do not know."  # a repeat that failed, not the first one
        assert reg["failed"] and reg["failed"][0]["scorer"] == "correct"
    assert any(reg["candidate"] > 0 for reg in doc["regressions"])  # some cases passed a repeat
    r = invoke("gate", "-c", cfg)
    assert "Verdict: FAIL (exit 1)" in r.output and "gates failed: quality.pass_rate" in r.output


def test_noninferior_verdict_line_never_says_no_gate_failed(project, tmp_path):
    cfg = project()
    cfg.write_text(cfg.read_text() + "decision: {mode: noninferior}\n")
    r = invoke("gate", "-c", cfg)
    assert r.exit_code == 1, r.output  # 20 identical cases cannot show non-inferiority
    line = next(ln for ln in r.output.splitlines() if ln.startswith("Verdict:"))
    assert "FAIL (exit 1)" in line and "no gate failed" not in line
    assert "not decided, which fails in noninferior mode: quality.pass_rate" in line
