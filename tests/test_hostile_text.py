"""Model text, golden input and trace content holding lone surrogates, noncharacters and NUL
survive every writer: the response cache, the run JSON, JUnit, HTML and Markdown.

Before: a lone surrogate in an answer killed the cache's writer thread (UnicodeEncodeError is not
an sqlite3.Error), every later write was dropped, the run file stayed a 0-byte .tmp."""
import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.replay.cache import ResponseCache, request_key
from replay_helpers import write_golden

HOSTILE = ["lone \ud800 high", "lone \udfff low", "nonchar \ufffe and \uffff", "nul \x00 byte",
           "all \ud83d\x00\uffff\U00010000 mixed", "plain"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cache_keeps_hostile_values_exactly(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        for i, text in enumerate(HOSTILE):
            key = request_key({"model": "m", "messages": [{"role": "user", "content": text}]}, 0)
            cache.put(key, {"output": text, "tool_calls": [{"name": "f", "arguments": text}]})
            assert cache.get(key)["output"] == text  # pending, in memory
        cache.flush()
        assert len(cache) == len(HOSTILE)  # every write committed: the writer is alive
    with ResponseCache(path, read_only=True) as cache:
        for text in HOSTILE:
            key = request_key({"model": "m", "messages": [{"role": "user", "content": text}]}, 0)
            got = cache.get(key)
            assert got == {"output": text, "tool_calls": [{"name": "f", "arguments": text}]}


def _sendable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_a_lone_surrogate_in_the_input_is_an_error_without_a_call(llm_server):
    from replaygate.model import Case, Message
    from replaygate.replay.engine import ReplayOptions, replay_sync

    cases = [Case(id="bad", messages=[Message(role="user", content="hi \ud800")]),
             Case(id="ok", messages=[Message(role="user", content="hi \ufffe\x00")])]
    out = replay_sync(cases, {"v": {"model": "openai/echo", "api_base": llm_server.api_base}},
                      ReplayOptions(cache_mode="off", max_retries=3, warmup=False))
    bad, ok = (r.samples[0] for r in out["v"])
    assert bad.error.type == "UnreplayableCase" and "surrogate" in bad.error.message
    assert ok.error is None and ok.output == "hi \ufffe\x00"
    assert llm_server.stats(summary=True)["count"] == 1  # not sent, not retried


def _xhtml(text):
    assert text.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(text.split("\n", 1)[1])


@pytest.fixture
def hostile_project(tmp_path, llm_server):
    # the golden inputs hold the hostile characters too (JSON escapes, as a dataset writes them)
    rows = [{"id": f"q{i}", "input": f"question {i} {t if _sendable(t) else ''}", "expected": "x"}
            for i, t in enumerate(HOSTILE)]
    write_golden(tmp_path, rows)
    llm_server.configure(answers={r["input"]: f"answer {t}" for r, t in zip(rows, HOSTILE)})
    (tmp_path / "replaygate.yaml").write_text(f"""\
version: 1
dataset: [{{golden: golden.jsonl}}]
variants:
  baseline: {{model: openai/answers, api_base: "{llm_server.api_base}"}}
  candidate: {{model: openai/answers, api_base: "{llm_server.api_base}", params: {{temperature: 0.5}}}}
scorers:
  - {{name: has_answer, type: contains, value: answer}}
gates:
  - {{metric: quality.pass_rate, max_decrease: 0.5}}
""")
    return tmp_path


def test_hostile_text_survives_every_writer(hostile_project, llm_server):
    d = hostile_project
    cfg = d / "replaygate.yaml"
    r = invoke("gate", "-c", cfg, "--save-runs", d / "runs", "--format", "junit", "-o", d / "gate.xml")
    assert r.exit_code == 0, r.output
    assert "internal error" not in r.output
    paid = llm_server.stats(summary=True)["count"]
    asked = [q["prompt"] for q in llm_server.stats()["requests"] if q["prompt"].startswith("question")]
    assert len(asked) == 2 * len(HOSTILE)
    # the run files hold the answers exactly (JSON escapes for what UTF-8 cannot carry)
    for name in ("baseline", "candidate"):
        run = json.loads((d / "runs" / f"{name}.json").read_text(encoding="utf-8"))
        outputs = {c["id"]: c["samples"][0]["output"] for c in run["cases"]}
        assert outputs == {f"q{i}": f"answer {t}" for i, t in enumerate(HOSTILE)}
    assert not list(d.rglob("*.tmp"))
    ET.parse(d / "gate.xml")  # valid XML
    # every response was cached: an offline rerun makes no call and gives the same answers
    r = invoke("gate", "-c", cfg, "--offline", "--save-runs", d / "again", "--format", "md", "-o", d / "gate.md")
    assert r.exit_code == 0, r.output
    assert llm_server.stats(summary=True)["count"] == paid
    again = json.loads((d / "again" / "candidate.json").read_text(encoding="utf-8"))
    assert [c["samples"][0]["output"] for c in again["cases"]] == [f"answer {t}" for t in HOSTILE]
    assert all(c["samples"][0]["cached"] for c in again["cases"])
    (d / "gate.md").read_text(encoding="utf-8")  # valid UTF-8
    # the run reports: JUnit and HTML are valid XML, Markdown valid UTF-8
    run_file = d / "runs" / "candidate.json"
    for fmt, out in (("junit", "run.xml"), ("html", "run.html"), ("md", "run.md"), ("json", "run.json")):
        r = invoke("report", run_file, "--format", fmt, "-o", d / out)
        assert r.exit_code == 0, (fmt, r.output)
        text = (d / out).read_text(encoding="utf-8")
        assert "\ufffe" not in text and "\uffff" not in text or fmt in ("md", "json")
    ET.parse(d / "run.xml")
    _xhtml((d / "run.html").read_text(encoding="utf-8"))
    assert json.loads((d / "run.json").read_text(encoding="utf-8"))["cases"][0]["samples"][0]["output"] == \
        f"answer {HOSTILE[0]}"
    r = invoke("compare", d / "runs" / "baseline.json", run_file, "--format", "html", "-o", d / "cmp.html")
    assert r.exit_code == 0, r.output
    _xhtml((d / "cmp.html").read_text(encoding="utf-8"))
    r = invoke("report", run_file, "--format", "table")  # to the terminal
    assert r.exit_code == 0, r.output


def test_trace_content_with_hostile_text_imports_and_reads_back(tmp_path):
    from pathlib import Path

    from replaygate.sources.traces import read_cases_jsonl

    line = (Path(__file__).parent / "fixtures" / "traces" / "otel137.jsonl").read_text().splitlines()[0]
    assert "Can I get a refund?" in line
    # inside the JSON-encoded messages attribute: escapes of the inner JSON, escaped once more
    hostile = line.replace("Can I get a refund?", "Can I \\\\ud800 get \\\\ufffe a \\\\u0000 refund?")
    f = tmp_path / "traces.jsonl"
    f.write_text(hostile + "\n")
    r = invoke("import", f, "-o", tmp_path / "cases.jsonl")
    assert r.exit_code == 0, r.output
    (tmp_path / "cases.jsonl").read_text(encoding="utf-8")  # valid UTF-8
    texts = [m.content for c in read_cases_jsonl(tmp_path / "cases.jsonl") for m in c.messages]
    assert any("Can I \ud800 get \ufffe a \x00 refund?" in str(t) for t in texts), texts
