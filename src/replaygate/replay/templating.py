"""Prompt templates rendered in a sandbox with bounds on time and size.

The template is configuration (trusted), but its variables come from the data (a trace's
recorded prompt variables, a golden row's ``vars``): ``{{ 'a' * n }}``, ``{{ 10 ** n }}``,
``{{ '%*s' % (n, x) }}``, ``{{ x|center(n) }}`` or loops over ``range(n)`` with a hostile ``n``
would allocate gigabytes or run for hours, and the per-call timeout does not cover rendering.
Jinja's sandbox already refuses unsafe attributes and ranges over 100,000; on top of it:

- every operation that can make a string or list larger than its inputs is checked before it
  runs and refused past ``MAX_CHARS``: ``*`` (repetition), ``+`` and ``~`` (concatenation), ``%``
  and the ``format`` filter (printf widths and precisions, ``*`` widths included), ``str.format``
  (widths in format specs, nested ``{:{w}}`` too), the filters ``center``, ``indent``,
  ``replace``, ``join``, ``wordwrap``, ``batch``, ``slice``, ``tojson(indent)``, the global
  ``lipsum`` and the string methods ``ljust``, ``rjust``, ``center``, ``zfill``, ``expandtabs``,
  ``replace``, ``join`` and growing a list (``append``, ``extend``, ...); ``**`` with a result
  over ``MAX_POWER_BITS`` is refused too;
- the output is produced piece by piece and refused past ``MAX_CHARS`` characters;
- rendering stops after ``MAX_SECONDS``, checked at each output piece, loop iteration (a loop
  that emits nothing included), call, attribute or item lookup and operator;
- runaway recursion (a macro calling itself) is refused, not a crash.
A refused render is a ``SecurityError`` (a Jinja ``TemplateError``): the case is reported as
unreplayable (an ``UnreplayableCase`` error sample naming the case and the limit), the run goes
on.
"""
from __future__ import annotations

import functools
import math
import re
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import str_join
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter

MAX_CHARS = 1_000_000  # a rendered prompt (about 250k tokens: beyond any context window)
MAX_POWER_BITS = 4096
MAX_SECONDS = 2.0
MAX_JSON_INDENT = 100  # tojson(indent=...): repeated on every line, at every depth

# printf conversions: flags, width (digits or *), precision (digits or *)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")
_DIGITS = re.compile(r"\d+")


def _refuse(what: str, size: float) -> None:
    if size > MAX_CHARS:
        raise SecurityError(f"{what} would make {int(size):,} characters or items (limit {MAX_CHARS:,})")


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else 10 ** 18  # no 4,300-digit int() to refuse


def _width(value: Any) -> int:
    """A width argument as Jinja's filters read it (a string indent counts its length)."""
    if isinstance(value, str):
        return len(value)
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def check_printf(fmt: str, args: Any) -> None:
    """``fmt % args``: refuse widths and precisions (``*`` taken from ``args``) that add up to
    more than MAX_CHARS, before Python allocates them."""
    values = list(args) if isinstance(args, tuple) else [args]
    total = 0
    for m in _PRINTF.finditer(fmt):
        for part in (m.group(1), m.group(2)):
            if not part:
                continue
            if part == "*":
                n = values.pop(0) if values else 0
                total += abs(n) if isinstance(n, int) else 0
            else:
                total += _number(part)
        if m.group(3) != "%" and values:
            values.pop(0)
    _refuse("a % format", total)


def check_spec(spec: str) -> int:
    """The width or precision a ``str.format`` spec asks for (the largest number in it)."""
    return max((_number(d) for d in _DIGITS.findall(spec)), default=0)


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, each field's width and the whole result bounded."""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._made = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        _refuse("a format spec", self._made + check_spec(format_spec))
        out = super().format_field(value, format_spec)
        self._made += len(out)
        _refuse("str.format", self._made)
        return out


def _estimate_filter(name: str, args: tuple, kwargs: dict) -> float:
    """Characters (or items) a filter call can produce, before it runs; 0 when not amplifying."""
    def arg(i: int, key: str, default: Any) -> Any:
        return args[i] if len(args) > i else kwargs.get(key, default)

    value = str(args[0]) if args and name in ("indent", "replace", "wordwrap") else ""
    if name == "center":
        return _width(arg(1, "width", 80))
    if name == "indent":
        return len(value) + (value.count("\n") + 1) * _width(arg(1, "width", 4))
    if name == "replace":
        old, new, count = str(arg(1, "old", "")), str(arg(2, "new", "")), arg(3, "count", None)
        hits = value.count(old)
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        return len(value) + hits * len(new)
    if name == "wordwrap":
        width = max(1, _width(arg(1, "width", 79)))
        return len(value) + (len(value) // width + 1) * len(str(arg(3, "wrapstring", None) or "\n"))
    if name == "batch":
        return _width(arg(1, "linecount", 0))
    if name == "slice":
        return _width(arg(1, "slices", 0))
    if name == "format" and args and isinstance(args[0], str):
        check_printf(args[0], tuple(args[1:]) or kwargs)
    if name == "tojson" and _width(arg(1, "indent", None) or 0) > MAX_JSON_INDENT:
        raise SecurityError(f"tojson indent over {MAX_JSON_INDENT}")
    return 0


_AMPLIFYING_FILTERS = ("center", "indent", "replace", "wordwrap", "batch", "slice", "format", "tojson", "join")


def _bounded_filter(name: str, f: Callable) -> Callable:
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0  # context / eval_ctx / env

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) > skip:  # the items, once: a generator cannot be read twice
            items = list(args[skip])
            sep = args[skip + 1] if len(args) > skip + 1 else kwargs.get("d", "")
            _refuse("join", len(str(sep)) * max(0, len(items) - 1))
            args = (*args[:skip], items, *args[skip + 1:])
        else:
            _refuse(name, _estimate_filter(name, args[skip:], kwargs))
        return f(*args, **kwargs)

    return wrapper


def _estimate_method(obj: Any, name: str, args: tuple) -> float:
    """Characters (items) a str method, or a list/dict/set growing method, would leave."""
    if isinstance(obj, str):
        if name in ("ljust", "rjust", "center", "zfill") and args:
            return _width(args[0])
        if name == "expandtabs":
            return len(obj) + obj.count("\t") * _width(args[0] if args else 8)
        if name == "replace" and len(args) >= 2:
            hits = obj.count(str(args[0]))
            if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
                hits = min(hits, args[2])
            return len(obj) + hits * len(str(args[1]))
        return 0
    if isinstance(obj, (list, dict, set)):
        if name in ("append", "add", "insert", "setdefault"):
            return len(obj) + 1
        if name in ("extend", "update") and args:
            try:
                return len(obj) + len(args[0])
            except TypeError:
                return len(obj)
    return 0


class BoundedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self, **kw: Any):
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, **kw)
        self._local = threading.local()
        for name in _AMPLIFYING_FILTERS:
            self.filters[name] = _bounded_filter(name, self.filters[name])
        lipsum = self.globals["lipsum"]

        def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
            _refuse("lipsum", _width(n) * _width(max) * 12)  # words of up to ~12 characters
            return lipsum(n, html, min, max)

        self.globals["lipsum"] = bounded_lipsum

    def _tick(self) -> None:
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise SecurityError(f"took longer than {MAX_SECONDS:g} s to render")

    # ------------------------------------------------------------ checks compiled into templates
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then route every loop's items and every ``~`` through the bounded helpers
        below: a loop that emits nothing still ticks the clock, a doubling ``~`` is refused."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.EnvironmentAttribute("bounded_iter"), [loop.iter], [], None, None,
                                   lineno=loop.lineno)
        for parent in tree.find_all(nodes.Node):
            for field, value in parent.iter_fields():
                if isinstance(value, nodes.Concat):
                    setattr(parent, field, self._concat_call(value))
                elif isinstance(value, list):
                    value[:] = [self._concat_call(v) if isinstance(v, nodes.Concat) else v for v in value]
        return tree

    @staticmethod
    def _concat_call(node: nodes.Concat) -> nodes.Call:
        return nodes.Call(nodes.EnvironmentAttribute("bounded_concat"), list(node.nodes), [], None, None,
                          lineno=node.lineno)

    def bounded_iter(self, items: Iterable) -> Iterator:
        for i, item in enumerate(items):
            if not i & 255:
                self._tick()
            yield item

    def bounded_concat(self, *parts: Any) -> str:
        parts_s = [p if isinstance(p, str) else str(p) for p in parts]
        _refuse("~", sum(map(len, parts_s)))
        return str_join(parts_s)

    # ------------------------------------------------------------ the sandbox's hooks
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
        if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            _refuse("+", len(left) + len(right))
        if operator == "%" and isinstance(left, str):
            check_printf(left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` / ``format_map`` of a string, through the bounded formatter."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        formatter = _BoundedFormatter(self)
        text, kind = value.__self__, value.__name__

        def bounded(*args: Any, **kwargs: Any) -> str:
            if kind == "format_map":
                return wrapped(*args, **kwargs) if len(args) != 1 or kwargs else \
                    type(text)(formatter.vformat(text, (), args[0]))
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(bounded, value)

    def call(self, __context, __obj, *args: Any, **kwargs: Any) -> Any:
        self._tick()
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        if owner is not None:
            if isinstance(owner, str) and name == "join" and args:  # the items, once
                items = list(args[0])
                _refuse("join", len(owner) * max(0, len(items) - 1))
                args = (items, *args[1:])
            else:
                _refuse(f".{name}()", _estimate_method(owner, name, args))
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
        except RecursionError:  # a macro calling itself with the data's depth
            raise SecurityError("recursion too deep (a macro calling itself?)") from None
        finally:
            self._local.deadline = None
        return "".join(parts)
