"""Property-based fuzzing (hypothesis) of the golden, config and OTLP loaders: whatever the
input, a loader returns its result or raises InputError (exit 2 naming the file), never another
exception ("internal error"). Bounded (derandomized, a few dozen examples each) so the suite stays
fast; every defect found by fuzzing issue 12 is kept as an explicit @example."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from replaygate.errors import InputError

# REPLAYGATE_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_loaders.py: a longer, random search
_DEEP = int(os.environ.get("REPLAYGATE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_DEEP or 40, deadline=None, derandomize=not _DEEP, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# JSON values, text with what breaks writers: lone surrogates, noncharacters, NUL, controls
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["\ud800", "\udfff x", "\ufffe\uffff", "\x00", "a\x1b[31m", ""])
SCALARS = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
                    max_leaves=12)


def _dumps(obj) -> str:
    return json.dumps(obj)  # ASCII: lone surrogates travel as \udXXX escapes, as in a real file


# ---- golden datasets -------------------------------------------------------------------------

GOLDEN_KEYS = ["id", "input", "messages", "vars", "expected", "context", "metadata", "tools", "params"]
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]) | JSON},
                                optional={"content": JSON, "tool_calls": JSON, "tool_call_id": JSON,
                                          "name": JSON})
ROW = st.fixed_dictionaries({}, optional={k: (st.lists(MESSAGE, max_size=3) | JSON) if k == "messages"
                                          else (TEXT if k == "input" else JSON) for k in GOLDEN_KEYS})


def _load_and_use(path: Path) -> None:
    """Load a golden file; what loads must also build a request and a cache key (where the
    shapes are used), survive the cases file encoding and a run-file round trip."""
    from replaygate import fastjson
    from replaygate.model import Case
    from replaygate.replay.cache import request_key
    from replaygate.replay.variants import UnreplayableCase, build_variant
    from replaygate.sources.golden import load_golden

    try:
        cases = load_golden(path)
    except InputError as e:
        assert e.file == str(path)
        return
    variant = build_variant({"name": "v", "model": "openai/echo"})
    for case in cases:
        try:
            req = variant.request(case)
        except UnreplayableCase:
            continue
        request_key(req, 0)
        assert Case.from_dict(json.loads(fastjson.dumps(case))).id == case.id


@FUZZ
@given(rows=st.lists(ROW, min_size=1, max_size=3))
@example(rows=[{"input": "a", "tools": -177}])
@example(rows=[{"input": "a", "tools": "notalist"}])
@example(rows=[{"messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]}])
@example(rows=[{"messages": [{"role": "user", "content": {"a": 1}}]}])
@example(rows=[{"input": "lone \ud800", "expected": "\ufffe", "vars": {"x": "\x00"}}])
def test_golden_jsonl_rows(tmp_path_factory, rows):
    f = tmp_path_factory.mktemp("g") / "golden.jsonl"
    f.write_text("".join(_dumps(r) + "\n" for r in rows))
    _load_and_use(f)


@FUZZ
@given(text=st.text(max_size=200), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".yaml"]))
@example(text='{"input": "a", "input": "b"}\n', suffix=".jsonl")  # duplicate keys
@example(text='[{"input": "a", "expected": 1, "expected": 2}]', suffix=".json")
@example(text="- {input: a, input: b}\n", suffix=".yaml")
@example(text='id,input\n1,"unterminated\n2,two\n', suffix=".csv")
@example(text='{"input": "a", "vars": ' + "[" * 5000 + "]" * 5000 + "}\n", suffix=".jsonl")
@example(text="- &a [x, x]\n- *a\n", suffix=".yaml")
def test_golden_text_of_any_kind(tmp_path_factory, text, suffix):
    f = tmp_path_factory.mktemp("g") / f"golden{suffix}"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    _load_and_use(f)


# ---- config ----------------------------------------------------------------------------------

CONFIG_KEYS = ["version", "dataset", "variants", "baseline", "candidate", "repeats", "concurrency", "timeout",
               "max_retries", "max_error_rate", "seed", "cache", "history", "scorers", "gates", "decision"]
SCORER = st.fixed_dictionaries({"name": TEXT, "type": st.sampled_from(
    ["contains", "regex", "equals", "json_schema", "judge", "tool_calls", "length", "nope"])},
    optional={"value": JSON, "threshold": JSON, "informational": JSON, "pattern": JSON})


def _config_text(overrides: dict) -> str:
    base = {"version": 1, "dataset": [{"golden": "golden.jsonl"}],
            "variants": {"baseline": {"model": "openai/echo"}, "candidate": {"model": "openai/echo"}}}
    base.update(overrides)
    return json.dumps(base)  # JSON is YAML


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON | st.lists(SCORER, max_size=2), max_size=3))
@example(overrides={"scorers": 1.5})
@example(overrides={"scorers": True})
@example(overrides={"baseline": []})
@example(overrides={"scorers": [{"name": "a", "type": "regex", "pattern": "("}]})
@example(overrides={"gates": [{"metric": 5}]})
@example(overrides={"variants": {"baseline": {"model": "x", "prompt": {"system": "git:HEAD@{100}:p.md"}},
                                 "candidate": {"model": "y"}}})
def test_config_loader(tmp_path_factory, overrides):
    from replaygate.config import load_config
    from replaygate.pipeline import build_scorers
    from replaygate.validation import validate_config

    d = tmp_path_factory.mktemp("c")
    (d / "golden.jsonl").write_text('{"input": "hi"}\n')
    cfg_path = d / "replaygate.yaml"
    cfg_path.write_text(_config_text(overrides))
    validate_config(cfg_path)  # `replaygate validate`: every problem collected, none raised
    try:
        cfg = load_config(cfg_path)
        build_scorers(cfg)
    except InputError:
        pass


@FUZZ
@given(text=st.text(max_size=300))
@example(text="scorers: 1.5\n")
@example(text="version: 1\nversion: 2\n")
@example(text="a: &a [1]\nb: *a\n")
def test_config_text_of_any_kind(tmp_path_factory, text):
    from replaygate.config import load_config

    from replaygate.validation import validate_config

    f = tmp_path_factory.mktemp("c") / "replaygate.yaml"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(f)
    except InputError:
        pass
    try:
        validate_config(f)
    except InputError:
        pass


# ---- OTLP ------------------------------------------------------------------------------------

ATTR = st.fixed_dictionaries({"key": TEXT | st.sampled_from(["gen_ai.operation.name", "gen_ai.input.messages",
                                                             "gen_ai.output.messages", "gen_ai.request.model"])},
                             optional={"value": JSON | st.fixed_dictionaries(
                                 {}, optional={"stringValue": JSON, "intValue": JSON, "arrayValue": JSON,
                                               "kvlistValue": JSON})})
SPAN = st.fixed_dictionaries({}, optional={"traceId": JSON | st.just("0af7651916cd43dd8448eb211c80319c"),
                                           "spanId": JSON | st.just("b7ad6b7169203331"), "name": JSON,
                                           "startTimeUnixNano": JSON, "endTimeUnixNano": JSON,
                                           "attributes": st.lists(ATTR, max_size=4) | JSON,
                                           "events": JSON, "status": JSON, "kind": JSON})
OTLP = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries(
    {}, optional={"resource": JSON, "scopeSpans": st.lists(st.fixed_dictionaries(
        {}, optional={"scope": JSON, "spans": st.lists(SPAN, max_size=3) | JSON}), max_size=2) | JSON}),
    max_size=2) | JSON})


@FUZZ
@given(docs=st.lists(OTLP | JSON, min_size=1, max_size=3), cut=st.booleans())
@example(docs=[{"resourceSpans": "x"}, {"foo": 1}], cut=True)
@example(docs=[{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5, "attributes": -177}]}]}]}], cut=False)
def test_otlp_json_lines(tmp_path_factory, docs, cut):
    from replaygate.sources.parallel import import_to_jsonl

    d = tmp_path_factory.mktemp("o")
    text = "".join(_dumps(doc) + "\n" for doc in docs)
    if cut:  # a truncated last line, as a full disk leaves it
        text = text[: max(1, len(text) - 7)]
    f = d / "traces.jsonl"
    f.write_text(text)
    try:
        import_to_jsonl([f], d / "cases.jsonl", workers=1)
    except InputError as e:
        assert str(f) in str(e)


@FUZZ
@given(data=st.binary(max_size=200))
@example(data=b"\x00\x00\x00\x05abc")
@example(data=b"\x0a\xff\xff\xff\x0f")
def test_otlp_bytes(tmp_path_factory, data):
    from replaygate.sources.traces import import_traces

    f = tmp_path_factory.mktemp("o") / "traces.pb"
    f.write_bytes(data)
    try:
        import_traces([f])
    except InputError as e:
        assert str(f) in str(e)
