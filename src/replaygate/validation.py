"""`replaygate validate`: every problem of a config in one pass, and what its gates can decide.

Problems (exit 2) are collected, not raised one at a time: schema errors with did-you-mean hints,
missing files, scorers (unknown types, missing keys such as a judge's model), prompts read from
git refs that do not resolve, golden rows that do not parse. Warnings do not fail validation:
variants `gate` would need but the config lacks, and gates the dataset is too small to decide
(`compare.preflight`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .config import DEFAULT_DECISION, DEFAULTS, Config, ConfigProblems, load_config, parse_yaml, resolve_paths
from .errors import ConfigError, InputError, did_you_mean


@dataclass
class Validation:
    problems: list[InputError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cfg: Config | None = None
    n_cases: int | None = None


def _lenient(path) -> Config | None:
    """The config as far as it can be read when the schema rejected it, so the other checks
    still run (each of them tolerates odd shapes)."""
    from pathlib import Path

    p = Path(path)
    try:
        data, lines = parse_yaml(p.read_text(encoding="utf-8"), str(p))
        if not isinstance(data, dict):
            return None
        for k, v in DEFAULTS.items():
            data.setdefault(k, v if not isinstance(v, list) else list(v))
        if not isinstance(data.get("decision"), dict):
            data["decision"] = {}
        data["decision"] = {**DEFAULT_DECISION, **data["decision"]}
        resolve_paths(data, p.resolve().parent)
        return Config(path=p.resolve(), data=data, lines=lines)
    except Exception:  # too broken to look further: the schema problems say why
        return None


def _git_problems(cfg: Config) -> list[ConfigError]:
    from .vcs import read_at_ref

    out = []
    for name, v in (cfg.data.get("variants") or {}).items():
        for k, spec in ((v.get("prompt") or {}) if isinstance(v, dict) else {}).items():
            if isinstance(spec, str) and spec.startswith("git:"):
                try:
                    read_at_ref(spec, cfg.base_dir)
                except ValueError as e:
                    out.append(cfg.error(str(e), ("variants", name, "prompt", k)))
    return out


def _golden_problems(cfg: Config) -> list[InputError]:
    from pathlib import Path

    from .sources.golden import check_golden

    out: list[InputError] = []
    for entry in cfg.data.get("dataset") or []:
        p = entry.get("golden") if isinstance(entry, dict) else None
        if isinstance(p, str) and Path(p).is_file():
            out.extend(check_golden(p)[1])
    return out


def _role_warnings(cfg: Config) -> list[str]:
    variants = cfg.data.get("variants") or {}
    set_here = {k[0] for k in cfg.lines if len(k) == 1}  # top-level keys the file sets
    out = []
    for role in ("baseline", "candidate"):
        name = cfg.data.get(role, role)
        if not isinstance(name, str):  # a schema error, reported as such
            continue
        if isinstance(variants, dict) and variants and name not in variants and role not in set_here:
            out.append(f"no variant named {name!r}{did_you_mean(name, variants)}: `gate` needs one (name a variant "
                       f"{role!r} or set `{role}: NAME`); `run --variant` works without")
    return out


def sensitivity_warnings(cfg: Config, n_cases: int) -> list[str]:
    """The gates `n_cases` cannot decide, each with its config line."""
    from .compare.preflight import gate_sensitivity

    out = []
    for i, text in gate_sensitivity(cfg.data.get("gates") or [], cfg.data.get("decision") or {}, n_cases):
        line = cfg.lines.get(("gates", i))
        out.append(f"{cfg.path}:{line}: {text}" if line else text)
    return out


def validate_config(path) -> Validation:
    """Every problem of the config at ``path`` and the warnings, without calling any model."""
    result = Validation()
    try:
        cfg = load_config(path, check_files=False)
    except ConfigProblems as e:
        result.problems.extend(e.problems)
        cfg = _lenient(path)
    except ConfigError as e:  # unreadable or not YAML: nothing more to look at
        result.problems.append(e)
        return result
    if cfg is None:
        return result
    result.cfg = cfg
    from .config import missing_files
    from .pipeline import build_scorers

    checks = [lambda: missing_files(cfg), lambda: _scorer_problems(cfg, build_scorers), lambda: _git_problems(cfg),
              lambda: _golden_problems(cfg), lambda: _batch_problems(cfg)]
    for check in checks:
        try:
            result.problems.extend(check())
        except (ConfigError, InputError) as e:
            result.problems.append(e)
        except Exception:  # a shape the schema already reported: its check is moot
            if not result.problems:
                raise
    result.warnings.extend(_role_warnings(cfg))
    if not result.problems:
        from .pipeline import load_cases

        try:
            result.n_cases = len(load_cases(cfg))
        except InputError as e:
            result.problems.append(e)
        else:
            result.warnings.extend(sensitivity_warnings(cfg, result.n_cases))
    return result


def _batch_problems(cfg: Config) -> list[ConfigError]:
    """Variants with ``batch:`` that batch mode cannot serve (no model call, an unsupported
    provider, no response cache)."""
    from .pipeline import _config_error

    out = []
    for name, spec in (cfg.data.get("variants") or {}).items():
        if not isinstance(spec, dict) or not spec.get("batch"):
            continue
        from .replay.batch import check_variant

        try:
            check_variant(name, spec)
        except ConfigError as e:
            out.append(_config_error(cfg, e))
            continue
        if cfg.cache_path is None:
            out.append(_config_error(cfg, ConfigError(
                "batch mode needs the response cache (answers are collected there, batch ids kept "
                "beside it): set cache:", field=f"variants.{name}.batch")))
    return out


def _scorer_problems(cfg: Config, build_scorers) -> list[ConfigError]:
    try:
        build_scorers(cfg)
    except ConfigProblems as e:
        return list(e.problems)
    return []
