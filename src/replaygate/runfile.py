"""Reading and writing the JSON documents that pass between stages (run and comparison files).

Below `replay/` and `pipeline`, so a stored run is read the same way whether it is a baseline
variant, a `compare` argument or a `report` input."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import format_path, schema_errors
from .errors import InputError
from .model import Run


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parsed JSON of `path`; a missing, unreadable or malformed file is an InputError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what}: {e}", file=str(path)) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}", file=str(path), line=e.lineno) from None


def validate_document(data: Any, schema: str, path: str | Path) -> None:
    errs = schema_errors(data, schema)
    if errs:
        e = errs[0]
        more = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
        raise InputError(f"not a valid {schema.split('.')[0]} file: {e.message}{more}",
                         file=str(path), field=format_path(tuple(e.absolute_path)) or None)


def load_run(path: str | Path) -> Run:
    data = read_json(path, "run file")
    validate_document(data, "run.schema.json", path)
    return Run.from_dict(data)


def json_default(o: Any) -> Any:
    """numpy scalars (bool_, float64, int64) from the statistics become plain JSON values."""
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=json_default) + "\n"


def write_text(text: str, path: str | Path) -> None:
    """Write a file whole or not at all: a reader never sees half a run file or report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(obj: dict, path: str | Path) -> None:
    write_text(dumps(obj), path)
