"""The first hour: init gives a project that validates and can decide its gates; validate reports
every problem in one pass with hints; gates too tight for the dataset are flagged up front, and
the flag agrees with what the gates then decide; the progress ETA follows the recent rate."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.compare import compare_runs
from replaygate.compare.preflight import gate_sensitivity
from replaygate.model import Run
from replaygate.replay.engine import RecentRate

QUICKSTART = Path(__file__).parent.parent / "example-configs" / "quickstart" / "replaygate.yaml"
DECISION = {"mode": "significant", "confidence": 0.95, "holm": True}


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_init_writes_gitignore_and_a_starter_set_its_gates_can_decide(tmp_path):
    (tmp_path / ".gitignore").write_text("node_modules/\nruns/\n")
    cfg = tmp_path / "replaygate.yaml"
    r = run("init", "-o", str(cfg))
    assert r.exit_code == 0, r.output
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["node_modules/", "runs/"] and ".replaygate/" in lines and lines.count("runs/") == 1
    rows = [json.loads(x) for x in (tmp_path / "golden.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30 and all(r["expected"] for r in rows)
    r = run("validate", "-c", str(cfg))
    assert r.exit_code == 0 and "30 cases" in r.output and "warning" not in r.output, r.output
    again = run("init", "-o", str(cfg), "--force")  # nothing added twice
    assert again.exit_code == 0 and (tmp_path / ".gitignore").read_text().splitlines() == lines


def test_gitignore_keeps_the_cache_and_history_out_of_git(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert run("init", "-o", str(tmp_path / "replaygate.yaml")).exit_code == 0
    for f in (".replaygate/cache.sqlite", ".replaygate/history.sqlite", "runs/baseline.json",
              "replaygate-report.html"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    status = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert sorted(line[3:] for line in status.splitlines()) == [".gitignore", "golden.jsonl", "replaygate.yaml"]


BAD = """\
version: 1
dataset:
  - golden: missing.jsonl
  - golden: rows.jsonl
variants:
  baseline: {model: openai/a, api_key: sk-live-DO-NOT-ECHO}
  candidate: {model: openai/b, prompt: {system: "git:no-such-ref:prompt.md"}}
baseline: baselin
concurency: 4
scorers:
  - {name: a, type: icontain}
  - {name: j, type: judge, rubric: correctness}
"""


def test_validate_reports_every_problem_in_one_pass_with_hints(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "input": "ok"}\n{broken\n{"input": ["x"]}\n{"input": "ok", "id": "a"}\n')
    cfg = tmp_path / "replaygate.yaml"
    cfg.write_text(BAD)
    p = subprocess.run([sys.executable, "-m", "replaygate.cli", "validate", "-c", str(cfg)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = p.stderr
    expected = [
        f"{cfg}:3: dataset[0].golden: file not found:",
        f"{cfg}:6: variants.baseline.api_key: never put a key in the config: use api_key_env",
        f"{cfg}:7: variants.candidate.prompt.system: git:no-such-ref:prompt.md: unknown git ref 'no-such-ref'",
        f"{cfg}:8: baseline: baseline names variant 'baselin' (did you mean 'baseline'?)",
        f"{cfg}:9: concurency: unknown key 'concurency' (did you mean 'concurrency'?)",
        f"{cfg}:11: scorers[0].type: unknown scorer type 'icontain' (did you mean 'icontains'?)",
        f"{cfg}:12: scorers[1].model: scorer type 'judge' needs `model`",
        f"{tmp_path / 'rows.jsonl'}:2: invalid JSON",
        f"{tmp_path / 'rows.jsonl'}:3: row 3: 'input' must be a string",
        f"{tmp_path / 'rows.jsonl'}:4: duplicate case id 'a'",
    ]
    for e in expected:
        assert e in err, f"missing {e!r} in:\n{err}"
    assert err.startswith(f"replaygate: error: {len(expected)} problems in {cfg}:")
    assert "sk-live" not in err  # the pasted key is never echoed


def _runs(n: int, regressed: int):
    """Two runs of n one-sample cases; the candidate fails the first `regressed` of them."""
    def run_(name, fail):
        return Run.from_dict({"schema_version": 1, "variant": {"name": name}, "environment": {}, "complete": True,
                              "scorers": [{"name": "ok", "type": "contains", "informational": False}],
                              "cases": [{"id": f"c{i}", "samples": [{"repeat": 0, "output": "x", "latency_ms": 1.0,
                                         "scores": {"ok": {"score": float(i >= fail), "passed": i >= fail}}}]}
                                        for i in range(n)]})
    return run_("b", 0), run_("c", regressed)


@pytest.mark.parametrize("n, tau, flagged", [(2, 0.02, "cannot fail"), (5, 0.02, "cannot fail"), (6, 0.02, "cannot pass"),
                                             (30, 0.02, "cannot pass"), (30, 0.2, None), (600, 0.02, None)])
def test_flagged_gates_decide_as_the_flag_says(n, tau, flagged):
    """The up-front warning agrees with the gate's own decision on the extreme runs: a gate that
    'cannot fail' does not fail when every case regresses; one that 'cannot pass' stays
    inconclusive with identical answers; an unflagged one fails and passes on them."""
    gates = [{"metric": "quality.pass_rate", "max_decrease": tau}]
    warnings = gate_sensitivity(gates, DECISION, n)
    assert [w for _, w in warnings if flagged and flagged in w] == [w for _, w in warnings]
    assert bool(warnings) == bool(flagged)
    all_regressed = compare_runs(*_runs(n, n), gates=gates, decision=DECISION)["gates"][0]["verdict"]
    identical = compare_runs(*_runs(n, 0), gates=gates, decision=DECISION)["gates"][0]["verdict"]
    assert (all_regressed == "fail") == (flagged != "cannot fail")
    assert (identical == "pass") == (flagged is None)


def test_a_zero_tolerance_is_flagged_without_a_case_count():
    """No number of cases shows a change of exactly 0 is held: said plainly, quickly, no crash."""
    (_, text), = gate_sensitivity([{"metric": "quality.pass_rate", "max_decrease": 0.0}], DECISION, 50)
    assert "cannot pass with 50 cases" in text and text.endswith("loosen it")


def test_bound_gate_that_cannot_pass_is_flagged_with_the_cases_it_needs():
    gates = [{"metric": "errors.rate", "max": 0.01, "mode": "noninferior"}]
    (i, text), = gate_sensitivity(gates, DECISION, 200)
    assert i == 0 and "cannot pass with 200 cases" in text and "fails in noninferior mode" in text
    need = int(text.rsplit("about ", 1)[1].split()[0])
    assert gate_sensitivity(gates, DECISION, need) == [] and gate_sensitivity(gates, DECISION, need - 1)
    # continuous metrics and relative rules need a run's variance: not judged up front
    assert gate_sensitivity([{"metric": "latency.p95", "max_increase": "1%"}], DECISION, 3) == []


def test_gate_warns_up_front_with_the_config_line():
    p = subprocess.run([sys.executable, "-m", "replaygate.cli", "gate", "-c", str(QUICKSTART), "--offline",
                        "--format", "json"], capture_output=True, text=True)
    assert p.returncode == 1
    first = p.stderr.splitlines()[0]
    assert first.startswith(f"warning: {QUICKSTART.resolve()}:32: gate errors.rate max 0.01 cannot pass with 200 cases") \
        or first.startswith(f"warning: {QUICKSTART.resolve()}:29: gate quality.pass_rate"), p.stderr


def test_eta_follows_the_recent_rate_not_the_slow_start():
    """A 16 s run: one call after a 5 s warm-up, then 10 calls a second. The average since the
    start predicted over an hour after the first call; the recent rate predicts the rest."""
    r, total = RecentRate(), 111
    r.add(5.0)
    assert r.eta(total - 1, 5.0) is None  # one completion: no rate yet, "?" rather than a guess
    for k in range(1, 51):
        r.add(5.0 + k / 10)
    eta = r.eta(total - 51, 10.0)
    assert eta == pytest.approx(6.0, rel=0.15)
    avg_eta = (total - 51) / (51 / 10.0)
    assert avg_eta > 1.8 * eta
    # a stall slows the estimate instead of freezing it
    assert r.eta(total - 51, 20.0) > 2 * eta
