"""`import` loses nothing to one bad line or one bad file: a bad JSON line and a truncated last
line (or last protobuf frame) are skipped and counted; a folder with an empty or non-OTLP file
imports the rest and counts the bad file. A file named on the command line must still decode."""
import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from replaygate.cli import cli
from replaygate.errors import InputError
from replaygate.sources.parallel import import_to_jsonl

FIX = Path(__file__).parent / "fixtures" / "traces"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _line() -> str:
    return (FIX / "otel137.jsonl").read_text().splitlines()[0]


def _cases(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


@pytest.fixture
def reference(tmp_path) -> list[str]:
    """The case ids the fixture gives on its own."""
    stats, n = import_to_jsonl([FIX / "otel137.jsonl"], tmp_path / "ref.jsonl", workers=1)
    assert n > 0
    return [c["id"] for c in _cases(tmp_path / "ref.jsonl")]


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_and_truncated_json_lines_are_skipped_and_counted(tmp_path, reference, workers):
    good = _line()
    f = tmp_path / "traces.jsonl"
    # a bad line in the middle, another tool's JSON line, and a last line cut by a full disk
    f.write_text(good + "\n{oops not json\n" + '{"level": "info"}\n' + good[: len(good) // 3])
    stats, n = import_to_jsonl([f], tmp_path / "out.jsonl", workers=workers, chunk_bytes=64)
    assert [c["id"] for c in _cases(tmp_path / "out.jsonl")] == reference
    assert stats.skipped["invalid JSON line (e.g. truncated)"] == 2
    assert stats.skipped["JSON line that is not OTLP"] == 1
    r = invoke("import", f, "-o", tmp_path / "cli.jsonl")
    assert r.exit_code == 0, r.output
    assert "invalid JSON line (e.g. truncated)" in r.output


def test_truncated_last_protobuf_frame_keeps_the_frames_before(tmp_path, reference):
    msg = (FIX / "otel137.pb").read_bytes()
    frame = struct.pack(">I", len(msg)) + msg
    f = tmp_path / "stream.pb"
    f.write_bytes(frame + frame[: len(frame) // 2])  # the collector's file exporter, cut short
    stats, n = import_to_jsonl([f], tmp_path / "out.jsonl", workers=1)
    assert [c["id"] for c in _cases(tmp_path / "out.jsonl")] == reference
    assert stats.skipped["truncated last protobuf frame"] == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_a_folder_with_bad_files_imports_the_rest_and_counts_them(tmp_path, reference, workers):
    d = tmp_path / "traces"
    d.mkdir()
    (d / "a.jsonl").write_text(_line() + "\n")
    (d / "empty.jsonl").write_text("")
    (d / "other.json").write_text('{\n  "not": "otlp"\n}\n')
    (d / "notes.jsonl").write_text('{"msg": "a log line"}\n')
    (d / "junk.pb").write_bytes(b"garbage that is not anything")
    stats, n = import_to_jsonl([d], tmp_path / "out.jsonl", workers=workers)
    assert [c["id"] for c in _cases(tmp_path / "out.jsonl")] == reference
    assert sorted(Path(p).name for p in stats.bad_files) == ["empty.jsonl", "junk.pb", "notes.jsonl", "other.json"]
    assert "empty file" in stats.bad_files[str(d / "empty.jsonl")]
    r = invoke("import", d, "-o", tmp_path / "cli.jsonl")
    assert r.exit_code == 0, r.output
    assert "files that are not OTLP" in r.output and "empty.jsonl" in r.output


def test_a_named_bad_file_is_still_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    r = invoke("import", FIX / "otel137.jsonl", tmp_path / "empty.jsonl", "-o", tmp_path / "out.jsonl")
    assert r.exit_code == 2, r.output
    assert str(tmp_path / "empty.jsonl") in r.output and "empty file" in r.output
    with pytest.raises(InputError):
        import_to_jsonl([tmp_path / "empty.jsonl"], tmp_path / "out.jsonl", workers=1)
