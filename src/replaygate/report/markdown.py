"""Markdown for pull-request comments and $GITHUB_STEP_SUMMARY.

Model text is untrusted: in table cells it is escaped (``safetext.md``) so it cannot break the
table, inject HTML or links, or mention people; in blocks it sits inside a code fence longer than any
backtick run it contains, its control characters escaped.
"""
from __future__ import annotations

import re
from typing import Any

from .. import safetext
from . import fmt
from .terminal import verdict_line


def escape(text: Any) -> str:
    """Inline-safe markdown: no tables broken, no HTML, no links, no mentions, one line."""
    return safetext.md(text)


def fence(text: str, lang: str = "") -> str:
    text = safetext.code(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


_ICON = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive",
         "incomplete": "⛔ incomplete (not measured)"}


def render_comparison(doc: dict, max_cases: int = 5, report_url: str | None = None) -> str:
    """A comparison as Markdown: the body of a pull-request comment or job summary (verdict,
    what was compared, gates and why, metrics, the worst regressions with the failing scorers'
    reasons and output diffs). ``report_url``: an http(s) link to the full (HTML) report."""
    out = ["## replaygate: " + _ICON.get(doc.get("verdict"), escape(doc.get("verdict"))), ""]
    out.append(escape(verdict_line(doc)))
    out.append("")
    link = _link(report_url)
    if link:
        out += [f"[Full report: every case side by side]({link})", ""]
    out.extend(_compared(doc))
    if doc.get("gates"):
        rows = [[*map(escape, r[:-1]), _ICON.get(r[-1], escape(r[-1]))] for r in fmt.gate_rows(doc)]
        out.append(_table(fmt.GATE_HEADERS, rows))
        out.append("")
        why = [g for g in doc["gates"] if g.get("reason")]
        if why:
            out.append("**Why**")
            out.extend(f"- {escape(g['metric'])}: {escape(g['reason'])}" for g in why)
            out.append("")
    rows = [list(map(escape, r)) for r in fmt.metric_rows(doc)]
    out.append("<details><summary>All metrics ({} paired cases)</summary>\n".format(doc.get("n_paired", 0)))
    out.append(_table(fmt.METRIC_HEADERS, rows))
    out.append("\n</details>\n")
    regs = doc.get("regressions", [])
    if regs:
        total = max(int(doc.get("n_regressions") or 0), len(regs))
        out.append(f"### Worst regressions ({min(len(regs), max_cases)} of {total})\n")
        for r in regs[:max_cases]:
            out.append(f"**{escape(r.get('case'))}** — {escape(r.get('metric', ''))}")
            out.extend(f"- ❌ {escape(reason)}" for reason in fmt.failed_reasons(r))
            out.append("")
            diff = fmt.output_diff(r)
            if diff is not None:
                out.append(fence(diff, "diff"))
            else:
                out.append(f"baseline: {escape(r.get('baseline'))} → candidate: {escape(r.get('candidate'))}")
            out.append("")
    for w in doc.get("warnings", []):
        out.append(f"> ⚠️ {escape(w)}")
    return "\n".join(out).rstrip() + "\n"


def _link(url: str | None) -> str | None:
    """An http(s) URL safe inside Markdown link parentheses (spaces, brackets, quotes encoded)."""
    if not url or not url.lower().startswith(("https://", "http://")):
        return None
    from urllib.parse import quote

    return quote(url, safe=":/?#@!$&*+,;=%-._~")


def _compared(doc: dict) -> list[str]:
    """One line per side: variant, model, commit, prompt refs, where its outputs came from."""
    out = []
    for role in ("baseline", "candidate"):
        side = doc.get(role) or {}
        name = side.get("variant") or role
        facts = "; ".join(f"{k} {escape(v)}" for k, v in fmt.side_parts(side))
        label = f"**{role}**" if name == role else f"**{role}** {escape(name)}"
        out.append(f"- {label}" + (f": {facts}" if facts else ""))
    n, only_b, only_c = doc.get("n_paired", 0), len(doc.get("only_in_baseline") or []), len(doc.get("only_in_candidate") or [])
    out.append(f"- {n} paired cases" + (f" ({only_b} only in baseline, {only_c} only in candidate)"
                                        if only_b or only_c else ""))
    return out + [""]


def render_run(doc: dict) -> str:
    v = doc.get("variant", {})
    out = [f"## replaygate run: {escape(v.get('name', '?'))}", ""]
    if not doc.get("complete", True):
        out += ["**Incomplete run**: some cases were not replayed.", ""]
    rows = [[escape(k), escape(fmt.value(k, val))] for k, val in doc.get("summary", {}).items()]
    out.append(_table(["metric", "value"], rows))
    for w in doc.get("warnings", []):
        out.append(f"\n> ⚠️ {escape(w)}")
    return "\n".join(out) + "\n"
