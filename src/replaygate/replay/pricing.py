"""Cost of one call in USD: the config's ``price`` (USD per million tokens: ``input``, ``output``,
optional ``cached_input``) or litellm's local cost map (its bundled JSON, read without importing litellm). ``None`` when unknown, never 0: the caller
warns once per model."""
from __future__ import annotations

from typing import Any


_COST_MAP: dict[str, Any] | None = None
_ALIASES: dict[str, str] = {}
COST_MAP_FILE = "model_prices_and_context_window_backup.json"


def cost_map() -> dict[str, Any]:
    """litellm's bundled cost map, read from the installed package's JSON without importing
    litellm (2-3 s; a run on the direct path needs nothing else of it). It is the file litellm
    itself loads offline (``LITELLM_LOCAL_MODEL_COST_MAP``, set by ``llm.set_offline_env``)."""
    global _COST_MAP
    if _COST_MAP is None:
        import importlib.util
        from pathlib import Path

        import orjson

        table: dict[str, Any] = {}
        spec = importlib.util.find_spec("litellm")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / COST_MAP_FILE
            if path.is_file():
                table = orjson.loads(path.read_bytes())
                break
        table.pop("fallback_generalizations", None)  # rules for litellm's router, not a model
        # litellm serves a row's ``aliases`` and an ``alias_of`` row as the row they name
        # (get_model_cost_map._expand_model_aliases); a name that is a row of its own wins
        for name, info in table.items():
            if isinstance(info, dict) and isinstance(info.get("aliases"), list) and "alias_of" not in info:
                for alias in info["aliases"]:
                    if isinstance(alias, str) and (alias not in table or "alias_of" in (table[alias] or {})):
                        _ALIASES.setdefault(alias, name)
        _COST_MAP = table
    return _COST_MAP


def _row(table: dict[str, Any], name: str) -> dict | None:
    entry = table.get(name)
    if isinstance(entry, dict) and isinstance(entry.get("alias_of"), str):
        target = table.get(entry["alias_of"])
        return target if isinstance(target, dict) and "alias_of" not in target else None
    if entry is None and name in _ALIASES:
        return table.get(_ALIASES[name])
    return entry if isinstance(entry, dict) else None


def _cost_map_entry(model: str) -> dict | None:
    table = cost_map()
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        entry = _row(table, name)
        if entry and entry.get("input_cost_per_token") is not None \
                and entry.get("output_cost_per_token") is not None:
            return entry
    return None


def cost_usd(model: str | None, input_tokens: int | None, output_tokens: int | None,
             cached_tokens: int | None = None, price: dict | None = None) -> float | None:
    if input_tokens is None or output_tokens is None:
        return None
    cached = min(cached_tokens or 0, input_tokens)
    if price and price.get("input") is not None and price.get("output") is not None:
        per_in = float(price["input"]) / 1e6
        per_out = float(price["output"]) / 1e6
        per_cached = float(price["cached_input"]) / 1e6 if price.get("cached_input") is not None else per_in
    else:
        entry = _cost_map_entry(model) if model else None
        if entry is None:
            return None
        per_in = float(entry["input_cost_per_token"])
        per_out = float(entry["output_cost_per_token"])
        read = entry.get("cache_read_input_token_cost")
        per_cached = float(read) if read is not None else per_in
    return (input_tokens - cached) * per_in + cached * per_cached + output_tokens * per_out
