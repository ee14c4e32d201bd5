"""history: runs recorded by gate / run, the trend table, and --drift (the paired comparison of
a variant's last run with the one before)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from replaygate import history
from replaygate.errors import InputError

QUICKSTART = Path(__file__).parent.parent / "example-configs" / "quickstart"


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "replaygate.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


@pytest.fixture(scope="module")
def quickstart_history(tmp_path_factory):
    """Two offline gates of a copy of the quickstart with history: on (its cache stays read-only)."""
    d = tmp_path_factory.mktemp("qs") / "quickstart"
    shutil.copytree(QUICKSTART, d)
    (d / "replaygate.yaml").write_text((d / "replaygate.yaml").read_text() + "history: .replaygate/history.sqlite\n")
    for _ in range(2):
        p = _cli("-q", "gate", "-c", d / "replaygate.yaml", "--offline", "--save-runs", d / "runs")
        assert p.returncode == 1, p.stderr  # the quickstart's candidate regresses
    return d


def test_gate_records_both_runs_and_its_verdict(quickstart_history):
    d = quickstart_history
    entries = history.runs(d / ".replaygate" / "history.sqlite")
    assert [(e["id"], e["variant"], e["gate"]) for e in entries] == [
        (1, "baseline", None), (2, "candidate", "fail"), (3, "baseline", None), (4, "candidate", "fail")]
    assert entries[1]["summary"]["quality.pass_rate"] == pytest.approx(0.83) and entries[1]["n_cases"] == 200
    stored = history.load_run(d / ".replaygate" / "history.sqlite", 4)
    assert stored == json.loads((d / "runs" / "candidate.json").read_text())
    p = _cli("history", "-c", d / "replaygate.yaml", "--variant", "candidate", "--metric", "quality.pass_rate")
    assert p.returncode == 0 and p.stdout.count("83.0%") == 2 and "support-small" in p.stdout


def test_drift_refuses_runs_served_from_the_cache(quickstart_history):
    # the quickstart gates ran --offline: every answer came from the cache, nothing was measured
    d = quickstart_history
    p = _cli("history", "-c", d / "replaygate.yaml")
    assert p.returncode == 0 and "100% cache" in p.stdout
    p = _cli("history", "-c", d / "replaygate.yaml", "--drift")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "was not measured: 100% of its samples came from the cache" in p.stderr and "--refresh" in p.stderr


def _live(run: dict) -> dict:
    """The run as if every call had been made in it (what a nightly with --refresh stores)."""
    for case in run["cases"]:
        for s in case["samples"]:
            s.update(provenance="live", cached=False, cached_at=None)
    run["provenance"] = {"live": 1.0, "cache": 0.0, "recorded": 0.0, "batch": 0.0, "n": 1}
    return run


def test_drift_catches_a_model_that_changed_under_the_same_name(quickstart_history, tmp_path):
    d = quickstart_history
    db = tmp_path / "h.sqlite"
    before = json.loads((d / "runs" / "baseline.json").read_text())
    after = json.loads((d / "runs" / "candidate.json").read_text())
    after["variant"]["name"] = before["variant"]["name"]  # same variant, other answers
    history.record_run(db, _live(before))
    history.record_run(db, _live(dict(before)))  # an identical, measured night: no drift
    p = _cli("history", "--db", db, "-c", d / "replaygate.yaml", "--drift")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "run 2" in p.stdout and "against run 1" in p.stdout
    history.record_run(db, _live(after))
    p = _cli("history", "--db", db, "-c", d / "replaygate.yaml", "--drift")
    assert p.returncode == 1 and "quality.pass_rate" in p.stdout and "FAIL" in p.stdout


def test_missing_or_foreign_databases_are_input_errors(tmp_path):
    p = _cli("history", "--db", tmp_path / "none.sqlite")
    assert p.returncode == 2 and "no history here yet" in p.stderr
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not sqlite at all")
    with pytest.raises(InputError, match="not a replaygate history database"):
        history.runs(bad)
    one = tmp_path / "one.sqlite"
    history.record_run(one, {"variant": {"name": "v"}, "environment": {}, "cases": [], "summary": {}})
    p = _cli("history", "--db", one, "--drift")
    assert p.returncode == 2 and "needs two runs" in p.stderr
