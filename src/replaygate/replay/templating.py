"""Prompt templates rendered in a sandbox with bounds on time and size.

The template is configuration (trusted), but its variables come from the data (a trace's
recorded prompt variables, a golden row's ``vars``): ``{{ 'a' * n }}``, ``{{ 10 ** n }}`` or loops
over ``range(n)`` with a hostile ``n`` would allocate gigabytes or run for hours, and the per-call
timeout does not cover rendering. Jinja's sandbox already refuses unsafe attributes and ranges
over 100,000; on top of it:

- ``*`` that would build a string or list over ``MAX_CHARS`` and ``**`` with a result over
  ``MAX_POWER_BITS`` are refused before they run;
- the output is produced piece by piece and refused past ``MAX_CHARS`` characters;
- rendering stops after ``MAX_SECONDS`` (checked at each output piece, call, attribute or item
  lookup and operator).
A refused render is a ``SecurityError`` (a Jinja ``TemplateError``): the case is reported as
unreplayable, the run goes on.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_CHARS = 1_000_000  # a rendered prompt (about 250k tokens: beyond any context window)
MAX_POWER_BITS = 4096
MAX_SECONDS = 2.0


class BoundedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**"])

    def __init__(self, **kw: Any):
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, **kw)
        self._local = threading.local()

    def _tick(self) -> None:
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise SecurityError(f"took longer than {MAX_SECONDS:g} s to render")

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        self._tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int) \
                        and len(seq) * n > MAX_CHARS:
                    raise SecurityError(f"repetition to {len(seq) * n:,} items "
                                        f"(limit {MAX_CHARS:,})")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
                and right > 0 and right * math.log2(abs(left)) > MAX_POWER_BITS:
            raise SecurityError(f"{left} ** {right} is too large")
        return super().call_binop(context, operator, left, right)

    def call(self, __context, __obj, *args: Any, **kwargs: Any) -> Any:
        self._tick()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._tick()
        return super().getitem(obj, argument)

    def render(self, template, variables: dict[str, Any]) -> str:
        """``template.render(**variables)`` within MAX_SECONDS and MAX_CHARS."""
        self._local.deadline = time.monotonic() + MAX_SECONDS
        parts: list[str] = []
        size = 0
        try:
            for piece in template.generate(**variables):
                size += len(piece)
                if size > MAX_CHARS:
                    raise SecurityError(f"output is longer than {MAX_CHARS:,} characters")
                self._tick()
                parts.append(piece)
        finally:
            self._local.deadline = None
        return "".join(parts)
