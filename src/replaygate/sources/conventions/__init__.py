"""Convention families: one module per family of recorded LLM-call attributes, behind one registry.

Each module has ``NAME`` (the label cases get in ``metadata.convention``) and
``find(attributes, events) -> Content | None``: the messages and output the family recorded on a
span, or None when the span carries none of its keys. ``genai.find_content`` asks the families
in ``FAMILIES`` order (the priority of the alias table, otel-genai.md §4.4) and takes the first
that found input messages. Shared value and message shapes are in ``shapes``; categories, event
names and ``Content`` in ``base``.

Adding a family: a module here with ``NAME`` and ``find``, its name in ``FAMILIES`` at its
priority, and its keys in ``genai`` (classification, content keys dropped from filter attributes).
"""
from __future__ import annotations

import importlib
from typing import Callable

FAMILIES = ("semconv", "openllmetry", "openinference", "events", "semconv126", "vercel",
            "langfuse", "mlflow", "adk")

_finders: tuple[Callable, ...] | None = None


def finders() -> tuple[Callable, ...]:
    """The ``find`` functions of the families, in priority order."""
    global _finders
    if _finders is None:
        _finders = tuple(importlib.import_module(f"{__name__}.{name}").find for name in FAMILIES)
    return _finders
