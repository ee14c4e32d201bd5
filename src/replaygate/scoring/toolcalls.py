"""The ``tool_call`` scorer: the candidate's tool calls against expected ones (a literal, the
case's reference, or the calls recorded in production), exact or F1."""
from __future__ import annotations

import json
from typing import Any

from replaygate.errors import ConfigError
from replaygate.model import Case, Sample, ToolCall
from replaygate.scoring.base import Outcome, Scorer, ScorerFailure
from replaygate.scoring.registry import register
from replaygate.scoring.textutil import json_equal

_CALL = {"type": "object", "required": ["name"], "additionalProperties": False,
         "properties": {"name": {"type": "string", "minLength": 1},
                        "arguments": {"type": ["object", "string"]}}}
_NO_ARGS = object()  # an expected call that does not constrain its arguments
_BAD_ARGS = object()  # the model's arguments were not valid JSON


def _args(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _BAD_ARGS
    return raw


def is_subset(want: Any, got: Any) -> bool:
    """Every key of ``want`` is in ``got`` with a matching value, recursively into objects;
    lists must match element by element (each element by the subset rule)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and is_subset(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return (isinstance(got, list) and len(want) == len(got)
                and all(is_subset(w, g) for w, g in zip(want, got)))
    return json_equal(want, got)


def _expected_calls(raw: list[dict] | dict) -> list[tuple[str, Any]]:
    calls = raw if isinstance(raw, list) else [raw]
    out = []
    for c in calls:
        if isinstance(c, ToolCall):
            out.append((c.name, _args(c.arguments)))
            continue
        args = _args(c["arguments"]) if "arguments" in c else _NO_ARGS
        if args is _BAD_ARGS:
            raise ValueError(f"arguments of expected call {c['name']!r} are not valid JSON")
        out.append((c["name"], args))
    return out


def _looks_like_calls(ref: Any) -> bool:
    items = ref if isinstance(ref, list) else [ref]
    return bool(items) and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in items)


def _bipartite_max(n_exp: int, n_got: int, ok) -> int:
    """Size of a maximum matching (augmenting paths; call lists are short)."""
    owner = [-1] * n_got

    def augment(i: int, seen: list[bool]) -> bool:
        for j in range(n_got):
            if ok(i, j) and not seen[j]:
                seen[j] = True
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, [False] * n_got) for i in range(n_exp))


def _lcs(n_exp: int, n_got: int, ok) -> int:
    table = [[0] * (n_got + 1) for _ in range(n_exp + 1)]
    for i in range(n_exp):
        for j in range(n_got):
            table[i + 1][j + 1] = (table[i][j] + 1 if ok(i, j)
                                   else max(table[i][j + 1], table[i + 1][j]))
    return table[n_exp][n_got]


@register("tool_call")
class ToolCallScorer(Scorer):
    """The candidate's tool calls against the expected ones: ``value`` (a call or a list of
    ``{name, arguments}``), else ``against: recorded`` / the case's reference when it is a list of
    calls / the calls recorded in production (``Case.recorded.tool_calls``). Arguments compare as
    JSON (nested objects and lists; 1 = 1.0): ``arguments: exact`` (default), ``subset`` (the
    expected keys, recursively) or ``ignore`` (names only); an expected call given without
    ``arguments`` accepts any. ``ordered: true`` compares sequences (else multisets).
    ``mode: f1`` (default) scores the F1 of matched calls; ``mode: exact`` scores 1 only when
    every call matches and none is extra. Expecting no calls and making none scores 1. Default
    threshold 1.0."""
    params = {"value": {"anyOf": [_CALL, {"type": "array", "items": _CALL}]},
              "against": {"enum": ["recorded", "reference"]},
              "mode": {"enum": ["f1", "exact"]},
              "arguments": {"enum": ["exact", "subset", "ignore"]},
              "ordered": {"type": "boolean"}}

    def setup(self, params: dict) -> None:
        self.mode = params.get("mode", "f1")
        self.arg_rule = params.get("arguments", "exact")
        self.ordered = bool(params.get("ordered", False))
        self.against = params.get("against")
        if "value" in params and self.against:
            raise ConfigError("give `value` or `against`, not both", field=self.field("against"))
        self.literal = None
        if "value" in params:
            try:
                self.literal = _expected_calls(params["value"])
            except ValueError as exc:
                raise ConfigError(str(exc), field=self.field("value")) from exc

    def expected_calls(self, case: Case) -> tuple[list[tuple[str, Any]], str]:
        if self.literal is not None:
            return self.literal, "value"
        recorded = case.recorded.tool_calls if case.recorded is not None else None
        if self.against == "recorded" or (self.against is None and not _looks_like_calls(case.reference)
                                         and case.recorded is not None):
            if case.recorded is None:
                raise ScorerFailure("the case has no recorded production call to compare with")
            return _expected_calls(recorded), "recorded"
        if not _looks_like_calls(case.reference):
            raise ScorerFailure("no expected tool calls: set `value`, or give the case an `expected` "
                                "list of {name, arguments}, or a recorded call")
        try:
            return _expected_calls(case.reference), "reference"
        except (ValueError, KeyError) as exc:
            raise ScorerFailure(f"expected tool calls in the reference are malformed: {exc}") from exc

    def matches(self, want: tuple[str, Any], got: tuple[str, Any]) -> bool:
        if want[0] != got[0]:
            return False
        if self.arg_rule == "ignore" or want[1] is _NO_ARGS:
            return True
        if got[1] is _BAD_ARGS:
            return False
        return json_equal(want[1], got[1]) if self.arg_rule == "exact" else is_subset(want[1], got[1])

    def check(self, case: Case, sample: Sample) -> Outcome:
        want, source = self.expected_calls(case)
        got = [(t.name, _args(t.arguments)) for t in sample.tool_calls]
        if not want and not got:
            return Outcome(1.0, f"no tool calls expected ({source}) and none made")

        def ok(i: int, j: int) -> bool:
            return self.matches(want[i], got[j])

        matched = (_lcs if self.ordered else _bipartite_max)(len(want), len(got), ok)
        precision = matched / len(got) if got else 0.0
        recall = matched / len(want) if want else 0.0
        f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
        exact = matched == len(want) == len(got)
        details = {"expected": len(want), "made": len(got), "matched": matched,
                   "precision": precision, "recall": recall, "f1": f1,
                   "bad_arguments": sum(1 for _, a in got if a is _BAD_ARGS)}
        reason = (f"{matched}/{len(want)} expected calls ({source}) matched, {len(got)} made"
                  f"; expected {', '.join(n for n, _ in want) or 'none'}"
                  f"; made {', '.join(n for n, _ in got) or 'none'}")
        if details["bad_arguments"]:
            reason += f"; {details['bad_arguments']} with invalid JSON arguments"
        score = f1 if self.mode == "f1" else float(exact)
        return Outcome(score, reason, details)
