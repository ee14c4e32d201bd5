"""Issue 12: a provider that fails the way real ones do, over 500 cases — 10% HTTP 500, 5% 429
with Retry-After, 1% hangs past the timeout and 1% dropped connections (tests/fakeserver.py
random faults, seeded). Every case ends with an answer or an error that says why, none is missing,
and the requests the server saw are exactly the attempts the run reports."""
from __future__ import annotations

from replay_helpers import live_requests, make_cases, model_variant, opts

from replaygate.replay.engine import replay_sync

N = 500
FAULTS = "p500=10,p429=5,retry_after=0.05,phang=1,pdrop=1,hang_ms=6000"


def test_faulty_provider_loses_no_case_and_counts_every_request(llm_server):
    llm_server.configure(seed=12)
    cases = make_cases(N, prefix="fault")
    variants = {"v": model_variant(llm_server, f"echo@{FAULTS}")}
    # the warm-up call (not counted) keeps client start-up out of the timeout; 4 s leaves room
    # for a loaded machine (an attempt timed out before it was sent would never reach the server)
    out = replay_sync(cases, variants, opts(concurrency=32, timeout_s=4.0, max_retries=4, backoff_s=0.01,
                                            backoff_max_s=0.2, seed=3))
    rows = out["v"]
    assert [r.id for r in rows] == [c.id for c in cases]  # none missing, in order
    answered = errors = 0
    for case, row in zip(cases, rows):
        (s,) = row.samples
        assert s.attempts and s.attempts >= 1
        if s.error is None:
            answered += 1
            assert s.output == case.last_user_text()  # the right answer to the right case
        else:
            errors += 1
            assert s.error.type and s.error.message  # an error with its reason
            assert s.attempts == 5 or s.error.type not in ("InternalServerError", "RateLimitError")
    requests = live_requests(llm_server)
    statuses = {str(r["status"]) for r in requests}
    assert {"500", "429", "drop"} <= statuses  # every kind of fault happened
    assert statuses & {"hang", "504"}  # a hang is "504" once it has answered, "hang" until then
    assert len(requests) == sum(r.samples[0].attempts for r in rows)  # the server's count = the report's
    assert len(requests) > N * 1.1  # retries happened
    assert answered + errors == N and answered >= N * 0.97
