"""Renderers: model text is escaped where embedded; formats parse."""
import xml.etree.ElementTree as ET

from replaygate.report import render
from replaygate.report.markdown import escape, fence

HOSTILE = "x | y\n<script>alert(1)</script> [click](http://evil) ```` \x07"

COMPARISON = {
    "schema_version": 1, "verdict": "fail", "exit_code": 1, "n_paired": 300,
    "only_in_baseline": [], "only_in_candidate": ["c9"],
    "metrics": {"quality.pass_rate": {"baseline": 0.97, "candidate": 0.85, "delta": -0.12,
                                      "ci": [-0.16, -0.08], "p_value": 1e-9, "mde": 0.03, "n": 300},
                "latency.p95": {"baseline": 800.0, "candidate": 900.0, "delta": 100.0,
                                "ci": [1.01, 1.2], "ci_kind": "ratio", "p_value": None, "n": 300}},
    "gates": [{"metric": "quality.pass_rate", "rule": "max_decrease 0.02", "mode": "significant",
               "verdict": "fail", "baseline": 0.97, "candidate": 0.85, "delta": -0.12,
               "ci": [-0.16, -0.08], "p_value": 1e-9},
              {"metric": "latency.p95", "rule": "max_increase 25%", "mode": "significant",
               "verdict": "pass", "baseline": 800.0, "candidate": 900.0, "delta": 100.0,
               "ci": [1.01, 1.2], "ci_kind": "ratio", "p_value": None}],
    "regressions": [{"case": "c42 | <b>", "metric": "quality.pass_rate", "baseline": 1.0, "candidate": 0.0,
                     "baseline_output": "Paris", "candidate_output": HOSTILE}],
}


def test_table_names_failing_gate():
    text = render(COMPARISON, "table")
    assert "Verdict: FAIL (exit 1)" in text and "1 of 2 gates failed: quality.pass_rate" in text
    assert "-12.0 pts" in text and "[1.010×, 1.200×]" in text


def test_markdown_escapes_model_text():
    md = render(COMPARISON, "md")
    import re
    outside_fences = re.sub(r"(`{3,})diff\n.*?\n\1", "", md, flags=re.S)
    assert "<script>" in md and "<script>" not in outside_fences
    # the hostile output only appears inside a fence longer than its own backtick run
    assert "`````diff" in md
    assert "c42 \\| \\<b\\>" in md
    assert escape(HOSTILE).count("\n") == 0 and "\\|" in escape(HOSTILE) and "\\[" in escape(HOSTILE)
    assert fence("a ``` b").startswith("````\n")


def test_junit_is_valid_xml_with_failures():
    root = ET.fromstring(render(COMPARISON, "junit").split("\n", 1)[1])
    gates, cases = root.findall("testsuite")
    assert gates.get("failures") == "1" and gates.get("tests") == "2"
    assert cases.find("testcase").get("name") == "c42 | <b>"
    assert "\x07" not in render(COMPARISON, "junit")


def test_run_report_counts_errors():
    run = {"schema_version": 1, "variant": {"name": "cand"}, "environment": {}, "complete": False,
           "cases": [{"id": "a", "samples": [{"repeat": 0, "output": None, "latency_ms": None,
                                              "error": {"type": "Timeout", "message": "t"}, "scores": {}}]},
                     {"id": "b", "samples": [{"repeat": 0, "output": "no", "latency_ms": 5.0, "error": None,
                                              "scores": {"ok": {"score": 0.0, "passed": False, "reason": "r"}}}]}],
           "summary": {"quality.pass_rate": 0.0, "cost.mean": None}}
    text = render(run, "table")
    assert "INCOMPLETE" in text and "Timeout × 1" in text and "n/a" in text
    suite = ET.fromstring(render(run, "junit").split("\n", 1)[1]).find("testsuite")
    assert suite.get("errors") == "1" and suite.get("failures") == "1"
