"""runfile: run files load fast (a compiled schema validator, orjson) with the same results and
errors that name the file and the field."""
import json

import numpy as np
import pytest

import jsonschema
from replaygate.compare.synthetic import make_run
from replaygate.errors import InputError
from replaygate.model import Run
from replaygate.runfile import dumps, load_run


def _write(tmp_path, doc, name="run.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def _doc(n=5):
    run = make_run(np.ones((n, 2), bool), latency=np.arange(2 * n, dtype=float).reshape(n, 2))
    return json.loads(dumps({"schema_version": 1, "summary": {}, "complete": True, **run.to_dict()}))


def test_load_run_gives_the_same_run_without_the_generic_validator(tmp_path, monkeypatch):
    doc = _doc()
    doc["cases"][0]["expected"] = {"order": 123456789012345678901234567890}  # beyond 64 bits: exact
    p = _write(tmp_path, doc)

    def generic(*a, **k):  # the jsonschema walk over every sample is what took 278 s at 100k cases
        raise AssertionError("run files must not go through the generic validator")

    monkeypatch.setattr(jsonschema.Draft202012Validator, "iter_errors", generic)
    run = load_run(p)
    assert run == Run.from_dict(json.loads(p.read_text()))
    assert run.cases[0].expected == {"order": 123456789012345678901234567890}
    assert [len(c.samples) for c in run.cases] == [2] * 5


@pytest.mark.parametrize("where,value,field,words", [
    (("cases", 3, "samples", 1, "latency_ms"), "fast", "cases[3].samples[1].latency_ms", "not of type"),
    (("cases", 0, "samples", 0, "scores", "ok", "score"), 2, "cases[0].samples[0].scores.ok.score", "maximum"),
    (("cases", 2, "id"), "", "cases[2].id", ""),
    (("schema_version",), 2, "schema_version", ""),
])
def test_an_invalid_run_file_names_the_file_and_the_field(tmp_path, where, value, field, words):
    doc = _doc()
    node = doc
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    p = _write(tmp_path, doc)
    with pytest.raises(InputError) as e:
        load_run(p)
    assert e.value.field == field and e.value.file == str(p)
    assert "not a valid run file" in str(e.value) and words in str(e.value)


def test_malformed_and_missing_run_files_are_input_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1,\n "cases": [}', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_run(bad)
    assert e.value.line == 2 and "invalid JSON" in str(e.value)
    with pytest.raises(InputError, match="not found"):
        load_run(tmp_path / "missing.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"x": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(InputError, match="cannot read"):
        load_run(latin)
