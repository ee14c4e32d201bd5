"""How much time scoring adds per sample, against the time a provider takes to answer.

    PYTHONPATH=src python bench/bench_scoring.py [N]

Deterministic scorers run in-process; judges are measured against the local fake server
(tests/fakeserver.py) both fresh and from a warm cache. Prints microseconds per sample and the
ratio to a 500 ms provider call (scoring should be a small fraction of it).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from replaygate.model import Case, CaseResult, Message, Sample, ToolCall  # noqa: E402
from replaygate.scoring import build_scorers, score_results_sync  # noqa: E402

PROVIDER_MS = 500.0
SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def dataset(n: int):
    cases, results = {}, []
    for i in range(n):
        ref = f"Refunds are accepted within 30 days of purchase for order {i}."
        out = (f'{{"answer": "You can return it within 30 days, order {i}. Contact help@example.com '
               f'or +1 415 555 {i % 10000:04d}."}}')
        cases[f"c{i}"] = Case(id=f"c{i}", messages=[Message("user", f"Can I return order {i}?")],
                              reference=ref, context=[ref, "Shipping takes 3-5 days."])
        results.append(CaseResult(id=f"c{i}", samples=[Sample(output=out, tool_calls=[
            ToolCall("lookup", json.dumps({"order": {"id": i, "tags": ["a", "b"]}}))])]))
    return cases, results


DETERMINISTIC = [
    {"name": "eq", "type": "equals", "ignore_case": True, "ignore_whitespace": True},
    {"name": "has", "type": "icontains", "value": "30 days"},
    {"name": "all", "type": "contains_all", "value": ["30", "days", "order"]},
    {"name": "re", "type": "regex", "value": r"\b\d+ days\b"},
    {"name": "json", "type": "json_schema", "schema": SCHEMA},
    {"name": "field", "type": "json_field", "path": "answer", "matches": "days"},
    {"name": "tool", "type": "tool_call", "value": {"name": "lookup"}},
    {"name": "len", "type": "length", "max": 60, "unit": "words"},
    {"name": "f1", "type": "similarity"},
    {"name": "rouge", "type": "similarity", "metric": "rouge_l"},
    {"name": "lev", "type": "similarity", "metric": "levenshtein"},
    {"name": "pii", "type": "pii"},
    {"name": "refusal", "type": "refusal", "negate": True},
]


def timed(cases, results, specs, **kw) -> float:
    for r in results:
        for s in r.samples:
            s.scores = {}
    t = time.perf_counter()
    warnings = score_results_sync(cases, results, build_scorers(specs), **kw)
    elapsed = time.perf_counter() - t
    assert not any("could not be scored" in w for w in warnings), warnings
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    cases, results = dataset(n)
    per = timed(cases, results, DETERMINISTIC) / n * 1e6
    print(f"{len(DETERMINISTIC)} deterministic scorers: {per:.0f} us/sample "
          f"= {per / 1000 / PROVIDER_MS:.5f} of a {PROVIDER_MS:.0f} ms provider call")

    from fakeserver import FakeServer
    from replaygate.replay.cache import ResponseCache
    m = min(n, 400)
    cases_j = dict(list(cases.items())[:m])
    results_j = results[:m]
    with FakeServer() as srv, tempfile.TemporaryDirectory() as tmp:
        judge = [{"name": "g", "type": "judge", "rubric": "groundedness", "model": "openai/judge",
                  "api_base": srv.api_base}]
        with ResponseCache(os.path.join(tmp, "c.sqlite")) as cache:
            timed(cases_j, results_j[:8], judge, cache=cache)  # warm-up: litellm import, client
            fresh = timed(cases_j, results_j, judge, cache=cache, concurrency=16)
            cached = timed(cases_j, results_j, judge, cache=cache, offline=True)
    print(f"groundedness judge, {m} samples, local server: fresh {fresh / m * 1000:.2f} ms/sample "
          f"(concurrency 16), cached {cached / m * 1e6:.0f} us/sample; "
          f"cached/fresh = {cached / fresh:.3f}")


if __name__ == "__main__":
    main()
