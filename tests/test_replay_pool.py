"""The engine spread over worker processes (ReplayOptions.workers)."""
from __future__ import annotations

import pytest

from replaygate.errors import RunIncomplete
from replaygate.replay.engine import replay_sync, result_summary
from replay_helpers import live_requests, model_variant, opts, recorded_cases


@pytest.mark.slow  # the fork server imports litellm once (seconds on a busy machine)
def test_pool_same_results_shared_cache_and_stop(llm_server, tmp_path):
    cases = recorded_cases(30)
    variants = {"base": {"recorded": True}, "cand": model_variant(llm_server, "echo@latency=20")}
    warnings: list[str] = []
    out = replay_sync(cases, variants, opts(tmp_path, workers=2, concurrency=8), warnings=warnings)
    assert [r.id for r in out["cand"]] == [c.id for c in cases]
    assert all(r.samples[0].output == r.input and not r.samples[0].cached for r in out["cand"])
    assert [r.samples[0].output for r in out["base"]] == [f"answer {i}" for i in range(30)]
    prompts = [r["prompt"] for r in live_requests(llm_server)]
    assert sorted(prompts) == sorted(c.input for c in out["cand"])  # each case sent once
    assert any("openai/echo@latency=20" in w for w in warnings)  # workers' warnings reach us
    again = replay_sync(cases, variants, opts(tmp_path))  # one process, the same cache
    assert result_summary(again)["cand"]["cached"] == 30

    with pytest.raises(RunIncomplete) as ei:
        replay_sync(recorded_cases(40), {"v": model_variant(llm_server, "echo@auth")},
                    opts(workers=2, concurrency=2))
    assert "authentication failed" in str(ei.value)
    errors = result_summary(ei.value.partial)["v"]["errors"]
    assert errors["AuthenticationError"] >= 1 and errors.get("NotRun", 0) >= 30
