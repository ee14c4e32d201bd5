"""Atomic writes: all of a file or nothing, no temporary file left, errors naming the file; and
the CLI's outputs (-o reports, run files, import) written that way on a full or read-only disk."""
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from faults import fill, read_only, run_doc, small_disk
from replaygate.cli import cli
from replaygate.errors import InputError, RunIncomplete
from replaygate.fileio import atomic_open, check_writable, escape_surrogates, write_atomic

FIXTURES = Path(__file__).parent / "fixtures"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "report.md"
    write_atomic(target, "first\n")
    target.chmod(0o640)
    write_atomic(target, "second \ud800 text\n")  # a lone surrogate is escaped, not a crash
    assert target.read_text(encoding="utf-8") == "second \\ud800 text\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert leftovers(tmp_path) == leftovers(tmp_path / "sub") == []


def test_a_failure_while_writing_keeps_the_old_file(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half of the new")
            raise RuntimeError("killed half-way")
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_a_folder_in_the_way_is_an_input_error_naming_it(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(InputError) as e:
        write_atomic(tmp_path / "out.json", "{}")
    assert str(tmp_path / "out.json") in str(e.value) and "folder" in str(e.value)
    with pytest.raises(InputError):
        check_writable(tmp_path / "out.json")


def test_pipes_and_devices_are_written_through():
    check_writable("/dev/null")
    write_atomic("/dev/null", "text")  # no temporary file beside a device


def test_escape_surrogates_keeps_the_json_value():
    text = json.dumps({"a": "x\ud800\\y\udfff"}, ensure_ascii=False)
    out = escape_surrogates(text)
    out.encode("utf-8")  # valid UTF-8 now
    assert json.loads(out) == {"a": "x\ud800\\y\udfff"}


def test_full_disk_keeps_the_old_report_and_names_the_file(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps(run_doc(["a", "b"])))
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "report.html"
        out.write_text("the previous report\n")
        fill(disk)
        r = invoke("report", run, "--format", "html", "-o", out)
        assert r.exit_code == 3, r.output
        assert str(out) in r.output and "disk is full" in r.output and "internal error" not in r.output
        assert out.read_text() == "the previous report\n"  # not truncated to 0 bytes
        assert leftovers(disk) == []


def test_read_only_folder_is_exit_2_naming_the_file(tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps(run_doc(["a", "b"])))
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "report.md").write_text("kept\n")
    with read_only(folder):
        r = invoke("report", run, "--format", "md", "-o", folder / "report.md")
        assert r.exit_code == 2, r.output
        assert str(folder / "report.md") in r.output and "internal error" not in r.output
        assert (folder / "report.md").read_text() == "kept\n"
    with pytest.raises((InputError, RunIncomplete)):
        with read_only(folder):
            check_writable(folder / "new.json")


def test_import_to_a_full_disk_keeps_the_old_cases_file(tmp_path):
    traces = sorted((FIXTURES / "traces").glob("*.jsonl"))
    if not traces:
        pytest.skip("no trace fixtures")
    with small_disk(tmp_path / "disk", "256k") as disk:
        out = disk / "cases.jsonl"
        out.write_text('{"id": "old"}\n')
        fill(disk)
        r = invoke("import", *traces, "-o", out)
        assert r.exit_code == 3, r.output
        assert str(out) in r.output and "internal error" not in r.output
        assert out.read_text() == '{"id": "old"}\n'
        assert [p for p in os.listdir(disk) if p.endswith(".tmp")] == []
