"""Renderers: a run or comparison dict in, text out. No I/O here; the CLI writes the text."""
from __future__ import annotations

from typing import Any

FORMATS = ("table", "json", "md", "junit", "html")
RUN_FORMATS = FORMATS + ("otlp",)  # OTLP/JSON of the replayed calls and their scores


def kind_of(doc: dict) -> str:
    """'comparison' or 'run', from the document's shape."""
    if "verdict" in doc and "metrics" in doc:
        return "comparison"
    if "cases" in doc and "variant" in doc:
        return "run"
    raise ValueError("neither a run nor a comparison document")


def render(doc: dict, fmt: str, **opts: Any) -> str:
    kind = kind_of(doc)
    if fmt == "json":
        from ..runfile import dumps

        return dumps(doc)
    if fmt == "table":
        from . import terminal

        return terminal.render_comparison(doc, **opts) if kind == "comparison" else terminal.render_run(doc)
    if fmt == "md":
        from . import markdown

        return markdown.render_comparison(doc, **opts) if kind == "comparison" else markdown.render_run(doc)
    if fmt == "junit":
        from . import junit

        return junit.render_comparison(doc) if kind == "comparison" else junit.render_run(doc)
    if fmt == "otlp":
        if kind != "run":
            raise ValueError("the OTLP export takes a run file (a comparison has no samples)")
        from . import otlp_export

        return otlp_export.render(doc)
    if fmt == "html":  # opts: runs=(baseline, candidate) run dicts, for the distribution plots
        from . import html

        return html.render_comparison(doc, **opts) if kind == "comparison" else html.render_run(doc)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(RUN_FORMATS)})")
