"""One invocation, several reports; the reports carry the why (reasons, models, commits,
provenance) and the HTML lists every case side by side, escaped."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.compare import compare_runs
from replaygate.model import Run
from replaygate.report import render
from replaygate.report.markdown import render_comparison as markdown_comparison

QUICKSTART = Path(__file__).parent.parent / "example-configs" / "quickstart" / "replaygate.yaml"
HOSTILE = "x | y\n<script>alert(1)</script> ]]> [click](http://evil) ```` \x07 @octocat"
GATES = [{"metric": "quality.pass_rate", "max_decrease": 0.02}]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "replaygate.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """One offline gate of the quickstart writing every report, and its saved runs."""
    d = tmp_path_factory.mktemp("reports")
    p = _cli("-q", "gate", "-c", str(QUICKSTART), "--offline", "--md", str(d / "r.md"), "--html", str(d / "r.html"),
             "--junit", str(d / "r.xml"), "--json", str(d / "r.json"), "--save-runs", str(d / "runs"))
    return d, p


def test_gate_writes_every_report_and_logs_the_verdict(quickstart):
    d, p = quickstart
    assert p.returncode == 1, p.stderr
    assert p.stdout == ""  # every report went to its file
    assert "Verdict: FAIL (exit 1) — 1 of 4 gates failed: quality.pass_rate" in p.stderr  # even with -q
    doc = json.loads((d / "r.json").read_text())
    assert doc["verdict"] == "fail" and doc["n_cases"] == 200
    assert (d / "r.md").read_text().startswith("## replaygate: ❌ fail")
    ET.fromstring((d / "r.xml").read_text().split("\n", 1)[1])
    ET.fromstring((d / "r.html").read_text().split("\n", 1)[1])


def test_html_from_the_comparison_file_is_the_gate_page(quickstart):
    """The comparison keeps the histograms and the cases: nothing is lost without the runs."""
    d, _ = quickstart
    p = _cli("report", str(d / "r.json"), "--html", str(d / "again.html"), "--format", "md")
    assert p.returncode == 0, p.stderr
    assert (d / "again.html").read_text() == (d / "r.html").read_text()
    assert p.stdout == (d / "r.md").read_text()  # the md went to stdout, the html to its file
    assert "Verdict: FAIL" in p.stderr


def test_compare_repeated_format_and_output_pair_in_order(quickstart):
    d, _ = quickstart
    runs = d / "runs"
    p = _cli("compare", str(runs / "baseline.json"), str(runs / "candidate.json"), "-c", str(QUICKSTART),
             "--format", "junit", "-o", str(d / "c.xml"), "--format", "md", "-o", str(d / "c.md"), "--format", "table")
    assert p.returncode == 1, p.stderr
    assert (d / "c.xml").read_text().startswith("<?xml") and (d / "c.md").read_text().startswith("## replaygate")
    assert "Verdict: FAIL" in p.stdout and "Verdict" not in p.stderr  # the table on stdout carries it
    p = _cli("compare", str(runs / "baseline.json"), str(runs / "candidate.json"), "-o", str(d / "s.html"))
    assert p.returncode == 0 and (d / "s.html").read_text().startswith("<!DOCTYPE html>")  # suffix picks html


@pytest.mark.parametrize("args, message", [
    (["--format", "md", "--format", "html"], "only one report can go to stdout"),
    (["--format", "md", "-o", "a.md", "-o", "b.md"], "each -o needs its --format"),
    (["--md", "same.md", "--html", "same.md"], "is named for two reports"),
])
def test_report_targets_usage_errors(tmp_path, args, message):
    doc = tmp_path / "c.json"
    doc.write_text("{}")
    r = CliRunner().invoke(cli, ["report", str(doc), *args])
    assert r.exit_code == 2 and message in r.output


# --- content --------------------------------------------------------------------------------------

def _run(name, outputs, passed, *, cached=False, variant=None, error_at=None):
    cases = []
    for i, (out, ok) in enumerate(zip(outputs, passed)):
        err = {"type": "Timeout", "message": "no answer"} if i == error_at else None
        cases.append({"id": f"case-{i:02d}", "input": f"question {i}", "expected": "yes", "samples": [{
            "repeat": 0, "output": None if err else out, "latency_ms": 100.0 + i, "cost_usd": 1e-5, "error": err,
            "cached": cached, "scores": {} if err else {"says_yes": {
                "score": 1.0 if ok else 0.0, "passed": ok, "reason": "contains 'yes'" if ok else f"no 'yes' in {out}"}}}]})
    return Run.from_dict({"schema_version": 1, "variant": variant or {"name": name, "model": f"openai/{name}"},
                          "environment": {"git_commit": "0123456789abcdef0123", "git_branch": "main", "git_dirty": False},
                          "complete": True, "cases": cases,
                          "scorers": [{"name": "says_yes", "type": "contains", "informational": False}]})


@pytest.fixture(scope="module")
def comparison():
    n = 30
    base = _run("base", ["yes"] * n, [True] * n, cached=True,
                variant={"name": "base", "recorded": True})
    cand_out = ["yes"] * n
    passed = [True] * n
    for i in (3, 17):
        cand_out[i], passed[i] = HOSTILE, False
    return compare_runs(base, _run("cand", cand_out, passed, error_at=25), gates=GATES)


def test_markdown_carries_models_commits_provenance_why_and_reasons(comparison):
    md = markdown_comparison(comparison, report_url="https://ci.example/run 1/report.html")
    assert "**baseline** base: outputs recorded in the traces; commit 0123456789 \\(main\\); samples 30: 100% recorded" in md
    assert "**candidate** cand: model openai/cand; commit 0123456789 \\(main\\); samples 30: 100% live" in md
    assert "**Why**\n- quality\\.pass\\_rate: " in md
    reason = next(ln for ln in md.splitlines() if ln.startswith("- ❌ says\\_yes: no 'yes' in x \\| y"))
    assert "\\<script\\>" in reason and "@&#8203;octocat" in reason  # the failing scorer's reason, escaped
    assert "(https://ci.example/run%201/report.html)" in md
    assert markdown_comparison(comparison, report_url="javascript:alert(1)").count("javascript") == 0


def _xhtml(text):
    assert text.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(text.split("\n", 1)[1])


def test_html_grid_lists_every_case_most_regressed_first_escaped(comparison):
    page = render(comparison, "html")
    root = _xhtml(page)  # still well-formed XML with the script and hostile text inside
    rows = root.find(".//table[@id='cases']").find("tbody").findall("tr")
    assert len(rows) == 30
    ids = [r.find("td/div").text for r in rows]
    assert ids[:3] == ["case-03", "case-17", "case-25"]  # the two regressions, then the error
    assert [r.get("data-regressed") for r in rows[:3]] == ["1", "1", "1"]
    assert rows[2].get("data-errors") == "1" and rows[2].find(".//p[@class='err']").text == "Timeout: no answer"
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\x07" not in page and page.count("<script") == 1
    cand_cell = rows[0].findall("td")[3]
    assert cand_cell.find("pre").text == HOSTILE.replace("\x07", "\\x07")  # shown, not sounded
    reason = cand_cell.find("ul/li")
    assert reason.get("class") == "s-fail" and "no 'yes' in x | y" in "".join(reason.itertext())
    buttons = {b.get("data-filter"): b.text for b in root.iter("button")}
    assert buttons == {"all": "all (30)", "regressed": "regressed (3)", "improved": "improved (0)",
                       "errors": "errors (1)"}
    sides = root.find(".//table[@class='sides']")
    text = " ".join(sides.itertext())
    assert "openai/cand" in text and "30: 100% recorded" in text and "0123456789 (main)" in text


def test_refs_and_commits_from_baseline_ref_are_reported():
    """gate --baseline-ref stores the ref a side was read at (environment.git_ref) and the refs
    its prompts were pinned from (variant.git_refs): both reach the reports."""
    base = _run("base", ["yes"] * 3, [True] * 3, variant={"name": "base", "model": "openai/m",
                                                          "git_refs": {"origin/main": "fedcba9876543210"}})
    base.environment.update(git_commit="fedcba9876543210", git_ref="origin/main", git_branch=None)
    doc = compare_runs(base, _run("cand", ["yes"] * 3, [True] * 3), gates=GATES)
    assert doc["baseline"]["git"] == {"commit": "fedcba9876543210", "dirty": False, "ref": "origin/main"}
    md = markdown_comparison(doc)
    assert "commit fedcba9876 \\(origin/main\\); refs origin/main = fedcba9876" in md
    text = " ".join(_xhtml(render(doc, "html")).find(".//table[@class='sides']").itertext())
    assert "fedcba9876 (origin/main)" in text and "0123456789 (main)" in text


def test_comparison_with_cases_validates_against_its_schema(comparison):
    from replaygate.runfile import validate_document

    validate_document(json.loads(json.dumps(comparison)), "comparison.schema.json", "x")
    assert comparison["baseline"]["provenance"] == {"recorded": 1.0}
    assert comparison["candidate"]["provenance"] == {"live": 1.0}


def test_cases_are_cut_at_the_limit_keeping_the_most_regressed():
    from replaygate.compare import listing

    base = _run("b", ["yes"] * 12, [True] * 12)
    passed = [True] * 12
    passed[7] = False
    cand = _run("c", ["yes"] * 12, passed)
    import numpy as np
    rows, total = listing.case_rows(base, cand, np.arange(12), np.arange(12), np.ones(12),
                                    np.array(passed, dtype=float), limit=5)
    assert total == 12 and len(rows) == 5 and rows[0]["case"] == "case-07" and rows[0]["change"] == -1.0


def test_html_shows_bidi_overrides_and_lone_surrogates_as_escapes(tmp_path):
    """A right-to-left override would reorder what a reviewer reads; a lone surrogate (valid in
    a JSON string) cannot be written as UTF-8. Both become visible escapes."""
    tricky = "refund approved\u202e)dnuf on(\ud800 end"
    base = _run("base", ["yes"] * 3, [True] * 3)
    cand = _run("cand", ["yes", tricky, "yes"], [True, False, True])
    path = tmp_path / "r.html"
    from replaygate.runfile import write_text

    write_text(render(compare_runs(base, cand, gates=GATES), "html"), path)  # UTF-8: no encode error
    page = path.read_text(encoding="utf-8")
    assert "\u202e" not in page and "\\u202e" in page and "\\ud800" in page
    _xhtml(page)
