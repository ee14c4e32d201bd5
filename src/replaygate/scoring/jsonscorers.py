"""JSON scorers: json_valid, json_schema (inline or file), json_field (a path's value)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from replaygate.errors import ConfigError
from replaygate.model import Case, Sample
from replaygate.scoring.base import AGAINST, Outcome, Scorer, output_text
from replaygate.scoring.registry import register
from replaygate.scoring.textutil import as_text, clip, json_equal

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_STRIP_FENCES = {"strip_fences": {"type": "boolean"}}


def parse_json(text: str, strip_fences: bool = False) -> Any:
    """Parse the output as JSON; with ``strip_fences`` a Markdown code fence around it is removed
    first. Raises ValueError with the position of the problem."""
    if strip_fences:
        m = _FENCE.match(text)
        if m:
            text = m.group(1)
    return json.loads(text)


class _JsonOutput(Scorer):
    params = dict(_STRIP_FENCES)

    def setup(self, params: dict) -> None:
        self.strip_fences = bool(params.get("strip_fences", False))

    def parsed(self, sample: Sample) -> tuple[Any, str | None]:
        """(value, None) or (None, why the output is not JSON)."""
        text = output_text(sample)
        if not text.strip():
            return None, "empty output is not JSON"
        try:
            return parse_json(text, self.strip_fences), None
        except ValueError as exc:
            return None, f"invalid JSON: {exc}"


@register("json_valid")
class JsonValid(_JsonOutput):
    """The output parses as JSON (``strip_fences: true`` accepts a ```json fenced block).
    Score 1 or 0; default threshold 1.0."""

    def check(self, case: Case, sample: Sample) -> Outcome:
        _, problem = self.parsed(sample)
        return Outcome(0.0, problem) if problem else Outcome(1.0, "valid JSON")


def load_schema(value: Any, where: str) -> dict:
    if isinstance(value, dict):
        schema = value
    else:
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read JSON Schema file {str(path)!r}: {exc.strerror}",
                              field=where) from exc
        import yaml  # JSON is YAML; a schema may be written in either
        try:
            schema = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid JSON/YAML: {exc}", field=where) from exc
        if not isinstance(schema, dict):
            raise ConfigError(f"{path}: a JSON Schema must be an object", field=where)
    import jsonschema  # here, not at the top: only a json_schema scorer needs it

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON Schema: {exc.message}", field=where) from exc
    return schema


@register("json_schema")
class JsonSchema(_JsonOutput):
    """The output is JSON valid against ``schema`` (an inline mapping, or a path to a .json /
    .yaml file: the config loader makes it absolute). Score 1 or 0; the reason names the first
    violation and its location. Default threshold 1.0."""
    params = {"schema": {"type": ["object", "string"]}, **_STRIP_FENCES}
    required = ("schema",)

    def setup(self, params: dict) -> None:
        super().setup(params)
        import jsonschema

        schema = load_schema(params["schema"], self.field("schema"))
        self.validator = jsonschema.validators.validator_for(schema)(schema)

    def check(self, case: Case, sample: Sample) -> Outcome:
        value, problem = self.parsed(sample)
        if problem:
            return Outcome(0.0, problem)
        errors = sorted(self.validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
        if not errors:
            return Outcome(1.0, "matches schema")
        err = errors[0]
        where = "/".join(map(str, err.absolute_path)) or "(root)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return Outcome(0.0, f"{where}: {clip(err.message, 120)}{more}")


_PATH_TOKEN = re.compile(r"""\[(-?\d+)\]|\[["'](.+?)["']\]|\.?([^.\[\]]+)""")


def parse_path(path: str) -> list[str | int]:
    """``a.b[0].c``, ``$.a.b``, ``items[-1]``, ``["key with.dot"]`` -> list of keys and indexes."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse path at {path[pos:]!r}")
        idx, quoted, key = m.groups()
        parts.append(int(idx) if idx is not None else (quoted if quoted is not None else key))
        pos = m.end()
    return parts


_MISSING = object()


def get_path(value: Any, parts: list[str | int]) -> Any:
    for p in parts:
        if isinstance(p, int) and isinstance(value, list) and -len(value) <= p < len(value):
            value = value[p]
        elif isinstance(p, str) and isinstance(value, dict) and p in value:
            value = value[p]
        else:
            return _MISSING
    return value


@register("json_field")
class JsonField(_JsonOutput):
    """The output is JSON and the value at ``path`` (``a.b[0].c``) equals ``value`` (any JSON
    value), or matches the regex ``matches``, or else equals the case's reference: when the
    reference is itself a JSON object (or JSON text of one) the same path is read from it.
    A string expected value also equals a number or boolean with that JSON text ("42" = 42).
    Score 1 or 0; default threshold 1.0."""
    params = {**AGAINST, "path": {"type": "string", "minLength": 1}, "value": {},
              "matches": {"type": "string"}, **_STRIP_FENCES}
    required = ("path",)

    def setup(self, params: dict) -> None:
        super().setup(params)
        try:
            self.parts = parse_path(params["path"])
        except ValueError as exc:
            raise ConfigError(str(exc), field=self.field("path")) from exc
        self.path = params["path"]
        self.regex = None
        if "matches" in params:
            if "value" in params:
                raise ConfigError("give `value` or `matches`, not both", field=self.field("matches"))
            try:
                self.regex = re.compile(params["matches"])
            except re.error as exc:
                raise ConfigError(f"invalid regular expression: {exc}",
                                  field=self.field("matches")) from exc

    def want(self, case: Case) -> Any:
        if "value" in self.spec:
            return self.spec["value"]
        ref = self.expected(case)
        if isinstance(ref, str):
            try:
                ref = json.loads(ref)
            except ValueError:
                return ref
        if isinstance(ref, (dict, list)):
            at = get_path(ref, self.parts)
            if at is not _MISSING:
                return at
        return ref

    def check(self, case: Case, sample: Sample) -> Outcome:
        value, problem = self.parsed(sample)
        if problem:
            return Outcome(0.0, problem)
        got = get_path(value, self.parts)
        if got is _MISSING:
            return Outcome(0.0, f"{self.path}: not present")
        if self.regex is not None:
            ok = self.regex.search(as_text(got)) is not None
            return Outcome(1.0 if ok else 0.0,
                           f"{self.path}={clip(as_text(got), 60)!r} "
                           f"{'matches' if ok else 'does not match'} /{self.regex.pattern}/")
        want = self.want(case)
        if json_equal(got, want) or (
                isinstance(want, str) and not isinstance(got, str) and as_text(got) == want):
            return Outcome(1.0, f"{self.path} = {clip(as_text(got), 60)}")
        return Outcome(0.0, f"{self.path}: expected {clip(as_text(want), 60)}, "
                            f"got {clip(as_text(got), 60)}")
