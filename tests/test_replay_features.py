"""Issue 4 features: rate limits, streaming TTFT, git prompts, templates, repeats, callables,
kill-and-resume, Ctrl-C, progress line."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replaygate.errors import ConfigError
from replaygate.model import Message, Run
from replaygate.replay.engine import replay_sync, result_summary
from replaygate.vcs import read_at_ref
from replay_helpers import live_requests, make_cases, model_variant, opts

HERE = Path(__file__).resolve().parent


def _arrivals(srv) -> list[float]:
    return sorted(r["t"] for r in live_requests(srv))


def _assert_bucket(times: list[float], rate: float, burst: float) -> None:
    """No window [t_i, t_j] holds more arrivals than the bucket allows (with 0.3 s of slack for
    a busy server process that records a backlog at once; unlimited, all 50 land in ~0.3 s)."""
    slack = 2 + rate * 0.3
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - times[i]) + slack, (i, j)


def test_rpm_limit_seen_in_server_arrivals(llm_server):
    replay_sync(make_cases(50), {"v": model_variant(llm_server, "echo")},
                opts(concurrency=16, rpm=1200))  # 20/s, bursts of 20
    t = _arrivals(llm_server)
    assert len(t) == 50
    assert t[-1] - t[0] >= (50 - 20) / 20 * 0.9
    _assert_bucket(t, rate=20, burst=20)


def test_tpm_limit_uses_real_token_counts(llm_server):
    # each call: ~3 tokens estimated, 4 used (2 in + 2 out); 100 tokens/s, bursts of 100
    replay_sync(make_cases(60), {"v": model_variant(llm_server, "echo")},
                opts(concurrency=16, tpm=6000))
    t = _arrivals(llm_server)
    assert t[-1] - t[0] >= (60 * 4 - 100) / 100 * 0.7


def test_stream_measures_ttft(llm_server):
    out = replay_sync(make_cases(3), {"v": model_variant(llm_server, "echo@ttft=120,chunk_delay=20",
                                                         stream=True)}, opts())
    for r in out["v"]:
        s = r.samples[0]
        assert s.output == r.input and s.output_tokens == 2
        assert 120 <= s.ttft_ms < s.latency_ms
    assert all(r["body"]["stream_options"] == {"include_usage": True} for r in live_requests(llm_server))


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"})


@pytest.fixture
def prompt_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "prompts").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "prompts" / "sys.md").write_text("You are version one.")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "v1")
    (repo / "prompts" / "sys.md").write_text("You are version two.")
    _git(repo, "commit", "-qam", "v2")
    (repo / "prompts" / "sys.md").write_text("uncommitted edit")
    return repo


def test_git_prompt_read_at_ref_without_touching_worktree(llm_server, prompt_repo):
    assert read_at_ref("git:v1:prompts/sys.md", prompt_repo) == "You are version one."
    assert read_at_ref("git:HEAD:sys.md", prompt_repo / "prompts") == "You are version two."  # config-relative
    assert read_at_ref("git:HEAD:/prompts/sys.md", prompt_repo / "prompts") == "You are version two."
    assert read_at_ref("git:main~1:prompts/sys.md", prompt_repo) == "You are version one."
    cases = make_cases(2)
    cases[1].messages.insert(0, Message(role="system", content="old system"))
    variant = model_variant(llm_server, "echo", prompt={"system": "git:v1:prompts/sys.md"},
                            base_dir=str(prompt_repo))
    replay_sync(cases, {"v": variant}, opts())
    bodies = [r["body"]["messages"] for r in live_requests(llm_server)]
    assert all(m[0] == {"role": "system", "content": "You are version one."} for m in bodies)
    assert sorted(len(m) for m in bodies) == [2, 2]  # inserted in one, replaced in the other
    assert (prompt_repo / "prompts" / "sys.md").read_text() == "uncommitted edit"
    status = subprocess.run(["git", "-C", str(prompt_repo), "status", "--porcelain"],
                            capture_output=True, text=True).stdout
    assert status.strip() == "M prompts/sys.md"


@pytest.mark.parametrize("spec,msg", [("git:nope:prompts/sys.md", "unknown git ref"),
                                      ("git:v1:prompts/missing.md", "no file"),
                                      ("git:v1", "expected git:REF:path")])
def test_git_prompt_errors_are_config_errors(llm_server, prompt_repo, spec, msg):
    with pytest.raises(ConfigError) as ei:
        replay_sync(make_cases(1), {"v": model_variant(llm_server, "echo", prompt={"system": spec},
                                                       base_dir=str(prompt_repo))}, opts())
    assert msg in str(ei.value) and ei.value.field == "variants.v.prompt.system"


def test_template_rendered_with_vars_missing_var_is_unreplayable(llm_server, tmp_path):
    tpl = tmp_path / "t.j2"
    tpl.write_text("Tell me about {{ topic }} in {{ lang | upper }}.")
    cases = make_cases(3)
    cases[0].vars = {"topic": "refunds", "lang": "en"}
    cases[1].vars = {"topic": "shipping"}  # no lang
    cases[2].vars = {"topic": "{{ 7*7 }}", "lang": "de"}  # values are data, not template code
    out = replay_sync(cases, {"v": model_variant(llm_server, "echo", prompt={"template": str(tpl)})}, opts())
    samples = [r.samples[0] for r in out["v"]]
    assert samples[0].output == "Tell me about refunds in EN."
    assert samples[1].error.type == "UnreplayableCase" and "lang" in samples[1].error.message
    assert samples[2].output == "Tell me about {{ 7*7 }} in DE."
    assert len(live_requests(llm_server)) == 2


def test_template_sandboxed_and_syntax_errors(llm_server, tmp_path):
    tpl = tmp_path / "evil.j2"
    tpl.write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    out = replay_sync(make_cases(1), {"v": model_variant(llm_server, "echo", prompt={"template": str(tpl)})},
                      opts())
    assert out["v"][0].samples[0].error.type == "UnreplayableCase"
    bad = tmp_path / "bad.j2"
    bad.write_text("line one\n{% if %}")
    with pytest.raises(ConfigError) as ei:
        replay_sync(make_cases(1), {"v": model_variant(llm_server, "echo", prompt={"template": str(bad)})},
                    opts())
    assert ei.value.line == 2 and ei.value.file == str(bad)


def test_repeats_are_independent_samples_and_cached_per_repeat(llm_server, tmp_path):
    llm_server.configure(answers={f"question {i}": "right" for i in range(6)}, wrong_answer="wrong", seed=5)
    variants = {"v": model_variant(llm_server, "noisy-50")}
    out = replay_sync(make_cases(6), variants, opts(tmp_path, repeats=4))
    assert all([s.repeat for s in r.samples] == [0, 1, 2, 3] for r in out["v"])
    outputs = [[s.output for s in r.samples] for r in out["v"]]
    assert any(len(set(o)) == 2 for o in outputs)  # repeats were not served from one response
    assert len(live_requests(llm_server)) == 24
    again = replay_sync(make_cases(6), variants, opts(tmp_path, repeats=4))
    assert [[s.output for s in r.samples] for r in again["v"]] == outputs
    assert result_summary(again)["v"]["cached"] == 24 and len(live_requests(llm_server)) == 24


CALLABLES = '''
import asyncio, time
def pipeline(case):
    time.sleep(0.05)
    return {"output": case.last_user_text().upper(), "context": ["doc A", "doc B"],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3},
            "tool_calls": [{"name": "search", "arguments": {"q": case.id}}]}
async def apipeline(case):
    await asyncio.sleep(0.02)
    return "async " + case.id
import threading
ACTIVE = [0, 0]  # now, peak
LOCK = threading.Lock()
def slow(case):
    with LOCK:
        ACTIVE[0] += 1
        ACTIVE[1] = max(ACTIVE[1], ACTIVE[0])
    time.sleep(0.1)
    with LOCK:
        ACTIVE[0] -= 1
    return "done"
def broken(case):
    if case.id == "c001":
        raise ValueError("no answer for " + case.id)
    return "ok"
'''


def test_callable_variants(llm_server, tmp_path, monkeypatch):
    (tmp_path / "userpipe.py").write_text(CALLABLES)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = replay_sync(make_cases(3), {"sync": {"callable": "userpipe:pipeline", "price": {"input": 1, "output": 1}},
                                      "async": {"callable": "userpipe:apipeline"},
                                      "broken": {"callable": "userpipe:broken"}}, opts())
    s = out["sync"][1].samples[0]
    assert s.output == "QUESTION 1" and s.latency_ms >= 50 and s.context == ["doc A", "doc B"]
    assert (s.input_tokens, s.output_tokens, s.cost_usd) == (7, 3, pytest.approx(10 / 1e6))
    assert s.tool_calls[0].name == "search" and json.loads(s.tool_calls[0].arguments) == {"q": "c001"}
    assert out["async"][2].samples[0].output == "async c002" and out["async"][2].samples[0].latency_ms >= 20
    assert [r.samples[0].error and r.samples[0].error.type for r in out["broken"]] == [None, "ValueError", None]
    assert "c001" in out["broken"][1].samples[0].error.message
    # sync callables run as wide as the concurrency (not asyncio's default cpus+4 threads)
    replay_sync(make_cases(16), {"slow": {"callable": "userpipe:slow"}}, opts(concurrency=16))
    import userpipe
    assert userpipe.ACTIVE[1] >= 8
    with pytest.raises(ConfigError) as ei:
        replay_sync(make_cases(1), {"x": {"callable": "userpipe:nothing"}}, opts())
    assert ei.value.field == "variants.x.callable"


def _wait_for(srv, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while srv.stats(summary=True)["count"] < n:
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.02)


def _child(srv, tmp_path, n):
    return subprocess.Popen([sys.executable, str(HERE / "replay_child.py"), srv.api_base,
                             str(tmp_path / "cache.sqlite"), str(n), str(tmp_path / "run.json")],
                            stderr=subprocess.PIPE, text=True)


def test_kill_9_and_resume_repeats_no_completed_call(llm_server, tmp_path):
    n = 40  # 4 in flight x 100 ms: about a second of work
    proc = _child(llm_server, tmp_path, n)
    _wait_for(llm_server, 16)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = [r["prompt"] for r in live_requests(llm_server)]
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        saved = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert 8 <= saved < n  # killed mid-run, with answers already saved
    assert not (tmp_path / "run.json").exists()

    # rerun (here in-process, same cases and options as the child)
    variant = {"model": "openai/echo@latency=100", "api_base": llm_server.api_base}
    rows = replay_sync(make_cases(n), {"v": variant}, opts(tmp_path, concurrency=4))["v"]
    prompts = [r["prompt"] for r in live_requests(llm_server)]
    resent = [p for p in set(prompts) if prompts.count(p) > 1]
    # only calls still in flight at the kill (their answers never arrived) are sent again
    assert len(resent) <= 4 and len(prompts) - len(first) == n - saved
    assert sorted(set(prompts)) == sorted(f"question {i}" for i in range(n))
    assert len(rows) == n
    assert all(c.samples[0].output == c.input and c.samples[0].error is None for c in rows)
    assert sum(c.samples[0].cached for c in rows) == saved


def test_ctrl_c_writes_partial_run_marked_incomplete(llm_server, tmp_path):
    proc = _child(llm_server, tmp_path, 60)
    _wait_for(llm_server, 12)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 3
    assert "interrupted" in proc.stderr.read()
    run = Run.from_dict(json.loads((tmp_path / "run.json").read_text()))
    assert not run.complete and len(run.cases) == 60
    errors = [c.samples[0].error.type for c in run.cases if c.samples[0].error]
    done = [c for c in run.cases if c.samples[0].error is None]
    assert len(done) >= 4 and errors and set(errors) == {"NotRun"}
    # the calls in flight at Ctrl-C were let finish: every request sent has its answer kept
    assert len(live_requests(llm_server)) == len(done)


def test_progress_line_on_stderr(llm_server, tmp_path, capsys):
    replay_sync(make_cases(5), {"v": model_variant(llm_server, "echo")}, opts(tmp_path, progress=True))
    err = capsys.readouterr().err
    assert "replay 5/5" in err and "errors 0" in err and "cached 0" in err and "ETA" in err
    replay_sync(make_cases(5), {"v": model_variant(llm_server, "echo")}, opts(tmp_path, progress=None))
    assert capsys.readouterr().err == ""  # not a terminal: quiet
