"""Issue 12: keys echoed back altered, waits a provider asks for, YAML alias bombs, templates that
explode on hostile variables, and an offline run over a large dataset with an empty cache."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from click.testing import CliRunner
from replay_helpers import live_requests, make_cases, model_variant, opts, write_golden

from replaygate.cli import cli
from replaygate.errors import InputError, ReplaygateError, RunIncomplete
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
    # issue 12's remainder: widths, amplifying filters and methods, loops that emit nothing
    ("{{ '%999999999s'|format(x) }}", {"x": "a"}, "a % format would make 999,999,999"),
    ("{{ fmt|format(x) }}", {"fmt": "%.999999999f", "x": 1.0}, "a % format"),
    ("{{ '%*s' % (n, x) }}", {"n": 10 ** 9, "x": "a"}, "a % format"),
    ("{{ fmt % x }}", {"fmt": "%999999s" * 5, "x": ("a",) * 5}, "a % format"),
    ("{{ '{:>{w}}'.format(x, w=n) }}", {"n": 10 ** 9, "x": "a"}, "a format spec"),
    ("{{ f.format(x) }}", {"f": "{:999999999}", "x": "a"}, "a format spec"),
    ("{{ f.format(*xs) }}", {"f": "{:900000}" * 3, "xs": ["a"] * 3}, "a format spec would make 1,800,027"),
    ("{{ x|center(n) }}", {"x": "a", "n": 10 ** 9}, "center would make"),
    ("{{ x|indent(n) }}", {"x": "a\nb", "n": 10 ** 6}, "indent would make"),
    ("{{ x|replace('a', y) }}", {"x": "a" * 10 ** 5, "y": "b" * 10 ** 5}, "replace would make"),
    ("{{ x.replace('a', y) }}", {"x": "a" * 10 ** 5, "y": "b" * 10 ** 5}, ".replace() would make"),
    ("{{ xs|join(y) }}", {"xs": list(range(10 ** 5)), "y": "b" * 10 ** 5}, "join would make"),
    ("{{ y.join(xs|map('string')) }}", {"xs": list(range(10 ** 5)), "y": "b" * 10 ** 5}, "join would make"),
    ("{{ x.ljust(n) }}", {"x": "a", "n": 10 ** 9}, ".ljust() would make"),
    ("{{ x.zfill(n) }}", {"x": "1", "n": 10 ** 9}, ".zfill() would make"),
    ("{{ x.expandtabs(n) }}", {"x": "\t" * 1000, "n": 10 ** 7}, ".expandtabs() would make"),
    ("{{ x|wordwrap(1, wrapstring=y) }}", {"x": "a" * 10 ** 5, "y": "b" * 1000}, "wordwrap would make"),
    ("{{ xs|batch(n, 'x')|list|length }}", {"xs": [1], "n": 10 ** 9}, "batch would make"),
    ("{{ xs|slice(n)|list|length }}", {"xs": [1], "n": 10 ** 9}, "slice would make"),
    ("{{ d|tojson(indent=n) }}", {"d": {"a": [1]}, "n": 10 ** 9}, "tojson indent"),
    ("{{ lipsum(n) }}", {"n": 10 ** 9}, "lipsum would make"),
    ("{% set ns = namespace(s=x) %}{% for i in range(n) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     {"x": "a", "n": 60}, "~ would make"),
    ("{% set ns = namespace(s=x) %}{% for i in range(n) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
     {"x": "a", "n": 60}, "+ would make"),
    ("{% set xs = [1] %}{% for i in range(n) %}{% set _ = xs.extend(xs) %}{% endfor %}", {"n": 60},
     ".extend() would make"),
    ("{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}", {"n": 100000}, "took longer"),
    ("{% for a in xs %}{% for b in xs %}{% endfor %}{% endfor %}", {"xs": list(range(100000))}, "took longer"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(x) }}", {"x": 1}, "recursion too deep"),
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


@pytest.mark.parametrize("source, vars, text", [
    ("{{ '%s-%03d|%5s'|format(x, 7, 'b') }}", {"x": "a"}, "a-007|    b"),
    ("{{ '%(a)s' % d }} {{ 7 % 3 }}", {"d": {"a": 1}}, "1 1"),
    ("{{ '{:>5}|{:.2f}|{a}'.format(x, 3.14159, a=1) }}", {"x": "a"}, "    a|3.14|1"),
    ("{{ '{a}'.format_map(d) }}", {"d": {"a": 2}}, "2"),
    ("{{ x|center(5) }}|{{ x|indent(2, first=true) }}|{{ x|replace('a', 'bb') }}", {"x": "a"}, "  a  |  a|bb"),
    ("{{ xs|join(', ') }}; {{ '-'.join(xs|map('string')) }}; {{ range(3)|join }}", {"xs": [1, 2]}, "1, 2; 1-2; 012"),
    ("{% for x in xs %}{{ loop.index }}/{{ loop.length }}:{{ x ~ '!' }} {% else %}none{% endfor %}",
     {"xs": ["a", "b"]}, "1/2:a! 2/2:b! "),
    ("{% for x in xs %}{{ x }}{% else %}none{% endfor %}", {"xs": []}, "none"),
    ("{% set ys = [] %}{% for x in xs %}{% set _ = ys.append(x * 2) %}{% endfor %}{{ ys + [0] }}",
     {"xs": [1, 2]}, "[2, 4, 0]"),
    ("{{ d|tojson(indent=2) }}", {"d": {"a": 1}}, '{\n  "a": 1\n}'),
])
def test_bounded_templates_still_render_what_prompts_use(source, vars, text):
    from replaygate.replay.templating import BoundedSandbox

    env = BoundedSandbox()
    assert env.render(env.from_string(source), vars) == text


def test_a_hostile_row_is_one_counted_error_not_a_hang(llm_server, tmp_path):
    """One row whose data blows a template up is that case's UnreplayableCase error (the limit
    named); the other rows are answered and the run goes on."""
    (tmp_path / "t.j2").write_text("{{ '%*s' % (width, question) }}")
    rows = [{"id": f"q{i}", "input": "x", "vars": {"width": 5, "question": f"q{i}"}, "expected": "x"}
            for i in range(3)]
    rows[1]["vars"]["width"] = 10 ** 9
    golden = write_golden(tmp_path, rows)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"version: 1\ndataset: [{{golden: {golden.name}}}]\nvariants:\n"
                   f"  baseline: {{model: openai/echo, api_base: '{llm_server.api_base}', prompt: {{template: t.j2}}}}\n"
                   f"  candidate: {{model: openai/echo, api_base: '{llm_server.api_base}', prompt: {{template: t.j2}}}}\n"
                   f"cache: cache.sqlite\n")
    out = tmp_path / "run.json"
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "candidate", "-o", str(out)])
    doc = json.loads(out.read_text())
    errors = {c["id"]: c["samples"][0]["error"] for c in doc["cases"]}
    assert errors["q0"] is None and errors["q2"] is None, r.output
    assert errors["q1"]["type"] == "UnreplayableCase"
    assert "a % format would make 1,000,000,000 characters" in errors["q1"]["message"]
    assert sorted(req["prompt"] for req in live_requests(llm_server)) == ["   q0", "   q2"]


def test_offline_run_stops_at_the_first_batch_with_a_miss(llm_server, tmp_path):
    cases = make_cases(5000)
    variants = {"v": model_variant(llm_server, "echo")}
    replay_sync(cases[:10], variants, opts(tmp_path, warmup=False))
    with pytest.raises(RunIncomplete) as ei:
        replay_sync(cases, variants, opts(tmp_path, cache_mode="offline"))
    message = str(ei.value)
    assert "no cached response for case c010" in message and "first miss" in message
    assert "1,990 of the 2,000 requests looked up are not in the response cache" in message
    assert "the other 3,000 cases were not looked up and are left out of the partial run" in message
    samples = [r.samples[0] for r in ei.value.partial["v"]]
    assert [s.cached for s in samples[:10]] == [True] * 10
    # the rest was never hashed nor looked up: no NotRun sample per case, the message counts them
    assert len(samples) == 2000
    assert {s.error.type for s in samples[10:]} == {"CacheMiss"}
    assert len(live_requests(llm_server)) == 10


def test_offline_run_of_a_large_dataset_reads_only_its_first_cases(llm_server, tmp_path):
    """`run --offline` against a stale cache: the first 2,000 cases are looked up before the rest
    of the dataset is read, and the partial run holds those cases only (issue 12: a 1M-case
    dataset took 93 s and 5.7 GB to say its first case was missing)."""
    rows = [{"id": f"q{i}", "input": f"question {i}", "expected": "x"} for i in range(5000)]
    golden = write_golden(tmp_path, rows)
    # a bad row the probe never reaches: the run stops at the first miss before reading it
    golden.write_text(golden.read_text() + "{not json\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"version: 1\ndataset: [{{golden: {golden.name}}}]\nvariants:\n"
                   f"  baseline: {{model: openai/echo, api_base: '{llm_server.api_base}'}}\n"
                   f"  candidate: {{model: openai/echo, api_base: '{llm_server.api_base}'}}\n"
                   f"cache: cache.sqlite\n")
    out = tmp_path / "run.json"
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "candidate", "-o", str(out), "--offline"])
    assert r.exit_code == 3, r.output
    assert "no cached response for case q0" in r.output
    assert "2,000 of the 2,000 requests looked up are not in the response cache" in r.output
    assert "read no further than its first 2,000 cases" in r.output
    doc = json.loads(out.read_text())
    assert doc["complete"] is False and len(doc["cases"]) == 2000
    assert {c["samples"][0]["error"]["type"] for c in doc["cases"]} == {"CacheMiss"}
    assert live_requests(llm_server) == []
    # without --offline the whole file is read: its bad row is an input error (exit 2)
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "candidate", "-o", str(out)])
    assert r.exit_code == 2 and "golden.jsonl:5001" in r.output, r.output


def test_offline_gate_with_a_warm_head_reads_the_whole_dataset(llm_server, tmp_path):
    """The probe's hits are not the verdict: a miss after the first 2,000 cases still stops the
    run there (exit 3, the partial runs end at that batch), and a warm cache passes through."""
    rows = [{"id": f"q{i}", "input": f"question {i}", "expected": "x"} for i in range(2300)]
    golden = write_golden(tmp_path, rows)
    cfg = tmp_path / "c.yaml"
    base = (f"version: 1\ndataset: [{{golden: {golden.name}}}]\nvariants:\n"
            f"  baseline: {{model: openai/echo, api_base: '{llm_server.api_base}'}}\n"
            f"  candidate: {{model: openai/echo, api_base: '{llm_server.api_base}'}}\n"
            f"cache: cache.sqlite\nconcurrency: 32\n")
    cfg.write_text(base)
    out = tmp_path / "run.json"
    golden.write_text("".join(json.dumps(r) + "\n" for r in rows[:2200]))
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "candidate", "-o", str(out)])
    assert r.exit_code == 0, r.output
    golden.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "candidate", "-o", str(out), "--offline"])
    assert r.exit_code == 3, r.output
    assert "no cached response for case q2200" in r.output and "100 of the 2,300" in r.output
    doc = json.loads(out.read_text())
    assert len(doc["cases"]) == 2300 and sum(c["samples"][0]["cached"] for c in doc["cases"]) == 2200
    golden.write_text("".join(json.dumps(r) + "\n" for r in rows[:2200]))
    r = CliRunner().invoke(cli, ["run", "-c", str(cfg), "--variant", "candidate", "-o", str(out), "--offline"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["provenance"]


def test_max_retry_wait_is_one_cap_for_replay_and_judge_calls(llm_server, tmp_path):
    """`max_retry_wait` (config) caps the replay engine's and the judges' waits alike: a 429 whose
    Retry-After is within it is waited for and retried; one beyond it is that attempt's error,
    with the cap named, after a single request."""
    from replaygate.config import load_config
    from replaygate.pipeline import RunSettings, run_variant

    golden = write_golden(tmp_path, [{"id": "q0", "input": "hello", "expected": "hello"}])

    def config(model: str, judge: str, wait: float) -> Path:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"version: 1\ndataset: [{{golden: {golden.name}}}]\ncache: false\nmax_retries: 2\n"
            f"max_retry_wait: {wait}\nvariants:\n"
            f"  baseline: {{model: 'openai/{model}', api_base: '{llm_server.api_base}'}}\n"
            f"  candidate: {{model: 'openai/{model}', api_base: '{llm_server.api_base}'}}\n"
            f"scorers:\n  - {{name: j, type: judge, rubric: correctness, model: 'openai/{judge}', "
            f"api_base: '{llm_server.api_base}', retries: 2}}\n")
        return cfg

    # Retry-After 3 s against a 2 s cap: both the answer and the judge give up at once
    run = run_variant(load_config(config("echo@r429=1,retry_after=3", "judge@r429=1,retry_after=3", 2)),
                      "candidate", RunSettings(cache_mode="off"))
    err = run.cases[0].samples[0].error
    assert err.type == "RateLimitError" and "Retry-After 3 s is beyond the 2 s cap on waits (max_retry_wait)" in err.message
    assert err is not None and run.cases[0].samples[0].attempts == 1
    run = run_variant(load_config(config("echo", "judge@r429=1,retry_after=3", 2)), "candidate",
                      RunSettings(cache_mode="off"))
    score = run.cases[0].samples[0].scores["j"]
    assert score.error is not None and "Retry-After 3 s is beyond the 2 s cap on waits (max_retry_wait)" in score.error.message
    judge_calls = [r for r in llm_server.stats()["requests"] if str(r.get("model")).startswith("judge")]
    assert len(judge_calls) == 1  # no retry after a refused wait
    # within the cap: waited for, retried, answered and judged
    run = run_variant(load_config(config("echo@r429=1,retry_after=0.2", "judge@r429=1,retry_after=0.2", 2)),
                      "candidate", RunSettings(cache_mode="off"))
    sample = run.cases[0].samples[0]
    assert sample.error is None and sample.attempts == 2 and sample.scores["j"].error is None


def test_max_retry_wait_is_validated(tmp_path):
    from replaygate.config import load_config

    for bad in ("0", "-1", "7200", "soon"):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"version: 1\ndataset: [{{golden: g.jsonl}}]\nmax_retry_wait: {bad}\n"
                       "variants: {baseline: {model: openai/x}, candidate: {model: openai/x}}\n")
        with pytest.raises(ReplaygateError) as e:
            load_config(cfg)
        assert "max_retry_wait" in str(e.value) and "c.yaml:3" in str(e.value), str(e.value)


def test_golden_jsonl_rows_keep_raw_line_separators_inside_strings(tmp_path):
    """JSON allows U+2028, U+0085, \\x1c-\\x1e, \\v and \\f raw inside a string; a JSONL file is split
    at "\\n" only, so such a row loads intact (it was refused as broken lines) and the line
    numbers of later rows stay right."""
    from replaygate.sources.golden import check_golden

    text = "a\u2028b\x85c\x1cd\x1de\x1ef\x0bg\x0ch"
    g = tmp_path / "g.jsonl"
    g.write_text(json.dumps({"id": "x", "input": text}, ensure_ascii=False) + "\r\n\n"
                 + json.dumps({"id": "y", "input": "ok"}) + "\n", encoding="utf-8")
    assert [c.last_user_text() for c in load_golden(g)] == [text, "ok"]
    assert check_golden(g) == (2, [])
    g.write_text(g.read_text(encoding="utf-8") + "{broken\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_golden(g)
    assert e.value.line == 4
    assert [p.line for p in check_golden(g)[1]] == [4]
