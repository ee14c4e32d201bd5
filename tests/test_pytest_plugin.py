"""The pytest plugin end to end with pytester, in a subprocess as a user runs it: gates as items,
per-case items, one gate run per session, the failure message, the fixture, config errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

QUICKSTART = Path(__file__).resolve().parents[1] / "example-configs" / "quickstart"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(QUICKSTART, pytester.path / "llm", ignore=shutil.ignore_patterns("*.py", "answers.json"))
    return pytester


def test_one_item_per_gate_and_the_failing_gate_shows_table_and_regressions(project):
    r = project.runpytest_subprocess("--replaygate", "llm/replaygate.yaml", "--replaygate-offline", "-v",
                                     "-p", "no:cacheprovider")
    r.assert_outcomes(passed=3, failed=1)
    r.stdout.fnmatch_lines([
        "*replaygate.yaml::gate[[]quality.pass_rate max_decrease 0.02[]] FAILED*",
        "*replaygate.yaml::gate[[]cost.mean max_increase 10%[]] PASSED*",
        "*replaygate.yaml::gate[[]latency.p95 max_increase 25%[]] PASSED*",
        "*replaygate.yaml::gate[[]errors.rate max 0.01[]] PASSED*",
    ])
    out = r.stdout.str()
    assert "gate quality.pass_rate max_decrease 0.02: fail — interval lies entirely beyond the tolerance" in out
    assert "quality.pass_rate max_decrease 0.02  significant  100.0%" in out  # the gate table
    assert "Worst regressions:" in out and "faq-0" in out and "candidate: I'm not sure about that policy" in out
    assert "Verdict: FAIL (exit 1)" in out


def test_per_case_items_fail_exactly_the_regressed_cases_from_one_gate_run(project):
    project.makeconftest("""
import replaygate.pytest_plugin as p
calls = []
real = p.run_gate
def counting(*a, **k):
    calls.append(a)
    return real(*a, **k)
p.run_gate = counting
def pytest_sessionfinish(session):
    print(f"GATE RUNS: {len(calls)}")
""")
    r = project.runpytest_subprocess("--replaygate", "llm/replaygate.yaml", "--replaygate-offline",
                                     "--replaygate-per-case", "-q", "-s", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=3 + 166, failed=1 + 34)
    assert "GATE RUNS: 1" in r.stdout.str()
    r.stdout.fnmatch_lines(["*case faq-* regressed:*", "*states_policy: does not contain*"])


def test_fixture_runs_a_gate_from_a_users_test(project):
    project.makepyfile(test_mine="""
def test_cost_gate_passes(replaygate_gate):
    result = replaygate_gate("llm/replaygate.yaml", offline=True)
    assert result.gate("cost.mean")["verdict"] == "pass"
    assert result.exit_code == 1 and result.verdict == "fail"

def test_whole_gate(replaygate_gate):
    replaygate_gate("llm/replaygate.yaml", offline=True).assert_passed()
""")
    r = project.runpytest_subprocess("-p", "no:cacheprovider", "test_mine.py")
    r.assert_outcomes(passed=1, failed=1)
    out = r.stdout.str()
    assert "FAILED test_mine.py::test_whole_gate - AssertionError" in out
    assert "Verdict: FAIL (exit 1)" in out and "Worst regressions:" in out


def test_config_error_and_offline_miss_fail_the_items_with_the_message(project):
    cfg = project.path / "llm" / "replaygate.yaml"
    good = cfg.read_text()
    cfg.write_text(good.replace("concurrency: 8", "concurrency: many"))
    r = project.runpytest_subprocess("--replaygate", str(cfg), "-p", "no:cacheprovider")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*replaygate: *replaygate.yaml:*concurrency*"])
    cfg.write_text(good.replace("temperature: 0}", "temperature: 0.5}"))  # not in the cache
    r = project.runpytest_subprocess("--replaygate", str(cfg), "--replaygate-offline", "-p", "no:cacheprovider")
    r.assert_outcomes(failed=4)
    assert "offline" in r.stdout.str() and "Traceback" not in r.stdout.str()


def test_without_the_option_the_plugin_collects_nothing(project):
    project.makepyfile(test_a="def test_a():\n    pass\n")
    r = project.runpytest_subprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)
