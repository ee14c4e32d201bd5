"""The pull-request comment (created once, then edited), the nightly issue, the fork/no-token
degrade and the workflow annotations, against a local fake of the GitHub REST API."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fakegithub import FakeGitHub
from replaygate.cli import cli
from replaygate.github import marker, workflow_command

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "example-configs" / "quickstart" / "replaygate.yaml"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> Path:
    """The quickstart's comparison (offline, committed cache): one failed and one inconclusive gate."""
    out = tmp_path_factory.mktemp("cmp") / "comparison.json"
    r = CliRunner().invoke(cli, ["-q", "gate", "-c", str(QUICKSTART), "--offline", "--format", "json", "-o", str(out)])
    assert r.exit_code == 1, r.output
    return out


def event(tmp_path: Path, number: int = 7, head_repo: str = "acme/shop") -> Path:
    p = tmp_path / "event.json"
    p.write_text(json.dumps({"action": "synchronize", "number": number,
                             "pull_request": {"number": number, "head": {"repo": {"full_name": head_repo}}}}))
    return p


def gh_env(monkeypatch, gh: FakeGitHub, event_path: Path, token: str | None, summary: Path | None = None):
    for k in ("GITHUB_TOKEN", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "GITHUB_BASE_REF"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GITHUB_API_URL", gh.api_url)
    monkeypatch.setenv("GITHUB_REPOSITORY", gh.repo)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event_path))
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.test")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    if token:
        monkeypatch.setenv("GITHUB_TOKEN", token)
    if summary:
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))


def test_comment_is_created_once_then_edited_on_the_next_push(tmp_path, monkeypatch, comparison):
    with FakeGitHub(token="ghs_abc") as gh:
        # other people's comments fill more than one page: ours must be found on page 2
        gh.comments[7] = [{"id": i, "body": f"LGTM {i}"} for i in range(1, 131)]
        gh_env(monkeypatch, gh, event(tmp_path), "ghs_abc")
        args = ["comment", str(comparison), "-c", str(QUICKSTART), "--report-url", "https://github.test/art/1"]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        assert "pull-request comment created" in r.output
        writes = gh.writes()
        assert [(w["method"], w["path"]) for w in writes] == [("POST", "/repos/acme/shop/issues/7/comments")]
        body = writes[0]["body"]["body"]
        key = marker("gate:example-configs/quickstart/replaygate.yaml")
        assert body.startswith(key + "\n## replaygate: ❌ fail")
        assert "Verdict: FAIL \\(exit 1\\)" in body
        assert "[Full report: every case side by side](https://github.test/art/1)" in body
        assert "[CI run](https://github.test/acme/shop/actions/runs/4242)" in body
        assert "| quality\\.pass\\_rate max\\_decrease 0\\.02 |" in body
        assert all(r["auth"] == "Bearer ghs_abc" and r["accept"] == "application/vnd.github+json" for r in gh.requests)
        gets = [r for r in gh.requests if r["method"] == "GET"]
        assert [g["query"].get("page", "1") for g in gets] == ["1", "2"]

        # the second push: the same comment is edited, none added
        r = CliRunner().invoke(cli, args[:-1] + ["https://github.test/art/2"])
        assert r.exit_code == 0 and "pull-request comment updated" in r.output, r.output
        last = gh.writes()[-1]
        mine = [c for c in gh.comments[7] if c["body"].startswith(key)]
        assert len(gh.comments[7]) == 131 and len(mine) == 1
        assert last["method"] == "PATCH" and last["path"] == f"/repos/acme/shop/issues/comments/{mine[0]['id']}"
        assert "https://github.test/art/2" in mine[0]["body"] and "art/1" not in mine[0]["body"]

        # another config gets its own comment
        r = CliRunner().invoke(cli, ["comment", str(comparison), "--key", "other"])
        assert r.exit_code == 0 and len(gh.comments[7]) == 132


@pytest.mark.parametrize("case", ["fork-read-only", "fork-no-token", "no-token"])
def test_fork_or_missing_token_degrades_to_a_notice_never_a_failure(tmp_path, monkeypatch, comparison, case):
    summary = tmp_path / "summary.md"
    with FakeGitHub(token="ghs_ro", read_only=case == "fork-read-only") as gh:
        fork = case.startswith("fork")
        gh_env(monkeypatch, gh, event(tmp_path, head_repo="mallory/shop" if fork else "acme/shop"),
               "ghs_ro" if case == "fork-read-only" else None, summary)
        r = CliRunner().invoke(cli, ["comment", str(comparison)])
        assert r.exit_code == 0, r.output
        assert "no pull-request comment posted" in r.output
        assert ("fork" in r.output) == fork
        assert re.search(r"^::notice title=replaygate::replaygate: no pull-request comment posted", r.output, re.M)
        assert "> [!NOTE]" in summary.read_text()
        if case == "fork-read-only":
            assert [w["method"] for w in gh.writes()] == ["POST"] and gh.comments == {}
        else:
            assert gh.requests == []  # nothing sent without a token


def test_nightly_issue_is_opened_then_updated(tmp_path, monkeypatch, comparison):
    with FakeGitHub() as gh:
        gh.issues.append({"number": 1, "state": "open", "title": "unrelated", "body": "hello"})
        gh_env(monkeypatch, gh, tmp_path / "missing-event.json", gh.token)
        args = ["comment", str(comparison), "--issue", "Nightly model upgrade check failed", "--key", "nightly"]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0 and "issue created" in r.output, r.output
        assert len(gh.issues) == 2 and gh.issues[1]["body"].startswith(marker("nightly"))
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0 and "issue updated" in r.output, r.output
        assert len(gh.issues) == 2
        assert [(w["method"], w["path"]) for w in gh.writes()] == [
            ("POST", "/repos/acme/shop/issues"), ("PATCH", "/repos/acme/shop/issues/2"),
            ("POST", "/repos/acme/shop/issues/2/comments")]


def test_annotations_name_failed_and_undecided_gates_at_their_config_line(comparison, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(ROOT))
    r = CliRunner().invoke(cli, ["comment", str(comparison), "-c", str(QUICKSTART), "--annotate", "--print"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("::")]
    cfg_lines = QUICKSTART.read_text().splitlines()
    gate_line = next(i for i, ln in enumerate(cfg_lines, 1) if "quality.pass_rate" in ln)
    assert lines[0].startswith(f"::error file=example-configs/quickstart/replaygate.yaml,line={gate_line},"
                               "title=replaygate%3A regression::gate quality.pass_rate max_decrease 0.02: fail")
    warnings = [ln for ln in lines[1:] if ln.startswith("::warning ")]
    assert len(warnings) == len(lines) - 1 >= 1
    assert any("errors.rate max 0.01: inconclusive" in w for w in warnings)
    assert all("title=replaygate%3A gate undecided::" in w for w in warnings)


def test_workflow_command_escaping_keeps_hostile_text_inside_one_command():
    hostile = "50%\r\n::error::forged\x1b[2J, file=x:1"
    cmd = workflow_command("error", hostile, file="a,b:c.yaml", title="t\nx")
    assert cmd == "::error file=a%2Cb%3Ac.yaml,title=t\\nx::50%25\\r\\n::error::forged\\x1b[2J, file=x:1"
    assert "\n" not in cmd and "\r" not in cmd and "\x1b" not in cmd
