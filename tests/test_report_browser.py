"""The HTML report in a real browser (headless Chromium): the case grid's filters and search work
after its script ran, and the page renders (a screenshot). Skipped, with the reason, where no
Chromium or Chrome is installed (Debian: `apt-get install chromium`; GitHub's ubuntu runners
have google-chrome)."""
import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from replaygate.compare import compare_runs
from replaygate.model import Run
from replaygate.report import render

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = os.environ.get("REPLAYGATE_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium/Chrome on PATH "
                                f"(looked for {', '.join(BROWSERS)}; or set REPLAYGATE_CHROMIUM)")

HOSTILE = 'refund </pre><script>document.title="pwned"</script> ]]> <img src=x onerror=alert(1)>'


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def _run(name, outputs, passed, errors=()):
    cases = []
    for i, (out, ok) in enumerate(zip(outputs, passed)):
        err = {"type": "Timeout", "message": "no answer"} if i in errors else None
        cases.append({"id": f"case-{i:02d}", "input": f"question {i} about refunds" if i % 2 else f"question {i}",
                      "samples": [{"repeat": 0, "output": None if err else out, "latency_ms": 100.0 + 3 * i,
                                   "cost_usd": 1e-5, "error": err, "scores": {} if err else {
                                       "ok": {"score": float(ok), "passed": ok, "reason": "fine" if ok else "wrong"}}}]})
    return Run.from_dict({"schema_version": 1, "variant": {"name": name, "model": f"openai/{name}"},
                          "environment": {}, "complete": True, "cases": cases,
                          "scorers": [{"name": "ok", "type": "contains", "informational": False}]})


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """30 cases: 0-3 regressed (3 with hostile output), 20-21 improved, 25 errored in the candidate."""
    n = 30
    base_ok = [True] * n
    base_ok[20] = base_ok[21] = False
    cand_ok = list(base_ok)
    for i in (0, 1, 2, 3):
        cand_ok[i] = False
    cand_ok[20] = cand_ok[21] = True
    cand_out = ["an answer"] * n
    cand_out[3] = HOSTILE
    doc = compare_runs(_run("base", ["an answer"] * n, base_ok), _run("cand", cand_out, cand_ok, errors=(25,)),
                       gates=[{"metric": "quality.pass_rate", "max_decrease": 0.02}])
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render(doc, "html"), encoding="utf-8")
    return path


class _Rows(HTMLParser):
    """Case rows of the dumped DOM: (case id, hidden?) in order, the counter text, the title."""

    def __init__(self):
        super().__init__()
        self.rows, self.shown, self.title = [], "", ""
        self._in_tbody = self._want_id = self._in_shown = self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "cases":
            self._in_tbody = True
        elif tag == "tr" and self._in_tbody and "data-errors" in a:
            self.rows.append([None, "hidden" in a])
        elif tag == "div" and a.get("class") == "cid":
            self._want_id = True
        elif tag == "span" and a.get("id") == "case-shown":
            self._in_shown = True
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "div":
            self._want_id = False
        elif tag == "span":
            self._in_shown = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._want_id and self.rows:
            self.rows[-1][0] = data
            self._want_id = False
        if self._in_shown:
            self.shown += data
        if self._in_title:
            self.title += data


def _dump(tmp_path: Path, url: str) -> _Rows:
    p = _browser(tmp_path, "--dump-dom", url)
    assert p.returncode == 0, p.stderr[-2000:]
    parsed = _Rows()
    parsed.feed(p.stdout)
    assert len(parsed.rows) == 30, p.stdout[:2000]
    return parsed


def _visible(parsed: _Rows) -> list[str]:
    return [cid for cid, hidden in parsed.rows if not hidden]


@pytest.mark.parametrize("fragment, want", [
    ("", None),  # all
    ("#filter=regressed", ["case-00", "case-01", "case-02", "case-03", "case-25"]),
    ("#filter=improved", ["case-20", "case-21"]),
    ("#filter=errors", ["case-25"]),
    ("#q=ABOUT%20REFUNDS", [f"case-{i:02d}" for i in range(1, 30, 2)]),  # case-insensitive search
    ("#filter=regressed&q=refund", ["case-01", "case-03", "case-25"]),  # both at once
])
def test_filters_and_search_after_the_script_ran(page, tmp_path, fragment, want):
    parsed = _dump(tmp_path, page.as_uri() + fragment)
    visible = _visible(parsed)
    if want is None:
        assert len(visible) == 30
    else:
        assert sorted(visible) == sorted(want)
    assert parsed.shown == f"{len(visible)} of 30 cases shown"  # the counter was written by the script
    assert parsed.title.startswith("replaygate:")  # the hostile output did not run as script


def test_buttons_and_search_box_respond_to_the_user(page, tmp_path):
    """Click and type as a user would (events dispatched by a script appended to a copy)."""
    driver = ('<script>document.querySelector(\'[data-filter="errors"]\').click();'
              'var q = document.getElementById("case-search");'
              'document.querySelector(\'[data-filter="all"]\').click();'
              'q.value = "case-2"; q.dispatchEvent(new Event("input"));</script>')
    copy = tmp_path / "driven.html"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", driver + "</body>"), encoding="utf-8")
    parsed = _dump(tmp_path, copy.as_uri())
    assert sorted(_visible(parsed)) == [f"case-{i}" for i in range(20, 30)]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_screenshot_renders(page, tmp_path):
    shot = Path(os.environ.get("REPLAYGATE_SCREENSHOT") or tmp_path / "report.png")
    p = _browser(tmp_path, "--hide-scrollbars", "--window-size=1400,1800", f"--screenshot={shot}",
                 page.as_uri() + "#filter=regressed")
    assert p.returncode == 0, p.stderr[-2000:]
    assert _png_size(shot) == (1400, 1800)
    # a blank page compresses to a few kB; text, tables and plots do not
    assert shot.stat().st_size > 40_000
