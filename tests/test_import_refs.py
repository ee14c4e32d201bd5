"""Content stored by reference (the OTel upload hook's gen_ai.*_ref attributes)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from replaygate.config import load_config
from replaygate.errors import ConfigError
from replaygate.sources import load_dataset, refs
from replaygate.sources.parallel import import_to_jsonl
from replaygate.sources.traces import import_traces


def _span(n: int, attrs: dict) -> dict:
    return {"traceId": f"{n + 1:032x}", "spanId": f"{n + 1:016x}", "name": "chat", "kind": 3,
            "startTimeUnixNano": str(10**18 + n), "endTimeUnixNano": str(10**18 + n + 5 * 10**8),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]}


def _chat(n: int, **refs_: str) -> dict:
    return _span(n, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": "gpt-4o-mini", **refs_})


def _write_traces(path: Path, spans: list[dict]) -> Path:
    path.write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                                   "scopeSpans": [{"spans": spans}]}]}) + "\n")
    return path


@pytest.fixture
def uploads(tmp_path) -> Path:
    """Files as the upload hook writes them: json (the list on one line) and jsonl (a message
    per line, with its index)."""
    up = tmp_path / "uploads"
    up.mkdir()
    (up / "a_inputs.json").write_text(json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "Can I return shoes?"}]}]) + "\n")
    (up / "a_outputs.jsonl").write_text(
        json.dumps({"role": "assistant", "parts": [{"type": "text", "content": "Yes, within 30 days."}],
                    "finish_reason": "stop", "index": 0}) + "\n")
    (up / "s_system_instruction.jsonl").write_text(
        json.dumps({"type": "text", "content": "Be brief.", "index": 1}) + "\n"
        + json.dumps({"type": "text", "content": "You are a support agent. ", "index": 0}) + "\n")
    return up


def _trace_file(tmp_path: Path, uploads: Path) -> Path:
    outside = tmp_path / "elsewhere.json"
    outside.write_text('[{"role": "user", "parts": [{"type": "text", "content": "secret"}]}]')
    return _write_traces(tmp_path / "traces.jsonl", [
        _chat(0, **{"gen_ai.input.messages_ref": (uploads / "a_inputs.json").as_uri(),
                    "gen_ai.output.messages_ref": (uploads / "a_outputs.jsonl").as_uri(),
                    "gen_ai.system_instructions_ref": (uploads / "s_system_instruction.jsonl").as_uri()}),
        _chat(1, **{"gen_ai.input.messages_ref": "gs://bucket/x_inputs.json"}),
        _chat(2, **{"gen_ai.input.messages_ref": outside.as_uri()}),
        _chat(3, **{"gen_ai.input.messages_ref": (uploads / "missing_inputs.json").as_uri()}),
        _chat(4, **{"gen_ai.input.messages_ref": "../elsewhere.json"}),  # relative: under the folder only
    ])


def test_references_are_read_from_under_the_named_folder_only(tmp_path, uploads):
    traces = _trace_file(tmp_path, uploads)
    cases, stats = import_traces([traces], refs_dir=uploads)
    assert len(cases) == 1
    c = cases[0]
    assert [(m.role, m.content) for m in c.messages] == [
        ("system", "You are a support agent. Be brief."), ("user", "Can I return shoes?")]
    assert (c.recorded.output, c.recorded.finish_reason) == ("Yes, within 30 days.", "stop")
    assert c.metadata["attributes"]["gen_ai.input.messages_ref"].endswith("a_inputs.json")
    assert stats.skipped == Counter({refs.REMOTE: 1, refs.OUTSIDE: 2, refs.UNREADABLE: 1})
    assert "secret" not in json.dumps([x.to_dict() for x in cases])


@pytest.mark.parametrize("workers", [1, 2])
def test_without_a_folder_nothing_is_read_and_the_reason_is_counted(tmp_path, uploads, workers):
    traces = _trace_file(tmp_path, uploads)
    stats, n = import_to_jsonl([traces], tmp_path / "out.jsonl", workers=workers)
    assert n == 0 and stats.skipped == Counter({refs.NOT_ENABLED: 4, refs.REMOTE: 1})
    stats, n = import_to_jsonl([traces], tmp_path / "out.jsonl", workers=workers, chunk_bytes=1,
                               refs_dir=uploads)  # the reader crosses to the workers
    assert n == 1 and stats.skipped[refs.OUTSIDE] == 2
    assert json.loads((tmp_path / "out.jsonl").read_text())["messages"][1]["content"] == "Can I return shoes?"


def test_inline_content_wins_over_a_reference(tmp_path, uploads):
    span = _chat(0, **{"gen_ai.input.messages_ref": (uploads / "a_inputs.json").as_uri(),
                       "gen_ai.input.messages": json.dumps([{"role": "user", "content": "inline"}]),
                       "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": "ok"}])})
    cases, _ = import_traces([_write_traces(tmp_path / "t.jsonl", [span])], refs_dir=uploads)
    assert [m.content for m in cases[0].messages] == ["inline"]


def test_a_traces_entry_takes_refs_dir_relative_to_the_config(tmp_path, uploads):
    _trace_file(tmp_path, uploads)
    cfg_file = tmp_path / "replaygate.yaml"
    cfg_file.write_text("""\
version: 1
dataset:
  - traces: traces.jsonl
    refs_dir: uploads
variants:
  baseline: {recorded: true}
  candidate: {model: openai/x}
scorers: [{name: answered, type: length, min: 1}]
""")
    cfg = load_config(cfg_file)
    cases = load_dataset(cfg.data["dataset"])
    assert len(cases) == 1 and cases[0].recorded.output == "Yes, within 30 days."
    cfg_file.write_text(cfg_file.read_text().replace("refs_dir: uploads", "refs_dir: nowhere"))
    with pytest.raises(ConfigError, match="refs_dir"):
        load_config(cfg_file)
