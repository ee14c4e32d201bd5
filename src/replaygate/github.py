"""GitHub integration that any CI can use: one pull-request comment that is created once and
edited on every later push, an issue that a failing nightly run opens or updates, and workflow
annotations for failed and undecided gates.

Everything is driven by the variables GitHub Actions sets (``GITHUB_TOKEN``,
``GITHUB_REPOSITORY``, ``GITHUB_EVENT_PATH``, ``GITHUB_API_URL``, ``GITHUB_SERVER_URL``,
``GITHUB_RUN_ID``); another CI sets the same names. Posting is best effort by design: the verdict
is the exit code, so a missing or read-only token (a pull request from a fork) or an API failure
degrades to a notice in the log and the job summary, never to a failed job.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

MARKER_PREFIX = "<!-- replaygate:"
COMMENT_LIMIT = 65_000  # GitHub refuses bodies over 65,536 characters
_TIMEOUT = 30.0


def marker(key: str = "gate") -> str:
    """The hidden line that identifies our comment or issue (one per `key`, e.g. per config)."""
    safe = re.sub(r"[^A-Za-z0-9_.:/-]", "-", key)[:100]
    return f"{MARKER_PREFIX}{safe} -->"


@dataclass
class GitHubContext:
    api_url: str
    repository: str | None
    token: str | None
    event: dict[str, Any] = field(default_factory=dict)
    server_url: str = "https://github.com"
    run_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "GitHubContext":
        env = os.environ if env is None else env
        event: dict[str, Any] = {}
        path = env.get("GITHUB_EVENT_PATH")
        if path:
            try:
                event = json.loads(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, ValueError):
                event = {}
        return cls(api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
                   repository=env.get("GITHUB_REPOSITORY") or None, token=env.get("GITHUB_TOKEN") or None,
                   event=event if isinstance(event, dict) else {},
                   server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
                   run_id=env.get("GITHUB_RUN_ID") or None)

    @property
    def pr_number(self) -> int | None:
        pr = self.event.get("pull_request")
        if isinstance(pr, dict) and isinstance(pr.get("number"), int):
            return pr["number"]
        issue = self.event.get("issue")  # issue_comment events on a pull request
        if isinstance(issue, dict) and issue.get("pull_request") and isinstance(issue.get("number"), int):
            return issue["number"]
        return None

    @property
    def from_fork(self) -> bool:
        pr = self.event.get("pull_request") or {}
        head = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
        return bool(head and self.repository and head != self.repository)

    @property
    def run_url(self) -> str | None:
        if self.repository and self.run_id:
            return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"
        return None


class GitHubError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class GitHubAPI:
    """The few REST calls we need, with the workflow token."""

    def __init__(self, ctx: GitHubContext):
        import httpx

        self.ctx = ctx
        self.client = httpx.Client(base_url=ctx.api_url, timeout=_TIMEOUT, headers={
            "Authorization": f"Bearer {ctx.token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "replaygate"})

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, body: dict | None = None, params: dict | None = None):
        import httpx

        for attempt in (0, 1):  # one retry on a server error or a dropped connection
            try:
                r = self.client.request(method, path, json=body, params=params)
            except httpx.HTTPError as e:
                if attempt:
                    raise GitHubError(f"{method} {path}: {type(e).__name__}: {e}") from None
                continue
            if r.status_code >= 500 and not attempt:
                continue
            if r.status_code >= 400:
                try:
                    msg = r.json().get("message", "")
                except ValueError:
                    msg = r.text[:200]
                raise GitHubError(f"{method} {path}: HTTP {r.status_code} {msg}".strip(), r.status_code)
            return r
        raise AssertionError("unreachable")

    def paged(self, path: str, params: dict | None = None, limit_pages: int = 30):
        """Every item of a paginated list (follows the Link header)."""
        page_params = {"per_page": 100, **(params or {})}
        url: str | None = path
        for _ in range(limit_pages):
            if url is None:
                return
            r = self.request("GET", url, params=page_params)
            page_params = None  # the next link carries them
            yield from r.json()
            url = r.links.get("next", {}).get("url")


@dataclass
class PostResult:
    action: str  # created | updated | skipped
    url: str | None = None
    reason: str | None = None


def fit(body: str, link: str | None = None, limit: int = COMMENT_LIMIT) -> str:
    """The body cut to GitHub's size limit, saying so and where the full report is."""
    if len(body) <= limit:
        return body
    note = "\n\n*(report cut to fit a comment" + (f"; the full report: {link})*" if link else ")*") + "\n"
    return body[: limit - len(note)].rsplit("\n", 1)[0] + note


def comment_body(markdown: str, key: str = "gate", report_url: str | None = None,
                 run_url: str | None = None) -> str:
    """The PR comment: our marker, the Markdown report (which links the full report itself:
    report.markdown's `report_url`), and a link to the CI run."""
    tail = f"\n[CI run]({run_url})\n" if run_url and run_url != report_url else ""
    return fit(f"{marker(key)}\n{markdown.rstrip()}\n{tail}", report_url or run_url)


def _skip(reason: str) -> PostResult:
    return PostResult("skipped", reason=reason)


def upsert_pr_comment(ctx: GitHubContext, body: str, key: str = "gate",
                      pr_number: int | None = None) -> PostResult:
    """Create our comment on the pull request, or edit it when a previous run made one."""
    number = pr_number or ctx.pr_number
    if number is None:
        return _skip("not a pull request event (no pull_request in GITHUB_EVENT_PATH); give --pr NUMBER")
    if not ctx.repository:
        return _skip("GITHUB_REPOSITORY is not set")
    if not ctx.token:
        why = "a pull request from a fork gets no write token" if ctx.from_fork else "GITHUB_TOKEN is not set"
        return _skip(why)
    api = GitHubAPI(ctx)
    tag = marker(key)
    try:
        base = f"/repos/{ctx.repository}/issues"
        mine = next((c for c in api.paged(f"{base}/{number}/comments")
                     if isinstance(c.get("body"), str) and c["body"].startswith(tag)), None)
        if mine is not None:
            r = api.request("PATCH", f"{base}/comments/{mine['id']}", {"body": body})
            return PostResult("updated", r.json().get("html_url"))
        r = api.request("POST", f"{base}/{number}/comments", {"body": body})
        return PostResult("created", r.json().get("html_url"))
    except GitHubError as e:
        if e.status in (403, 404) and ctx.from_fork:
            return _skip(f"a pull request from a fork gets a read-only token ({e})")
        if e.status in (401, 403, 404):
            return _skip(f"the token may not write comments ({e}); give the job "
                         "`permissions: pull-requests: write`")
        return _skip(str(e))
    finally:
        api.close()


def upsert_issue(ctx: GitHubContext, title: str, body: str, key: str = "nightly",
                 labels: list[str] | None = None) -> PostResult:
    """Open an issue, or update the open one a previous run opened (found by its marker):
    its body becomes the latest report and a comment says it failed again."""
    if not ctx.repository:
        return _skip("GITHUB_REPOSITORY is not set")
    if not ctx.token:
        return _skip("GITHUB_TOKEN is not set")
    api = GitHubAPI(ctx)
    tag = marker(key)
    try:
        base = f"/repos/{ctx.repository}/issues"
        mine = next((i for i in api.paged(base, {"state": "open"})
                     if isinstance(i.get("body"), str) and i["body"].startswith(tag)
                     and "pull_request" not in i), None)
        if mine is not None:
            api.request("PATCH", f"{base}/{mine['number']}", {"title": title, "body": body})
            note = "Failed again; the issue body now holds the latest report."
            api.request("POST", f"{base}/{mine['number']}/comments", {"body": f"{note}\n"})
            return PostResult("updated", mine.get("html_url"))
        payload: dict[str, Any] = {"title": title, "body": body}
        if labels:
            payload["labels"] = labels
        r = api.request("POST", base, payload)
        return PostResult("created", r.json().get("html_url"))
    except GitHubError as e:
        if e.status in (401, 403, 404):
            return _skip(f"the token may not write issues ({e}); give the job `permissions: issues: write`")
        return _skip(str(e))
    finally:
        api.close()


# --- workflow commands -------------------------------------------------------------------------

def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, **props: Any) -> str:
    """``::kind key=value,...::message``: untrusted text made one inert line (safetext.line:
    control characters and newlines shown as escapes), then GitHub's escaping of command data and
    properties, so it can neither end the command early nor start another one."""
    from .safetext import line

    given = ",".join(f"{k}={_escape_property(line(v))}" for k, v in props.items() if v is not None)
    return f"::{kind}{' ' + given if given else ''}::{_escape_data(line(message))}"


def annotations(doc: dict, config_file: str | None = None,
                gate_lines: list[int | None] | None = None) -> list[str]:
    """One ``::error`` per failed gate and one ``::warning`` per undecided (inconclusive) gate,
    pointing at the gate's line in the config when known."""
    out = []
    for i, g in enumerate(doc.get("gates") or []):
        verdict = g.get("verdict")
        if verdict not in ("fail", "inconclusive"):
            continue
        name = f"{g.get('metric', '?')} {g.get('rule', '')}".strip()
        why = g.get("why") or g.get("reason") or ""
        delta = g.get("delta")
        ci = g.get("ci")
        facts = []
        if isinstance(delta, (int, float)):
            facts.append(f"change {delta:+.4g}")
        if isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
            facts.append(f"interval [{ci[0]:+.4g}, {ci[1]:+.4g}]")
        text = f"gate {name}: {verdict}" + (f" ({', '.join(facts)})" if facts else "") + (f": {why}" if why else "")
        line = gate_lines[i] if gate_lines and i < len(gate_lines) else None
        out.append(workflow_command("error" if verdict == "fail" else "warning", text,
                                    file=config_file, line=line,
                                    title="replaygate: regression" if verdict == "fail"
                                    else "replaygate: gate undecided"))
    return out


def publish(markdown: str, *, key: str, report_url: str | None = None, issue_title: str | None = None,
            pr_number: int | None = None, env: Mapping[str, str] | None = None) -> tuple[PostResult, list[str]]:
    """Post the report as the PR comment (or, with `issue_title`, as an issue) and return the
    result with the lines to print. A skipped post adds a notice to the job summary and the log."""
    ctx = GitHubContext.from_env(env)
    run_url = ctx.run_url
    body = comment_body(markdown, key, report_url, run_url)
    if issue_title:
        result = upsert_issue(ctx, issue_title, body, key)
        what = "issue"
    else:
        result = upsert_pr_comment(ctx, body, key, pr_number)
        what = "pull-request comment"
    if result.action != "skipped":
        return result, [f"replaygate: {what} {result.action}: {result.url or ''}".rstrip()]
    notice = f"replaygate: no {what} posted: {result.reason}. The report is in the job summary."
    summary = (env or os.environ).get("GITHUB_STEP_SUMMARY")
    if summary:
        from .report.markdown import escape

        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(f"\n> [!NOTE]\n> {escape(notice)}\n")
    lines = [notice]
    if (env or os.environ).get("GITHUB_ACTIONS") == "true":
        lines.append(workflow_command("notice", notice, title="replaygate"))
    return result, lines
