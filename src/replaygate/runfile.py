"""Reading and writing the JSON documents that pass between stages (run and comparison files).

Below `replay/` and `pipeline`, so a stored run is read the same way whether it is a baseline
variant, a `compare` argument or a `report` input."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .config import format_path, load_schema
from .errors import InputError
from .fileio import escape_surrogates, write_atomic
from .model import CaseResult, Run


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parsed JSON of `path`; a missing, unreadable or malformed file is an InputError naming it.
    (json, not orjson: on run files orjson is no faster and its parse of a 1M-case file peaked
    at 5.7 GB against json's 3.7 GB; bench/RESULTS.md.)"""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what}: {e}", file=str(path)) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}", file=str(path), line=e.lineno) from None
    except RecursionError:  # e.g. 100k nested arrays: a hostile file, not a bug of ours
        raise InputError("invalid JSON: nested too deeply", file=str(path)) from None


@lru_cache(maxsize=None)
def _validator(schema: str):
    # jsonschema-rs: a compiled validator for the same JSON Schema (draft 2020-12). The generic
    # jsonschema validator walked every sample of a 100k-case run file in 278 s of a 301 s
    # `compare`; this one validates it in about the time json takes to parse it (bench/RESULTS.md).
    import jsonschema_rs

    return jsonschema_rs.validator_for(load_schema(schema))


def validate_document(data: Any, schema: str, path: str | Path) -> None:
    """Validate against the named schema; the first problem (in document order) is an InputError
    naming the file and the field."""
    v = _validator(schema)
    if v.is_valid(data):
        return
    errs = sorted(v.iter_errors(data), key=lambda e: list(map(str, e.instance_path)))
    e = errs[0]
    more = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
    raise InputError(f"not a valid {schema.split('.')[0]} file: {e.message}{more}",
                     file=str(path), field=format_path(tuple(e.instance_path)) or None)


def load_run(path: str | Path) -> Run:
    data = read_json(path, "run file")
    validate_document(data, "run.schema.json", path)
    # build the Run case by case and drop each case's dict as it is converted, so the parsed
    # document and the Run objects are not both held whole (peak memory on a 1M-case file)
    cases = data.pop("cases")
    data["cases"] = []
    run = Run.from_dict(data)
    out = run.cases
    for i, c in enumerate(cases):
        out.append(CaseResult.from_dict(c, bool(run.variant.get("recorded"))))
        cases[i] = None
    return run
def json_default(o: Any) -> Any:
    """numpy scalars (bool_, float64, int64) from the statistics become plain JSON values."""
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """Indented JSON text that is always valid UTF-8: a lone surrogate (a model's answer can
    hold one) stays the ``\\udXXX`` escape it arrived as, so the file reads back the same."""
    return escape_surrogates(json.dumps(obj, indent=2, ensure_ascii=False, default=json_default) + "\n")


def write_text(text: str, path: str | Path, what: str = "report") -> None:
    """Write a file whole or not at all (``fileio.write_atomic``): a reader never sees half a
    run file or report, a failed write leaves the old one, and the error names the file."""
    write_atomic(path, text, what=what)


def write_json(obj: dict, path: str | Path, what: str = "run file") -> None:
    """Write atomically (temp file, fsync, rename): a reader never sees half a file, a failed
    write leaves the old one, and the error names the file."""
    write_atomic(path, dumps(obj), what=what)
