"""Issue 12: keys echoed back altered, waits a provider asks for, YAML alias bombs, templates that
explode on hostile variables, and an offline run over a large dataset with an empty cache."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from click.testing import CliRunner
from replay_helpers import live_requests, make_cases, model_variant, opts

from replaygate.cli import cli
from replaygate.errors import InputError, RunIncomplete
from replaygate.model import Case, Message
from replaygate.replay.engine import replay, replay_sync
from replaygate.replay.secrets import scrub
from replaygate.replay.variants import UnreplayableCase, build_variant
from replaygate.sources.golden import load_golden

KEY = "sk-proj-Q7xT2mVb9LkR4nWp8ZsY3cHd6FgJ1aUe5oIq0rTy"


def _leaks(text: str, key: str = KEY, window: int = 12) -> list[str]:
    return [key[i:i + window] for i in range(len(key) - window + 1) if key[i:i + window] in text]


@pytest.mark.parametrize("mode", ["exact", "prefix", "one", "two"])
def test_a_key_echoed_back_altered_is_scrubbed(llm_server, monkeypatch, mode):
    monkeypatch.setenv("RG_TEST_KEY", KEY)
    llm_server.configure(echo_key=mode)
    variants = {"v": model_variant(llm_server, "echo@status=400", api_key_env="RG_TEST_KEY")}
    out = replay_sync(make_cases(1), variants, opts(warmup=False))
    msg = out["v"][0].samples[0].error.message
    assert "you sent key ***" in msg, msg  # the provider did echo something, and it is masked
    assert _leaks(msg) == []


def test_scrub_keeps_ordinary_text():
    text = "model gpt-4o-mini at https://api.example.com/v1 said: sk-proj-other-key-000000000000 is invalid"
    assert scrub(text, KEY) == text
    assert scrub(f"key={KEY[:-3]}", KEY) == "***"
    assert scrub(f"Bearer {KEY[:10]}__{KEY[12:]}.", KEY) == "Bearer ***"


def test_retry_after_beyond_the_cap_is_an_error_not_a_wait(llm_server, tmp_path):
    variants = {"v": model_variant(llm_server, "echo@r429=5,retry_after=100000")}

    async def bounded():  # on a build that obeys Retry-After this would wait for 28 hours
        return await asyncio.wait_for(replay(make_cases(2), variants, opts(max_retries=3, warmup=False)), 60)

    out = asyncio.run(bounded())
    for row in out["v"]:
        err = row.samples[0].error
        assert err.type == "RateLimitError" and "Retry-After 100000 s is beyond the 30 s cap" in err.message
    assert len(live_requests(llm_server)) == 2  # one attempt each, none repeated


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_in_a_config_is_refused_before_expansion(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("version: 1\n" + _bomb(6))
    r = CliRunner().invoke(cli, ["validate", "-c", str(cfg)])
    assert r.exit_code == 2
    assert "YAML aliases expand to more than" in r.output and "c.yaml:" in r.output
    cfg.write_text("version: 1\nx: &a [1, *a]\n")
    r = CliRunner().invoke(cli, ["validate", "-c", str(cfg)])
    assert r.exit_code == 2 and "refers to itself" in r.output


def test_yaml_alias_bomb_in_a_golden_file_is_refused(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("- input: hi\n  vars:\n" + "".join("    " + x + "\n" for x in _bomb(6).splitlines()))
    with pytest.raises(InputError) as e:
        load_golden(g)
    assert "alias" in str(e.value)
    # modest, legitimate anchors still load
    g.write_text("- &base {input: hi, vars: {a: 1}}\n- {input: ho, vars: {a: 2}}\n")
    assert [c.last_user_text() for c in load_golden(g)] == ["hi", "ho"]


@pytest.mark.parametrize("source, vars, why", [
    ("{{ 'a' * n }}", {"n": 10 ** 9}, "repetition"),
    ("{{ n * [1] }}", {"n": 10 ** 9}, "repetition"),
    ("{{ 10 ** n }}", {"n": 10 ** 9}, "too large"),
    ("{% for i in range(n) %}{% for j in range(n) %}{{ i }}{% endfor %}{% endfor %}", {"n": 100000},
     "longer than"),
    ("{% for i in range(n) %}{% for j in range(n) %}{% if j.real %}{% endif %}{% endfor %}{% endfor %}",
     {"n": 100000}, "took longer"),
])
def test_template_rendering_is_bounded(tmp_path, source, vars, why):
    t = tmp_path / "t.j2"
    t.write_text(source)
    v = build_variant({"name": "v", "model": "openai/echo", "prompt": {"template": str(t)}})
    case = Case(id="x", messages=[Message(role="user", content="q")], vars=vars)
    result: dict = {}

    def render():
        try:
            v.request(case)
            result["ok"] = True
        except UnreplayableCase as e:
            result["refused"] = str(e)

    th = threading.Thread(target=render, daemon=True)  # an unbounded render never returns
    th.start()
    th.join(60)
    assert why in result.get("refused", ""), result


def test_offline_run_stops_at_the_first_batch_with_a_miss(llm_server, tmp_path):
    cases = make_cases(5000)
    variants = {"v": model_variant(llm_server, "echo")}
    replay_sync(cases[:10], variants, opts(tmp_path, warmup=False))
    with pytest.raises(RunIncomplete) as ei:
        replay_sync(cases, variants, opts(tmp_path, cache_mode="offline"))
    assert "no cached response for case c010" in str(ei.value) and "first miss" in str(ei.value)
    samples = [r.samples[0] for r in ei.value.partial["v"]]
    assert [s.cached for s in samples[:10]] == [True] * 10
    kinds = {s.error.type for s in samples[10:2000]}
    assert kinds == {"CacheMiss"}
    # the rest was never hashed nor looked up: not run, with the reason
    assert {s.error.type for s in samples[2000:]} == {"NotRun"}
    assert "first miss" in samples[-1].error.message
    assert len(live_requests(llm_server)) == 10
