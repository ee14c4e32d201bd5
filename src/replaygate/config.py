"""Load a replaygate.yaml: safe YAML with line marks, JSON Schema validation, path resolution.

Every problem is reported as ``file:line: field: message``; all schema problems are collected,
not just the first, so one `validate` run shows everything to fix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, InputError, did_you_mean
from .yamlsafe import compose_and_load

DEFAULTS: dict[str, Any] = {
    "repeats": 1,
    "concurrency": 16,
    "workers": 1,
    "timeout": 60.0,
    "max_retries": 4,
    "max_retry_wait": 30.0,
    "seed": 0,
    "baseline": "baseline",
    "candidate": "candidate",
    "scorers": [],
    "gates": [],
}
DEFAULT_DECISION = {"mode": "significant", "confidence": 0.95, "holm": True}
DEFAULT_CACHE = ".replaygate/cache.sqlite"


@dataclass
class Config:
    path: Path
    data: dict[str, Any]  # validated, defaults filled, paths absolute
    lines: dict[tuple, int] = field(default_factory=dict)  # JSON path -> 1-based line

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def variant(self, name: str) -> dict[str, Any]:
        variants = self.data["variants"]
        if name not in variants:
            raise ConfigError(f"no variant named {name!r} (the config has: {', '.join(variants)})",
                              file=str(self.path), line=self.lines.get(("variants",)), field="variants")
        # base_dir: where `git:REF:path` prompts look for the repository (the config's folder)
        return {"name": name, **variants[name], "base_dir": str(self.base_dir)}

    @property
    def cache_path(self) -> Path | None:
        c = self.data.get("cache", DEFAULT_CACHE)
        return None if c is False else Path(c)

    def error(self, message: str, path: tuple) -> ConfigError:
        """A ConfigError for a field of this config, with its line."""
        return ConfigError(message, file=str(self.path), line=line_of(self.lines, path),
                           field=format_path(path))


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    text = resources.files("replaygate.schemas").joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def format_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def line_of(lines: dict[tuple, int], path: tuple) -> int | None:
    """Line of the deepest ancestor of `path` that has a mark."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _marks(node: yaml.Node, path: tuple, out: dict[tuple, int], file: str) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for k, v in node.value:
            key = k.value
            if key in seen:
                raise ConfigError(f"duplicate key {key!r}", file=file, line=k.start_mark.line + 1,
                                  field=format_path(path + (key,)))
            seen.add(key)
            out[path + (key,)] = k.start_mark.line + 1
            _marks(v, path + (key,), out, file)
            out[path + (key,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks(item, path + (i,), out, file)


def parse_yaml(text: str, file: str) -> tuple[Any, dict[tuple, int]]:
    """yaml.safe_load plus a map of every field's line number."""
    try:
        node, data = compose_and_load(text, file)  # aliases bounded before anything expands them
    except InputError as e:
        raise ConfigError(e.message, file=e.file, line=e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(f"invalid YAML: {e.problem or e}", file=file,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", file=file) from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _marks(node, (), lines, file)
    return data, lines


def schema_errors(data: Any, schema_name: str) -> list:
    # a valid document (the common case) is accepted by the compiled validator runfile.py uses
    # for the same schemas, without importing jsonschema (a tenth of a second of every command's
    # start-up); an invalid one, or one holding values it cannot read (a YAML date), is walked by
    # jsonschema, whose errors carry the paths and messages the config errors are built from
    from .runfile import _validator

    try:
        if _validator(schema_name).is_valid(data):
            return []
    except (ValueError, TypeError, OverflowError):
        pass
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema(schema_name))
    return sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))


_METRIC_FORMS = ("quality.pass_rate, score.NAME.mean, score.NAME.pass_rate, pairwise.NAME.win_rate, "
                 "latency.mean|p50|p90|p95|p99, ttft.p50|p95, cost.mean|total, "
                 "tokens.input.mean, tokens.output.mean, errors.rate, finish.length.rate")


_KEY_ALIASES = {"api_key": "never put a key in the config: use api_key_env: NAME, the name of the environment "
                           "variable that holds it (e.g. api_key_env: OPENAI_API_KEY)"}


def _friendly(err, path: tuple) -> str | None:
    last = path[-1] if path else None
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        # the offending key is the path's last part (see _err_path); never echo its value
        if last in _KEY_ALIASES:
            return _KEY_ALIASES[last]
        allowed = err.schema.get("properties", {})
        if last in err.instance and last not in allowed:
            return f"unknown key {last!r}{did_you_mean(last, allowed)} (allowed: {', '.join(sorted(allowed))})"
    if last == "api_key_env":
        # never echo the value: people paste the key itself here by mistake
        return ("must be the name of the environment variable that holds the key "
                "(e.g. OPENAI_API_KEY), not the key itself")
    if last == "metric" and err.validator == "pattern":
        return f"unknown metric {err.instance!r}; known metrics: {_METRIC_FORMS}"
    if last in ("max_decrease", "max_increase"):
        return f"{err.instance!r} must be a non-negative number or a percentage such as \"10%\""
    return None


def _explain(err) -> str:
    """A one-line message; for oneOf failures, the most specific sub-error."""
    friendly = _friendly(err, _err_path(err))
    if friendly:
        return friendly
    if err.validator in ("oneOf", "anyOf") and err.context:
        best = max(err.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(err.absolute_path):
            return best.message
        if err.validator == "oneOf" and isinstance(err.instance, dict):
            return f"{err.message.split(' is ')[0]} must match exactly one of the allowed shapes"
    return err.message


def _err_path(err) -> tuple:
    path = tuple(err.absolute_path)
    if err.validator in ("oneOf", "anyOf") and err.context:
        best = max(err.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(path):
            path = tuple(best.absolute_path)
    if err.validator == "additionalProperties":
        # name the offending key, so the line points at it rather than at its parent
        extra = [k for k in err.instance if k not in err.schema.get("properties", {})] \
            if isinstance(err.instance, dict) else []
        if extra:
            path = path + (extra[0],)
    return path


def validate_data(data: Any, lines: dict[tuple, int], file: str) -> list[ConfigError]:
    if not isinstance(data, dict):
        return [ConfigError("a config must be a YAML mapping (see `replaygate init`)", file=file,
                            line=1)]
    problems = []
    for err in schema_errors(data, "config.schema.json"):
        path = _err_path(err)
        problems.append(ConfigError(_explain(err), file=file, line=line_of(lines, path),
                                    field=format_path(path)))
    problems.extend(_semantic_errors(data, lines, file))
    return sorted(problems, key=lambda p: p.line or 0)


def _semantic_errors(data: dict, lines: dict[tuple, int], file: str) -> list[ConfigError]:
    """Checks a JSON Schema cannot express."""
    out = []
    scorers = data.get("scorers") if isinstance(data.get("scorers"), list) else []  # else: a schema error
    names = [s.get("name") for s in scorers if isinstance(s, dict)]
    for i, n in enumerate(names):
        if n is not None and names.index(n) != i:
            out.append(ConfigError(f"duplicate scorer name {n!r}", file=file,
                                   line=line_of(lines, ("scorers", i, "name")),
                                   field=format_path(("scorers", i, "name"))))
    variants = data.get("variants") if isinstance(data.get("variants"), dict) else {}
    from .replay.transport import transport_problem

    for name, v in variants.items():
        problem = transport_problem(v) if isinstance(v, dict) else None
        if problem:
            out.append(ConfigError(problem, file=file, line=line_of(lines, ("variants", name, "transport")),
                                   field=format_path(("variants", name, "transport"))))
    for i, s in enumerate(scorers):
        problem = transport_problem(s) if isinstance(s, dict) else None
        if problem:
            out.append(ConfigError(problem, file=file, line=line_of(lines, ("scorers", i, "transport")),
                                   field=format_path(("scorers", i, "transport"))))
    for role in ("baseline", "candidate"):
        if role in data and isinstance(data[role], str) and data[role] not in variants:  # else: a schema error
            out.append(ConfigError(f"{role} names variant {data[role]!r}{did_you_mean(data[role], variants)}, "
                                   f"which is not defined (variants: {', '.join(variants) or 'none'})",
                                   file=file, line=line_of(lines, (role,)), field=role))
    return out


def _resolve(base: Path, p: str) -> str:
    if p.startswith("git:"):
        return p  # read from a git ref by vcs.py, relative to the repository
    return str((base / Path(p).expanduser()).resolve())


def resolve_paths(data: dict, base: Path) -> None:
    """Make every relative path in the config absolute against the config's folder."""
    for entry in data.get("dataset") or []:
        for key in ("golden", "cases"):
            if key in entry:
                entry[key] = _resolve(base, entry[key])
        if "traces" in entry:
            t = entry["traces"]
            entry["traces"] = [_resolve(base, x) for x in t] if isinstance(t, list) else [_resolve(base, t)]
        if "refs_dir" in entry:
            entry["refs_dir"] = _resolve(base, entry["refs_dir"])
    for v in (data.get("variants") or {}).values():
        if "run" in v:
            v["run"] = _resolve(base, v["run"])
        for k in ("system", "template"):
            if k in v.get("prompt", {}):
                v["prompt"][k] = _resolve(base, v["prompt"][k])
    for s in data.get("scorers") or []:
        for k in ("schema", "file"):
            if isinstance(s.get(k), str):
                s[k] = _resolve(base, s[k])
    cache = data.get("cache", DEFAULT_CACHE)
    if cache is not False:
        data["cache"] = _resolve(base, cache)
    if isinstance(data.get("history"), str):
        data["history"] = _resolve(base, data["history"])


def missing_files(cfg: Config) -> list[ConfigError]:
    """Every dataset, prompt and run file the config names that does not exist."""
    d, out = cfg.data, []
    for i, entry in enumerate(d.get("dataset") or []):
        key = next((k for k in ("golden", "cases", "traces") if k in entry), None)
        if key is None:
            continue
        paths = entry[key] if isinstance(entry[key], list) else [entry[key]]
        for p in paths:
            if not Path(p).exists():
                out.append(cfg.error(f"file not found: {p}", ("dataset", i, key)))
            elif key != "traces" and not Path(p).is_file():  # a FIFO would block the run silently
                out.append(cfg.error(f"not a regular file: {p} (a dataset is read from a file)", ("dataset", i, key)))
        if "refs_dir" in entry and not Path(entry["refs_dir"]).is_dir():
            out.append(cfg.error(f"folder not found: {entry['refs_dir']}", ("dataset", i, "refs_dir")))
    for name, v in (d.get("variants") or {}).items():
        for k in ("system", "template"):
            p = (v.get("prompt") or {}).get(k)
            if isinstance(p, str) and not p.startswith("git:") and not Path(p).is_file():
                out.append(cfg.error(f"file not found: {p}", ("variants", name, "prompt", k)))
        if "run" in v and not Path(v["run"]).is_file():
            out.append(cfg.error(f"file not found: {v['run']}", ("variants", name, "run")))
    return out


def _check_files(cfg: Config) -> None:
    problems = missing_files(cfg)
    if problems:
        raise ConfigProblems(problems)


def load_config(path: str | Path, *, check_files: bool = True) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e}", file=str(path)) from None
    data, lines = parse_yaml(text, str(path))
    problems = validate_data(data, lines, str(path))
    if problems:
        raise ConfigProblems(problems)
    for k, v in DEFAULTS.items():
        data.setdefault(k, v if not isinstance(v, list) else list(v))
    data["decision"] = {**DEFAULT_DECISION, **(data.get("decision") or {})}
    resolve_paths(data, path.resolve().parent)
    cfg = Config(path=path.resolve(), data=data, lines=lines)
    if check_files:
        _check_files(cfg)
    return cfg


class ConfigProblems(ConfigError):
    """Several config problems at once; str() lists them one per line."""

    def __init__(self, problems: list[ConfigError]):
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, file=first.file, line=first.line, field=first.field)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return ConfigError.__str__(self.problems[0])
        lines = "\n".join("  " + ConfigError.__str__(p) for p in self.problems)
        return f"{len(self.problems)} problems in {self.file}:\n{lines}"
