"""Cost of one call in USD: the config's ``price`` (USD per million tokens: ``input``, ``output``,
optional ``cached_input``) or litellm's local cost map. ``None`` when unknown, never 0: the caller
warns once per model."""
from __future__ import annotations

from typing import Any


def _cost_map_entry(model: str) -> dict | None:
    from .llm import litellm_module

    table: dict[str, Any] = litellm_module().model_cost
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        entry = table.get(name)
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
