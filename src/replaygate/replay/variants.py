"""How a variant turns a Case into a Sample.

Kinds (the dict shapes of docs/architecture.md, paths already absolute):

- ``model``: a litellm call. ``request(case)`` builds the request dict of ``llm.py``: the case's
  messages (OpenAI form), tools, recorded params (except ``model``) overridden by the variant's
  ``params``; ``prompt.system`` (a file or ``git:REF:path``) replaces the first system message or
  is inserted first; ``prompt.template`` (Jinja2, sandboxed, StrictUndefined, bounded in time
  and size: ``templating.py``) is rendered with ``case.vars`` and replaces the last user message
  (a case lacking a variable, or whose render is refused, is ``UnreplayableCase``, never guessed).
- ``recorded``: the output stored in the trace (no call).
- ``run``: the samples of a stored run file, by case id (no call).
- ``callable``: ``module:function(case)`` from the user's code, sync or async; returns a str or a
  dict with ``output``, ``tool_calls``, ``usage`` (``input_tokens``/``output_tokens``/
  ``cached_tokens`` or the OpenAI names), ``usage_source`` ("estimated" when the pipeline counted
  tokens itself), ``cost_usd``, ``context``.
"""
from __future__ import annotations

import asyncio
import copy
import importlib
import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..model import CASE_PARAMS, Case, CaseResult, ErrorInfo, Sample, ToolCall


class UnreplayableCase(Exception):
    """The case lacks what this variant needs (e.g. a template variable)."""


def error_sample(repeat: int, etype: str, message: str) -> Sample:
    return Sample(repeat=repeat, error=ErrorInfo(type=etype, message=message[:1000]))


def _read_prompt(spec: str, variant: dict, key: str) -> str:
    fld = f"variants.{variant['name']}.prompt.{key}"
    if spec.startswith("git:"):
        from ..vcs import read_at_ref

        try:
            return read_at_ref(spec, variant.get("base_dir"))
        except ValueError as e:
            raise ConfigError(str(e), field=fld) from None
    try:
        return Path(spec).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read prompt file: {e}", file=spec, field=fld) from None


def _compile_template(source: str, variant: dict):
    from jinja2 import TemplateSyntaxError

    from .templating import BoundedSandbox

    env = BoundedSandbox()
    try:
        return env.from_string(source)
    except TemplateSyntaxError as e:
        raise ConfigError(f"template syntax error: {e.message}", file=variant["prompt"]["template"],
                          line=e.lineno, field=f"variants.{variant['name']}.prompt.template") from None


@dataclass
class ModelVariant:
    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    template: Any = None  # a compiled jinja2 Template
    stream: bool = False
    price: dict | None = None
    transport: str = "auto"  # auto | litellm | direct (transport.py)
    kind: str = "model"

    def request(self, case: Case) -> dict:
        messages = [m.to_openai() for m in case.messages]
        if self.template is not None:
            messages = self._render(case, messages)
        if self.system is not None:
            if messages and messages[0]["role"] == "system":
                messages[0] = {**messages[0], "content": self.system}
            else:
                messages.insert(0, {"role": "system", "content": self.system})
        # only sampling parameters come from the case (data); the variant's own params (config) win
        params = {k: v for k, v in case.params.items()
                  if k in CASE_PARAMS and k not in ("model", "stream", "stream_options")}
        params.update(self.params)
        req = {"model": self.model, "messages": messages, "tools": list(case.tools),
               "params": {k: v for k, v in params.items() if v is not None},
               "api_base": self.api_base, "api_key_env": self.api_key_env}
        if self.stream:
            req["stream"] = True
        if self.transport != "auto":
            req["transport"] = self.transport  # how it is sent, not what: not in the cache key
        return req

    def uses_litellm(self) -> bool:
        """Whether this variant's calls go through litellm (else the direct HTTP path)."""
        from .transport import transport_for

        return transport_for({"model": self.model, "api_base": self.api_base, "params": self.params,
                              "transport": self.transport}) == "litellm"

    def _render(self, case: Case, messages: list[dict]) -> list[dict]:
        from jinja2 import TemplateError

        try:
            text = self.template.environment.render(self.template, case.vars)  # bounded
        except TemplateError as e:  # UndefinedError included: a missing variable is not guessed
            raise UnreplayableCase(f"prompt template: {e}") from None
        for i in range(len(messages) - 1, -1, -1):
            if messages[i]["role"] == "user":
                messages[i] = {**messages[i], "content": text}
                return messages
        return messages + [{"role": "user", "content": text}]


@dataclass
class RecordedVariant:
    name: str
    price: dict | None = None
    kind: str = "recorded"

    def sample(self, case: Case) -> Sample:
        rec = case.recorded
        if rec is None or (rec.output is None and not rec.tool_calls and rec.error is None):
            return error_sample(0, "NoRecordedOutput", f"case {case.id} has no recorded output")
        return Sample(repeat=0, output=rec.output, tool_calls=copy.deepcopy(rec.tool_calls),
                      finish_reason=rec.finish_reason, latency_ms=rec.latency_ms, ttft_ms=rec.ttft_ms,
                      input_tokens=rec.input_tokens, output_tokens=rec.output_tokens,
                      cached_tokens=rec.cached_tokens, cost_usd=rec.cost_usd,
                      usage_source=_usage_source(rec.input_tokens, rec.output_tokens),
                      error=copy.deepcopy(rec.error), provenance="recorded")


@dataclass
class RunVariant:
    name: str
    path: str
    by_id: dict[str, CaseResult]
    kind: str = "run"

    def samples(self, case: Case) -> list[Sample]:
        found = self.by_id.get(case.id)
        if found is None:
            return [error_sample(0, "MissingInRun", f"case {case.id} is not in {self.path}")]
        out = []
        for s in found.samples:
            s = copy.deepcopy(s)
            s.scores = {}  # scored again with this config's scorers
            out.append(s)
        return out or [error_sample(0, "MissingInRun", f"case {case.id} has no sample in {self.path}")]


@dataclass
class CallableVariant:
    name: str
    target: str
    fn: Callable[..., Any]
    price: dict | None = None
    kind: str = "callable"

    async def call(self, case: Case, repeat: int, executor=None) -> Sample:
        start = time.perf_counter()
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await self.fn(case)
            else:
                # the user's sync pipeline must not block the event loop; the engine passes an
                # executor as wide as its concurrency (asyncio's default one has cpus+4 threads)
                result = await asyncio.get_running_loop().run_in_executor(executor, self.fn, case)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as e:  # the user's code failing is a sample error, not a crashed run
            return error_sample(repeat, type(e).__name__, str(e) or type(e).__name__)
        latency = (time.perf_counter() - start) * 1000.0
        try:
            return callable_sample(result, repeat, latency)
        except (TypeError, ValueError) as e:
            return error_sample(repeat, "BadCallableResult", f"{self.target}: {e}")


def _tool_call(tc: Any) -> ToolCall:
    if isinstance(tc, ToolCall):
        return tc
    if isinstance(tc, dict):
        fn = tc.get("function") or {}
        args = tc.get("arguments", fn.get("arguments", "{}"))
        return ToolCall(name=tc.get("name") or fn.get("name") or "",
                        arguments=args if isinstance(args, str) else json.dumps(args),
                        id=tc.get("id"))
    raise TypeError(f"a tool call must be a dict, got {type(tc).__name__}")


def _usage_source(inp: Any, out: Any, claimed: Any = None) -> str | None:
    """A trace's or a callable's token counts are the provider's as far as we can tell, unless
    the callable says ``usage_source: estimated``."""
    if inp is None and out is None:
        return None
    return "estimated" if claimed == "estimated" else "reported"


def callable_sample(result: Any, repeat: int, latency_ms: float) -> Sample:
    """A Sample from what a user callable returned: str, or dict (see module docstring)."""
    if isinstance(result, str) or result is None:
        return Sample(repeat=repeat, output=result, latency_ms=latency_ms, finish_reason="stop")
    if not isinstance(result, dict):
        raise TypeError(f"expected str or dict, got {type(result).__name__}")
    usage = result.get("usage") or {}
    out = result.get("output")
    ctx = result.get("context")
    return Sample(
        repeat=repeat, output=None if out is None else str(out),
        tool_calls=[_tool_call(t) for t in result.get("tool_calls") or []],
        finish_reason=result.get("finish_reason", "stop"), latency_ms=latency_ms,
        input_tokens=usage.get("input_tokens", usage.get("prompt_tokens")),
        output_tokens=usage.get("output_tokens", usage.get("completion_tokens")),
        cached_tokens=usage.get("cached_tokens"), cost_usd=result.get("cost_usd"),
        usage_source=_usage_source(usage.get("input_tokens", usage.get("prompt_tokens")),
                                   usage.get("output_tokens", usage.get("completion_tokens")),
                                   result.get("usage_source")),
        context=None if ctx is None else [str(c) for c in (ctx if isinstance(ctx, list) else [ctx])])


def response_sample(resp: dict, repeat: int, *, cached: bool, cached_at: str | None = None) -> Sample:
    """A Sample from the normalised response of ``llm.chat`` (cost filled by the engine); a cache
    hit has provenance ``cache`` and the time it was recorded."""
    return Sample(
        repeat=repeat, output=resp.get("output"),
        tool_calls=[ToolCall(name=t.get("name") or "", arguments=t.get("arguments") or "",
                             id=t.get("id")) for t in resp.get("tool_calls") or []],
        finish_reason=resp.get("finish_reason"), latency_ms=resp.get("latency_ms"),
        ttft_ms=resp.get("ttft_ms"), input_tokens=resp.get("input_tokens"),
        output_tokens=resp.get("output_tokens"), cached_tokens=resp.get("cached_tokens"),
        usage_source=resp.get("usage_source"), cached=cached, provenance="cache" if cached else "live",
        cached_at=cached_at if cached else None)


def _load_callable(target: str, fld: str) -> Callable[..., Any]:
    mod_name, sep, fn_name = target.partition(":")
    if not sep or not mod_name or not fn_name:
        raise ConfigError(f"expected module:function, got {target!r}", field=fld)
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"cannot import {mod_name!r}: {e}", field=fld) from None
    for part in fn_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{mod_name!r} has no attribute {fn_name!r}", field=fld)
    if not callable(obj):
        raise ConfigError(f"{target} is not callable", field=fld)
    return obj


def _load_run(path: str) -> dict[str, CaseResult]:
    from ..runfile import load_run

    return {c.id: c for c in load_run(path).cases}


Variant = ModelVariant | RecordedVariant | RunVariant | CallableVariant


def build_variant(spec: dict) -> Variant:
    """A Variant from its config dict (``name`` added, paths absolute). Bad specs raise
    ConfigError naming the field (``variants.NAME.key``)."""
    name = spec.get("name", "?")
    fld = f"variants.{name}"
    if spec.get("recorded"):
        return RecordedVariant(name=name, price=spec.get("price"))
    if spec.get("run"):
        return RunVariant(name=name, path=spec["run"], by_id=_load_run(spec["run"]))
    if spec.get("callable"):
        return CallableVariant(name=name, target=spec["callable"],
                               fn=_load_callable(spec["callable"], fld + ".callable"),
                               price=spec.get("price"))
    if not spec.get("model"):
        raise ConfigError("a variant needs one of: model, recorded, callable, run", field=fld)
    prompt = spec.get("prompt") or {}
    system = _read_prompt(prompt["system"], spec, "system") if prompt.get("system") else None
    template = None
    if prompt.get("template"):
        template = _compile_template(_read_prompt(prompt["template"], spec, "template"), spec)
    params = dict(spec.get("params") or {})
    params.pop("model", None)
    return ModelVariant(name=name, model=spec["model"], api_base=spec.get("api_base"),
                        api_key_env=spec.get("api_key_env"), params=params, system=system,
                        template=template, stream=bool(spec.get("stream")), price=spec.get("price"),
                        transport=spec.get("transport") or "auto")
