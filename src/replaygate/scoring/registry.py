"""Scorer registry: ``@register("contains")`` on a Scorer subclass, ``build_scorers(specs)`` from
the config's ``scorers:`` list with each entry validated against its type's schema."""
from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Callable

from replaygate.errors import ConfigError, did_you_mean
from replaygate.scoring.base import COMMON_PARAMS, Scorer

_REGISTRY: dict[str, type[Scorer]] = {}
_BUILTIN_MODULES = ("text", "pii", "jsonscorers", "toolcalls", "similarity", "custom", "judge",
                    "pairwise")
_builtins_loaded = False


def register(type_name: str) -> Callable[[type[Scorer]], type[Scorer]]:
    def deco(cls: type[Scorer]) -> type[Scorer]:
        if type_name in _REGISTRY and _REGISTRY[type_name] is not cls:
            raise ValueError(f"scorer type {type_name!r} registered twice")
        cls.type = type_name
        _REGISTRY[type_name] = cls
        return cls
    return deco


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for mod in _BUILTIN_MODULES:
            importlib.import_module(f"replaygate.scoring.{mod}")
        _builtins_loaded = True


def scorer_types() -> dict[str, type[Scorer]]:
    _load_builtins()
    return dict(_REGISTRY)


def spec_schema(cls: type[Scorer]) -> dict:
    """The JSON Schema of one scorer entry of this type (common keys + the type's own)."""
    return {
        "type": "object",
        "properties": {**COMMON_PARAMS, **cls.params},
        "required": ["type", *cls.required],
        "additionalProperties": False,
    }


@lru_cache(maxsize=None)
def _fast_validator(cls: type[Scorer]):
    import jsonschema_rs

    return jsonschema_rs.validator_for(spec_schema(cls))


def _validate(spec: dict, cls: type[Scorer], where: str) -> None:
    # a valid entry is accepted by the compiled validator (no import of jsonschema, a tenth of a
    # second of start-up); an invalid one is walked by jsonschema for its paths and messages
    try:
        if _fast_validator(cls).is_valid(spec):
            return
    except (ValueError, TypeError, OverflowError):  # a value it cannot read (a YAML date)
        pass
    import jsonschema

    validator = jsonschema.Draft202012Validator(spec_schema(cls))
    errors = sorted(validator.iter_errors(spec), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    err = errors[0]
    if err.validator == "additionalProperties":
        extra = sorted(set(spec) - set(spec_schema(cls)["properties"]))
        known = ", ".join(sorted(cls.params)) or "none"
        hint = did_you_mean(extra[0], spec_schema(cls)["properties"])
        raise ConfigError(f"unknown key {extra[0]!r} for scorer type {cls.type!r}{hint} "
                          f"(its own keys: {known})", field=f"{where}.{extra[0]}")
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else "?"
        raise ConfigError(f"scorer type {cls.type!r} needs `{missing}`", field=f"{where}.{missing}")
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    raise ConfigError(err.message, field=f"{where}{path}")


def build_scorer(spec: dict, where: str = "scorer") -> Scorer:
    _load_builtins()
    if not isinstance(spec, dict):
        raise ConfigError("a scorer must be a mapping with at least `type`", field=where)
    type_name = spec.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise ConfigError("missing scorer `type`", field=f"{where}.type")
    cls = _REGISTRY.get(type_name)
    if cls is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown scorer type {type_name!r}{did_you_mean(type_name, _REGISTRY)} (known: {known})",
                          field=f"{where}.type")
    _validate(spec, cls, where)
    return cls(spec, where)


def build_scorers(specs: list[dict] | None) -> list[Scorer]:
    """Scorers from the config's ``scorers:`` entries (paths already absolute). Raises ConfigError
    with ``field="scorers[i].key"`` on an unknown type, a bad or unknown key, a duplicate name."""
    scorers: list[Scorer] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs or []):
        where = f"scorers[{i}]"
        scorer = build_scorer(spec, where)
        if scorer.name in seen:
            raise ConfigError(f"duplicate scorer name {scorer.name!r} (also scorers[{seen[scorer.name]}]);"
                              " give each a distinct `name`", field=f"{where}.name")
        seen[scorer.name] = i
        scorers.append(scorer)
    return scorers


def scorer_reference() -> str:
    """Markdown reference of every registered scorer type: its keys and its docstring (which
    states the default threshold), for `docs/` and for a CLI listing."""
    import inspect
    lines = ["| type | own keys | what it checks |", "| --- | --- | --- |"]
    for name, cls in sorted(scorer_types().items()):
        doc = " ".join(inspect.cleandoc(cls.__doc__ or "").split()).replace("``", "`")
        keys = ", ".join(f"`{k}`" + ("*" if k in cls.required else "") for k in cls.params) or "—"
        lines.append(f"| `{name}` | {keys} | {doc.replace('|', '/')} |")
    lines.append("")
    lines.append("Every type also takes `name`, `threshold`, `weight`, `negate`, `informational`; "
                 "* = required.")
    return "\n".join(lines)
