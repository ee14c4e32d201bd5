"""JSON and tool-call scorers on hand-worked examples (invalid JSON, nested arguments)."""
import json

import pytest

from replaygate.errors import ConfigError
from replaygate.model import Case, Recorded, Sample, ToolCall
from replaygate.scoring import build_scorer, build_scorers


def run(spec, output=None, reference=None, calls=(), recorded=None):
    case = Case(id="c", reference=reference, recorded=recorded)
    return build_scorer(spec).score(case, Sample(output=output, tool_calls=list(calls)))


def test_json_valid():
    assert run({"type": "json_valid"}, '{"a": "ü", "b": [1, null]}').passed
    bad = run({"type": "json_valid"}, '{"a": 1,}')
    assert not bad.passed and "invalid JSON" in bad.reason and "line 1" in bad.reason
    assert "empty" in run({"type": "json_valid"}, "").reason
    fenced = '```json\n{"a": 1}\n```'
    assert not run({"type": "json_valid"}, fenced).passed
    assert run({"type": "json_valid", "strip_fences": True}, fenced).passed


SCHEMA = {"type": "object", "required": ["answer", "confidence"],
          "properties": {"answer": {"type": "string"},
                         "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}


def test_json_schema_inline_and_file(tmp_path):
    assert run({"type": "json_schema", "schema": SCHEMA}, '{"answer": "x", "confidence": 0.5}').passed
    s = run({"type": "json_schema", "schema": SCHEMA}, '{"answer": "x", "confidence": 2}')
    assert not s.passed and s.reason.startswith("confidence:")
    s = run({"type": "json_schema", "schema": SCHEMA}, '{"answer": 1}')
    assert not s.passed and "(+1 more)" in s.reason
    assert not run({"type": "json_schema", "schema": SCHEMA}, "not json").passed
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(SCHEMA))
    assert run({"type": "json_schema", "schema": str(path)}, '{"answer": "", "confidence": 1}').passed
    ypath = tmp_path / "answer.yaml"
    ypath.write_text("type: array\nitems: {type: integer}\n")
    assert not run({"type": "json_schema", "schema": str(ypath)}, "[1, 2.5]").passed


def test_json_schema_config_errors(tmp_path):
    with pytest.raises(ConfigError) as e:
        build_scorers([{"type": "equals"}, {"type": "json_schema", "schema": str(tmp_path / "nope.json")}])
    assert e.value.field == "scorers[1].schema" and "nope.json" in e.value.message
    with pytest.raises(ConfigError) as e:
        build_scorer({"type": "json_schema", "schema": {"type": "nonsense"}}, "scorers[0]")
    assert e.value.field == "scorers[0].schema"


DOC = '{"order": {"id": 42, "items": [{"sku": "A-1"}, {"sku": "B-2"}], "paid": true, "k.d": 1}}'


@pytest.mark.parametrize("spec,reference,passed", [
    ({"path": "order.id", "value": 42}, None, True),
    ({"path": "$.order.id", "value": 42.0}, None, True),
    ({"path": "order.items[1].sku", "value": "B-2"}, None, True),
    ({"path": "order.items[-1].sku", "matches": "^B-"}, None, True),
    ({"path": "order.items[5].sku", "value": "B-2"}, None, False),
    ({"path": "order.paid", "value": 1}, None, False),  # true is not 1
    ({"path": 'order["k.d"]', "value": 1}, None, True),
    ({"path": "order.id"}, "42", True),  # CSV-style string reference vs a number
    ({"path": "order.id"}, {"order": {"id": 42}}, True),  # same path read from the reference
    ({"path": "order.id"}, '{"order": {"id": 7}}', False),
])
def test_json_field(spec, reference, passed):
    assert run({"type": "json_field", **spec}, DOC, reference=reference).passed is passed


def test_json_field_invalid_json_and_bad_path():
    assert "invalid JSON" in run({"type": "json_field", "path": "a", "value": 1}, "{a:1}").reason
    with pytest.raises(ConfigError):
        build_scorer({"type": "json_field", "path": "a[", "value": 1})


def call(name, args):
    return ToolCall(name=name, arguments=args if isinstance(args, str) else json.dumps(args))


NESTED = {"filters": {"city": "Zürich", "dates": ["2025-01-01", "2025-01-03"]}, "limit": 5}


def test_tool_call_exact_nested_arguments():
    spec = {"type": "tool_call", "mode": "exact",
            "value": [{"name": "search_hotels", "arguments": NESTED}]}
    same_reordered = {"limit": 5.0, "filters": {"dates": ["2025-01-01", "2025-01-03"], "city": "Zürich"}}
    assert run(spec, calls=[call("search_hotels", same_reordered)]).passed
    other = {"filters": {"city": "Zürich", "dates": ["2025-01-03", "2025-01-01"]}, "limit": 5}
    assert not run(spec, calls=[call("search_hotels", other)]).passed  # list order matters
    assert not run(spec, calls=[call("search_hotels", NESTED), call("book", {})]).passed


def test_tool_call_f1_subset_and_invalid_arguments():
    spec = {"type": "tool_call", "arguments": "subset",
            "value": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                      {"name": "get_time", "arguments": {"tz": {"name": "CET"}}}]}
    s = run(spec, calls=[call("get_weather", {"city": "Paris", "unit": "C"}),
                         call("get_time", {"tz": {"name": "CET", "dst": True}}),
                         call("send_email", {})])
    # 2 matched of 2 expected, 3 made: P = 2/3, R = 1, F1 = 0.8
    assert s.score == pytest.approx(0.8) and not s.passed
    assert s.details["precision"] == pytest.approx(2 / 3) and s.details["recall"] == 1.0
    s = run(spec, calls=[call("get_weather", '{"city": "Paris"'), call("get_time", {"tz": {"name": "CET"}})])
    assert s.score == pytest.approx(0.5) and "invalid JSON arguments" in s.reason
    names_only = {"type": "tool_call", "arguments": "ignore", "value": {"name": "get_weather"}}
    assert run(names_only, calls=[call("get_weather", "garbage")]).passed


def test_tool_call_ordered_and_multiset():
    want = [{"name": "a"}, {"name": "b"}, {"name": "a"}]
    got = [call("b", {}), call("a", {}), call("a", {})]
    assert run({"type": "tool_call", "value": want}, calls=got).passed
    s = run({"type": "tool_call", "value": want, "ordered": True}, calls=got)
    assert s.score == pytest.approx(2 / 3)  # LCS of a,b,a vs b,a,a is 2
    s = run({"type": "tool_call", "value": want}, calls=[call("a", {}), call("a", {}), call("a", {})])
    assert s.score == pytest.approx(2 / 3)  # a third "a" cannot match "b"


def test_tool_call_against_recorded_and_reference():
    rec = Recorded(output=None, tool_calls=[call("lookup_order", {"order_id": "A1"})])
    assert run({"type": "tool_call"}, calls=[call("lookup_order", '{"order_id":"A1"}')], recorded=rec).passed
    assert not run({"type": "tool_call", "against": "recorded"},
                   calls=[call("lookup_order", {"order_id": "B2"})], recorded=rec).passed
    no_calls = Recorded(output="Hello", tool_calls=[])
    assert run({"type": "tool_call"}, output="Hi", recorded=no_calls).passed
    assert run({"type": "tool_call"}, calls=[call("x", {})], recorded=no_calls).score == 0.0
    ref = [{"name": "refund", "arguments": {"amount": 30}}]
    assert run({"type": "tool_call"}, calls=[call("refund", {"amount": 30})], reference=ref).passed
    err = run({"type": "tool_call"}, calls=[call("refund", {})], reference="a text answer")
    assert err.error is not None and err.error.type == "ScorerError"
    with pytest.raises(ConfigError):
        build_scorer({"type": "tool_call", "value": {"name": "x", "arguments": "{bad"}})
