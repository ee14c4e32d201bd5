"""Helpers shared by the replay tests (cases, live-request filters)."""
from __future__ import annotations

import json
from pathlib import Path

from replaygate.model import Case, Message, Recorded
from replaygate.replay.engine import WARMUP_TEXT, ReplayOptions


def make_cases(n: int, prefix: str = "question", **kw) -> list[Case]:
    return [Case(id=f"c{i:03d}", messages=[Message(role="user", content=f"{prefix} {i}")],
                 reference=f"answer {i}", metadata={"source": {"file": "g.jsonl", "row": i}}, **kw)
            for i in range(n)]


def recorded_cases(n: int) -> list[Case]:
    cases = make_cases(n)
    for i, c in enumerate(cases):
        c.params = {"model": "gpt-4o-mini", "temperature": 0.3}
        c.recorded = Recorded(output=f"answer {i}", latency_ms=100.0 + i, input_tokens=2, output_tokens=2)
    return cases


def model_variant(srv, model: str, **kw) -> dict:
    return {"model": f"openai/{model}", "api_base": srv.api_base, **kw}


def live_requests(srv, bodies: bool = True) -> list[dict]:
    """Requests the server received, without the engine's warm-up calls."""
    return [r for r in srv.stats(bodies=bodies)["requests"] if r["prompt"] != WARMUP_TEXT]


def write_golden(folder: Path, rows: list[dict], name: str = "golden.jsonl") -> Path:
    """A JSONL golden set in ``folder`` (one row a line), for the CLI tests' configs."""
    path = Path(folder) / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def opts(tmp_path=None, **kw) -> ReplayOptions:
    base = dict(concurrency=4, timeout_s=10, max_retries=2, backoff_s=0.01,
                cache_mode="rw" if tmp_path else "off",
                cache_path=(tmp_path / "cache.sqlite") if tmp_path else None)
    base.update(kw)
    return ReplayOptions(**base)
