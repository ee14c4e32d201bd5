"""Untrusted text made safe to print: the one place that does it.

Provider error bodies, model output, judge replies, case ids, model and variant names read from
traces or datasets reach the terminal and the CI log. Printed raw, a ``\\x1b]0;...\\x07`` retitles
the terminal, an ANSI sequence hides or rewrites lines, and a line that starts with ``::error``,
``::add-mask::`` or ``##[`` is taken by GitHub Actions as a workflow command (a forged annotation,
a stopped log). So:

- ``line(text)``: one piece of untrusted text inside a message. Control characters (C0, C1, DEL),
  line and paragraph separators, bidirectional overrides and lone surrogates become visible
  escapes (``\\n``, ``\\x1b``, ``\\u202e``): the text stays on its line and shows what it held.
- ``block(text)``: a whole message or report of several lines (ours), about to be written to a
  terminal or log. Lines are kept; every other control character is escaped as above, and a line
  that would start a workflow command (``::`` or ``##[`` after optional blanks) gets a backslash
  in front, so nothing in it can act as one. The CLI passes everything it prints through this.
- ``md(text)``: ``line`` plus Markdown-inert for table cells and inline text of the step summary
  and Markdown reports: specials escaped, ``@mention`` and ``#123`` references defused.
"""
from __future__ import annotations

import re
from typing import Any

# C0 except tab/newline, DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates,
# the BOM/zero-width no-break space, lone surrogates (not encodable: printing one would crash)
_UNSAFE = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff"
_LINE_UNSAFE = re.compile(f"[\t\n{_UNSAFE}]")
_BLOCK_UNSAFE = re.compile(f"[{_UNSAFE}]")
# a workflow command: "::name ...::" or the legacy "##[name]", at the start of a line (the runner
# trims blanks first)
_COMMAND_START = re.compile(r"^([ \t]*)(::|##\[)", re.MULTILINE)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": " "}


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    n = ord(ch)
    # \xNN only below DEL: a raw DEL or C1 character may sit in a JSON string we print, where
    # \u00NN is the same character and \xNN would be invalid JSON
    return f"\\x{n:02x}" if n < 0x7F else f"\\u{n:04x}"


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def line(value: Any, limit: int | None = None) -> str:
    """One line, no control characters, no workflow command at its start; ``limit`` characters
    at most (an ellipsis marks the cut)."""
    s = _LINE_UNSAFE.sub(_escape, _as_text(value))
    s = _COMMAND_START.sub(r"\1\\\2", s)
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return s


def block(value: Any) -> str:
    """Several lines as they are, each one inert: for everything written to a terminal or log."""
    s = _BLOCK_UNSAFE.sub(_escape, _as_text(value))
    return _COMMAND_START.sub(r"\1\\\2", s)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")
# a GitHub mention (@user, @org/team) or an issue reference would notify people or link issues
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


def md(value: Any) -> str:
    """Inline Markdown: one line, no table broken, no HTML, no link, no mention."""
    s = _MD_SPECIAL.sub(r"\\\1", line(value))
    # a zero-width space after "@" (as an entity, so it survives copying) breaks the mention
    return _MENTION.sub("@&#8203;", s)


def code(value: Any) -> str:
    """Text for a Markdown code fence: lines kept, control characters escaped."""
    return block(value)
