"""Keep an API key out of text a provider sent back (error bodies end up in run files, reports
and logs).

A provider may echo the key exactly, cut (``sk-proj-abc…``), or slightly changed (a character
or two replaced, dropped or added, as some proxies and error pages do). ``scrub`` replaces every
token that holds the key's long prefix or long suffix, or is within two edits of the whole key."""
from __future__ import annotations

import re

MASK = "***"
MIN_SECRET = 8  # shorter values are not keys; scrubbing them would mangle ordinary words
_TOKEN = re.compile(r"[A-Za-z0-9_\-.+/=:]+")
_MAX_EDITS = 2


def _ends(secret: str) -> tuple[str, str]:
    """The start and the end of the key that alone identify it: half of it, at least 8 and at
    most 16 characters (key formats share short prefixes such as ``sk-proj-``)."""
    n = max(MIN_SECRET, min(16, len(secret) // 2))
    return secret[:n], secret[-n:]


def _within_edits(a: str, b: str, k: int) -> bool:
    """Levenshtein distance of a and b is at most k (banded: O(len * k))."""
    if abs(len(a) - len(b)) > k:
        return False
    inf = k + 1
    prev = {j: j for j in range(0, min(len(b), k) + 1)}
    for i in range(1, len(a) + 1):
        cur = {}
        lo, hi = max(0, i - k), min(len(b), i + k)
        for j in range(lo, hi + 1):
            if j == 0:
                cur[j] = i
                continue
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev.get(j, inf) + 1, cur.get(j - 1, inf) + 1, prev.get(j - 1, inf) + cost)
        if min(cur.values()) > k:
            return False
        prev = cur
    return prev.get(len(b), inf) <= k


def scrub(text: str, secret: str | None) -> str:
    if not secret or len(secret) < MIN_SECRET:
        return text.replace(secret, MASK) if secret and len(secret) >= 4 else text
    text = text.replace(secret, MASK)
    prefix, suffix = _ends(secret)

    def mask(m: re.Match) -> str:
        tok = m.group(0)
        if prefix in tok or suffix in tok:
            return MASK
        # a token that contains a near copy of the key among other characters (key=..., Bearer...)
        for part in (tok, *re.split(r"[=:/]", tok)):
            if len(part) >= MIN_SECRET and _within_edits(part, secret, _MAX_EDITS):
                return MASK
        return tok

    return _TOKEN.sub(mask, text)
