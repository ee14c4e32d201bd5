"""The ``python`` scorer: a user's function ``package.module:function`` (or ``/path/file.py:function``)
as a check. The function gets the output text, the case and the sample, plus the scorer's
``args`` as keyword arguments, and returns a bool, a number in [0, 1], a ``(score, reason)``
pair, a dict ``{score, reason}`` (or ``{pass, reason}``), or a ``Score``. It may be ``async``."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from replaygate.errors import ConfigError
from replaygate.model import Case, Sample, Score
from replaygate.scoring.base import Outcome, Scorer, ScoringContext, ScorerFailure, output_text
from replaygate.scoring.registry import register


def load_function(ref: str, where: str) -> Callable:
    """Import ``pkg.mod:fn`` (from sys.path) or ``/abs/file.py:fn`` (loaded as a module)."""
    mod_name, sep, fn_name = ref.rpartition(":")
    if not sep or not mod_name or not fn_name:
        raise ConfigError(f"expected `module:function` or `file.py:function`, got {ref!r}", field=where)
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise ConfigError(f"no such file {mod_name!r}", field=where)
            unique = f"replaygate_user_scorer_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(unique, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ConfigError:
        raise
    except Exception as exc:  # the user's module failed to import: say which and why
        raise ConfigError(f"cannot import {mod_name!r}: {type(exc).__name__}: {exc}", field=where) from exc
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"{mod_name!r} has no function {fn_name!r}", field=where)
    return fn


def to_outcome(result: Any) -> Outcome:
    """Accept the small set of return shapes documented above; anything else is an error."""
    if isinstance(result, Score):
        if result.score is None:
            raise ScorerFailure(result.error.message if result.error else "custom scorer gave no score")
        return Outcome(result.score, result.reason, result.details)
    if isinstance(result, bool):
        return Outcome(1.0 if result else 0.0, "passed" if result else "failed")
    if isinstance(result, (int, float)):
        return Outcome(float(result), f"{float(result):.3f}")
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], (bool, int, float)):
        return Outcome(float(result[0]), str(result[1]))
    if isinstance(result, dict):
        if "score" in result:
            value = result["score"]
        elif "pass" in result:
            value = 1.0 if result["pass"] else 0.0
        else:
            raise ScorerFailure("custom scorer returned a dict without `score` or `pass`")
        if not isinstance(value, (bool, int, float)):
            raise ScorerFailure(f"custom scorer's score is not a number: {value!r}")
        return Outcome(float(value), str(result.get("reason", "")), result.get("details"))
    raise ScorerFailure(f"custom scorer returned {type(result).__name__}; expected bool, number, "
                        "(score, reason), dict or Score")


@register("python")
class PythonScorer(Scorer):
    """A custom check: ``function: package.module:function`` (imported from the Python path), or
    ``file: path/to/checks.py`` with ``function: fn`` (the config loader makes ``file`` absolute
    against the config's folder), or ``function: /abs/path/checks.py:fn``; called as
    ``fn(output, case, sample, **args)``. Return values: see the module docstring; a number
    outside [0, 1] is clipped, an exception is a scorer error. Default threshold 0.5 (so a
    returned bool passes exactly when True)."""
    params = {"function": {"type": "string", "minLength": 1}, "file": {"type": "string", "minLength": 1},
              "args": {"type": "object"}}
    required = ("function",)
    default_threshold = 0.5

    def setup(self, params: dict) -> None:
        ref = params["function"]
        if "file" in params:
            if ":" in ref:
                raise ConfigError("with `file`, `function` is just the function's name",
                                  field=self.field("function"))
            if not params["file"].endswith(".py"):
                raise ConfigError("`file` must be a .py file", field=self.field("file"))
            if not Path(params["file"]).is_file():
                raise ConfigError(f"no such file {params['file']!r}", field=self.field("file"))
            ref = f"{params['file']}:{ref}"
        self.fn = load_function(ref, self.field("function"))
        self.args = dict(params.get("args", {}))
        self.is_async = inspect.iscoroutinefunction(self.fn)

    def check(self, case: Case, sample: Sample) -> Outcome:
        if self.is_async:
            raise ScorerFailure("async custom scorer called synchronously; use score_results")
        return to_outcome(self.fn(output_text(sample), case, sample, **self.args))

    async def acheck(self, case: Case, sample: Sample, ctx: ScoringContext) -> Outcome:
        result = self.fn(output_text(sample), case, sample, **self.args)
        if inspect.isawaitable(result):
            result = await result
        return to_outcome(result)
