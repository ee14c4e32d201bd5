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


_ICON = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}


def render_comparison(doc: dict, max_cases: int = 5) -> str:
    out = ["## replaygate: " + _ICON.get(doc.get("verdict"), escape(doc.get("verdict"))), ""]
    out.append(escape(verdict_line(doc)))
    out.append("")
    if doc.get("gates"):
        rows = [[*map(escape, r[:-1]), _ICON.get(r[-1], escape(r[-1]))] for r in fmt.gate_rows(doc)]
        out.append(_table(fmt.GATE_HEADERS, rows))
        out.append("")
    rows = [list(map(escape, r)) for r in fmt.metric_rows(doc)]
    out.append("<details><summary>All metrics ({} paired cases)</summary>\n".format(doc.get("n_paired", 0)))
    out.append(_table(fmt.METRIC_HEADERS, rows))
    out.append("\n</details>\n")
    regs = doc.get("regressions", [])
    if regs:
        out.append(f"### Worst regressions ({min(len(regs), max_cases)} of {len(regs)})\n")
        for r in regs[:max_cases]:
            out.append(f"**{escape(r.get('case'))}** — {escape(r.get('metric', ''))}")
            diff = fmt.output_diff(r)
            if diff is not None:
                out.append(fence(diff, "diff"))
            else:
                out.append(f"baseline: {escape(r.get('baseline'))} → candidate: {escape(r.get('candidate'))}")
            out.append("")
    for w in doc.get("warnings", []):
        out.append(f"> ⚠️ {escape(w)}")
    return "\n".join(out).rstrip() + "\n"


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
