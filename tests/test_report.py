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


# --- html ---------------------------------------------------------------------------------------

def _xhtml(text):
    """The page parses as XML (well-formed markup); the DOCTYPE line is not XML."""
    assert text.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(text.split("\n", 1)[1])


SVG = "{http://www.w3.org/2000/svg}"


def _run(name, latencies, scores, costs=None, error_at=None):
    cases = []
    for i, (lat, sc) in enumerate(zip(latencies, scores)):
        err = {"type": "Timeout", "message": "t"} if i == error_at else None
        cases.append({"id": f"c{i}", "samples": [{
            "repeat": 0, "output": HOSTILE, "latency_ms": lat, "error": err,
            "cost_usd": None if costs is None else costs[i],
            "scores": {"ok<b>": {"score": sc, "passed": sc >= 0.5, "reason": HOSTILE}}}]})
    return {"schema_version": 1, "variant": {"name": name}, "environment": {}, "complete": True,
            "cases": cases, "summary": {"quality.pass_rate": 0.5, "latency.p95": 120.0}}


def test_html_escapes_model_text_and_parses():
    page = render(COMPARISON, "html")
    root = _xhtml(page)
    assert page.count("<script") == 1 and "<script>alert" not in page  # only the page's own filter script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "c42 | &lt;b&gt;" in page and "\x07" not in page
    cells = {td.text: td.get("class") for td in root.iter("td")}
    assert cells["fail"] == "v-fail" and cells["pass"] == "v-pass"
    assert root.find(".//p[@class='verdict fail']") is not None
    assert "did not keep the distributions" in page  # an old comparison file has no histograms


def test_html_plots_are_histograms_of_the_samples():
    import numpy as np
    rng = np.random.default_rng(3)
    base_lat, cand_lat = rng.gamma(4, 30, 200).tolist(), rng.gamma(4, 40, 200).tolist()
    base = _run("small <model>", base_lat, rng.integers(0, 2, 200).tolist(), costs=[1e-4] * 200, error_at=7)
    cand = _run("large", cand_lat, rng.uniform(0, 1, 200).tolist())
    root = _xhtml(render(COMPARISON, "html", runs=(base, cand)))
    svgs = {s.get("data-metric"): s for s in root.iter(SVG + "svg")}
    assert set(svgs) == {"latency.mean", "cost.mean", "score.ok<b>.mean"}
    counts = lambda svg, g: [int(r.get("data-count")) for r in svg.iter(SVG + "rect") if r.get("data-group") == g]  # noqa: E731
    # the bars are numpy's histogram of each run's successful samples, on shared bins
    lat = svgs["latency.mean"]
    assert sum(counts(lat, "0")) == 199 and sum(counts(lat, "1")) == 200  # the error sample is left out
    edges = np.histogram_bin_edges(np.array(base_lat[:7] + base_lat[8:] + cand_lat), bins="auto")
    want = [int(n) for n in np.histogram(cand_lat, bins=edges)[0] if n]
    assert counts(lat, "1") == want
    assert sum(counts(svgs["cost.mean"], "0")) == 199 and counts(svgs["cost.mean"], "1") == []
    assert len([r for r in svgs["score.ok<b>.mean"].iter(SVG + "rect")]) <= 20  # tenths of [0, 1]


def test_html_run_report():
    run = _run("cand", [10.0, 20.0, 30.0], [1.0, 0.0, 1.0])
    root = _xhtml(render(run, "html"))
    assert root.find(".//h1").text == "replaygate run: cand"
    assert len(list(root.iter(SVG + "svg"))) == 2  # latency and the score (no costs known)


def test_gate_writes_an_html_report_with_the_runs_distributions(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    config = Path(__file__).parent.parent / "example-configs" / "quickstart" / "replaygate.yaml"
    out = tmp_path / "report.html"
    p = subprocess.run([sys.executable, "-m", "replaygate.cli", "-q", "gate", "-c", str(config), "--offline",
                        "--format", "html", "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr  # the quickstart's candidate regresses
    root = _xhtml(out.read_text(encoding="utf-8"))
    metrics = [s.get("data-metric") for s in root.iter(SVG + "svg")]
    assert metrics == ["latency.mean", "cost.mean", "score.states_policy.mean", "score.concise.mean"]
    assert root.find(".//p[@class='verdict fail']") is not None
    rows = root.find(".//table[@id='cases']").find("tbody").findall("tr")
    assert len(rows) == 200 and sum(r.get("data-regressed") == "1" for r in rows) == 34
    assert all(r.get("data-regressed") == "1" for r in rows[:34])  # most regressed first
