"""Text helpers shared by scorers: normalisation, word tokens, the reference as text, JSON equality."""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# Config keys (JSON Schema) for the normalisation options of text-matching scorers.
NORMALIZE_PARAMS: dict[str, dict] = {
    "ignore_case": {"type": "boolean"},
    "ignore_whitespace": {"type": "boolean"},
    "ignore_punctuation": {"type": "boolean"},
}

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


def strip_punctuation(text: str) -> str:
    # Unicode category P* covers ASCII punctuation and the typographic kind (« » — ¿ 。).
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def normalize(text: str, *, ignore_case: bool = False, ignore_whitespace: bool = False,
              ignore_punctuation: bool = False) -> str:
    """NFC always (a composed and a decomposed "é" are the same text); then the options.
    Case folding uses ``casefold`` so "Straße" matches "STRASSE"."""
    text = unicodedata.normalize("NFC", text)
    if ignore_punctuation:
        text = strip_punctuation(text)
    if ignore_whitespace:
        text = _WS.sub(" ", text).strip()
    if ignore_case:
        text = text.casefold()
    return text


def normalize_opts(params: dict) -> dict[str, bool]:
    return {k: bool(params.get(k, False)) for k in NORMALIZE_PARAMS}


def words(text: str) -> list[str]:
    """Lower-cased unicode word tokens, punctuation dropped (for overlap metrics)."""
    return _WORD.findall(unicodedata.normalize("NFC", text).casefold())


def as_text(value: Any) -> str:
    """A reference or literal as text: strings as they are, other JSON values as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def clip(text: str, n: int = 80) -> str:
    """Short quotation of model text for a reason line."""
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def json_equal(a: Any, b: Any) -> bool:
    """Structural JSON equality: 1 equals 1.0, but true is not 1 (Python says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b
