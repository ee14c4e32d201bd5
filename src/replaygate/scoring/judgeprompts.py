"""Judge prompts: versioned text files ``prompts/NAME.vN.txt`` shipped as package data.

The highest version of each name is used, and ``NAME@vN`` is part of every judge cache key, so
changing a prompt means adding ``NAME.v(N+1).txt``: old cached verdicts are then not reused.
Placeholders are ``${name}`` (``string.Template``); every value that comes from a case or a model
is escaped (``& < >``) so an answer cannot close its tag and pose as instructions.
"""
from __future__ import annotations

import functools
import html
import re
import string
from dataclasses import dataclass
from importlib import resources

_FILE = re.compile(r"^([a-z_]+)\.v(\d+)\.txt$")


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.version}"

    def render(self, **values: str) -> str:
        """Fill the placeholders; a missing one is a bug in the caller, so it raises KeyError."""
        return string.Template(self.text).substitute(values)


@functools.lru_cache(maxsize=1)
def _catalogue() -> dict[str, Prompt]:
    latest: dict[str, Prompt] = {}
    for entry in resources.files("replaygate.scoring").joinpath("prompts").iterdir():
        m = _FILE.match(entry.name)
        if not m:
            continue
        p = Prompt(m.group(1), int(m.group(2)), entry.read_text(encoding="utf-8"))
        if p.name not in latest or p.version > latest[p.name].version:
            latest[p.name] = p
    return latest


def load_prompt(name: str) -> Prompt:
    try:
        return _catalogue()[name]
    except KeyError:
        raise KeyError(f"no judge prompt {name!r} (have: {', '.join(sorted(_catalogue()))})") from None


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def tagged(tag: str, text: str | None) -> str:
    """``\\n<tag>escaped</tag>\\n``, or "" when there is no text."""
    return "" if text is None else f"\n<{tag}>{esc(text)}</{tag}>\n"


def context_block(docs: list[str]) -> str:
    inner = "\n".join(f'<doc index="{i}">{esc(d)}</doc>' for i, d in enumerate(docs, 1))
    return f"<context>\n{inner}\n</context>"
